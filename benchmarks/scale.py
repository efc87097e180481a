"""Related links at scale: builds and ingest against 10k, 100k and 1M-article archives.

`make bench-scale` (or `python benchmarks/scale.py [SIZE ...]`). Each archive is
generated deterministically (seeded; 20 categories over 10 years, topic words per
category over a shared vocabulary) into benchmarks/scale-data/SIZE/ (git-ignored),
once: it is bulk-loaded with executemany straight into the articles table (each row
made by the store's own row function, in transactions of 20,000; an article is
"ingested" when published), then indexed by `neighbours.reindex`, the real code.
Later runs reuse it.

Measured per size: the reindex rate when it was made (or when an upgrade's new
method indexed it again); a cold build (a new process: project opened, first
build) and a warm build (median of 10 more) of a 30-article issue (10 categories
x 3, monthly), with peak RSS; then the ingest rate (the whole `Project.ingest`:
reading, upsert, neighbours; wall clock, so run it on an idle machine) of 1,000
new text files into it: the median of five runs, and their range.
Prints numbers; never fails a test run.
"""

from __future__ import annotations

import itertools
import json
import random
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from newsletter import scaffold
from newsletter.core.models import Article, Block
from newsletter.project import Project
from newsletter.storage import neighbours
from newsletter.storage.article_rows import article_row
from newsletter.storage.schema import articles, meta

DATA = Path(__file__).parent / "scale-data"
SIZES = (10_000, 100_000, 1_000_000)
CATEGORIES = [f"Topic {n:02d}" for n in range(20)]
START = datetime(2016, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=3652)
AT = START + SPAN + timedelta(hours=8)  # the first of a month at 08:00, after the archive's last day
NEW_FILES = 1_000
INGEST_RUNS = 5  # each adds 1,000 new articles; the median is reported, with the range
SYLLABLES = [a + b for a in "bcdfghjklmnprstvz" for b in "aeiou"]
SCHEDULE = """title = "Scale Monthly"
cron = "0 8 1 * *"
timezone = "UTC"
categories = {categories}
max_per_category = 3
related_per_article = 3
"""


def vocabulary(rng: random.Random, size: int, syllables: int) -> list[str]:
    return ["".join(rng.choice(SYLLABLES) for _ in range(syllables)) for _ in range(size)]


class Writer:
    """Deterministic article text: a category's topic words over a shared vocabulary."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        self.shared = vocabulary(rng, 3000, 3)
        self.topics = {c: vocabulary(rng, 300, 4) for c in CATEGORIES}
        # Cumulative weights, summed once: `choices` would sum 3,000 weights on every call
        # (the same floats, so the same words as passing the weights).
        self.shared_weights = list(itertools.accumulate(1 / (r + 1) for r in range(len(self.shared))))  # Zipf
        self.topic_weights = list(itertools.accumulate(1 / (r + 1) ** 0.7 for r in range(300)))

    def words(self, rng: random.Random, category: str, count: int) -> str:
        topical = rng.choices(self.topics[category], cum_weights=self.topic_weights, k=count * 2 // 5)
        common = rng.choices(self.shared, cum_weights=self.shared_weights, k=count - len(topical))
        mixed = topical + common
        rng.shuffle(mixed)
        return " ".join(mixed).capitalize() + "."

    def article(self, rng: random.Random, n: int, total: int, tag: str = "", paragraphs: int = 4) -> Article:
        """Title 7 words, standfirst 30, `paragraphs` of 60 (4: ~280 words; 10: ~640)."""
        category = CATEGORIES[rng.randrange(len(CATEGORIES))]
        published = START + SPAN * (n / total)
        body = tuple(Block("paragraph", self.words(rng, category, 60)) for _ in range(paragraphs))
        return Article(
            title=f"{self.words(rng, category, 7)} {tag}{n}",
            published=published,
            source=f"scale:{tag}{n}",
            standfirst=self.words(rng, category, 30),
            category=category,
            url=f"https://example.org/{tag}{n}",
            key=f"scale:{tag}{n}",
            body=body,
        )


def generate(root: Path, size: int, paragraphs: int = 4) -> float:
    """A project with `size` articles, bulk-loaded then reindexed; returns the reindex rate."""
    scaffold.init(root, name="Scale", base_url="https://example.org")
    (root / "schedules/scale.toml").write_text(SCHEDULE.format(categories=json.dumps(CATEGORIES[:10])))
    project = Project(root, environ={})
    writer, rng = Writer(7), random.Random(size)
    engine = project.store.engine
    started = time.perf_counter()
    for first in range(0, size, 20_000):
        batch = [
            writer.article(rng, n, size, paragraphs=paragraphs)
            for n in range(first, min(first + 20_000, size))
        ]
        with engine.begin() as conn:
            conn.execute(articles.insert(), [article_row(a, a.published, a.published) for a in batch])
        print(f"  loaded {first + len(batch):,} articles ({time.perf_counter() - started:.0f} s)", flush=True)
    rate = index_all(project)
    project.close()
    return rate


def index_all(project: Project) -> float:
    """`neighbours.reindex`, the real code, over the whole archive; its rate is kept in meta."""
    engine = project.store.engine
    started = time.perf_counter()
    done = neighbours.reindex(project.store, project.settings.related, _report("  indexed"))
    rate = done / (time.perf_counter() - started)
    with engine.begin() as conn:
        conn.execute(meta.delete().where(meta.c.key == "scale_reindex_rate"))
        conn.execute(meta.insert().values(key="scale_reindex_rate", value=f"{rate:.0f}"))
    return rate


def _report(label: str) -> neighbours.Progress:
    started = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if done % 50_000 < neighbours.BATCH or done == total:
            print(f"{label} {done:,}/{total:,} ({time.perf_counter() - started:.0f} s)", flush=True)

    return progress


BUILD = """
import json, resource, statistics, sys, time
from datetime import datetime
from pathlib import Path
def peak_mb():
    # This process's own peak (VmHWM): ru_maxrss keeps the parent's peak across exec, so a
    # bench process grown by a reindex would report its own size here.
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")) / 1024
started = time.perf_counter()
from newsletter.project import Project
project = Project(Path(sys.argv[1]), environ={})
at = datetime.fromisoformat(sys.argv[2])
build = project.build("scale", at, at, record=False)
cold = time.perf_counter() - started
times = []
for _ in range(10):
    t = time.perf_counter()
    build = project.build("scale", at, at, record=False)
    times.append(time.perf_counter() - t)
links = [link.url for a in build.digest.articles for link in a.related]
print(json.dumps({"cold": cold, "warm": statistics.median(times), "articles": len(build.digest.articles),
                  "links": len(links), "distinct": len(set(links)),
                  "rss_mb": peak_mb()}))
"""


def measure_build(root: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", BUILD, str(root), AT.isoformat()], capture_output=True, text=True, check=True
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure_ingest(root: Path, size: int) -> float:
    """1,000 new text files (a fresh set per run) through the whole `Project.ingest`."""
    project = Project(root, environ={})
    with project.store.engine.connect() as conn:
        runs = conn.scalar(sa.select(sa.func.count()).select_from(articles)) or 0
    folder = root / "incoming" / str(runs)
    folder.mkdir(parents=True, exist_ok=True)
    writer, rng = Writer(7), random.Random(runs)
    for n in range(NEW_FILES):
        a = writer.article(rng, size - NEW_FILES + n, size, tag=f"r{runs}-")
        lines = [a.title, a.standfirst, f"Published {a.published:%B %d, %Y}", *(b.text for b in a.body)]
        (folder / f"{n:05d}.txt").write_text("\n".join(lines))
    now = AT + timedelta(days=1)
    started = time.perf_counter()
    report = project.ingest([str(folder)], now, CATEGORIES[0])
    rate = report.counts.added / (time.perf_counter() - started)
    project.close()
    return rate


def reindexed(root: Path) -> None:
    """An archive indexed by an older method (data kept across an upgrade) is indexed
    again by the current one, its rate recorded as when it was made."""
    project = Project(root, environ={})
    if neighbours.adopt(project.store, project.settings.related):
        print(f"  {root}: index of an older method; reindexing ...", flush=True)
        index_all(project)
    project.close()


def main(argv: list[str]) -> int:
    sizes = [int(a) for a in argv] or list(SIZES)
    rows = []
    for size in sizes:
        root = DATA / str(size)
        if not (root / "newsletter.db").exists():
            print(f"generating {size:,} articles into {root} ...", flush=True)
            generate(root, size)
        reindexed(root)
        with Project(root, environ={}).store.engine.connect() as conn:
            reindex = conn.scalar(sa.select(meta.c.value).where(meta.c.key == "scale_reindex_rate"))
        build = measure_build(root)
        rates = [measure_ingest(root, size) for _ in range(INGEST_RUNS)]
        ingest = f"{statistics.median(rates):,.0f} articles/s ({min(rates):,.0f}-{max(rates):,.0f})"
        rows.append((size, build, ingest, reindex))
        print(f"  {size:,}: {build} ingest {ingest} reindex {reindex}/s", flush=True)
    print()
    print(
        "| archive | cold build (new process) | warm build | peak RSS "
        "| ingest (1,000 files: median, range) | reindex |"
    )
    print("|---|---|---|---|---|---|")
    for size, build, ingest, reindex in rows:
        print(
            f"| {size:,} | {build['cold'] * 1000:,.0f} ms | {build['warm'] * 1000:,.1f} ms "
            f"| {build['rss_mb']:,.0f} MB | {ingest} | {int(reindex or 0):,} articles/s |"
        )
    print(
        f"(each build: {rows[-1][1]['articles']:.0f} articles, {rows[-1][1]['links']:.0f} links to "
        f"{rows[-1][1]['distinct']:.0f} distinct articles; targets: 1M build <= 2x the 10k build, "
        f"RSS < 200 MB, ingest >= 1,000 articles/s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
