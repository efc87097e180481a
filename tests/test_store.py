from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsletter.core.models import Article, Block, Period, RelatedRef
from newsletter.storage import neighbours
from newsletter.storage.issues import Issues, Variant
from newsletter.storage.queue import DeliveryQueue
from newsletter.storage.records import Audience
from newsletter.storage.schema import articles, similar_articles
from newsletter.storage.store import SCHEMA_VERSION, Store

T0 = datetime(2026, 11, 2, tzinfo=UTC)


def article(
    key: str,
    standfirst: str = "",
    related: tuple[RelatedRef, ...] = (),
    days: int = 0,
    category: str = "Sleep",
) -> Article:
    return Article(
        title=f"Title {key}",
        published=T0 + timedelta(days=days),
        source=f"{key}.txt",
        standfirst=standfirst or f"Standfirst of {key}.",
        category=category,
        url=f"https://example.org/{key}",
        key=key,
        body=(Block("paragraph", "Body."),),
        related=related,
    )


def store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'n.db'}")


def test_upsert_counts_added_updated_unchanged(tmp_path: Path):
    db = store(tmp_path)
    first = db.upsert([article("a"), article("b")], T0)
    again = db.upsert([article("a"), replace(article("b"), title="Edited")], T0)
    assert (first.added, first.updated, first.unchanged) == (2, 0, 0)
    assert (again.added, again.updated, again.unchanged) == (0, 1, 1)
    assert {s.article.title for s in db.articles()} == {"Title a", "Edited"}


def test_related_entries_resolve_now_and_when_the_target_arrives_later(tmp_path: Path):
    db = store(tmp_path)
    refs = (
        RelatedRef("Sleep", "Standfirst of b.", date(2026, 11, 1)),
        RelatedRef("Sleep", "  standfirst OF   c. ", None),
    )
    db.upsert([article("b"), article("a", related=refs)], T0)
    ids = {s.article.key: s.id for s in db.articles()}
    assert db.related_targets([ids["a"]]) == {ids["a"]: [ids["b"]]}
    assert db.related_counts() == (1, 1)
    db.upsert([article("c")], T0)
    ids = {s.article.key: s.id for s in db.articles()}
    assert db.related_targets([ids["a"]]) == {ids["a"]: [ids["b"], ids["c"]]}
    assert db.related_counts() == (2, 0)


def test_undated_article_keeps_its_first_seen_time(tmp_path: Path):
    db = store(tmp_path)
    db.upsert([replace(article("u"), undated=True)], T0)
    later = replace(article("u", days=5), undated=True)
    counts = db.upsert([later], T0 + timedelta(days=5))
    assert counts.unchanged == 1
    assert db.articles()[0].article.published == T0


def test_schema_version_and_category_published_index(tmp_path: Path):
    db = store(tmp_path)
    assert db.schema_version == SCHEMA_VERSION
    indexes = sa.inspect(db.engine).get_indexes("articles")
    assert any(i["column_names"] == ["category", "published"] for i in indexes)


def test_sent_articles_are_remembered_per_schedule(tmp_path: Path):
    db = store(tmp_path)
    db.upsert([article("a"), article("b")], T0)
    ids = [s.id for s in db.articles()]
    period = Period(T0, T0 + timedelta(days=7))
    issue = Issues(db).record_issue("weekly", period, "built", "Subject", ids, T0)
    later = period.end + timedelta(days=7)
    assert Issues(db).sent_article_ids("weekly", later) == set()
    # What `send` does with a built issue: open it (the built row becomes `sending`, with
    # its articles), deliver to its audience (nobody here), then complete it.
    opened = DeliveryQueue(db).open_issue(
        "weekly", period, ids, [Variant("", "Subject", "<p>Hi</p>", "Hi")], Audience([]), T0
    )
    assert (opened.id, opened.status) == (issue.id, "sending")
    assert Issues(db).sent_article_ids("weekly", later) == set(ids)  # being sent counts already
    assert DeliveryQueue(db).complete(issue.id, T0)
    sent = Issues(db).issue("weekly", period.end)
    assert sent is not None
    assert sent.status == "sent"
    assert Issues(db).sent_article_ids("weekly", later) == set(ids)
    assert Issues(db).sent_article_ids("other", later) == set()
    assert Issues(db).sent_article_ids("weekly", period.end) == set()  # its own issue never counts
    again = Issues(db).record_issue("weekly", period, "built", "Changed", [], T0)
    assert again.status == "sent"
    assert sorted(Issues(db).issue_article_ids(issue.id)) == sorted(ids)


def test_revision_grows_only_on_change(tmp_path: Path):
    db = store(tmp_path)
    start = db.revision
    db.upsert([article("a")], T0)
    db.upsert([article("a")], T0)
    assert db.revision == start + 1


def test_an_upsert_in_chunks_keeps_whole_chunks_with_their_links(tmp_path: Path):
    db = store(tmp_path)
    chunks: list[list[int]] = []

    def index_then_fail(conn: Connection, ids: list[int]) -> None:
        neighbours.index(conn, ids)
        chunks.append(ids)
        if len(chunks) == 2:  # the second chunk is cut off before it commits
            raise RuntimeError("cut off")

    batch = [article(k) for k in "abcde"] + [replace(article("a"), title="Last copy")]
    with pytest.raises(RuntimeError):
        db.upsert(batch, T0, index_then_fail, chunk=2)
    with db.engine.connect() as conn:
        kept = list(conn.scalars(sa.select(articles.c.title).order_by(articles.c.id)))
        indexed = list(conn.scalars(sa.select(similar_articles.c.article_id).order_by("article_id")))
    assert kept == ["Last copy", "Title b"] and indexed == chunks[0]  # the first chunk, whole
    again = db.upsert(batch, T0, neighbours.index, chunk=2)
    assert (again.added, again.updated, again.unchanged) == (3, 0, 3)  # a's copy, a, b; then c, d, e
