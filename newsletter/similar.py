"""Similarity between articles: weighted terms and their overlap.

An article becomes a short vector: its terms (`words.terms`) hashed to 63-bit
integers, weighted tf-idf (`1 + ln tf` times `ln((n + 1) / (df + 1)) + 1`)
from the document frequencies known when it is indexed, normalised to unit
length, and cut to its `TOP_TERMS` heaviest terms. Two articles' similarity is
the dot product of their vectors: the cosine of the full vectors, less the
tails. The weights never change after indexing, so a score computed once holds.

Pure: the caller (`newsletter/neighbours.py`) passes the frequencies and the
postings it read from the store.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache

from newsletter import words

TOP_TERMS = 48  # terms kept per article (measured: benchmarks/related_quality.py)

Vector = dict[int, float]  # term hash → weight


@lru_cache(maxsize=1 << 17)  # a site's vocabulary repeats: most terms are hashed once
def term_id(term: str) -> int:
    """A stable signed 63-bit hash (a BIGINT in PostgreSQL), the same in every process."""
    return int.from_bytes(hashlib.blake2b(term.encode(), digest_size=8).digest(), "big") >> 1


def counts(text: str, stop: frozenset[str]) -> dict[int, int]:
    """Term hash → occurrences in `text`."""
    return {term_id(t): n for t, n in words.terms(text, stop).items()}


def weigh(term_counts: Mapping[int, int], df: Mapping[int, int], docs: int) -> Vector:
    """The unit tf-idf vector, heaviest terms first (ties by hash). `df` holds each
    term's document frequency counting this article; `docs` counts it too."""
    raw = {
        t: (1 + math.log(n)) * (math.log((docs + 1) / (df.get(t, 1) + 1)) + 1) for t, n in term_counts.items()
    }
    norm = math.sqrt(sum(w * w for w in raw.values()))
    if norm == 0:
        return {}
    return {t: w / norm for t, w in sorted(raw.items(), key=lambda item: (-item[1], -item[0]))}


def top(vector: Vector, n: int) -> Vector:
    """The `n` heaviest terms of a vector from `weigh`, normalised again: the scores of
    two heads are cosines, so one minimum similarity fits short and long articles."""
    head = list(itertools.islice(vector.items(), n))
    norm = math.sqrt(sum(w * w for _, w in head))
    return {t: w / norm for t, w in head} if norm else {}


def best(
    vector: Vector, postings: Mapping[int, Sequence[tuple[int, float]]], k: int, floor: float
) -> list[tuple[int, float]]:
    """The `k` articles scoring highest against `vector` through `postings` (term →
    (article, weight)), each at least `floor`; best first, ties to the newer (higher) id."""
    scores: dict[int, float] = {}
    get = scores.get
    for term, weight in vector.items():
        for article, other in postings.get(term, ()):
            scores[article] = get(article, 0.0) + weight * other
    found = heapq.nlargest(k, ((a, s) for a, s in scores.items() if s >= floor), key=lambda p: (p[1], p[0]))
    return [(a, round(s, 6)) for a, s in found]


def cosine(a: Vector, b: Vector) -> float:
    """The score `best` gives `b` against `a`, for two vectors in hand."""
    return sum(w * b.get(t, 0.0) for t, w in a.items())


def union_terms(vectors: Iterable[Vector]) -> set[int]:
    return {t for v in vectors for t in v}
