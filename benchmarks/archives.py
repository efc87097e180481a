"""Archives for benchmarks/bench.py and recall.py, made once and cached.

Each is generated reproducibly (seeded: scale.py's writer, 20 categories over 10 years)
into .cache/bench/archive-SIZE/ (git-ignored), bulk-loaded and then indexed by the
real `neighbours.reindex`; a later run reuses it, and indexes it again only when the
index method changed. Articles are ~640 words (title 7, standfirst 30, ten paragraphs
of 60), the length the issue's figures are stated for.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import scale

CACHE = Path(__file__).resolve().parent.parent / ".cache" / "bench"
PARAGRAPHS = 10
WORDS = 7 + 30 + 60 * PARAGRAPHS  # words an article
SEED_CATEGORIES = [
    "Sleep & recovery",
    "Nutrition & everyday eating",
    "Mindfulness & stress",
    "Movement & fitness",
]
SEED_WORDS = (  # noqa: SIM905 (a word list reads better as one string)
    "sleep body habit stress research study morning evening walk breath food protein "
    "fibre routine recovery muscle heart mood focus rest light screen caffeine water "
    "plan week"
).split()
SCHEDULE = "bench"  # a 30-article issue: 10 categories x 3, from the last 3 months
SCHEDULE_TEXT = scale.SCHEDULE.replace("Scale Monthly", "Bench Monthly") + 'lookback = "92d"\n'

AT = scale.AT


def archive(size: int) -> Path:
    """The project folder of the cached `size`-article archive, made if missing."""
    root = CACHE / f"archive-{size}"
    done = root / ".complete"
    if done.exists():
        scale.reindexed(root)
        _schedule(root)
        return root
    shutil.rmtree(root, ignore_errors=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    print(f"generating {size:,} articles of ~{WORDS} words into {root} ...", file=sys.stderr, flush=True)
    scale.generate(root, size, PARAGRAPHS)
    done.write_text(f"{time.perf_counter() - started:.0f} s\n")
    _schedule(root)
    return root


def _schedule(root: Path) -> None:
    """The benchmarks' schedule (written apart from the data: an archive made before it
    gains it): a monthly 10 x 3 lets a category short of three that month give fewer."""
    text = SCHEDULE_TEXT.format(categories=json.dumps(scale.CATEGORIES[:10]))
    path = root / "schedules" / f"{SCHEDULE}.toml"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def working_copy(size: int, into: Path) -> Path:
    """A copy of the archive that a run may change (ingest more, record an issue)."""
    target = into / f"archive-{size}"
    shutil.copytree(archive(size), target)
    return target


def seed_files(count: int) -> Path:
    """`count` seed-format text files (the demo's layout: title, standfirst, date, share
    line, six paragraphs of 90 words, related entries; ~680 words), made once."""
    folder = CACHE / f"seed-{count}"
    if not (folder / ".complete").exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        write_seed_files(folder, count)
        (folder / ".complete").touch()
    return folder


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(SEED_WORDS) for _ in range(words)).capitalize() + "."


def write_seed_files(folder: Path, count: int) -> None:
    rng = random.Random(7)
    start = date(2026, 1, 1)
    standfirsts = [f"{_sentence(rng, 30)} ({i})" for i in range(count)]
    for i in range(count):
        day = start + timedelta(days=int(325 * i / count))
        related = []
        for j in rng.sample(range(count), 3):
            related += [SEED_CATEGORIES[j % 4], standfirsts[j], "-", f"{day:%B %d, %Y}"]
        lines = [
            f"Article {i}: {_sentence(rng, 8)}",
            standfirsts[i],
            f"Published {day:%B %d, %Y}",
            "Facebook X Reddit Pinterest Email",
            *(_sentence(rng, 90) for _ in range(6)),
            "ADVERTISEMENT",
            "Related Articles",
            *related,
        ]
        (folder / f"{i:05d}.txt").write_text("\n".join(lines))
