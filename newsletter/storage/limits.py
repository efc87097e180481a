"""Signup's rate limits, counted and taken in one transaction that serialises on the key.

Counting, then inserting, in two steps lets parallel requests all count the same number
and all pass. Here a limit is taken inside a `serialised` transaction: on SQLite it begins
IMMEDIATE (the write lock from the start, so a second request waits for the first, up to
busy_timeout, instead of failing with "database is locked" when its read turns into a
write); on PostgreSQL `take` first holds a transaction-scoped advisory lock on the key.
Whatever the request goes on to write (the signup, its mail in the outbox) is in the same
transaction, so it is serialised on the address too.

Events are rows of `signup_events`, one per counted signup, keyed by a digest of the IP
or address (web/forms.rate_key): a sliding window, as before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsletter.storage.schema import signup_events
from newsletter.storage.store import Store

CONFIRM_MAIL_EVERY = timedelta(hours=1)  # at most one confirmation mail an address an hour


@contextmanager
def serialised(store: Store) -> Iterator[Connection]:
    """One write transaction, committed when the block ends, rolled back if it raises."""
    with store.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # pysqlite adds no BEGIN of its own now
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()


def take(
    conn: Connection, kind: str, key: str, limit: int, window: timedelta, now: datetime, keep: timedelta
) -> bool:
    """Count one event of `kind` for `key`; False (and nothing counted) when `limit` are
    in `window` already. This key's events older than `keep` go."""
    lock(conn, kind, key)
    same = (signup_events.c.kind == kind, signup_events.c.key == key)
    counted = conn.scalar(
        sa.select(sa.func.count()).select_from(signup_events).where(*same, signup_events.c.at >= now - window)
    )
    if int(counted or 0) >= limit:
        return False
    conn.execute(signup_events.delete().where(*same, signup_events.c.at < now - keep))
    conn.execute(signup_events.insert().values(kind=kind, key=key, at=now))
    return True


def lock(conn: Connection, kind: str, key: str) -> None:
    """Hold `key` until the transaction ends (PostgreSQL; SQLite's IMMEDIATE holds all)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_lock_id(kind, key))))


def forget(store: Store, before: datetime) -> int:
    """Events of keys not seen since `before` (`take` prunes only its own key's)."""
    with store.engine.begin() as conn:
        return int(conn.execute(signup_events.delete().where(signup_events.c.at < before)).rowcount)


def _lock_id(kind: str, key: str) -> int:
    """A signed 64-bit number for pg_advisory_xact_lock."""
    digest = hashlib.sha256(f"newsletter.signup\x1f{kind}\x1f{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
