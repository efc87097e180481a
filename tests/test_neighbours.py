"""Related links from the stored neighbours: computed at ingest, read by a build.

Real projects with real SQLite files; articles in the text format."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.core.models import IssueStatus
from newsletter.project import Project
from newsletter.related import words
from newsletter.storage import neighbours
from newsletter.storage.issues import Issues
from newsletter.storage.schema import meta, similar_terms
from newsletter.storage.schema import neighbours as neighbour_rows
from tests.conftest import NOW, write_article

SCHEDULE = """title = "Test Weekly"
cron = "0 8 * * mon"
timezone = "UTC"
categories = ["Sleep", "Food"]
max_per_category = 5
related_per_article = 3
lookback = "3w"
"""
AT = datetime(2026, 11, 23, 8, tzinfo=UTC)  # a Monday, 08:00
SLEEP = "Sleep, bedtime, melatonin, circadian rhythm, insomnia, naps and dreams shape how rested we feel."
FOOD = "Fibre, protein, vegetables, cooking, recipes, breakfast and lunch shape how well we eat."


def setup(project: Project) -> Path:
    (project.root / "schedules/test.toml").write_text(SCHEDULE)
    return project.root / "articles"


def body(text: str, n: int) -> list[str]:
    return [f"{text} Note {n}: {text.lower()}", text]


def rows(project: Project) -> set[tuple[int, int, float]]:
    with project.store.engine.connect() as conn:
        query = sa.select(neighbour_rows.c.article_id, neighbour_rows.c.neighbour_id, neighbour_rows.c.score)
        return {(a, b, round(s, 9)) for a, b, s in conn.execute(query)}


def links_of(project: Project, at: datetime = AT) -> dict[str, list[str]]:
    build = project.build("test", at, NOW, record=False)
    return {a.title: [link.title for link in a.related] for a in build.digest.articles}


def test_links_come_from_stored_neighbours_best_first(project: Project):
    folder = setup(project)
    for n in range(4):
        write_article(
            folder, f"s{n}.txt", f"Sleep story {n}", f"November {10 + n}, 2026", body=body(SLEEP, n)
        )
        write_article(folder, f"f{n}.txt", f"Food story {n}", f"November {10 + n}, 2026", body=body(FOOD, n))
    project.ingest([str(folder / f"s{n}.txt") for n in range(4)], NOW, "Sleep")
    project.ingest([str(folder / f"f{n}.txt") for n in range(4)], NOW, "Food")
    indexed, stored = neighbours.counts(project.store)
    assert indexed == 8 and stored > 0
    found = neighbours.read(project.store, range(1, 9), AT, 0.05)
    for article, near in found.items():
        assert [n.score for n in near] == sorted((n.score for n in near), reverse=True)
        assert article not in {n.target for n in near}


def test_no_link_to_an_article_published_after_the_moment(project: Project):
    folder = setup(project)
    write_article(folder, "old.txt", "Sleep old", "November 17, 2026", body=body(SLEEP, 1))
    project.ingest([str(folder / "old.txt")], NOW, "Sleep")
    # Published after AT, ingested later: offered to "Sleep old" as a forward neighbour.
    write_article(folder, "new.txt", "Sleep new", "November 25, 2026", body=body(SLEEP, 2))
    project.ingest([str(folder / "new.txt")], NOW + timedelta(days=1), "Sleep")
    assert any(a == 1 for a, _, _ in rows(project))  # the forward row exists...
    assert links_of(project)["Sleep old"] == []  # ...and the build at AT does not show it
    later = datetime(2026, 11, 30, 8, tzinfo=UTC)
    assert [n.target for n in neighbours.read(project.store, [1], later, 0.05)[1]] == [2]


def test_rows_computed_after_the_moment_are_not_used_for_an_as_of_build(project: Project):
    folder = setup(project)
    write_article(folder, "card.txt", "Sleep card", "November 20, 2026", body=body(SLEEP, 1))
    project.ingest([str(folder / "card.txt")], AT - timedelta(hours=1), "Sleep")
    # Published before AT but only ingested (and its neighbours computed) after it.
    write_article(folder, "late.txt", "Sleep late", "October 16, 2026", body=body(SLEEP, 2))
    project.ingest([str(folder / "late.txt")], AT + timedelta(days=2), "Sleep")
    assert links_of(project)["Sleep card"] == []
    assert links_of(project, AT + timedelta(days=3))["Sleep card"] == ["Sleep late"]


def test_an_article_is_linked_at_most_once_per_issue(project: Project):
    folder = setup(project)
    for n in range(3):  # three cards in the issue, all like each archive article
        write_article(folder, f"c{n}.txt", f"Sleep card {n}", f"November {18 + n}, 2026", body=body(SLEEP, n))
    for n in range(12):
        write_article(
            folder, f"a{n}.txt", f"Sleep archive {n}", f"October {1 + n}, 2026", body=body(SLEEP, n)
        )
    project.ingest([str(folder)], NOW, "Sleep")
    found = links_of(project)
    cards = [title for title in found if title.startswith("Sleep card")]
    linked = [link for title in cards for link in found[title]]
    assert len(cards) == 3 and len(linked) == 9
    assert len(set(linked)) == 9


def test_explicit_entries_first_then_same_category(project: Project):
    folder = setup(project)
    write_article(folder, "pick.txt", "Food pick", "October 1, 2026", "The editors' own pick.")
    write_article(folder, "other.txt", "Food near", "October 2, 2026", body=body(SLEEP, 9))
    write_article(folder, "same.txt", "Sleep near", "October 3, 2026", body=body(SLEEP, 8))
    related = [("Food", "The editors' own pick.", "October 1, 2026")]
    write_article(folder, "card.txt", "Sleep card", "November 20, 2026", body=body(SLEEP, 1), related=related)
    project.ingest([str(folder / "pick.txt"), str(folder / "other.txt")], NOW, "Food")
    project.ingest([str(folder / "same.txt"), str(folder / "card.txt")], NOW, "Sleep")
    assert links_of(project)["Sleep card"] == ["Food pick", "Sleep near", "Food near"]


def test_unrelated_languages_get_no_links(project: Project):
    folder = setup(project)
    texts = {
        "ru": "Комедийное видео о приключениях друзей в Москве, смешные сцены и шутки актёров.",
        "pt": "Pesquisa eleitoral no Brasil mostra candidatos empatados entre os eleitores paulistas.",
        "de": "Der Supermarkt senkt die Preise für Milch, Butter und Käse in allen Filialen.",
        "ja": "東京の桜が満開になり、多くの花見客が公園を訪れました。",
    }
    for code, text in texts.items():
        write_article(folder, f"{code}.txt", f"Story {code}", "November 18, 2026", text, body=[text, text])
    project.ingest([str(folder)], NOW, "Sleep")
    assert all(links == [] for links in links_of(project).values())


def test_cjk_articles_link_to_their_own_topic(project: Project):
    folder = setup(project)
    sakura = "東京の桜が満開になり、多くの花見客が上野公園を訪れました。桜の開花は例年より早いです。"
    ramen = "札幌のラーメン店が新しい味噌ラーメンを発売し、行列ができました。ラーメンの人気は続きます。"
    for n in range(4):  # the first of each in the issue, the rest in the archive (October)
        day = "November 20" if n == 0 else f"October {10 + n}"
        write_article(folder, f"sakura{n}.txt", f"桜 {n}", f"{day}, 2026", sakura, body=[sakura] * 2)
        write_article(folder, f"ramen{n}.txt", f"ラーメン {n}", f"{day}, 2026", ramen, body=[ramen] * 2)
    project.ingest([str(folder)], NOW, "Sleep")
    found = links_of(project)
    assert sorted(found) == ["ラーメン 0", "桜 0"]
    for title, links in found.items():
        assert links, title
        topic = title.split()[0]
        assert all(link.split()[0] == topic for link in links), (title, links)


def test_words_fold_accents_split_cjk_and_drop_stop_words():
    assert words.terms("Café CAFE café") == {"cafe": 3}
    assert set(words.terms("東京都")) == {"東京", "京都"}
    german = words.stop_words("de_AT")
    assert "und" in german and "the" in german
    assert "und" not in words.stop_words("")
    assert words.terms("Der Hund und die Katze", german) == {"hund": 1, "katze": 1}


def test_reindex_gives_the_same_neighbours_as_incremental_ingest(project: Project):
    folder = setup(project)
    for n in range(30):
        text = SLEEP if n % 3 else FOOD
        write_article(
            folder, f"{n:02d}.txt", f"Story {n}", f"November {1 + n % 28}, 2026", body=body(text, n)
        )
    files = sorted(str(p) for p in folder.glob("*.txt"))
    for start in (0, 7, 19):  # three ingests, batches that do not line up with reindex's
        project.ingest(files[start : {0: 7, 7: 19, 19: 30}[start]], NOW + timedelta(minutes=start), "Sleep")
    before = rows(project)
    with project.store.engine.connect() as conn:
        times = set(conn.execute(sa.select(neighbour_rows.c.article_id, neighbour_rows.c.computed_at)))
    assert project.reindex() == 30
    assert rows(project) == before
    with project.store.engine.connect() as conn:
        assert (
            set(conn.execute(sa.select(neighbour_rows.c.article_id, neighbour_rows.c.computed_at))) == times
        )


def test_an_edited_article_gets_new_neighbours(project: Project):
    folder = setup(project)
    write_article(folder, "a.txt", "Sleep a", "October 10, 2026", body=body(SLEEP, 1))
    write_article(folder, "b.txt", "Food b", "October 11, 2026", body=body(FOOD, 1))
    write_article(folder, "c.txt", "Card c", "November 20, 2026", body=body(SLEEP, 2))
    project.ingest([str(folder)], NOW, "Sleep")
    assert links_of(project)["Card c"][0] == "Sleep a"
    write_article(folder, "c.txt", "Card c", "November 20, 2026", body=body(FOOD, 2))
    project.ingest([str(folder / "c.txt")], NOW + timedelta(hours=1), "Sleep")
    assert links_of(project)["Card c"][0] == "Food b"


def test_a_sent_issue_keeps_its_links_after_1000_more_articles(project: Project):
    folder = setup(project)
    for n in range(6):
        write_article(
            folder, f"a{n}.txt", f"Sleep archive {n}", f"October {1 + n}, 2026", body=body(SLEEP, n)
        )
    write_article(folder, "card.txt", "Sleep card", "November 20, 2026", body=body(SLEEP, 99))
    project.ingest([str(folder)], NOW - timedelta(days=5), "Sleep")
    sent = links_of(project)
    build = project.build("test", AT, NOW)
    issue = Issues(project.store).record_issue(
        "test", build.period, IssueStatus.SENT, "s", [a.id for a in build.digest.articles], NOW
    )
    project.build("test", AT, NOW)  # the first build after sending keeps them
    assert Issues(project.store).issue_links(issue.id)
    more = project.root / "more"
    for n in range(1000):  # closer to the card than the originals, and published before AT
        write_article(more, f"m{n:04d}.txt", f"Sleep more {n}", "November 19, 2026", body=body(SLEEP, 99))
    project.ingest([str(more)], NOW, "Sleep")
    assert {t: v for t, v in links_of(project).items() if t in sent} == sent
    project.reindex()
    assert {t: v for t, v in links_of(project).items() if t in sent} == sent


def test_an_edited_article_leaves_the_terms_it_lost(project: Project):
    folder = setup(project)
    write_article(folder, "a.txt", "Story a", "October 10, 2026", body=body(SLEEP, 1))
    project.ingest([str(folder / "a.txt")], NOW, "Sleep")
    write_article(folder, "a.txt", "Story a", "October 10, 2026", body=body(FOOD, 1))
    project.ingest([str(folder / "a.txt")], NOW + timedelta(hours=1), "Sleep")
    write_article(folder, "d.txt", "Sleep d", "November 20, 2026", body=body(SLEEP, 2))
    project.ingest([str(folder / "d.txt")], NOW + timedelta(hours=2), "Sleep")
    (near,) = neighbours.read(project.store, [2], NOW + timedelta(days=3), 0.0)[2]
    assert near.target == 1 and near.score < 0.1  # "shape" and "note" only, not the sleep words it lost


def test_the_index_keeps_each_terms_newest_postings_only(project: Project):
    folder = setup(project)
    for n in range(neighbours.POSTINGS_PER_TERM + 8):
        write_article(folder, f"{n:02d}.txt", f"Sleep {n}", "November 20, 2026", body=body(SLEEP, n))
    project.ingest([str(folder)], NOW, "Sleep")
    with project.store.engine.connect() as conn:
        blobs = list(conn.scalars(sa.select(similar_terms.c.postings)))
    assert max(len(b) for b in blobs) == 16 * neighbours.POSTINGS_PER_TERM  # (id, weight) pairs


@given(st.text(alphabet=st.characters(max_codepoint=127)))
@settings(max_examples=500, deadline=None)
def test_ascii_text_gets_the_terms_of_the_general_path(text: str):
    stop = words.stop_words("")
    assert words.terms(text, stop) == words.terms(text + " é", stop)  # "é": one letter, no term


def test_neighbour_times_are_stored_as_sqlalchemy_stores_them(project: Project):
    folder = setup(project)
    for name in ("a", "b"):
        write_article(folder, f"{name}.txt", f"Sleep {name}", "November 20, 2026", body=body(SLEEP, 1))
    project.ingest([str(folder)], NOW, "Sleep")
    with project.store.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT DISTINCT computed_at FROM neighbours").scalars().all()
        written = conn.exec_driver_sql("SELECT DISTINCT updated_at FROM articles").scalars().all()
    assert stored == written  # the same text: SQL compares them with the moment of a build


def test_an_index_of_an_older_method_asks_for_a_reindex(project: Project):
    folder = setup(project)
    write_article(folder, "a.txt", "Sleep a", "November 20, 2026", body=body(SLEEP, 1))
    project.ingest([str(folder)], NOW, "Sleep")
    older = neighbours.Params(method=neighbours.METHOD - 1)
    with project.store.engine.begin() as conn:
        conn.execute(meta.update().where(meta.c.key == neighbours.PARAMS_KEY).values(value=older.dumps()))
    (warning,) = project.ingest([str(folder)], NOW, "Sleep").warnings
    assert f"(method {neighbours.METHOD - 1}, this version's is {neighbours.METHOD})" in warning
    assert "run `newsletter reindex`" in warning
    project.reindex()
    assert project.ingest([str(folder)], NOW, "Sleep").warnings == []
