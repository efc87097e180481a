"""Database errors (disk full, read-only, locked) are one `Error:` line naming the
database plus a `Hint:`, exit 1, in every command; nothing is half-written.

Real SQLite files on real mounts: a small tmpfs fills up, and a read-only bind
mount makes a file or folder read-only even for root (file modes do not stop
root). Mounting needs root; without it, or without the capability (some
containers), those tests are skipped with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from newsletter import scaffold
from newsletter.cli import main
from newsletter.core.errors import StoreError
from newsletter.core.models import SubscriberRow
from newsletter.project import Project
from newsletter.storage.roster import Roster
from newsletter.storage.schema import meta
from newsletter.storage.store import Store
from tests.conftest import NOW, SMTPServer, write_article
from tests.test_store import article

SECRET = {"NEWSLETTER_SECRET_KEY": "test-secret-key-0123456789"}
WEEK = scaffold.DEMO_AT.isoformat()
BIG_BODY = ("word " * 600,)  # ~3 KB an article: a few hundred overflow a 2 MB disk


# -- mounts -------------------------------------------------------------------


def _mount(*args: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs or a read-only bind mount")
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount here ({done.stderr.strip()})")


def _umount(target: Path) -> None:
    if subprocess.run(["umount", str(target)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "--lazy", str(target)], check=True)  # still busy: detach it anyway


@contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A disk of `size` (e.g. "2m") at `folder`, gone afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder))
    try:
        yield folder
    finally:
        _umount(folder)


@contextmanager
def read_only(path: Path) -> Iterator[Path]:
    """`path` (a file or a folder) read-only for everyone, root included: bound over
    itself, then the bind remounted read-only. Writable again afterwards."""
    _mount("--bind", str(path), str(path))
    try:
        _mount("-o", "remount,bind,ro", str(path))
        yield path
    finally:
        _umount(path)


def fill_disk(folder: Path, leave: int) -> Path:
    """A ballast file that leaves `leave` bytes free on the disk holding `folder`."""
    ballast = folder / "ballast"
    with ballast.open("wb") as f:
        f.write(b"\0" * max(0, shutil.disk_usage(folder).free - leave))
    return ballast


# -- projects and commands ------------------------------------------------------


def new_project(root: Path, subscribers: int = 3) -> Path:
    """The demo's articles and `subscribers` people, in a project at `root`."""
    scaffold.init(root, name="Mind & Body", base_url="https://example.org", demo=True)
    with closing(Project(root, environ={})) as project:
        project.ingest([str(scaffold.demo_articles())], NOW)
        people = [SubscriberRow(f"reader{i}@example.org", f"Reader {i}") for i in range(subscribers)]
        Roster(project.store).import_subscribers(people, NOW)
    return root.resolve() / "newsletter.db"


def run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command in its own process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "newsletter.cli", "--project", str(root), *args],
        env={**os.environ, **SECRET},
        capture_output=True,
        text=True,
        timeout=120,
    )


def invoke(root: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    """The command in this process (faster); a traceback would fail the test."""
    return CliRunner().invoke(
        main, ["--project", str(root), *args], env={**SECRET, **(env or {})}, catch_exceptions=False
    )


def assert_one_error(code: int, stderr: str, expected: str) -> None:
    """Exit 1; stderr is the line `expected` and a hint (a send also shows its progress label)."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 1, stderr
    assert len(lines) == 2, stderr
    assert lines[0] == f"Error: {expected}", stderr
    assert lines[1].startswith("Hint: "), stderr


def articles_in(db: Path) -> list[str]:
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return [title for (title,) in conn.execute("SELECT title FROM articles ORDER BY id")]


def dump(db: Path) -> list[str]:
    with closing(sqlite3.connect(db)) as conn:
        return list(conn.iterdump())


def sources(folder: Path, names: Sequence[int], body: Sequence[str] = BIG_BODY) -> Path:
    for n in names:
        write_article(folder, f"a{n}.txt", f"Article {n}", "November 17, 2026", body=body)
    return folder


# -- disk full ----------------------------------------------------------------------


@pytest.mark.sqlite_only("the SQLite file on a full disk, read-only or locked")
@pytest.mark.slow
def test_ingest_on_a_full_disk_is_one_line_and_keeps_what_was_stored(tmp_path: Path):
    with tmpfs(tmp_path / "disk", "2m") as disk:
        root = disk / "project"
        scaffold.init(root, name="T", base_url="https://example.org", demo=True)
        db = root / "newsletter.db"
        assert (
            run(root, "ingest", str(sources(tmp_path / "first", range(10))), "--category", "Sleep").returncode
            == 0
        )
        before = articles_in(db)
        too_many = run(root, "ingest", str(sources(tmp_path / "more", range(10, 800))), "--category", "Sleep")
        assert_one_error(
            too_many.returncode, too_many.stderr, f"database {db}: disk full (database or disk is full)"
        )
        assert articles_in(db) == before  # the failed batch left nothing behind
        assert len(before) == 10
        small = sources(tmp_path / "small", range(900, 903), body=("A short body.",))
        assert run(root, "ingest", str(small), "--category", "Sleep").returncode == 0  # room for a little


@pytest.mark.sqlite_only("the SQLite file on a full disk, read-only or locked")
@pytest.mark.slow
def test_send_that_fills_the_disk_is_one_line_and_resumes_once_freed(tmp_path: Path, smtp_server: SMTPServer):
    people = 200
    with tmpfs(tmp_path / "disk", "8m") as disk:
        root = disk / "project"
        db = new_project(root, subscribers=people)
        # Room to record the issue (variants, one delivery row each: ~200 KB) but not for
        # the ledger's two commits per message (~20 KB each): the disk fills mid-delivery,
        # in a sender thread.
        ballast = fill_disk(disk, leave=600 * 1024)
        url = f"smtp://127.0.0.1:{smtp_server.port}?timeout=1"  # a short lease for an in-flight row
        full = run(root, "send", "weekly", "--at", WEEK, "--transport", url)
        assert_one_error(full.returncode, full.stderr, f"database {db}: disk full (database or disk is full)")
        first = {r for m in smtp_server.handler.messages for r in m.recipients}
        assert 0 < len(first) < people
        ballast.unlink()
        again = run(root, "send", "weekly", "--at", WEEK, "--transport", url, "--json")
        assert again.returncode == 0, again.stderr
        summary = json.loads(again.stdout)
        assert summary["outcome"] == "sent"
        assert summary["counts"]["sent"] == people
        received = [r for m in smtp_server.handler.messages for r in m.recipients]
        assert set(received) == {f"reader{i}@example.org" for i in range(people)}  # no one skipped
        assert len(received) - people <= 1  # at most the one message in flight went twice
        assert len(articles_in(db)) == 32


def test_a_store_keeps_working_after_the_disk_was_full(tmp_path: Path):
    """The same engine and pool: the failed transaction rolled back, its connection is reusable."""
    with tmpfs(tmp_path / "disk", "4m") as disk:
        store = Store(f"sqlite:///{disk / 'n.db'}")
        try:
            store.upsert([article("a")], NOW)
            ballast = fill_disk(disk, leave=32 * 1024)
            big = [article(f"big{i}", standfirst="x" * 2000 + str(i)) for i in range(200)]
            with pytest.raises(StoreError) as failed:
                store.upsert(big, NOW)
            assert failed.value.cause == "disk-full"
            assert failed.value.database == str(disk / "n.db")
            assert [s.article.key for s in store.articles()] == ["a"]
            ballast.unlink()
            assert store.upsert(big, NOW).added == 200
        finally:
            store.close()
        assert len(articles_in(disk / "n.db")) == 201


# -- read-only ------------------------------------------------------------------------


@pytest.mark.sqlite_only("the SQLite file on a full disk, read-only or locked")
def test_read_only_database_file_refuses_writes_in_one_line_and_still_reads(tmp_path: Path):
    db = new_project(tmp_path / "project")
    root = db.parent
    new = sources(tmp_path / "new", [1], body=("A short body.",))
    csv = tmp_path / "people.csv"
    csv.write_text("email,name,categories\nnew@example.org,New,\n")
    outbox = tmp_path / "outbox"
    before = dump(db)
    expected = f"database {db}: read-only (attempt to write a readonly database)"
    with read_only(db):
        for args in (
            ["ingest", str(new), "--category", "Sleep"],
            ["subscribers", "import", str(csv)],
            ["send", "weekly", "--at", WEEK, "--transport", f"file:{outbox}"],
        ):
            result = invoke(root, *args)
            assert_one_error(result.exit_code, result.stderr, expected)
        listed = invoke(root, "articles", "--json")
        assert listed.exit_code == 0
        assert len(json.loads(listed.stdout)) == 32
        people = invoke(root, "subscribers", "list", "--json")
        assert people.exit_code == 0
        assert len(json.loads(people.stdout)) == 3
    assert dump(db) == before
    assert not outbox.exists() or not any(outbox.iterdir())


@pytest.mark.sqlite_only("the SQLite file on a full disk, read-only or locked")
def test_read_only_folder_cannot_even_be_read_and_says_so(tmp_path: Path):
    db = new_project(tmp_path / "project")
    assert not (db.parent / "newsletter.db-shm").exists()  # closed cleanly: SQLite removed it
    before = dump(db)
    expected = (
        f"database {db}: cannot be opened: its folder is read-only and SQLite must create "
        "newsletter.db-shm there even to read it (unable to open database file)"
    )
    new = sources(tmp_path / "new", [1], body=("A short body.",))
    with read_only(db.parent):
        for args in (["ingest", str(new), "--category", "Sleep"], ["articles"]):
            result = invoke(db.parent, *args)
            assert_one_error(result.exit_code, result.stderr, expected)
    assert dump(db) == before


# -- locked -----------------------------------------------------------------------------


@pytest.mark.sqlite_only("the SQLite file on a full disk, read-only or locked")
def test_locked_database_is_one_line_after_the_busy_timeout(tmp_path: Path):
    db = new_project(tmp_path / "project")
    root = db.parent
    short = {"NEWSLETTER_DATABASE_URL": "sqlite:///newsletter.db?timeout=0.2"}
    new = sources(tmp_path / "new", [1], body=("A short body.",))
    csv = tmp_path / "people.csv"
    csv.write_text("email,name,categories\nnew@example.org,New,\n")
    before = dump(db)
    expected = f"database {db}: locked by another connection for more than 0.2 s (database is locked)"
    with closing(sqlite3.connect(db, isolation_level=None)) as holder:
        holder.execute("BEGIN IMMEDIATE")  # another writer, mid-transaction
        for args in (
            ["ingest", str(new), "--category", "Sleep"],
            ["subscribers", "import", str(csv)],
            ["send", "weekly", "--at", WEEK, "--transport", f"file:{tmp_path / 'outbox'}"],
        ):
            result = invoke(root, *args, env=short)
            assert_one_error(result.exit_code, result.stderr, expected)
        listed = invoke(root, "articles", "--json", env=short)  # WAL: readers never wait
        assert listed.exit_code == 0
        assert len(json.loads(listed.stdout)) == 32
        holder.execute("ROLLBACK")
    assert dump(db) == before
    assert invoke(root, "ingest", str(new), "--category", "Sleep", env=short).exit_code == 0


# -- what is not translated, and errors at open ------------------------------------------


def test_integrity_errors_still_reach_their_callers(tmp_path: Path):
    store = Store(f"sqlite:///{tmp_path / 'n.db'}")
    try:
        with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
            conn.execute(meta.insert().values(key="schema_version", value="1"))
    finally:
        store.close()


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("garbage", "not a SQLite database (file is not a database)"),
        ("no folder", "cannot be opened: folder {folder} does not exist (unable to open database file)"),
        ("another program's", "cannot be opened (no such column: meta.value)"),  # _migrate's fallback
    ],
)
def test_a_database_that_cannot_be_opened_is_named(tmp_path: Path, setup: str, expected: str):
    db = tmp_path / "missing" / "n.db" if setup == "no folder" else tmp_path / "n.db"
    if setup == "garbage":
        db.write_bytes(b"this is not SQLite" * 100)
    if setup == "another program's":
        with closing(sqlite3.connect(db)) as conn:
            conn.execute("CREATE TABLE meta (name TEXT)")
    with pytest.raises(StoreError) as failed:
        Store(f"sqlite:///{db}")
    assert str(failed.value) == f"database {db}: " + expected.format(folder=db.parent)
