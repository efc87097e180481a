"""Schema revisions (Alembic): `db current`, `db upgrade`, and a database from before
Alembic recognised by its schema_version and stamped there, its rows kept. On the suite's
backend: `pytest --backend=postgresql` runs these on PostgreSQL."""

from __future__ import annotations

import re

import sqlalchemy as sa

from newsletter.core.models import SubscriberRow
from newsletter.project import Project
from newsletter.storage import migrations
from newsletter.storage.roster import Roster
from newsletter.storage.schema import SCHEMA_VERSION
from tests.conftest import NOW, CliRunnerForProject


def test_one_revision_file_a_schema_version_each_running_its_step():
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(migrations.REVISIONS), version_locations=[str(migrations.REVISIONS)])
    chain = [s.revision for s in reversed(list(script.walk_revisions()))]
    assert chain == [migrations.revision_id(n) for n in range(1, SCHEMA_VERSION + 1)]
    assert script.get_current_head() == migrations.HEAD == f"v{SCHEMA_VERSION:02d}"
    assert sorted(migrations.STEPS) == list(range(2, SCHEMA_VERSION + 1))
    for n in migrations.STEPS:
        text = (migrations.REVISIONS / f"{migrations.revision_id(n)}.py").read_text()
        assert f"migrations.STEPS[{n}](op)" in text, n


def test_a_new_database_is_made_at_head(cli: CliRunnerForProject, project: Project):
    with project.store.engine.connect() as conn:
        assert migrations.current(conn) == migrations.HEAD
    assert re.fullmatch(rf"{migrations.HEAD} \(head\) \S+\n", cli("db", "current").output)
    assert cli("db", "upgrade").output == f"already at {migrations.HEAD} (head)\n"


# What each later schema version added, undone to make a database as an older one left it.
ADDED: dict[int, tuple[str, ...]] = {
    8: ("DROP TABLE outbox",),
    9: ("DROP TABLE image_sizes",),
    10: ("DROP TABLE approvals",),
    11: ("DROP TABLE issue_overrides", "ALTER TABLE issues DROP COLUMN overrides_version"),
    12: ("DROP TABLE variant_bodies", "DROP TABLE send_rates"),
}


def as_before_alembic(project: Project, version: int) -> None:
    """The database as schema `version` left it: no alembic_version, and without what the
    versions after it added."""
    assert sorted(ADDED)[-1] == SCHEMA_VERSION  # a new version says here what it adds
    with project.store.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE alembic_version"))
        for later in range(version + 1, SCHEMA_VERSION + 1):
            for statement in ADDED[later]:
                conn.execute(sa.text(statement))
        conn.execute(sa.text(f"UPDATE meta SET value = '{version}' WHERE key = 'schema_version'"))
    project.close()


def test_a_database_from_before_alembic_is_stamped_at_its_version_and_upgraded(
    cli: CliRunnerForProject, project: Project
):
    Roster(project.store).import_subscribers([SubscriberRow("ann@example.org", "Ann")], NOW)
    as_before_alembic(project, 7)
    current = cli("db", "current")
    assert current.exit_code == 0
    assert current.output.startswith(f"v07 (behind head {migrations.HEAD}: `newsletter db upgrade`")
    assert cli("db", "upgrade").output == f"upgraded from v07 to {migrations.HEAD}\n"
    reopened = Project(project.root, environ={})
    try:
        with reopened.store.engine.connect() as conn:
            assert migrations.current(conn) == migrations.HEAD
            assert {"outbox", "image_sizes", "approvals"} <= set(sa.inspect(conn).get_table_names())
        assert reopened.store.schema_version == SCHEMA_VERSION
        assert [s.email for s in Roster(reopened.store).subscribers()] == ["ann@example.org"]
    finally:
        reopened.close()
    assert cli("db", "current").output.startswith(f"{migrations.HEAD} (head) ")


def test_a_database_at_the_current_version_without_alembic_is_stamped_with_nothing_to_run(
    cli: CliRunnerForProject, project: Project
):
    project.store  # noqa: B018 (made at head)
    as_before_alembic(project, SCHEMA_VERSION)
    assert cli("db", "current").output.startswith(f"{migrations.HEAD} (head) ")
    assert cli("db", "upgrade").output == f"already at {migrations.HEAD} (head)\n"
    with Project(project.root, environ={}).store.engine.connect() as conn:
        assert migrations.current(conn) == migrations.HEAD


def test_a_database_of_a_newer_program_is_refused(cli: CliRunnerForProject, project: Project):
    with project.store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'v99'"))
        conn.execute(sa.text("UPDATE meta SET value = '99' WHERE key = 'schema_version'"))
    project.close()
    assert cli("db", "current").output.startswith(f"v99 (newer than this program's {migrations.HEAD}")
    result = cli("db", "upgrade")
    assert result.exit_code == 1
    assert "database schema version 99 (revision v99) is newer than this program's" in result.output
