"""Candidate-rule variants of the related-link index, measured as `make bench` measures
the rule in use: each reindexes a copy of a realistic archive (topical.py), then gives
recall@3 (recall.py) and the time to index 1,000 new articles into it (the indexing
part of P5b's ingest). Variants patch `neighbours` in this process only.

    .venv/bin/python benchmarks/recall_variants.py SIZE newest32 newest64 heaviest32 ...

newest32 is the rule in use (each term's newest 32 postings); newest64 keeps 64;
heaviest32 keeps each term's 32 heaviest postings instead of its newest.
"""

from __future__ import annotations

import bisect
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import recall
import sqlalchemy as sa
import topical

from newsletter.project import Project
from newsletter.storage import neighbours
from newsletter.storage.article_rows import article_row
from newsletter.storage.schema import articles

NEW = 1000
_NEWEST = neighbours._post


def _heaviest(doc: neighbours._Doc, postings: dict[int, list[neighbours.Posting]]) -> None:
    for term, weight in doc.vector.items():
        found = postings.setdefault(term, [])
        bisect.insort(found, (doc.id, weight), key=lambda p: -p[1])
        if len(found) > neighbours.POSTINGS_PER_TERM:
            found.pop()


VARIANTS = {"newest32": (32, _NEWEST), "newest64": (64, _NEWEST), "heaviest32": (32, _heaviest)}


def run(size: int, name: str, work: Path) -> str:
    neighbours.POSTINGS_PER_TERM, neighbours._post = VARIANTS[name]
    root = work / name
    shutil.copytree(topical.archive(size), root, ignore=shutil.ignore_patterns("*-wal", "*-shm"))
    project = Project(root, environ={})
    started = time.perf_counter()
    neighbours.reindex(project.store, project.settings.related)
    rate = size / (time.perf_counter() - started)
    project.close()
    found = recall.recall(root)
    seconds = _index_new(root, size)
    shutil.rmtree(root)
    earlier, every = found["earlier"], found["all"]
    return (
        f"{size:,} {name}: recall@3 earlier {earlier[0]:.3f}, whole archive {every[0]:.3f} "
        f"(links shown {earlier[2]:.2f}/{every[2]:.2f} of the best's); reindex {rate:,.0f}/s; "
        f"indexing {NEW:,} new articles {seconds:.2f} s"
    )


def _index_new(root: Path, size: int) -> float:
    """`NEW` new articles stored, then indexed in one transaction (as ingest does)."""
    writer, rng = topical.Writer(11), random.Random(size)
    new = [writer.article(rng, size + i, size + NEW) for i in range(NEW)]
    project = Project(root, environ={})
    with project.store.engine.begin() as conn:
        conn.execute(articles.insert(), [article_row(a, a.published, a.published) for a in new])
        ids = list(conn.scalars(sa.select(articles.c.id).order_by(articles.c.id.desc()).limit(NEW)))
        started = time.perf_counter()
        neighbours.index(conn, ids)
        seconds = time.perf_counter() - started
    project.close()
    return seconds


def main(argv: list[str]) -> int:
    size = int(argv[0])
    with tempfile.TemporaryDirectory(dir=topical.archives.CACHE) as work:
        for name in argv[1:] or list(VARIANTS):
            print(run(size, name, Path(work)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
