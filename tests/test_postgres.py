"""The store on PostgreSQL (a private server, tests/postgres.py): the same schema made
from nothing, and the same related links as SQLite computes, batch for batch."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from newsletter import scaffold
from newsletter.core.models import SubscriberRow
from newsletter.core.tokens import Tokens
from newsletter.delivery.send import SendOptions, SendPlan, send
from newsletter.delivery.transports import MemoryTransport
from newsletter.project import Project
from newsletter.storage.consents import Consents
from newsletter.storage.issues import Issues
from newsletter.storage.queue import DeliveryQueue
from newsletter.storage.records import Choices, Consent
from newsletter.storage.rights import DataRights
from newsletter.storage.roster import Roster
from newsletter.storage.schema import SCHEMA_VERSION, neighbours
from tests.conftest import NOW, SECRET, SECRET_KEY, write_article
from tests.postgres import needs_postgres, postgresql  # noqa: F401 (the fixture)
from tests.test_claims import claimed_concurrently, recorded_issue

pytestmark = needs_postgres


@pytest.fixture
def projects(tmp_path: Path, postgresql: Callable[[], str]) -> Iterator[tuple[Project, Project]]:  # noqa: F811
    """The demo project twice: on its SQLite file, and on a new PostgreSQL database."""
    root = tmp_path / "project"
    scaffold.init(root, name="Mind & Body", base_url="https://example.org", demo=True)
    lite = Project(root, environ={})
    served = Project(root, environ={"NEWSLETTER_DATABASE_URL": postgresql()})
    yield lite, served
    lite.close()
    served.close()


def rows(project: Project) -> set[tuple[int, int, float]]:
    with project.store.engine.connect() as conn:
        query = sa.select(neighbours.c.article_id, neighbours.c.neighbour_id, neighbours.c.score)
        return {(a, b, round(s, 9)) for a, b, s in conn.execute(query)}


def links(project: Project) -> dict[str, list[str]]:
    build = project.build("weekly", scaffold.DEMO_AT, NOW, record=False)
    return {a.title: [link.title for link in a.related] for a in build.digest.articles}


def test_a_new_postgresql_database_gets_the_whole_schema(projects: tuple[Project, Project]):
    _, served = projects
    assert served.store.engine.dialect.driver == "psycopg"  # postgresql:// means psycopg 3
    assert served.store.schema_version == SCHEMA_VERSION
    tables = set(sa.inspect(served.store.engine).get_table_names())
    assert {"articles", "neighbours", "similar_terms", "similar_articles", "deliveries"} <= tables


def test_postgresql_computes_the_related_links_sqlite_does(projects: tuple[Project, Project]):
    files = sorted(str(p) for p in scaffold.demo_articles().iterdir())
    for project in projects:
        for start, end in ((0, 11), (11, 20), (20, len(files))):  # three ingests
            project.ingest(files[start:end], NOW)
    lite, served = projects
    assert rows(served) == rows(lite) and rows(lite)
    assert links(served) == links(lite)
    assert served.reindex() == len(files)
    assert rows(served) == rows(lite)  # reindex gives the rows the ingests did, there too


def test_an_edited_article_is_indexed_again_on_postgresql(projects: tuple[Project, Project], tmp_path: Path):
    folder = tmp_path / "src"
    sleep = "Sleep, bedtime, melatonin, circadian rhythm, insomnia and naps shape how rested we feel."
    food = "Fibre, protein, vegetables, cooking, recipes and breakfast shape how well we eat."
    for n, text in enumerate((sleep, sleep, food)):
        write_article(folder, f"{n}.txt", f"Story {n}", "November 20, 2026", body=[text, text])
    for project in projects:
        project.ingest([str(folder)], NOW)
    write_article(folder, "0.txt", "Story 0", "November 20, 2026", body=[food, food])
    for project in projects:
        project.ingest([str(folder / "0.txt")], NOW)
    lite, served = projects
    assert rows(served) == rows(lite)


def test_a_send_on_postgresql_delivers_each_reader_once(projects: tuple[Project, Project]):
    _, served = projects
    served.ingest([str(scaffold.demo_articles())], NOW)
    readers = [SubscriberRow(f"{name}@example.org", name.title()) for name in ("ann", "bob", "cat")]
    Roster(served.store).import_subscribers(readers, NOW)
    outbox = MemoryTransport()
    summary = send(
        SendPlan(served, "weekly", scaffold.DEMO_AT, SendOptions()),
        lambda: outbox,
        lambda: Tokens(SECRET_KEY),
    )
    assert summary.outcome == "sent" and summary.counts["sent"] == 3
    assert sorted(to for _, to, _ in outbox.sent) == [r.email for r in readers]
    again = send(
        SendPlan(served, "weekly", scaffold.DEMO_AT, SendOptions()),
        lambda: outbox,
        lambda: Tokens(SECRET_KEY),
    )
    assert again.outcome == "already sent" and len(outbox.sent) == 3  # each reader once
    issue = Issues(served.store).issue("weekly", scaffold.DEMO_AT)
    assert issue is not None and Issues(served.store).issue_links(issue.id)  # the links it went out with


def test_forget_on_postgresql_vacuums_the_tables_it_erased_in(projects: tuple[Project, Project]):
    _, served = projects
    done = Consents(served.store).signup(
        "zed@example.org", Choices("Zed Qwfp"), Consent("subscribe", "Yes", "192.0.2.9"), True, NOW
    )
    assert done.consent_id is not None
    Consents(served.store).confirm(done.consent_id, NOW)
    forgotten = DataRights(served.store).forget("zed@example.org", NOW)
    assert forgotten.subscriber and forgotten.left is None
    query = sa.text("SELECT relname FROM pg_stat_user_tables WHERE last_vacuum IS NOT NULL")
    with served.store.engine.connect() as conn:
        vacuumed = set(conn.scalars(query))
    assert {"subscribers", "consents", "deliveries", "subscriber_notices"} <= vacuumed
    assert [s.status for s in Roster(served.store).subscribers()] == ["forgotten"]


def test_concurrent_batches_on_postgresql_skip_locked_rows_and_take_each_once(
    tmp_path: Path,
    postgresql: Callable[[], str],  # noqa: F811
):
    """Claimers on PostgreSQL pick rows FOR UPDATE SKIP LOCKED (issue 22): 0 duplicates, 0 skipped."""
    root = tmp_path / "project"
    scaffold.init(root, name="Mind & Body", base_url="https://example.org", demo=True)
    served = Project(root, environ={"NEWSLETTER_DATABASE_URL": postgresql(), **SECRET})
    try:
        served.ingest([str(scaffold.demo_articles())], NOW)
        issue_id = recorded_issue(served, 400)
        taken = claimed_concurrently(served, issue_id, claimers=6)
        counts = DeliveryQueue(served.store).counts(issue_id)
    finally:
        served.close()
    assert counts["pending"] == counts["sending"] == 0  # no one skipped
    assert len(taken) == counts["sent"] == 400 and set(taken.values()) == {1}  # no one twice
