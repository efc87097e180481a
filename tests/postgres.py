"""A private PostgreSQL server for the tests that check the store is portable.

Debian's server binaries (`.ci/run` and `make test` install the `postgresql`
package; its own cluster is never used or started): a cluster made by `initdb`
in a fresh temp folder, run as the `postgres` user (the server refuses root),
listening on a random 127.0.0.1 port with its socket in that folder, fsync off.
Each test gets its own database; the server is stopped and its folder removed at
the end of the module."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import count
from pathlib import Path

import pytest

from tests.conftest import free_port

BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)), None)
needs_postgres = pytest.mark.skipif(
    BIN is None, reason="Debian's postgresql is not installed (.ci/run and make test install it)"
)


def _as_postgres(*command: str) -> subprocess.CompletedProcess[str]:
    user = pwd.getpwnam("postgres")

    def become() -> None:
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)

    return subprocess.run(command, capture_output=True, text=True, timeout=60, preexec_fn=become, cwd="/")


class Databases:
    """Call it for a new, empty database's URL; `drop(url)` when a test is done with one
    (the whole suite on PostgreSQL makes a thousand: dropped, they need no disk)."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.numbers = count(1)

    def __call__(self) -> str:
        name = f"test{next(self.numbers)}"
        self._admin(f"CREATE DATABASE {name}")
        return f"{self.server}/{name}"

    def drop(self, url: str) -> None:
        """Gone with its connections, if a test left an engine open (FORCE: PostgreSQL 13+)."""
        self._admin(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")

    def _admin(self, statement: str) -> None:
        import psycopg  # the driver the store uses; no createdb process per database

        with psycopg.connect(f"{self.server}/postgres", autocommit=True) as conn:
            conn.execute(statement.encode())  # our own names, not input: no parameters


@contextmanager
def private_server() -> Iterator[Databases]:
    """Start a private server; yield a function that makes a new, empty database and
    returns its SQLAlchemy URL; stop the server and remove its folder at the end."""
    assert BIN is not None
    user = pwd.getpwnam("postgres")
    folder = Path(tempfile.mkdtemp(prefix="newsletter-pg-"))  # not under pytest's 0700 tmp root
    os.chown(folder, user.pw_uid, user.pw_gid)
    data, port = folder / "data", free_port()
    made = _as_postgres(str(BIN / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8")
    assert made.returncode == 0, made.stderr
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off -c full_page_writes=off "
        "-c synchronous_commit=off -c max_connections=300"
    )
    ctl = str(BIN / "pg_ctl")
    started = _as_postgres(ctl, "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start")
    assert started.returncode == 0, started.stderr + (folder / "log").read_text()
    try:
        yield Databases(f"postgresql://postgres@127.0.0.1:{port}")
    finally:
        _as_postgres(ctl, "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def skip_unless_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("a private PostgreSQL is started as root, then run as postgres (CI runs as root)")


@pytest.fixture(scope="module")
def postgresql() -> Iterator[Callable[[], str]]:
    """A function that makes a new, empty database and returns its SQLAlchemy URL."""
    skip_unless_root()
    with private_server() as database:
        yield database
