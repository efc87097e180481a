"""Bounces, complaints and mailto unsubscribes (newsletter/delivery/bounces.py): the
delivery a mail of the bounce mailbox is about, its report, and the suppression it brings."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from newsletter.core.models import COMPLAINT, DELAYED, HARD, SOFT, UNSUBSCRIBE, SubscriberStatus
from newsletter.storage.records import (
    SUPPRESSED,
    D,
    Subscriber,
)
from newsletter.storage.roster import Roster
from newsletter.storage.schema import (
    bounce_reports,
    deliveries,
    subscribers,
)
from newsletter.storage.store import Store


class Suppression:
    """What the bounce mailbox proves, recorded once, and the suppressions it brings."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine
        self.roster = Roster(store)

    def subscriber(self, subscriber_id: int) -> Subscriber | None:
        """Whom a mailto unsubscribe's token names, if they are on the roster."""
        return self.roster.subscriber(subscriber_id)

    def bounce_target(self, delivery_id: int) -> BounceTarget | None:
        """The delivery a return-path token names."""
        return self._target(deliveries.c.id == delivery_id)

    def delivery_by_message_id(self, message_id: str) -> BounceTarget | None:
        """The delivery a bounced message's Message-ID names: `<random.ID@domain>` carries
        the delivery's id, so the row is found by its key and the whole Message-ID must
        match the stored one (no index on it, no scan). Its 128 random bits are the proof:
        the older `<issueN.deliveryM@domain>` form, which anyone can guess, names nothing."""
        stored = STORED_MESSAGE_ID.fullmatch(message_id.strip())
        if stored is None:
            return None
        return self._target(deliveries.c.id == int(stored[1]), deliveries.c.message_id == message_id.strip())

    def _target(self, *where: Any) -> BounceTarget | None:
        query = sa.select(deliveries).where(*where).order_by(deliveries.c.id.desc()).limit(1)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return BounceTarget(row.id, row.subscriber_id, row.email, row.status) if row is not None else None

    def bounce_seen(self, mail_key: str) -> bool:
        with self.engine.connect() as conn:
            query = sa.select(bounce_reports.c.id).where(bounce_reports.c.mail_key == mail_key)
            return conn.scalar(query) is not None

    def record_bounce(self, record: BounceRecord, soft_limit: int, now: datetime) -> BounceOutcome:
        """Act on one mail of the bounce mailbox, in one transaction with its record, so
        the same mail read again changes nothing. Hard bounces and complaints suppress at
        once; soft ones when the address's last `soft_limit` deliveries all bounced soft."""
        try:
            with self.engine.begin() as conn:
                conn.execute(bounce_reports.insert().values(**record.row(), received_at=now))
                if record.kind in (HARD, SOFT) and record.delivery_id is not None:
                    _mark_bounced(conn, record, now)
                status = _suppression(conn, record, soft_limit)
                suppressed = status is not None and _suppress(conn, record.subscriber_id, status, now)
        except sa.exc.IntegrityError:
            return BounceOutcome(seen=True)
        return BounceOutcome(suppressed=status if suppressed else None)


WENT_OUT = (D.SENT, D.UNKNOWN, D.BOUNCED)  # deliveries a bounce may come back for
# mail.new_message_id's form; an id of at most 18 digits fits SQLite's integers
STORED_MESSAGE_ID = re.compile(r"<[0-9a-f]{32}\.(\d{1,18})@[^>]+>")


@dataclass(frozen=True)
class BounceTarget:
    """A delivery a mail in the bounce mailbox is about."""

    delivery_id: int
    subscriber_id: int
    email: str
    status: str


@dataclass(frozen=True)
class BounceRecord:
    """What one mail of the bounce mailbox says: its kind, whom, the status code."""

    mail_key: str
    kind: str  # HARD | SOFT | DELAYED | COMPLAINT | UNSUBSCRIBE
    delivery_id: int | None
    subscriber_id: int | None
    status_code: str = ""
    detail: str = ""

    def row(self) -> dict[str, Any]:
        return {
            "mail_key": self.mail_key,
            "kind": self.kind,
            "delivery_id": self.delivery_id,
            "subscriber_id": self.subscriber_id,
            "status_code": self.status_code,
            "detail": self.detail[:2000],
        }


@dataclass(frozen=True)
class BounceOutcome:
    seen: bool = False  # recorded before: nothing done
    suppressed: str | None = None  # the subscriber's new status, if this mail suppressed them


def _mark_bounced(conn: Any, record: BounceRecord, now: datetime) -> None:
    conn.execute(
        deliveries.update()
        .where(deliveries.c.id == record.delivery_id, deliveries.c.status.in_(WENT_OUT))
        .values(
            status=D.BOUNCED,
            updated_at=now,
            last_error=f"bounced {record.status_code}: {record.detail}"[:2000],
        )
    )


def _suppression(conn: Any, record: BounceRecord, soft_limit: int) -> str | None:
    """The status a mail gives its subscriber, if any."""
    if record.subscriber_id is None or record.kind == DELAYED:
        return None
    if record.kind == SOFT:
        return SubscriberStatus.BOUNCED if _soft_streak(conn, record.subscriber_id, soft_limit) else None
    return {
        HARD: SubscriberStatus.BOUNCED,
        COMPLAINT: SubscriberStatus.COMPLAINED,
        UNSUBSCRIBE: SubscriberStatus.UNSUBSCRIBED,
    }[record.kind]


def _soft_streak(conn: Any, subscriber_id: int, limit: int) -> bool:
    """The subscriber's last `limit` deliveries that went out all bounced (across issues)."""
    last = conn.execute(
        sa.select(deliveries.c.id, deliveries.c.status)
        .where(deliveries.c.subscriber_id == subscriber_id, deliveries.c.status.in_(WENT_OUT))
        .order_by(deliveries.c.issue_id.desc(), deliveries.c.id.desc())
        .limit(limit)
    ).all()
    if len(last) < limit or any(status != D.BOUNCED for _, status in last):
        return False
    bounced = conn.scalars(
        sa.select(bounce_reports.c.delivery_id).where(
            bounce_reports.c.delivery_id.in_([d for d, _ in last]), bounce_reports.c.kind.in_((HARD, SOFT))
        )
    )
    return set(bounced) == {d for d, _ in last}


def _suppress(conn: Any, subscriber_id: int | None, status: str, now: datetime) -> bool:
    result = conn.execute(
        subscribers.update()
        .where(subscribers.c.id == subscriber_id, subscribers.c.status.not_in(SUPPRESSED))
        .values(status=status, updated_at=now)
    )
    return bool(result.rowcount == 1)
