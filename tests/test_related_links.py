"""Related links a reader would click (issue 19, section 6): no similarity link between
two unrelated sites of one archive, and a card's own picks always on it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from newsletter import scaffold
from newsletter.project import Project
from newsletter.storage import neighbours
from tests.conftest import FIXTURES, write_article

RELEASE_NOTES = FIXTURES / "jekyll-news"
AT = datetime(2030, 1, 1, tzinfo=UTC)


def test_no_similarity_link_crosses_between_two_unrelated_sites(project: Project) -> None:
    """The demo's health site and a software project's release notes in one archive: the
    default minimum (calibrated by benchmarks/related_precision.py) keeps them apart,
    though "Sponsoring Jekyll's development" scores 0.076 against a health article."""
    project.ingest([str(scaffold.demo_articles())], AT)
    project.ingest([str(RELEASE_NOTES)], AT)
    stored = project.store.articles()
    notes = {s.id for s in stored if Path(s.article.source).is_relative_to(RELEASE_NOTES)}
    assert len(notes) == 8 and len(stored) == 40
    found = neighbours.read(
        project.store, [s.id for s in stored], AT, project.settings.related.min_similarity
    )
    crossing = [
        (a, n.target) for a, near in found.items() for n in near if (a in notes) != (n.target in notes)
    ]
    assert crossing == []
    assert sum(1 for near in found.values() if near) >= 30  # the sites still link within themselves
    below = neighbours.read(project.store, [s.id for s in stored], AT, 0.05)
    assert any((a in notes) != (n.target in notes) for a, near in below.items() for n in near)  # the old 0.05


def test_each_card_of_a_weekly_shows_its_own_picks_even_when_another_card_shows_them(
    project: Project,
) -> None:
    """Five articles of one site in one issue; three name the same two archive articles
    as related. Before: each archive article once per issue, so the third card had none."""
    folder = project.root / "site"
    picks = [
        ("Mind", "The first older piece, on breathing.", "1 Oct 2026"),
        ("Mind", "The second older piece, on walking.", "2 Oct 2026"),
    ]
    write_article(folder, "old-1.txt", "Older one", "1 October 2026", "The first older piece, on breathing.")
    write_article(folder, "old-2.txt", "Older two", "2 October 2026", "The second older piece, on walking.")
    for n in range(5):
        related = picks if n < 3 else ()
        write_article(folder, f"new-{n}.txt", f"New piece {n}", f"{3 + n} November 2026", related=related)
    project.ingest([str(folder)], AT, category="Mind")
    (project.root / "schedules" / "mind.toml").write_text(
        'title = "Mind"\ncron = "0 8 * * mon"\ntimezone = "UTC"\n'
        'categories = ["Mind"]\nrelated_per_article = 3\n'
    )
    digest = project.digest(project.schedule("mind"), datetime(2026, 11, 8, 12, tzinfo=UTC))
    cards = {a.title: [link.title for link in a.related] for a in digest.articles}
    assert len(cards) == 5
    for n in range(3):
        assert cards[f"New piece {n}"][:2] == ["Older one", "Older two"]
    similar = [t for n in (3, 4) for t in cards[f"New piece {n}"]]
    assert "Older one" not in similar and "Older two" not in similar  # similar links stay unique
