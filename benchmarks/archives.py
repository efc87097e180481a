"""Archives for benchmarks/bench.py and recall.py, made once and cached.

Each is generated reproducibly (seeded: scale.py's writer, 20 categories over 10 years)
into .cache/bench/archive-SIZE/ (git-ignored), bulk-loaded and then indexed by the
real `neighbours.reindex`; a later run reuses it, and indexes it again only when the
index method changed. Articles are ~640 words (title 7, standfirst 30, ten paragraphs
of 60), the length the issue's figures are stated for.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import scale

CACHE = Path(__file__).resolve().parent.parent / ".cache" / "bench"
PARAGRAPHS = 10
WORDS = 7 + 30 + 60 * PARAGRAPHS  # words an article
SCHEDULE = "scale"  # monthly, 10 categories x 3: a 30-article issue
AT = scale.AT


def archive(size: int) -> Path:
    """The project folder of the cached `size`-article archive, made if missing."""
    root = CACHE / f"archive-{size}"
    done = root / ".complete"
    if done.exists():
        scale.reindexed(root)
        return root
    shutil.rmtree(root, ignore_errors=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    print(f"generating {size:,} articles of ~{WORDS} words into {root} ...", file=sys.stderr, flush=True)
    scale.generate(root, size, PARAGRAPHS)
    done.write_text(f"{time.perf_counter() - started:.0f} s\n")
    return root


def working_copy(size: int, into: Path) -> Path:
    """A copy of the archive that a run may change (ingest more, record an issue)."""
    target = into / f"archive-{size}"
    shutil.copytree(archive(size), target)
    return target
