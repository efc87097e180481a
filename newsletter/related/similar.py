"""Similarity between articles: weighted terms and their overlap.

An article becomes a short vector: its terms (`words.terms`) hashed to 63-bit
integers, weighted tf-idf (`1 + ln tf` times `ln((n + 1) / (df + 1)) + 1`)
from the document frequencies known when it is indexed, cut to its `TOP_TERMS`
heaviest terms and normalised to unit length. Two articles' similarity is the
dot product of their vectors: the cosine of their heads. The weights never
change after indexing, so a score computed once holds.

Pure: the caller (`newsletter/related/neighbours.py`) passes the frequencies and the
postings it read from the store.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections.abc import Mapping, Sequence
from functools import lru_cache

from newsletter.related import words

TOP_TERMS = 40  # terms kept per article: mid-plateau of recall@3 (36-48; benchmarks/related_quality.py)

Vector = dict[int, float]  # term hash → weight


@lru_cache(maxsize=1 << 17)  # a site's vocabulary repeats: most terms are hashed once
def term_id(term: str) -> int:
    """A stable signed 63-bit hash (a BIGINT in PostgreSQL), the same in every process."""
    return int.from_bytes(hashlib.blake2b(term.encode(), digest_size=8).digest(), "big") >> 1


def counts(text: str, stop: frozenset[str]) -> dict[int, int]:
    """Term hash → occurrences in `text`."""
    return {term_id(t): n for t, n in words.terms(text, stop).items()}


def weigh(term_counts: Mapping[int, int], df: Mapping[int, int], docs: int, n: int = TOP_TERMS) -> Vector:
    """The article's `n` heaviest tf-idf terms as a unit vector, heaviest first (ties to
    the higher hash): the scores of two heads are cosines, so one minimum similarity fits
    short and long articles. `df` holds each term's document frequency counting this
    article; `docs` counts it too."""
    log, total = math.log, docs + 1
    raw = [((1 + log(c)) * (log(total / (df.get(t, 1) + 1)) + 1), t) for t, c in term_counts.items()]
    head = sorted(raw, reverse=True)[:n]  # (weight, hash) tuples compared in C; faster than a heap here
    norm = math.sqrt(sum(w * w for w, _ in head))
    return {t: w / norm for w, t in head} if norm else {}


def best(
    vector: Vector, postings: Mapping[int, Sequence[tuple[int, float]]], k: int, floor: float
) -> list[tuple[int, float]]:
    """The `k` articles scoring highest against `vector` through `postings` (term →
    (article, weight)), each at least `floor`; best first, ties to the newer (higher) id."""
    scores: dict[int, float] = {}
    for term, weight in vector.items():
        for article, other in postings.get(term, ()):
            # `in` then `+=`, not `scores.get(...)`: no call per posting, twice as fast, same sums
            if article in scores:
                scores[article] += weight * other
            else:
                scores[article] = weight * other
    pairs = zip(scores.values(), scores.keys(), strict=True)
    found = heapq.nlargest(k, pairs)  # (score, id) tuples, compared in C: no key function
    return [(a, round(s, 6)) for s, a in found if s >= floor]
