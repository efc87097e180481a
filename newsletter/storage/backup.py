"""`newsletter db backup FILE`: a copy of the SQLite database taken while it is in use
(sqlite3's online backup API: a consistent snapshot, writers only wait between pages),
checked by opening the copy (integrity_check, the schema version) before it is named.
PostgreSQL has its own tool for this, pg_dump.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path

from newsletter.core.errors import NewsletterError, OutputError
from newsletter.core.transport_url import shown


class BackupError(NewsletterError):
    """The backup could not be taken or did not check out; nothing is left at FILE."""


def backup(url: str, target: Path) -> int:
    """Copy the database at `url` to `target` (never over a file); the copy's schema version."""
    if not url.startswith("sqlite:///") or url.endswith(":memory:"):
        raise BackupError(
            f"db backup copies a SQLite database; {shown(url)!r} is not one",
            "For PostgreSQL use pg_dump: pg_dump --format=custom --file FILE DBNAME "
            "(and pg_restore to bring it back).",
        )
    source = Path(url[len("sqlite:///") :].split("?", 1)[0])
    if not source.is_file():
        raise BackupError(
            f"{source}: no database there", "Check [database] url (or NEWSLETTER_DATABASE_URL)."
        )
    if target.exists():
        raise BackupError(
            f"{target} already exists; not overwriting",
            "Name a new file (a date in its name keeps them apart).",
        )
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        version = _copy(source, temp)
        os.link(temp, target)  # fails if FILE appeared meanwhile: never over a file
    except sqlite3.Error as e:
        raise BackupError(f"{source}: cannot be copied ({e})", "Check the database and the disk.") from e
    except OSError as e:
        raise OutputError(str(target), e.strerror or str(e)) from e
    finally:
        temp.unlink(missing_ok=True)
    return version


def _copy(source: Path, temp: Path) -> int:
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # personal data: its owner only
    os.close(fd)
    with (
        closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as src,
        closing(sqlite3.connect(temp)) as dst,
    ):
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
    return _checked(temp, source)


def _checked(copy: Path, source: Path) -> int:
    with closing(sqlite3.connect(copy)) as db:
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if integrity != "ok" or row is None:
        raise BackupError(
            f"the copy of {source} did not check out ({'no schema version' if row is None else integrity})",
            "Run PRAGMA integrity_check on the database itself; the copy was removed.",
        )
    return int(row[0])
