"""Precision of similarity links on a mixed archive: the minimum score `[related]
min_similarity` defaults to.

A project holding two unrelated sites (the demo's health articles and a software
project's release notes) is ingested; every article's stored neighbours are ranked the
way a build ranks them (same category first, then the rest, best score first), and its
first three kept at each minimum score. A link is right when both ends are of the same
site. For each minimum: precision (right links / links), the links that cross between
the sites, and how many links a card keeps on average (and how many cards keep none).

    .venv/bin/python benchmarks/related_precision.py [SITE_A SITE_B ...]

Default: examples/articles and tests/fixtures/jekyll-news. Each argument is one site.
"""

from __future__ import annotations

import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from newsletter import scaffold
from newsletter.project import Project
from newsletter.storage import neighbours

NOW = datetime(2030, 1, 1, tzinfo=UTC)
PER_CARD = 3
FLOOR = neighbours.STORE_FLOOR
MINIMUMS = [round(0.02 + 0.01 * i, 2) for i in range(19)]


def measure(sites: list[str]) -> list[tuple[float, float, int, float, int]]:
    """(minimum, precision, crossing links, links per card, cards without a link) per minimum."""
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp) / "project"
        scaffold.init(root, name="Precision", base_url="https://example.org")
        project = Project(root, environ={})
        for site in sites:
            project.ingest([site], NOW)
        stored = project.store.articles()
        site_of = {s.id: _site(s.article.source, sites) for s in stored}
        category = {s.id: s.article.category for s in stored}
        found = neighbours.read(project.store, list(site_of), NOW, FLOOR)
        project.close()
    crossing = [n.score for a, near in found.items() for n in near if site_of[a] != site_of[n.target]]
    print(f"highest score of a pair across the sites: {max(crossing, default=0):.4f}")
    rows = []
    for minimum in MINIMUMS:
        pool = [(a, n.target) for a, near in found.items() for n in near if n.score >= minimum]
        right = sum(1 for a, t in pool if site_of[a] == site_of[t])
        precision = right / len(pool) if pool else 1.0
        links = {a: _top(a, found.get(a, []), category, minimum) for a in site_of}
        empty = sum(1 for targets in links.values() if not targets)
        per_card = sum(map(len, links.values())) / len(site_of)
        rows.append((minimum, precision, len(pool) - right, per_card, empty))
    return rows


def _site(source: str, sites: list[str]) -> int:
    resolved = str(Path(source).resolve())
    return next((n for n, s in enumerate(sites) if resolved.startswith(str(Path(s).resolve()))), -1)


def _top(
    article: int, found: list[neighbours.Neighbour], category: dict[int, str], minimum: float
) -> list[int]:
    kept = [n for n in found if n.score >= minimum]
    ranked = sorted(kept, key=lambda n: n.category != category[article])  # stable: by score
    return [n.target for n in ranked[:PER_CARD]]


def main(paths: list[str]) -> int:
    here = Path(__file__).resolve().parent.parent
    sites = paths or [str(scaffold.demo_articles()), str(here / "tests" / "fixtures" / "jekyll-news")]
    print(f"sites: {', '.join(sites)}; first {PER_CARD} links per card")
    print("minimum  precision  crossing pairs  links/card  cards without")
    for minimum, precision, crossing, per_card, empty in measure(sites):
        print(f"{minimum:7.2f}  {precision:9.3f}  {crossing:14d}  {per_card:10.2f}  {empty:13d}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
