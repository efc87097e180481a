"""Recall@3 of the related-link index (issue 23, item 3): how much the candidate rule
(each term's newest `POSTINGS_PER_TERM` postings) loses against an exhaustive search.

For a seeded sample of articles, the exhaustive top 3 by the same score as the index:
every article's vector is made again as the index made it (in id order, from the
frequencies of the articles before it: `similar.counts` and `similar.weigh`, the real
code), and each sampled article is scored against every other article by the dot
product. The indexed top 3 is what `neighbours.read` returns (best first, both
directions of each pair, as a build reads them). recall@3 = |indexed ∩ exhaustive| /
|exhaustive|, the mean over the sample, two ways: among the articles indexed before
the sampled one (what its card shows when it is new: its own rows, made through the
candidate rule) and over the whole archive (later articles reach it only through the
newest postings of their terms, so old articles lose links there first).

Two passes keep memory bounded at 1M articles: the vectors go to a temporary file,
then are read back once to score the sample. The exhaustive answer depends only on the
archive and the scoring code, so it is cached beside the archive (keyed by the source
of similar.py and words.py); the indexed one is read every run.

    .venv/bin/python benchmarks/recall.py SIZE [SIZE ...]   (cached archives, archives.py)
"""

from __future__ import annotations

import hashlib
import heapq
import inspect
import json
import random
import statistics
import struct
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import sqlalchemy as sa

from newsletter.project import Project
from newsletter.related import similar, words
from newsletter.storage import neighbours
from newsletter.storage.schema import articles

SAMPLE = 200
TOP = 3
SEED = 23
FAR = datetime(2999, 1, 1, tzinfo=UTC)  # every article published and every row computed by then
WAYS = ("earlier", "all")
_HEAD = struct.Struct("<qI")  # article id, terms in its vector
Truth = dict[str, dict[int, list[tuple[int, float]]]]  # way -> article -> exhaustive top 3 (id, score)


def recall(root: Path, sample: int = SAMPLE) -> dict[str, tuple[float, int, float]]:
    """{"earlier": ..., "all": ...}: (recall@3, sampled articles with an exhaustive top 3,
    the indexed top 3's summed score over the exhaustive's: how much weaker the links
    shown are, where they differ) for the project at `root`."""
    project = Project(root, environ={})
    try:
        chosen = _sample(project, sample)
        truth = cached_truth(root, project, chosen)
        found = neighbours.read(project.store, chosen, FAR, neighbours.STORE_FLOOR)
    finally:
        project.close()
    result = {}
    for way, best_of in truth.items():
        scores, weights = [], []
        for article in chosen:
            best = best_of.get(article, [])
            kept = [n for n in found.get(article, []) if way == "all" or n.target < article][:TOP]
            if best:
                scores.append(len({n.target for n in kept} & {b for b, _ in best}) / len(best))
                weights.append(sum(n.score for n in kept) / sum(score for _, score in best))
        mean = statistics.mean
        result[way] = (mean(scores) if scores else 0.0), len(scores), (mean(weights) if weights else 0.0)
    return result


def _sample(project: Project, size: int) -> list[int]:
    with project.store.engine.connect() as conn:
        ids = list(conn.scalars(sa.select(articles.c.id).order_by(articles.c.id)))
    return sorted(random.Random(SEED).sample(ids, min(size, len(ids))))


def cached_truth(root: Path, project: Project, chosen: list[int]) -> Truth:
    code = inspect.getsource(similar) + inspect.getsource(words) + repr((2, WAYS, chosen))
    key = hashlib.sha256(code.encode()).hexdigest()[:16]
    cache = root / f"recall-truth-{key}.json"
    if cache.exists():
        stored = json.loads(cache.read_text())
        return {
            way: {int(k): [tuple(p) for p in v] for k, v in found.items()} for way, found in stored.items()
        }
    truth = exhaustive(project, chosen)
    cache.write_text(json.dumps(truth))
    return truth


def exhaustive(project: Project, chosen: list[int]) -> Truth:
    """Each chosen article's top 3 by score over the whole archive (score at least the
    index's floor; ties to the newer article, as `similar.best` breaks them)."""
    with tempfile.TemporaryFile() as spill:
        wanted = _spill_vectors(project, spill, set(chosen))
        by_term: dict[int, list[tuple[int, float]]] = {}
        for article, vector in wanted.items():
            for term, weight in vector.items():
                by_term.setdefault(term, []).append((article, weight))
        spill.seek(0)
        heaps: dict[str, dict[int, list[tuple[float, int]]]] = {w: {a: [] for a in chosen} for w in WAYS}
        for other, vector in _read_vectors(spill):
            scores: dict[int, float] = {}
            for term, weight in vector.items():
                for article, mine in by_term.get(term, ()):
                    scores[article] = scores.get(article, 0.0) + weight * mine
            for article, score in scores.items():
                pair = (round(score, 6), other)
                if article != other and pair[0] >= neighbours.STORE_FLOOR:
                    _keep(heaps["all"][article], pair)
                    if other < article:
                        _keep(heaps["earlier"][article], pair)
    return {
        way: {a: [(other, score) for score, other in sorted(heap, reverse=True)] for a, heap in found.items()}
        for way, found in heaps.items()
    }


def _keep(heap: list[tuple[float, int]], pair: tuple[float, int]) -> None:
    (heapq.heappush if len(heap) < TOP else heapq.heappushpop)(heap, pair)


def _spill_vectors(project: Project, spill: IO[bytes], chosen: set[int]) -> dict[int, similar.Vector]:
    """Every article's vector, in id order, as `neighbours._weigh` makes it, written to
    `spill`; returns the chosen articles' vectors."""
    with project.store.engine.connect() as conn:
        params = neighbours.stored_params(conn) or neighbours.Params()
    stop = words.stop_words(params.language)
    df: Counter[int] = Counter()
    wanted: dict[int, similar.Vector] = {}
    for count, row in enumerate(_rows(project), start=1):
        counts = similar.counts(neighbours._prose(row), stop)  # the text the index reads
        df.update(counts.keys())
        vector = similar.weigh(counts, df, count)
        spill.write(_HEAD.pack(row.id, len(vector)))
        spill.write(struct.pack(f"<{len(vector)}q{len(vector)}d", *vector.keys(), *vector.values()))
        if row.id in chosen:
            wanted[row.id] = vector
    return wanted


def _rows(project: Project) -> Iterator[sa.Row[tuple[int, str, str, str]]]:
    cols = (articles.c.id, articles.c.title, articles.c.standfirst, articles.c.body)
    with project.store.engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=5000).execute(
            sa.select(*cols).order_by(articles.c.id)
        )
        yield from result


def _read_vectors(spill: IO[bytes]) -> Iterator[tuple[int, similar.Vector]]:
    while head := spill.read(_HEAD.size):
        article, n = _HEAD.unpack(head)
        values = struct.unpack(f"<{n}q{n}d", spill.read(16 * n))
        yield article, dict(zip(values[:n], values[n:], strict=True))


def main(argv: list[str]) -> int:
    import archives

    for size in [int(a) for a in argv] or [10_000]:
        for way, (value, sampled, weight) in recall(archives.archive(size)).items():
            print(
                f"recall@3 at {size:,} articles, {way}: {value:.3f} over {sampled} sampled articles; "
                f"the indexed top 3 scores {weight:.3f} of the exhaustive's"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
