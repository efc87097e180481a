"""The outbox: signup's one-off mails (confirmation, welcome, the latest issue), queued in
the store by `serve` in the same transaction that decided them, and sent after the answer
by dispatch.py. A request never waits for a mail, so its time says nothing about the
address; a mail queued by a server that died still goes out with the next `run`.

A row names what to say (kind, subscriber, consent, schedule), not its bytes: the mail is
rendered when it is sent. Its Message-ID is made when it is queued and kept for every
retry. Rows are claimed as deliveries are (a committed write with a lease, taken over when
the lease ends), then settled: sent, failed (after the retries), or unknown.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from newsletter.storage.schema import outbox, subscriber_notices
from newsletter.storage.store import Store

CONFIRM, WELCOME, LATEST, SIGNUP = "confirm", "welcome", "latest", "signup"
QUEUED, SENDING, SENT, FAILED, UNKNOWN = "queued", "sending", "sent", "failed", "unknown"

_DUE = sa.or_(
    sa.and_(
        outbox.c.status == QUEUED,
        sa.or_(outbox.c.not_before.is_(None), outbox.c.not_before <= sa.bindparam("now")),
    ),
    sa.and_(outbox.c.status == SENDING, outbox.c.lease_until < sa.bindparam("now")),  # a dead claim
)


@dataclass(frozen=True)
class Notice:
    """One queued mail: what it is, whom it is for, and its Message-ID."""

    id: int
    kind: str
    detail: str  # LATEST: the schedule
    subscriber_id: int | None  # None for SIGNUP
    consent_id: int | None
    message_id: str
    attempts: int  # including the claim that returned it
    created_at: datetime
    email: str = ""  # SIGNUP: the address, and the form's choices and consent (JSON)
    payload: str = ""


def new_message_id(domain: str) -> str:
    """Like a delivery's (mail.new_message_id), but never read as one by bounces.py."""
    return f"<{secrets.token_hex(16)}.notice@{domain}>"


def queue(
    conn: Connection,
    kind: str,
    subscriber_id: int | None,
    message_id: str,
    now: datetime,
    consent_id: int | None = None,
    detail: str = "",
    email: str = "",
    payload: str = "",
) -> int:
    """Queue a mail (or a signup) in the caller's transaction: it exists if and only if
    that commits."""
    result = conn.execute(
        outbox.insert().values(
            kind=kind,
            detail=detail,
            subscriber_id=subscriber_id,
            consent_id=consent_id,
            email=email,
            payload=payload,
            message_id=message_id,
            status=QUEUED,
            attempts=0,
            last_error="",
            created_at=now,
            updated_at=now,
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def queue_once(
    conn: Connection, kind: str, subscriber_id: int, message_id: str, now: datetime, detail: str = ""
) -> bool:
    """Queue a mail a subscriber gets at most once (welcome, latest:<schedule>): False
    when it was queued before. Race-free: the notice's key is inserted or left alone."""
    values = {"subscriber_id": subscriber_id, "kind": f"{kind}:{detail}" if detail else kind, "sent_at": now}
    # RETURNING, not rowcount: psycopg reports -1 for an INSERT ... ON CONFLICT DO NOTHING,
    # which read as "queued before" kept every welcome from PostgreSQL's readers.
    insert = _insert_new(conn, subscriber_notices, values).returning(subscriber_notices.c.subscriber_id)
    if conn.execute(insert).first() is None:
        return False
    queue(conn, kind, subscriber_id, message_id, now, detail=detail)
    return True


def queue_welcome(
    conn: Connection, subscriber_id: int, welcome: bool, latest: list[str], domain: str, now: datetime
) -> None:
    """The welcome mail (if `welcome`) and the latest issue of each schedule in `latest`,
    each at most once: at confirmation, or at a single opt-in signup."""
    if welcome:
        queue_once(conn, WELCOME, subscriber_id, new_message_id(domain), now)
    for schedule in latest:
        queue_once(conn, LATEST, subscriber_id, new_message_id(domain), now, schedule)


def _insert_new(conn: Connection, table: sa.Table, values: dict[str, Any]) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING, in the dialect's own words."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).values(**values).on_conflict_do_nothing()


def recorded(conn: Connection, notice_id: int, now: datetime) -> None:
    """A SIGNUP row done, in the transaction that recorded it: its address and data go."""
    values = {"status": SENT, "email": "", "payload": "", "lease_until": None}
    conn.execute(
        outbox.update().where(outbox.c.id == notice_id).values(updated_at=now, sent_at=now, **values)
    )


class Outbox:
    """The queue's claims and settlements, each its own committed write."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine

    def welcome(
        self, subscriber_id: int, welcome: bool, latest: list[str], domain: str, now: datetime
    ) -> None:
        """`queue_welcome` in a transaction of its own (a confirmation's)."""
        with self.engine.begin() as conn:
            queue_welcome(conn, subscriber_id, welcome, latest, domain, now)

    def claim(self, now: datetime, lease: timedelta) -> Notice | None:
        """The next due mail, taken for `lease`; None when nothing is due."""
        params = {"now": now}
        with self.engine.connect() as conn:
            ids = list(
                conn.scalars(sa.select(outbox.c.id).where(_DUE).order_by(outbox.c.id).limit(8), params)
            )
        for notice_id in ids:
            take = (
                outbox.update()
                .where(outbox.c.id == notice_id, _DUE)
                .values(
                    status=SENDING, lease_until=now + lease, attempts=outbox.c.attempts + 1, updated_at=now
                )
            )
            with self.engine.begin() as conn:
                if conn.execute(take, params).rowcount != 1:
                    continue  # another drain took it first
                row = conn.execute(sa.select(outbox).where(outbox.c.id == notice_id)).one()
            return Notice(
                row.id,
                row.kind,
                row.detail,
                row.subscriber_id,
                row.consent_id,
                row.message_id,
                row.attempts,
                row.created_at,
                row.email,
                row.payload,
            )
        return None

    def settle(self, notice_id: int, status: str, now: datetime, error: str = "") -> None:
        assert status in (SENT, FAILED, UNKNOWN)
        sent_at = now if status == SENT else None
        values = {"status": status, "updated_at": now, "sent_at": sent_at, "last_error": error[:2000]}
        self._update(notice_id, email="", payload="", **values)  # a signup's data is kept no longer

    def retry(self, notice_id: int, not_before: datetime, now: datetime, error: str) -> None:
        self._update(notice_id, status=QUEUED, not_before=not_before, updated_at=now, last_error=error[:2000])

    def _update(self, notice_id: int, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(outbox.update().where(outbox.c.id == notice_id).values(lease_until=None, **values))

    def outcomes(self, notice_ids: list[int]) -> dict[int, tuple[str, str]]:
        """Each row's status and last error."""
        query = sa.select(outbox.c.id, outbox.c.status, outbox.c.last_error).where(
            outbox.c.id.in_(notice_ids)
        )
        with self.engine.connect() as conn:
            return {row.id: (row.status, row.last_error) for row in conn.execute(query)}

    def waiting(self) -> int:
        """Mails queued or in flight."""
        query = sa.select(sa.func.count()).where(outbox.c.status.in_((QUEUED, SENDING)))
        with self.engine.connect() as conn:
            return int(conn.scalar(query) or 0)

    def counts(self) -> dict[str, int]:
        query = sa.select(outbox.c.status, sa.func.count()).group_by(outbox.c.status)
        with self.engine.connect() as conn:
            found = {status: count for status, count in conn.execute(query)}
        return {s: found.get(s, 0) for s in (QUEUED, SENDING, SENT, FAILED, UNKNOWN)}
