"""`newsletter db copy --to postgresql://...`: a project's whole database into an empty
PostgreSQL database, verified by per-table counts and checksums; the project then runs on it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest
import sqlalchemy as sa

from newsletter.core.models import SubscriberRow
from newsletter.delivery.send import SendOptions, send_schedule
from newsletter.project import Project
from newsletter.storage.roster import Roster
from newsletter.storage.schema import metadata
from tests.conftest import NOW, SECRET, CliRunnerForProject, SMTPServer
from tests.postgres import needs_postgres, postgresql  # noqa: F401 (the fixture)

WEEK = datetime.fromisoformat("2026-11-23T08:00:00+00:00")  # the demo week
FILLED = ("articles", "neighbours", "subscribers", "issues", "issue_variants", "deliveries", "meta")


def counts(project: Project) -> dict[str, int]:
    with project.store.engine.connect() as conn:
        return {
            t.name: conn.scalar(sa.select(sa.func.count()).select_from(t)) or 0
            for t in metadata.sorted_tables
        }


def with_password(url: str) -> str:
    """The same database named with a password (the private server trusts any)."""
    return url.replace("postgres@", "postgres:s3cret-pw@", 1)


@needs_postgres
def test_a_project_is_copied_to_postgresql_verified_and_runs_there(
    sender: Project,
    smtp_server: SMTPServer,
    cli: CliRunnerForProject,
    postgresql: Callable[[], str],  # noqa: F811
):
    summary = send_schedule(sender, "weekly", WEEK, smtp_server.url, SendOptions(retry_base=0.01))
    assert summary.outcome == "sent"
    before = counts(sender)
    assert all(before[t] > 0 for t in FILLED), before
    target = with_password(postgresql())

    result = cli("db", "copy", "--to", target)

    assert result.exit_code == 0, result.output
    assert "s3cret-pw" not in result.output
    assert "postgres:***@127.0.0.1" in result.output
    lines = result.output.splitlines()
    for table in FILLED:
        [line] = [x for x in lines if x.split()[:1] == [table]]
        assert line.split()[1] == str(before[table]), line
    assert f"verified: {len(metadata.sorted_tables)} tables, {sum(before.values())} rows" in result.output
    moved = Project(sender.root, environ={**SECRET, "NEWSLETTER_DATABASE_URL": target})
    try:
        assert moved.store.engine.dialect.name == "postgresql"
        assert counts(moved) == before
        # Ids go on after the copied ones: a new reader is added, not a key collision.
        Roster(moved.store).import_subscribers([SubscriberRow("new@example.org", "New")], NOW)
        again = send_schedule(moved, "weekly", WEEK, smtp_server.url)
        assert again.outcome == "already sent"
    finally:
        moved.close()

    refused = cli("db", "copy", "--to", target)
    assert refused.exit_code == 1
    assert refused.output.splitlines()[0].startswith("Error: postgresql://postgres:***@127.0.0.1:")
    assert "is not empty (" in refused.output and "nothing copied" in refused.output
    assert "Hint: Copy into a new, empty database" in refused.output
    assert "s3cret-pw" not in refused.output


def test_a_bad_target_url_is_one_line_with_a_hint(cli: CliRunnerForProject):
    result = cli("db", "copy", "--to", "mysql://me:pw@host/db")
    assert result.exit_code == 1
    assert result.output.splitlines()[0].startswith("Error: --to: expected a sqlite:///PATH or postgresql://")
    assert "pw@" not in result.output


@needs_postgres
@pytest.mark.sqlite_only("SQLite keeps a value longer than its column; PostgreSQL refuses it at the source")
def test_a_row_the_target_refuses_is_one_line_and_leaves_it_empty(
    project: Project,
    cli: CliRunnerForProject,
    postgresql: Callable[[], str],  # noqa: F811
):
    with project.store.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO meta (key, value) VALUES ('note', :v)"), {"v": "x" * 300})
    project.close()
    target = postgresql()
    result = cli("db", "copy", "--to", target)
    assert result.exit_code == 1
    assert result.output.splitlines()[0].startswith(
        f"Error: copy to {target} failed in table meta: value too long"
    )
    engine = sa.create_engine(target.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        assert sa.inspect(conn).get_table_names() == []  # rolled back: copy again once fixed
    engine.dispose()
