"""Benchmarks: ingest rate, warm build time of a 30-article issue, HTML size.

Targets: ingest >= 2,000 files/s; build <= 25 ms after warm-up; HTML < 102 KB.
Run with `make bench`. Prints numbers; never fails a test run.
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from newsletter import scaffold
from newsletter.project import Project

FILES = 3000
CATEGORIES = ["Sleep & recovery", "Nutrition & everyday eating", "Mindfulness & stress", "Movement & fitness"]
WORDS = (  # noqa: SIM905 (a word list reads better as one string)
    "sleep body habit stress research study morning evening walk breath food protein "
    "fibre routine recovery muscle heart mood focus rest light screen caffeine water "
    "plan week"
).split()
NOW = datetime(2026, 11, 26, tzinfo=UTC)
AT = datetime(2026, 11, 23, 8, tzinfo=UTC)
SCHEDULE = """title = "Bench Weekly"
cron = "0 8 * * mon"
timezone = "Europe/London"
categories = {categories}
max_per_category = 10
related_per_article = 3
lookback = "3w"
"""


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def write_archive(folder: Path, count: int) -> None:
    rng = random.Random(7)
    start = date(2026, 1, 1)
    standfirsts = [f"{sentence(rng, 30)} ({i})" for i in range(count)]
    for i in range(count):
        day = start + timedelta(days=int(325 * i / count))
        related = []
        for j in rng.sample(range(count), 3):
            related += [CATEGORIES[j % 4], standfirsts[j], "-", f"{day:%B %d, %Y}"]
        body = [sentence(rng, 90) for _ in range(6)]
        lines = [
            f"Article {i}: {sentence(rng, 8)}",
            standfirsts[i],
            f"Published {day:%B %d, %Y}",
            "Facebook X Reddit Pinterest Email",
            *body,
            "ADVERTISEMENT",
            "Related Articles",
            *related,
        ]
        (folder / f"{i:05d}.txt").write_text("\n".join(lines))


def bench_ingest(project: Project, folder: Path) -> float:
    sources = sorted(str(p) for p in folder.glob("*.txt"))
    by_category: dict[str, list[str]] = {c: [] for c in CATEGORIES}
    for n, source in enumerate(sources):
        by_category[CATEGORIES[n % 4]].append(source)
    started = time.perf_counter()
    for category, files in by_category.items():
        project.ingest(files, NOW, category)
    return len(sources) / (time.perf_counter() - started)


def bench_build(project: Project) -> tuple[float, float, int, int]:
    project.build("bench", AT, NOW, record=False)  # warm-up: caches, templates, TF-IDF
    project.build("bench", AT, NOW, record=False)
    times = []
    for _ in range(20):
        started = time.perf_counter()
        build = project.build("bench", AT, NOW, record=False)
        times.append((time.perf_counter() - started) * 1000)
    assert build.issue is not None
    return statistics.median(times), min(times), len(build.digest.articles), build.issue.html_size


def main() -> int:
    with tempfile.TemporaryDirectory() as temp:
        root, archive = Path(temp) / "project", Path(temp) / "archive"
        archive.mkdir()
        scaffold.init(root, name="Bench", base_url="https://example.org")
        schedule = SCHEDULE.format(categories=CATEGORIES[:3]).replace("'", '"')
        (root / "schedules/bench.toml").write_text(schedule)
        write_archive(archive, FILES)
        project = Project(root, environ={})
        rate = bench_ingest(project, archive)
        median, best, articles, size = bench_build(project)
        project.close()
    print(f"ingest: {FILES} text files, {rate:,.0f} files/s (target >= 2,000)")
    print(
        f"build:  {articles} articles x 3 related, median {median:.1f} ms, best {best:.1f} ms "
        f"after warm-up (target <= 25 ms)"
    )
    print(f"html:   {size / 1024:.1f} KB (target < 102 KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
