"""Archives with realistic text statistics, for recall@3 (issue 23, item 3).

scale.py's writer draws every word of an article independently from one of 20
category vocabularies: all articles of a category look alike, so an exhaustive top 3
is decided by noise and recall against it says little about a real site. Here an
article is about 1-3 of `TOPICS` topics (topic popularity Zipf-distributed; each topic
has its own `TOPIC_WORDS` words, used with Zipf frequencies) over shared common words
(Zipf over `COMMON_WORDS`), and most articles belong to a story: a run of articles
on the same topics that share a few names of their own (people, places, products),
spread over weeks to months; topics recur over the whole ten years. So related
articles exist (a story's other articles first, then those sharing its topics) and
the exhaustive top 3 means something.

Seeded and cached like archives.py's: `.cache/bench/topical-SIZE/`, bulk-loaded, then
indexed by the real `neighbours.reindex`. Articles are ~640 words, as there.

    .venv/bin/python benchmarks/topical.py SIZE [SIZE ...]   (makes them, prints times)
"""

from __future__ import annotations

import itertools
import random
import shutil
import sys
import time
from pathlib import Path

import archives
import scale
import sqlalchemy as sa

from newsletter import scaffold
from newsletter.core.models import Article, Block
from newsletter.project import Project
from newsletter.storage.article_rows import article_row
from newsletter.storage.schema import articles

TOPICS = 2000
TOPIC_WORDS = 400
COMMON_WORDS = 20_000
NAMES = 4000  # a story's names are drawn from these (names recur across stories, rarely)
STORY_SHARE = 0.7  # articles that continue or start a story; the rest stand alone
LIVE_STORIES = 200  # stories open at once; an article continues one of them
MIX = (0.82, 0.15, 0.03)  # common, topical, names: shares of an article's words


def _zipf(n: int, s: float = 1.0) -> list[float]:
    return list(itertools.accumulate(1 / (r + 1) ** s for r in range(n)))


class Writer:
    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        self.common = scale.vocabulary(rng, COMMON_WORDS, 3)
        self.topics = [scale.vocabulary(rng, TOPIC_WORDS, 4) for _ in range(TOPICS)]
        self.names = scale.vocabulary(rng, NAMES, 3)
        self.common_weights, self.topic_weights = _zipf(COMMON_WORDS), _zipf(TOPIC_WORDS)
        self.popularity = _zipf(TOPICS, 0.8)
        self.live: list[tuple[list[int], list[str]]] = []  # (topics, names) of the open stories

    def subject(self, rng: random.Random) -> tuple[list[int], list[str]]:
        """An article's topics and names: a live story's, a new story's, or its own."""
        if self.live and rng.random() < STORY_SHARE:
            return self.live[rng.randrange(len(self.live))]
        count = rng.choices((1, 2, 3), (0.5, 0.35, 0.15))[0]
        topics = list(dict.fromkeys(rng.choices(range(TOPICS), cum_weights=self.popularity, k=count)))
        subject = (topics, rng.sample(self.names, rng.randint(2, 5)))
        if rng.random() < STORY_SHARE:  # a new story, replacing an old one once enough are open
            if len(self.live) >= LIVE_STORIES:
                self.live[rng.randrange(LIVE_STORIES)] = subject
            else:
                self.live.append(subject)
        return subject

    def words(self, rng: random.Random, subject: tuple[list[int], list[str]], count: int) -> str:
        topics, names = subject
        shares = [round(count * m) for m in MIX]
        mixed = rng.choices(self.common, cum_weights=self.common_weights, k=shares[0])
        for i, topic in enumerate(topics):  # the first topic is the main one
            part = shares[1] // (2 if i == 0 and len(topics) > 1 else len(topics))
            mixed += rng.choices(self.topics[topic], cum_weights=self.topic_weights, k=part)
        mentioned = rng.sample(names, rng.randint(min(2, len(names)), len(names)))  # not every name each time
        mixed += rng.choices(mentioned, k=shares[2])
        rng.shuffle(mixed)
        return " ".join(mixed).capitalize() + "."

    def article(self, rng: random.Random, n: int, total: int) -> Article:
        subject = self.subject(rng)
        body = tuple(Block("paragraph", self.words(rng, subject, 60)) for _ in range(archives.PARAGRAPHS))
        return Article(
            title=f"{self.words(rng, subject, 7)} {n}",
            published=scale.START + scale.SPAN * (n / total),
            source=f"topical:{n}",
            standfirst=self.words(rng, subject, 30),
            category=scale.CATEGORIES[subject[0][0] % len(scale.CATEGORIES)],
            url=f"https://example.org/t{n}",
            key=f"topical:{n}",
            body=body,
        )


def archive(size: int) -> Path:
    """The project folder of the cached `size`-article topical archive, made if missing."""
    root = archives.CACHE / f"topical-{size}"
    done = root / ".complete"
    if done.exists():
        scale.reindexed(root)
        return root
    shutil.rmtree(root, ignore_errors=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    print(f"generating {size:,} topical articles into {root} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    generate(root, size)
    loaded = time.perf_counter() - started
    project = Project(root, environ={})
    scale.index_all(project)
    project.close()
    done.write_text(
        f"generated and loaded {loaded:.0f} s, indexed {time.perf_counter() - started - loaded:.0f} s\n"
    )
    return root


def generate(root: Path, size: int) -> None:
    scaffold.init(root, name="Topical", base_url="https://example.org")
    project = Project(root, environ={})
    writer, rng = Writer(11), random.Random(size)
    with project.store.engine.begin() as conn:
        for first in range(0, size, 20_000):
            batch = [writer.article(rng, n, size) for n in range(first, min(first + 20_000, size))]
            conn.execute(articles.insert(), [article_row(a, a.published, a.published) for a in batch])
    project.close()


def main(argv: list[str]) -> int:
    for size in [int(a) for a in argv] or [10_000]:
        root = archive(size)
        with Project(root, environ={}).store.engine.connect() as conn:
            count = conn.scalar(sa.select(sa.func.count()).select_from(articles))
        print(f"{root}: {count:,} articles; {(root / '.complete').read_text().strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
