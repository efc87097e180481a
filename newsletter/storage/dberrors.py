"""Database errors in words: disk full, read-only, locked, cannot open.

`install` hooks SQLAlchemy's engine `handle_error` event, which sees every
DBAPI error (statements, commits, rollbacks, connecting). A handler that
raises replaces SQLAlchemy's exception (and its statement dump) with ours:
a StoreError naming the database and the cause, with a hint per cause.
Errors of unknown kinds pass through untouched, and IntegrityError always
does: the ledger and the store catch it to settle concurrent inserts.

Raising here changes only what the caller sees. SQLAlchemy has already
closed the cursor; the `engine.begin()` block the error leaves rolls back,
and the pool resets (rolls back) the connection when it is returned, so
nothing is half-written and the next checkout gets a working connection.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, ExceptionContext

# Re-exported: a unique key taken by a parallel writer (an import of the same address at the
# same moment) is the one database error the rooms above storage catch and settle themselves.
from sqlalchemy.exc import IntegrityError as IntegrityError

from newsletter.core.errors import StoreError

# SQLite primary result codes (extended code & 0xff), for drivers that give no name.
SQLITE_CODES = {
    3: "PERM",
    5: "BUSY",
    6: "LOCKED",
    8: "READONLY",
    10: "IOERR",
    11: "CORRUPT",
    13: "FULL",
    14: "CANTOPEN",
    26: "NOTADB",
}
# The same, from the message, for drivers that give neither name nor code.
SQLITE_MESSAGES = {
    "database or disk is full": "FULL",
    "readonly database": "READONLY",
    "database is locked": "BUSY",
    "database table is locked": "LOCKED",
    "disk i/o error": "IOERR",
    "unable to open database file": "CANTOPEN",
    "file is not a database": "NOTADB",
    "disk image is malformed": "CORRUPT",
}

AGAIN = "run the command again: nothing was half-written"
READ_ONLY = (
    "read-only",
    "read-only",
    "Make {name} and its folder writable (SQLite keeps {name}-wal "
    "and {name}-shm beside it), then run the command again: nothing was written.",
)
LOCKED = (
    "locked",
    "locked by another connection for {held}",
    f"Another newsletter command, the scheduler or a sqlite3 shell is writing to it; "
    f"let it finish (or stop it), then {AGAIN}.",
)
# (key, what, hint) per SQLite primary code; {name} is the file's name, {held} how long we waited.
SQLITE_CAUSES = {
    "FULL": ("disk-full", "disk full", f"Free space on the disk that holds it, then {AGAIN}."),
    "READONLY": READ_ONLY,
    "PERM": READ_ONLY,
    "BUSY": LOCKED,
    "LOCKED": LOCKED,
    "IOERR": (
        "io-error",
        "disk I/O error",
        f"Check the disk (kernel log, free space, a network mount gone away), then {AGAIN}.",
    ),
    "NOTADB": (
        "not-a-database",
        "not a SQLite database",
        "Point [database] url (or NEWSLETTER_DATABASE_URL) at the newsletter database.",
    ),
    "CORRUPT": (
        "damaged",
        "damaged",
        "Restore it from a backup; `sqlite3 {path} .recover` may save what is left.",
    ),
}
# The same per PostgreSQL SQLSTATE (psycopg's `sqlstate`, psycopg2's `pgcode`).
POSTGRES_CAUSES = {
    "53100": ("disk-full", "disk full", f"Free space on the database server, then {AGAIN}."),
    "25006": (
        "read-only",
        "read-only",
        "Point the URL at the primary server (this one is a "
        "read-only standby), or grant the user write access.",
    ),
    "55P03": (
        "locked",
        "locked by another connection for too long",
        f"Another connection holds a lock on the rows; let it finish, then {AGAIN}.",
    ),
    "58030": ("io-error", "disk I/O error on the server", f"Check the database server, then {AGAIN}."),
}


@dataclass(frozen=True)
class Cause:
    """What went wrong, in a few words, and what to do about it."""

    key: str  # disk-full, read-only, locked, io-error, cannot-open, not-a-database, damaged
    what: str
    hint: str


def install(engine: Engine) -> None:
    """Turn the engine's database errors into StoreError (and honour a SQLite URL's
    ?timeout=SECONDS, so a locked database fails after that long, not the default)."""
    name = database_name(engine.url)

    def translate(context: ExceptionContext) -> None:
        _translate(name, context)

    sa.event.listen(engine, "handle_error", translate)
    if engine.dialect.name == "sqlite" and "timeout" in engine.url.query:
        # Registered after the store's own pragmas (which set the default), so this wins.
        sa.event.listen(engine, "connect", _busy_timeout(float(str(engine.url.query["timeout"]))))


def _busy_timeout(seconds: float) -> Any:
    def apply(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA busy_timeout={int(seconds * 1000)}")

    return apply


def database_name(url: URL) -> str:
    """The file path for SQLite, else the URL without its password."""
    if url.get_backend_name() != "sqlite":
        return url.render_as_string(hide_password=True)
    database = url.database or ""
    if database in ("", ":memory:"):
        return "in memory"
    if database.startswith("file:"):  # a SQLite URI (?uri=true): file:PATH?mode=ro
        database = database[len("file:") :].split("?", 1)[0]
    return os.path.abspath(database)


def open_error(engine: Engine, error: sa.exc.DBAPIError) -> StoreError:
    """A database error of no kind we know, at open: still say which database."""
    name = database_name(engine.url)
    return StoreError(f"database {name}: cannot be opened ({error.orig})", database=name, cause="cannot-open")


def _translate(name: str, context: ExceptionContext) -> None:
    error = context.original_exception
    dbapi = context.dialect.loaded_dbapi
    if context.is_pre_ping or not isinstance(error, dbapi.Error) or isinstance(error, dbapi.IntegrityError):
        return  # pre-ping decides on reconnecting by itself; integrity errors are handled by callers
    cause = _cause(context, error, name)
    if cause is not None:
        raise StoreError(
            f"database {name}: {cause.what} ({_first_line(error)})",
            cause.hint,
            database=name,
            cause=cause.key,
        )


def _cause(context: ExceptionContext, error: BaseException, name: str) -> Cause | None:
    if context.dialect.name == "sqlite":
        kind = _sqlite_kind(error)
        busy = _busy_seconds(context) if kind in ("BUSY", "LOCKED") else None  # a PRAGMA: only if needed
        return _sqlite_cause(kind, Path(name), busy)
    if context.dialect.name == "postgresql":
        return _postgres_cause(error, connecting=context.connection is None)
    return None


def _sqlite_kind(error: BaseException) -> str | None:
    """The primary result code's name (FULL, READONLY, ...): from the error's name or
    code (Python 3.11's sqlite3 gives both), else from the message."""
    errorname = getattr(error, "sqlite_errorname", None)
    if isinstance(errorname, str) and errorname.startswith("SQLITE_"):
        return errorname.split("_")[1]  # SQLITE_IOERR_WRITE is an IOERR
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(code, int):
        return SQLITE_CODES.get(code & 0xFF)
    message = str(error).lower()
    return next((kind for text, kind in SQLITE_MESSAGES.items() if text in message), None)


def _sqlite_cause(kind: str | None, path: Path, busy: float | None) -> Cause | None:
    if kind == "IOERR" and _disk_full(path):
        kind = "FULL"  # SQLite reports some ENOSPC (growing the -shm file) as I/O errors
    if kind == "CANTOPEN":
        return _cannot_open(path)
    if kind not in SQLITE_CAUSES:
        return None
    key, what, hint = SQLITE_CAUSES[kind]
    held = f"more than {busy:g} s" if busy else "too long"
    return Cause(key, what.format(held=held), hint.format(name=path.name, path=path))


def _cannot_open(path: Path) -> Cause:
    folder = path.parent
    if not folder.is_dir():
        return Cause(
            "cannot-open",
            f"cannot be opened: folder {folder} does not exist",
            "Create the folder, or fix [database] url (or NEWSLETTER_DATABASE_URL).",
        )
    if path.exists() and not os.access(folder, os.W_OK):
        # A WAL database needs NAME-shm beside it even to be read; a read-only folder
        # (a read-only mount) without it cannot be read at all. os.access sees that as root too.
        return Cause(
            "read-only",
            f"cannot be opened: its folder is read-only and SQLite must create "
            f"{path.name}-shm there even to read it",
            f"Make the folder writable, or copy {path.name} to a writable folder and point "
            f"NEWSLETTER_DATABASE_URL at it; nothing was written.",
        )
    return Cause(
        "cannot-open",
        "cannot be opened",
        "Check that the file and its folder are readable and writable by this user.",
    )


def _disk_full(path: Path) -> bool:
    try:
        return shutil.disk_usage(path.parent).free < 64 * 1024
    except OSError:
        return False


def _busy_seconds(context: ExceptionContext) -> float | None:
    """The connection's busy timeout, for the message; None when it cannot be asked."""
    connection = context.connection
    if connection is None or connection.closed or connection.invalidated:
        return None
    try:
        raw = connection.connection.dbapi_connection
        return int(raw.execute("PRAGMA busy_timeout").fetchone()[0]) / 1000 if raw else None
    except Exception:  # noqa: BLE001 (only the message's detail is lost)
        return None


def _postgres_cause(error: BaseException, connecting: bool) -> Cause | None:
    state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    if state and str(state) in POSTGRES_CAUSES:
        return Cause(*POSTGRES_CAUSES[str(state)])
    if connecting and not state:  # refused, unknown host, bad password: no SQLSTATE yet
        return Cause(
            "cannot-open",
            "cannot connect",
            "Check that the server is running and the URL's host, port, user and password.",
        )
    return None


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
