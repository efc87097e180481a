"""`newsletter db backup FILE` (issue 24): the SQLite database copied while in use, checked
by opening the copy; never over a file; PostgreSQL pointed to pg_dump."""

from __future__ import annotations

import sqlite3
import stat
from contextlib import closing
from pathlib import Path

import pytest

from newsletter.project import Project
from newsletter.storage.roster import Roster
from tests.conftest import CliRunnerForProject


@pytest.mark.sqlite_only("db backup copies the SQLite file (PostgreSQL: pg_dump)")
def test_a_backup_is_a_whole_checked_copy_taken_while_the_store_is_open(sender: Project, tmp_path: Path):
    target = tmp_path / "backups" / "2026-12-07.db"
    target.parent.mkdir()
    result = CliRunnerForProject(sender.root)("db", "backup", str(target))
    assert result.exit_code == 0, result.stderr
    assert (
        result.stdout
        == f"wrote {target} (schema version {sender.store.schema_version}, integrity ok, mode 0600)\n"
    )
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == ["2026-12-07.db"]  # no temp file, no -wal
    with closing(sqlite3.connect(target)) as copy:
        assert copy.execute("SELECT count(*) FROM subscribers").fetchone()[0] == 3
    # restoring is copying it back: the project opens it as it was
    restored = tmp_path / "restored"
    restored.mkdir()
    (restored / "newsletter.db").write_bytes(target.read_bytes())
    with closing(
        Project(sender.root, environ={"NEWSLETTER_DATABASE_URL": f"sqlite:///{restored}/newsletter.db"})
    ) as p:
        assert len(Roster(p.store).subscribers()) == 3


@pytest.mark.sqlite_only("db backup copies the SQLite file (PostgreSQL: pg_dump)")
def test_a_backup_never_overwrites(sender: Project, tmp_path: Path):
    target = tmp_path / "b.db"
    target.write_bytes(b"yesterday's")
    result = CliRunnerForProject(sender.root)("db", "backup", str(target))
    assert result.exit_code == 1
    assert f"Error: {target} already exists; not overwriting" in result.stderr
    assert target.read_bytes() == b"yesterday's"


def test_postgresql_is_pointed_to_pg_dump(
    cli: CliRunnerForProject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", "postgresql://news@127.0.0.1:1/news")
    result = cli("db", "backup", str(tmp_path / "b.db"))
    assert result.exit_code == 1
    assert "is not one" in result.stderr and "pg_dump --format=custom" in result.stderr
    assert not (tmp_path / "b.db").exists()
