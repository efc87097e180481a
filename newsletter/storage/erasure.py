"""Erasing for good (`subscribers forget`): a transaction whose deletes and updates leave
no old bytes in the database's pages, then the old copies of those pages out of the
write-ahead log. SQLite keeps a changed page's earlier image in `newsletter.db-wal` until
a checkpoint overwrites it, and a deleted row's bytes in the page unless `secure_delete`
zeroes them; PostgreSQL keeps dead row versions until a VACUUM."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy.engine import Connection, Engine

CHECKPOINT_WAIT_MS = 5000  # how long the checkpoint waits for a reader on an old snapshot
BUSY_TIMEOUT_MS = 10000  # store.py's, given back after the checkpoint


@contextmanager
def erasing(engine: Engine) -> Iterator[Connection]:
    """One transaction in which freed cells and freed pages are overwritten with zeros
    (SQLite's `secure_delete=ON`; every other connection keeps `FAST`: freed cells only)."""
    with engine.begin() as conn:
        sqlite = engine.dialect.name == "sqlite"
        if sqlite:
            conn.exec_driver_sql("PRAGMA secure_delete=ON")
        try:
            yield conn
        finally:
            if sqlite:
                conn.exec_driver_sql("PRAGMA secure_delete=FAST")


def scrub(engine: Engine, tables: Sequence[str]) -> str | None:
    """After an erase, the old copies gone: SQLite's write-ahead log checkpointed into the
    database file and truncated to nothing; PostgreSQL's `tables` vacuumed. None when done;
    else the file that may still hold old bytes (a reader kept an old snapshot open)."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in tables:  # VACUUM runs outside any transaction
                conn.exec_driver_sql(f'VACUUM "{table}"')
        return None
    if engine.dialect.name != "sqlite":
        return None
    with engine.connect() as conn:
        conn.exec_driver_sql(f"PRAGMA busy_timeout={CHECKPOINT_WAIT_MS}")
        try:
            busy, _, _ = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
        finally:
            conn.exec_driver_sql(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return f"{engine.url.database}-wal" if busy else None
