"""The delivery queue: one row per (issue, subscriber). It is what makes sending
crash-safe.

A delivery is claimed (pending -> sending) in its own committed write
before the message goes out, and finished (sent, failed, unknown) in
another after. A process killed in between leaves at most its in-flight
rows in `sending`; they become claimable again once their lease runs out,
so a restart skips no one and re-sends only what was in flight.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from newsletter.core.models import IssueStatus, Period
from newsletter.storage import claimer
from newsletter.storage.issues import EncodedBody, IssueRecord, Issues, Variant
from newsletter.storage.records import (
    ACTIVE,
    EXPIRED,
    FINAL,
    OPEN,
    PAUSED,
    Audience,
    D,
    Delivery,
    InFlight,
    Subscriber,
    delivery_from,
)
from newsletter.storage.roster import Roster
from newsletter.storage.schema import (
    deliveries,
    issues,
    subscribers,
    variant_bodies,
)
from newsletter.storage.store import Store


class DeliveryQueue:
    """The deliveries of each issue, from the audience snapshot to their outcomes."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine
        self.issues = Issues(store)
        self.roster = Roster(store)

    def issue_by_id(self, issue_id: int) -> IssueRecord:
        return self.issues.issue_by_id(issue_id)

    def variants(self, issue_id: int) -> dict[int, Variant]:
        return self.issues.variants(issue_id)

    def variant(self, variant_id: int) -> tuple[Variant, EncodedBody | None]:
        return self.issues.variant(variant_id)

    def store_body(self, variant_id: int, body: EncodedBody) -> EncodedBody:
        return self.issues.store_body(variant_id, body)

    def unencoded(self, issue_id: int) -> list[int]:
        return self.issues.unencoded(issue_id)

    def unrendered(self, issue_id: int) -> dict[str, int]:
        return self.issues.unrendered(issue_id)

    def store_rendering(self, variant_id: int, variant: Variant, body: EncodedBody) -> None:
        self.issues.store_rendering(variant_id, variant, body)

    def sending_issues(self) -> list[IssueRecord]:
        """Issues going out (status sending), oldest first: what a worker delivers."""
        query = sa.select(issues.c.id).where(issues.c.status == IssueStatus.SENDING).order_by(issues.c.id)
        with self.engine.connect() as conn:
            ids = list(conn.scalars(query))
        return [self.issues.issue_by_id(i) for i in ids]

    def suppress(self, subscriber_id: int, status: str, now: datetime) -> bool:
        """A recipient the relay refused for good: suppressed on the roster."""
        return self.roster.suppress(subscriber_id, status, now)

    def open_issue(
        self,
        schedule: str,
        period: Period,
        article_ids: Sequence[int],
        variants: Sequence[Variant],
        audience: Audience,
        now: datetime,
        overrides_version: int | None = None,
    ) -> IssueRecord:
        """Record the issue as sending, with its variants and the audience snapshot (and the
        version of the editor's overrides it goes out with), in one transaction; if another
        sender got there first, return its issue."""
        subject = variants[0].subject if variants else ""
        try:
            with self.engine.begin() as conn:
                issue_id = self.issues.claim_issue(conn, schedule, period, subject, now, overrides_version)
                if issue_id is not None:
                    self._fill_issue(conn, issue_id, article_ids, variants, audience, now)
        except sa.exc.IntegrityError:
            pass  # a concurrent sender inserted it between our attempts: it is theirs
        found = self.issues.issue(schedule, period.end)
        assert found is not None
        return found

    def _fill_issue(
        self,
        conn: Any,
        issue_id: int,
        article_ids: Sequence[int],
        variants: Sequence[Variant],
        audience: Audience,
        now: datetime,
    ) -> None:
        variant_ids = self.issues.fill(conn, issue_id, article_ids, variants)
        rows = [
            _delivery_row(issue_id, s, variant_ids.get(key) if key else None, now)
            for s, key in audience.members
        ]
        if rows:
            conn.execute(deliveries.insert(), rows)

    def complete(self, issue_id: int, now: datetime) -> bool:
        """Mark the issue sent once no delivery is left pending or in flight."""
        with self.engine.begin() as conn:
            open_rows = conn.scalar(
                sa.select(sa.func.count())
                .select_from(deliveries)
                .where(deliveries.c.issue_id == issue_id, deliveries.c.status.in_(OPEN))
            )
            if open_rows:
                return False
            self.issues.move_issue(conn, issue_id, (IssueStatus.SENDING,), IssueStatus.SENT, sent_at=now)
        return True

    def claim(
        self,
        issue_id: int,
        now: datetime,
        lease: timedelta,
        gone: Sequence[str] = (),
        message_id: Callable[[int], str] = lambda _: "",
    ) -> Delivery | None:
        """Take the next claimable delivery in flight (pending and due, or in flight past
        its claimer's lease or by a claimer that is `gone`). None when nothing is claimable.
        The claim stores our own lease and name, so whoever resumes reads, not guesses, them;
        and, the first time, `message_id(delivery id)`, which every later claim keeps."""
        claimed = self.claim_batch(issue_id, now, lease, gone, message_id, 1)
        return claimed[0] if claimed else None

    def claim_batch(
        self,
        issue_id: int,
        now: datetime,
        lease: timedelta,
        gone: Sequence[str] = (),
        message_id: Callable[[int], str] = lambda _: "",
        size: int = 1,
    ) -> list[Delivery]:
        """Up to `size` deliveries claimed as `claim` claims one, in one committed
        transaction (one commit for the batch, not one each). Rows of people unsubscribed
        since the snapshot are finished as suppressed in it. On PostgreSQL the rows are
        picked FOR UPDATE SKIP LOCKED, so concurrent claimers take different ones; on
        SQLite they are read first (the write lock is then taken by the UPDATE, which
        waits for it, where upgrading a read would fail) and each take is conditional."""
        params = {
            "issue": issue_id,
            "now": now,
            "gone": list(gone),
            "me": claimer.me(),
            "lease_until": now + lease,
        }
        locking = self.engine.dialect.name == "postgresql"
        ids: list[int] = []
        if not locking:
            with self.engine.connect() as conn:
                ids = _claimable(conn, params, locking)
        claimed: list[Delivery] = []
        with self.engine.begin() as conn:
            tried = self._take(
                conn, _claimable(conn, params, locking) if locking else ids, params, claimed, size, message_id
            )
            if not locking and tried and len(claimed) < size:
                # Rows read before the lock, taken meanwhile by another connection: read
                # again now that the first UPDATE holds SQLite's write lock, so a claimer
                # never comes back empty while rows are due.
                fresh = [i for i in _claimable(conn, params, locking) if i not in tried]
                self._take(conn, fresh, params, claimed, size, message_id)
        return claimed

    def _take(
        self,
        conn: Any,
        delivery_ids: Sequence[int],
        params: dict[str, Any],
        claimed: list[Delivery],
        size: int,
        message_id: Callable[[int], str],
    ) -> set[int]:
        """Take rows into `claimed` up to `size`; the ids tried (taken or not)."""
        tried: set[int] = set()
        for delivery_id in delivery_ids:
            if len(claimed) == size:
                break
            tried.add(delivery_id)
            taken = {**params, "d_id": delivery_id, "message_id": message_id(delivery_id) or None}
            if conn.execute(TAKE, taken).rowcount != 1:
                continue  # another connection or sender took it first
            row = conn.execute(CLAIMED, {"d_id": delivery_id}).one()
            if row.subscriber_status == ACTIVE:
                claimed.append(delivery_from(row))
            else:  # unsubscribed since the snapshot
                conn.execute(FINISH, _finished(delivery_id, "suppressed", params["now"]))
        return tried

    def give_back(self, delivery_ids: Iterable[int], now: datetime) -> None:
        """Claimed deliveries not sent (a batch's rest when its connection stops): pending
        and due at once again, their claim undone, so nobody waits for their lease."""
        ids = list(delivery_ids)
        if not ids:
            return
        with self.engine.begin() as conn:
            conn.execute(
                deliveries.update()
                .where(
                    deliveries.c.id.in_(ids),
                    deliveries.c.status == D.SENDING,
                    deliveries.c.claimed_by == claimer.me(),
                )
                .values(
                    status="pending", lease_until=None, updated_at=now, attempts=deliveries.c.attempts - 1
                )
            )

    def in_flight(self, issue_id: int) -> list[InFlight]:
        """Rows in flight, by claimer: what a resuming sender waits for."""
        columns = (deliveries.c.claimed_by, sa.func.count(), sa.func.max(deliveries.c.lease_until))
        query = (
            sa.select(*columns)
            .where(
                deliveries.c.issue_id == issue_id,
                deliveries.c.status == D.SENDING,
            )
            .group_by(deliveries.c.claimed_by)
        )
        with self.engine.connect() as conn:
            return [InFlight(who or "", n, until) for who, n, until in conn.execute(query)]

    def next_due(self, issue_id: int, now: datetime, gone: Sequence[str] = ()) -> datetime | None:
        """When something of the issue can next be claimed: the earliest retry time of a
        pending row (None counts as now), or the end of an in-flight row's lease. Rows whose
        variant is not stored yet are not counted: their recorder says when it is done."""
        with self.engine.connect() as conn:
            pending = conn.execute(
                sa.select(sa.func.count(), sa.func.min(deliveries.c.not_before)).where(
                    deliveries.c.issue_id == issue_id,
                    deliveries.c.status == D.PENDING,
                    deliveries.c.not_before.is_not(None),
                    _READY,
                )
            ).one()
            ready = conn.scalar(
                sa.select(sa.func.count())
                .select_from(deliveries)
                .where(
                    deliveries.c.issue_id == issue_id,
                    sa.or_(
                        sa.and_(deliveries.c.status == D.PENDING, deliveries.c.not_before.is_(None), _READY),
                        sa.and_(deliveries.c.status == D.SENDING, deliveries.c.claimed_by.in_(list(gone))),
                    ),
                )
            )
            leases = conn.scalar(
                sa.select(sa.func.min(deliveries.c.lease_until)).where(
                    deliveries.c.issue_id == issue_id, deliveries.c.status == D.SENDING
                )
            )
        if ready:
            return now
        times = [t for t in (pending[1], leases) if t is not None]
        return min(times) if times else None

    def finish(self, delivery_id: int, status: str, now: datetime, error: str = "") -> None:
        assert status in (*FINAL, EXPIRED)
        with self.engine.begin() as conn:
            conn.execute(FINISH, _finished(delivery_id, status, now, error))

    def retry_later(self, delivery_id: int, not_before: datetime, now: datetime, error: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                deliveries.update()
                .where(deliveries.c.id == delivery_id)
                .values(status="pending", not_before=not_before, updated_at=now, last_error=error)
            )

    def sweep_suppressed(self, issue_id: int, now: datetime) -> int:
        """Pending deliveries to people who unsubscribed since the snapshot: never sent."""
        gone = sa.select(subscribers.c.id).where(subscribers.c.status != ACTIVE)
        with self.engine.begin() as conn:
            result = conn.execute(
                deliveries.update()
                .where(
                    deliveries.c.issue_id == issue_id,
                    deliveries.c.status == D.PENDING,
                    deliveries.c.subscriber_id.in_(gone),
                )
                .values(status=D.SUPPRESSED, updated_at=now)
            )
        return result.rowcount

    def requeue(self, issue_id: int, status: str, now: datetime) -> int:
        """Put `unknown` or `expired` deliveries back in the queue, on request. Expired
        ones get a fresh queue lifetime: the issue counts as queued again from now."""
        with self.engine.begin() as conn:
            result = conn.execute(
                deliveries.update()
                .where(
                    deliveries.c.issue_id == issue_id,
                    deliveries.c.status == status,
                )
                .values(status=D.PENDING, not_before=None, updated_at=now)
            )
            if result.rowcount:
                fresh = {"queued_at": now} if status == EXPIRED else {}
                self.issues.move_issue(
                    conn, issue_id, (IssueStatus.SENT, IssueStatus.SENDING), IssueStatus.SENDING, **fresh
                )
        return int(result.rowcount)

    def release(self, delivery_ids: Iterable[int], now: datetime) -> None:
        """Held deliveries due again at once: after a pause the next run is a fresh probe."""
        ids = list(delivery_ids)
        with self.engine.begin() as conn:
            for chunk in range(0, len(ids), 500):
                conn.execute(
                    deliveries.update()
                    .where(
                        deliveries.c.id.in_(ids[chunk : chunk + 500]),
                        deliveries.c.status == D.PENDING,
                    )
                    .values(not_before=None, updated_at=now)
                )

    def counts(self, issue_id: int) -> dict[str, int]:
        query = (
            sa.select(deliveries.c.status, sa.func.count())
            .where(deliveries.c.issue_id == issue_id)
            .group_by(deliveries.c.status)
        )
        with self.engine.connect() as conn:
            found = {status: count for status, count in conn.execute(query)}
        return {s: found.get(s, 0) for s in ("pending", "sending", *FINAL, EXPIRED)}

    def started(self, issue_id: int) -> bool:
        """Whether any delivery of the issue was ever tried (claimed at least once), or
        nothing is left to try. A recorded issue not started has sent nobody anything yet."""
        mine = deliveries.c.issue_id == issue_id
        with self.engine.connect() as conn:
            tried = conn.scalar(sa.select(sa.func.count()).where(mine, deliveries.c.attempts > 0))
            pending = conn.scalar(sa.select(sa.func.count()).where(mine, deliveries.c.status == D.PENDING))
        return bool(tried) or not pending

    def waiting(self, issue_id: int) -> int:
        """Deliveries not final yet: pending (maybe backing off) or in flight elsewhere."""
        counts = self.counts(issue_id)
        return counts["pending"] + counts["sending"]


# The claim path runs twice per message: its statements are built once.
_IN_ISSUE = deliveries.c.issue_id == sa.bindparam("issue")
_DUE = sa.and_(
    deliveries.c.status == D.PENDING,
    sa.or_(deliveries.c.not_before.is_(None), deliveries.c.not_before <= sa.bindparam("now")),
)
# An orphan: in flight past its claimer's own lease, or claimed by a process known to be gone.
_ORPHAN = sa.and_(
    deliveries.c.status == D.SENDING,
    sa.or_(
        deliveries.c.lease_until < sa.bindparam("now"),
        deliveries.c.lease_until.is_(None),  # claimed by a version that stored no lease
        deliveries.c.claimed_by.in_(sa.bindparam("gone", expanding=True)),
    ),
)
# Claimable once its variant's body is stored: the recorder stores variant by variant while
# the first ones go out (delivery/send.py).
_READY = sa.exists().where(variant_bodies.c.variant_id == deliveries.c.variant_id)
DUE = sa.select(deliveries.c.id).where(_IN_ISSUE, _DUE, _READY).order_by(deliveries.c.id).limit(16)
ORPHANED = sa.select(deliveries.c.id).where(_IN_ISSUE, _ORPHAN).order_by(deliveries.c.id).limit(16)
TAKE = (
    deliveries.update()
    .where(deliveries.c.id == sa.bindparam("d_id"), sa.or_(_DUE, _ORPHAN))
    .values(
        status="sending",
        claimed_at=sa.bindparam("now"),
        updated_at=sa.bindparam("now"),
        lease_until=sa.bindparam("lease_until"),
        claimed_by=sa.bindparam("me"),
        attempts=deliveries.c.attempts + 1,
        # Only the first claim's: a retry, a takeover or --retry-unknown sends the same one.
        message_id=sa.func.coalesce(deliveries.c.message_id, sa.bindparam("message_id")),
    )
)
CLAIMED = (
    sa.select(deliveries, subscribers.c.status.label("subscriber_status"))
    .join(
        subscribers,
        subscribers.c.id == deliveries.c.subscriber_id,
    )
    .where(deliveries.c.id == sa.bindparam("d_id"))
)
FINISH = (
    deliveries.update()
    .where(deliveries.c.id == sa.bindparam("d_id"))
    .values(
        status=sa.bindparam("b_status"),
        updated_at=sa.bindparam("now"),
        last_error=sa.bindparam("error"),
        sent_at=sa.bindparam("b_sent_at"),
    )
)


def _claimable(conn: Any, params: dict[str, Any], locking: bool) -> list[int]:
    """The next due rows, else orphans; locked and skipping locked ones on PostgreSQL."""
    due, orphaned = (
        (DUE.with_for_update(skip_locked=True), ORPHANED.with_for_update(skip_locked=True))
        if locking
        else (DUE, ORPHANED)
    )
    return list(conn.scalars(due, params)) or list(conn.scalars(orphaned, params))


def _finished(delivery_id: int, status: str, now: datetime, error: str = "") -> dict[str, Any]:
    sent_at = now if status == "sent" else None
    return {"d_id": delivery_id, "b_status": status, "now": now, "error": error, "b_sent_at": sent_at}


def _delivery_row(
    issue_id: int, subscriber: Subscriber, variant_id: int | None, now: datetime
) -> dict[str, Any]:
    if subscriber.status == PAUSED:
        status = "skipped"  # paused by the reader: nothing this time, nothing suppressed
    elif subscriber.status != ACTIVE:
        status = "suppressed"
    else:
        status = "pending" if variant_id is not None else "skipped"
    return {
        "issue_id": issue_id,
        "subscriber_id": subscriber.id,
        "variant_id": variant_id,
        "email": subscriber.email,
        "name": subscriber.name,
        "status": status,
        "attempts": 0,
        "last_error": "",
        "updated_at": now,
    }
