"""Read-only counts for `newsletter status`: the list by status and how it moved, why an
unfinished issue's deliveries wait, when the bounce mailbox last gave us something.
Nothing here writes; each answer is one short transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from newsletter.core.models import SubscriberStatus
from newsletter.storage.records import SUPPRESSED, D
from newsletter.storage.schema import bounce_reports, deliveries, subscribers
from newsletter.storage.store import Store

WINDOWS = (7, 30)  # days the list's movement is counted over


@dataclass(frozen=True)
class Movement:
    """Over the last `days`: addresses added (any status now), and those that left
    (unsubscribed, bounced or complained, by their last change)."""

    days: int
    joined: int
    left: int


@dataclass(frozen=True)
class Held:
    """An unfinished issue's waiting deliveries: how many were tried and wait, the reply
    the latest of them got, and whether any is in flight now."""

    tried: int
    reason: str
    in_flight: int


def list_counts(store: Store) -> dict[str, int]:
    query = sa.select(subscribers.c.status, sa.func.count()).group_by(subscribers.c.status)
    with store.engine.connect() as conn:
        found = {status: count for status, count in conn.execute(query)}
    return {str(s): found.get(str(s), 0) for s in SubscriberStatus}


def movements(store: Store, now: datetime) -> list[Movement]:
    left = subscribers.c.status.in_([str(s) for s in SUPPRESSED])
    with store.engine.connect() as conn:

        def count(*where: Any) -> int:
            return conn.scalar(sa.select(sa.func.count()).where(*where)) or 0

        return [
            Movement(
                days,
                count(subscribers.c.created_at >= now - timedelta(days)),
                count(left, subscribers.c.updated_at >= now - timedelta(days)),
            )
            for days in WINDOWS
        ]


def held(store: Store, issue_id: int) -> Held:
    mine = deliveries.c.issue_id == issue_id
    tried = sa.and_(mine, deliveries.c.status == D.PENDING, deliveries.c.attempts > 0)
    with store.engine.connect() as conn:
        count = conn.scalar(sa.select(sa.func.count()).where(tried))
        reason = conn.scalar(
            sa.select(deliveries.c.last_error).where(tried).order_by(deliveries.c.updated_at.desc()).limit(1)
        )
        flying = conn.scalar(sa.select(sa.func.count()).where(mine, deliveries.c.status == D.SENDING))
    return Held(count or 0, reason or "", flying or 0)


def last_bounce(store: Store) -> datetime | None:
    """When the bounce mailbox last gave a mail that was acted on."""
    with store.engine.connect() as conn:
        found: datetime | None = conn.scalar(sa.select(sa.func.max(bounce_reports.c.received_at)))
    return found
