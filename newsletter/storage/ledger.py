"""The delivery ledger: subscribers, the issues being sent, one row per
(issue, subscriber). It is what makes sending crash-safe.

A delivery is claimed (pending -> sending) in its own committed write
before the message goes out, and finished (sent, failed, unknown) in
another after. A process killed in between leaves at most its in-flight
rows in `sending`; they become claimable again once their lease runs out,
so a restart skips no one and re-sends only what was in flight.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from newsletter.core.models import DeliveryStatus, IssueStatus, Period, SubscriberRow, SubscriberStatus
from newsletter.core.text import person_name, storable
from newsletter.storage import claimer, erasure, schema
from newsletter.storage.schema import (
    bounce_reports,
    consents,
    deliveries,
    issue_articles,
    issue_variants,
    issues,
    subscriber_notices,
    subscribers,
)
from newsletter.storage.store import IssueRecord, Store, issue_record

ACTIVE = SubscriberStatus.ACTIVE
PENDING = SubscriberStatus.PENDING
PAUSED = SubscriberStatus.PAUSED
# Every later send honours them.
SUPPRESSED = (SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED, SubscriberStatus.COMPLAINED)
# Not even a new signup brings these back: the address does not take our mail.
NEVER_AGAIN = (SubscriberStatus.BOUNCED, SubscriberStatus.COMPLAINED)
IMPORT_FORM = "import:"  # the consent form of `subscribers import --double-opt-in` rows
D = DeliveryStatus
# Final for the issue: delivered, refused for a reason about that recipient, outcome
# unknown (re-sent only on request), nothing for them, unsubscribed since the snapshot, or
# accepted and bounced later (`newsletter bounces`).
FINAL = (D.SENT, D.FAILED, D.UNKNOWN, D.SKIPPED, D.SUPPRESSED, D.BOUNCED)
# The queue lifetime ran out on server-wide or temporary failures: not final, the issue
# stays unfinished, and `send --retry-failed` queues them again.
EXPIRED = D.EXPIRED
OPEN = (D.PENDING, D.SENDING, EXPIRED)  # an issue with any of these is not sent yet


@dataclass(frozen=True)
class Subscriber:
    id: int
    email: str
    name: str
    categories: tuple[str, ...]
    status: str
    schedules: tuple[str, ...] = ()  # chosen in the preference centre; () = every schedule


@dataclass(frozen=True)
class Signup:
    """What a signup did: `consent_id` is set when a confirmation mail is due."""

    subscriber_id: int | None
    consent_id: int | None
    active: bool = False  # single opt-in: active at once


@dataclass(frozen=True)
class Confirmation:
    """A confirmation link used: who, and whether this use activated them."""

    subscriber: Subscriber
    activated: bool  # False: confirmed before (a replay), or suppressed for good
    void: bool = False  # the link was overtaken: a newer signup, an unsubscribe, a removal


@dataclass(frozen=True)
class Choices:
    """What a reader asks for on a form: applied at confirmation, or at once in preferences."""

    name: str = ""
    categories: tuple[str, ...] = ()
    schedules: tuple[str, ...] = ()


@dataclass(frozen=True)
class Consent:
    """How one signup was asked for, as the consent record keeps it."""

    form: str
    text: str
    ip: str = ""


@dataclass(frozen=True)
class Delivery:
    id: int
    issue_id: int
    subscriber_id: int
    variant_id: int | None
    email: str
    name: str
    attempts: int
    message_id: str = ""  # set by the first claim, kept for every retry


@dataclass(frozen=True)
class InFlight:
    """Deliveries another sender had in flight: whose, and when their lease ends."""

    claimer: str
    count: int
    lease_until: datetime | None


@dataclass(frozen=True)
class Variant:
    """One rendering of an issue, for one set of categories."""

    key: str
    subject: str
    html: str
    text: str


@dataclass
class ImportCounts:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    suppressed: int = 0  # in the file but unsubscribed or bounced: left alone
    kept_choices: int = 0  # categories in the file, but the reader chose others: theirs kept


@dataclass(frozen=True)
class Audience:
    """Who an issue goes to: (subscriber, variant key or None when nothing is for them)."""

    members: Sequence[tuple[Subscriber, str | None]]


class Ledger:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.engine = store.engine

    # -- subscribers ------------------------------------------------------

    def import_subscribers(self, rows: Iterable[SubscriberRow], now: datetime) -> ImportCounts:
        counts = ImportCounts()
        rows = list(rows)
        with self.engine.begin() as conn:
            existing = (
                {
                    r.email: r
                    for r in conn.execute(
                        sa.select(subscribers).where(subscribers.c.email.in_([row.email for row in rows]))
                    )
                }
                if rows
                else {}
            )
            erased = _forgotten_among(conn, [row.email for row in rows])
            for row in rows:
                if row.email in erased:  # `subscribers forget`: never again
                    counts.suppressed += 1
                    continue
                self._import_one(conn, row, existing.get(row.email), counts, now)
        return counts

    def _import_one(
        self, conn: Any, row: SubscriberRow, old: Any, counts: ImportCounts, now: datetime
    ) -> None:
        categories = json.dumps(list(row.categories), ensure_ascii=False)
        if old is None:
            conn.execute(
                subscribers.insert().values(
                    email=row.email,
                    name=row.name,
                    categories=categories,
                    status=ACTIVE,
                    created_at=now,
                    updated_at=now,
                )
            )
            counts.added += 1
        elif old.status in SUPPRESSED:
            counts.suppressed += 1
        elif old.status == PAUSED or (old.name, old.categories, old.status) == (row.name, categories, ACTIVE):
            counts.unchanged += 1  # a pause is the reader's own choice (the preference centre)
        elif old.chosen_at is not None and old.status == ACTIVE:
            self._import_over_choices(conn, row, old, categories, counts, now)
        else:
            conn.execute(
                subscribers.update()
                .where(subscribers.c.id == old.id)
                .values(name=row.name, categories=categories, status=ACTIVE, updated_at=now)
            )
            counts.updated += 1

    def _import_over_choices(
        self, conn: Any, row: SubscriberRow, old: Any, categories: str, counts: ImportCounts, now: datetime
    ) -> None:
        """A reader who chose their own categories keeps them; the file may still rename."""
        if categories != old.categories:
            counts.kept_choices += 1
        if row.name == old.name:
            counts.unchanged += 1
            return
        conn.execute(
            subscribers.update().where(subscribers.c.id == old.id).values(name=row.name, updated_at=now)
        )
        counts.updated += 1

    def subscribers(self, status: str | None = None) -> list[Subscriber]:
        query = sa.select(subscribers).order_by(subscribers.c.email)
        if status is not None:
            query = query.where(subscribers.c.status == status)
        with self.engine.connect() as conn:
            return [_subscriber(r) for r in conn.execute(query)]

    def subscriber(self, subscriber_id: int) -> Subscriber | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(subscribers).where(subscribers.c.id == subscriber_id)).first()
        return _subscriber(row) if row is not None else None

    def remove(self, email: str, now: datetime) -> bool:
        """Take an address off the list (an unsubscribe or bounce stays on record)."""
        with self.engine.begin() as conn:
            result = conn.execute(
                subscribers.update()
                .where(
                    subscribers.c.email == email.strip().lower(),
                    subscribers.c.status == ACTIVE,
                )
                .values(status="removed", updated_at=now)
            )
        return result.rowcount == 1

    def suppress(self, subscriber_id: int, status: str, now: datetime) -> bool:
        """Unsubscribe or mark bounced, for good. Idempotent: False if it already was
        (an unsubscribe repeated is still dated: it voids the confirmation links before it)."""
        assert status in SUPPRESSED
        with self.engine.begin() as conn:
            result = conn.execute(
                subscribers.update()
                .where(
                    subscribers.c.id == subscriber_id,
                    subscribers.c.status.not_in(SUPPRESSED),
                )
                .values(status=status, updated_at=now)
            )
            if result.rowcount != 1:
                conn.execute(
                    subscribers.update()
                    .where(subscribers.c.id == subscriber_id, subscribers.c.status == status)
                    .values(updated_at=now)
                )
        return result.rowcount == 1

    # -- signup, confirmation, preferences (newsletter/web/signup.py, preferences.py) --

    def signup(self, email: str, choices: Choices, consent: Consent, double: bool, now: datetime) -> Signup:
        """Record a signup. A new address is `pending` (or `active` without double opt-in);
        an active, paused, bounced or complained one is left as it is and gets no mail; a
        pending, unsubscribed or removed one gets a new consent row to confirm."""
        with self.engine.begin() as conn:
            return self.signup_in(conn, email, choices, consent, double, now)

    def signup_in(
        self, conn: Any, email: str, choices: Choices, consent: Consent, double: bool, now: datetime
    ) -> Signup:
        """`signup` in the caller's transaction (signup.py's, serialised on the address)."""
        old = conn.execute(sa.select(subscribers).where(subscribers.c.email == email)).first()
        if old is not None and old.status not in (PENDING, SubscriberStatus.UNSUBSCRIBED, "removed"):
            return Signup(old.id, None)
        if old is None and _forgotten_among(conn, [email]):  # `subscribers forget`: never again
            return Signup(None, None)
        if old is None:
            values = _choice_values(choices)
            status = PENDING if double else ACTIVE
            result = conn.execute(
                subscribers.insert().values(
                    email=email, status=status, created_at=now, updated_at=now, **values
                )
            )
            subscriber_id = _new_id(result)
        else:
            subscriber_id = old.id
        consent_id = self._consent(conn, subscriber_id, choices, consent, now)
        if double:
            return Signup(subscriber_id, consent_id)
        self._activate(conn, subscriber_id, consent_id, now)
        return Signup(subscriber_id, None, active=True)

    def _consent(
        self, conn: Any, subscriber_id: int, choices: Choices, consent: Consent, now: datetime
    ) -> int:
        result = conn.execute(
            consents.insert().values(
                subscriber_id=subscriber_id,
                form=storable(consent.form)[:64],
                consent_text=storable(consent.text),
                ip=storable(consent.ip)[:64],
                created_at=now,
                **_choice_values(choices),
            )
        )
        return int(result.inserted_primary_key[0])

    def _activate(self, conn: Any, subscriber_id: int, consent_id: int, now: datetime) -> bool:
        """The consent confirmed and its choices applied, once: False if it was already."""
        done = conn.execute(
            consents.update()
            .where(consents.c.id == consent_id, consents.c.confirmed_at.is_(None))
            .values(confirmed_at=now)
        )
        if done.rowcount != 1:
            return False
        row = conn.execute(sa.select(consents).where(consents.c.id == consent_id)).one()
        by_reader = not row.form.startswith(IMPORT_FORM)  # a form they filled in, not a file
        conn.execute(
            subscribers.update()
            .where(subscribers.c.id == subscriber_id, subscribers.c.status.not_in(NEVER_AGAIN))
            .values(
                status=ACTIVE,
                name=row.name,
                categories=row.categories,
                schedules=row.schedules,
                **({"chosen_at": now} if by_reader else {}),
                updated_at=now,
            )
        )
        return True

    def confirm(self, consent_id: int, now: datetime) -> Confirmation | None:
        """Confirm a consent (a confirmation link's POST). None when no such consent is
        stored; a second use changes nothing. Bounced and complained stay suppressed."""
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(consents).where(consents.c.id == consent_id)).first()
            if row is None:
                return None
            before = conn.execute(sa.select(subscribers).where(subscribers.c.id == row.subscriber_id)).one()
            if not _current(conn, row, before):
                return Confirmation(_subscriber(before), activated=False, void=True)
            activated = before.status not in NEVER_AGAIN and self._activate(
                conn, row.subscriber_id, consent_id, now
            )
            person = conn.execute(sa.select(subscribers).where(subscribers.c.id == row.subscriber_id)).one()
        return Confirmation(_subscriber(person), activated)

    def is_current(self, consent_id: int) -> bool:
        """Whether a confirmation link still speaks for its subscriber (`_current`)."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(consents).where(consents.c.id == consent_id)).first()
            person = None
            if row is not None:
                person = conn.execute(
                    sa.select(subscribers).where(subscribers.c.id == row.subscriber_id)
                ).first()
            return row is not None and person is not None and _current(conn, row, person)

    def withdraw_consent(self, conn: Any, consent_id: int) -> None:
        """An unconfirmed consent no mail names (the hourly confirmation mail was sent
        already): gone, in the signup's own transaction, so the link in the reader's inbox
        stays the newest."""
        conn.execute(consents.delete().where(consents.c.id == consent_id, consents.c.confirmed_at.is_(None)))

    def consent_subscriber(self, consent_id: int) -> Subscriber | None:
        """Whom a consent is about (the confirmation page's GET, which changes nothing)."""
        query = sa.select(subscribers).join(consents, consents.c.subscriber_id == subscribers.c.id)
        with self.engine.connect() as conn:
            row = conn.execute(query.where(consents.c.id == consent_id)).first()
        return _subscriber(row) if row is not None else None

    def consents_of(self, subscriber_id: int) -> list[dict[str, Any]]:
        """The consent records of a subscriber, oldest first."""
        query = sa.select(consents).where(consents.c.subscriber_id == subscriber_id).order_by(consents.c.id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def set_preferences(self, subscriber_id: int, choices: Choices, paused: bool, now: datetime) -> bool:
        """A reader's own categories, schedules and pause. Only active or paused readers:
        False for anyone else (an unsubscribe stays one)."""
        values = _choice_values(choices)
        del values["name"]
        with self.engine.begin() as conn:
            result = conn.execute(
                subscribers.update()
                .where(subscribers.c.id == subscriber_id, subscribers.c.status.in_((ACTIVE, PAUSED)))
                .values(status=PAUSED if paused else ACTIVE, chosen_at=now, updated_at=now, **values)
            )
        return result.rowcount == 1

    def claim_notice(self, subscriber_id: int, kind: str, now: datetime) -> bool:
        """Take the one chance to send `kind` (welcome, latest:<schedule>): False if taken."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    subscriber_notices.insert().values(subscriber_id=subscriber_id, kind=kind, sent_at=now)
                )
        except sa.exc.IntegrityError:
            return False
        return True

    def release_notice(self, subscriber_id: int, kind: str) -> None:
        """The mail could not go out: the chance is free again."""
        with self.engine.begin() as conn:
            conn.execute(
                subscriber_notices.delete().where(
                    subscriber_notices.c.subscriber_id == subscriber_id, subscriber_notices.c.kind == kind
                )
            )

    def latest_variant(self, schedule: str, wanted: Sequence[str]) -> Variant | None:
        """The latest sent issue of `schedule` as the variant for `wanted` categories (in
        the schedule's order), as it went out; None if none was sent or that variant was
        never stored (nobody had it, or nothing in it was for them)."""
        from newsletter.storage.schema import articles

        with self.engine.connect() as conn:
            issue_id = conn.scalar(
                sa.select(issues.c.id)
                .where(issues.c.schedule == schedule, issues.c.status == IssueStatus.SENT)
                .order_by(issues.c.period_end.desc())
                .limit(1)
            )
            if issue_id is None:
                return None
            present = set(
                conn.scalars(
                    sa.select(articles.c.category)
                    .join(issue_articles, issue_articles.c.article_id == articles.c.id)
                    .where(issue_articles.c.issue_id == issue_id)
                )
            )
            key = "\x1f".join(c for c in wanted if c in present)
            row = conn.execute(
                sa.select(issue_variants).where(
                    issue_variants.c.issue_id == issue_id, issue_variants.c.variant == key
                )
            ).first()
        return Variant(row.variant, row.subject, row.html, row.text) if row is not None and key else None

    # -- issues -----------------------------------------------------------

    def open_issue(
        self,
        schedule: str,
        period: Period,
        article_ids: Sequence[int],
        variants: Sequence[Variant],
        audience: Audience,
        now: datetime,
    ) -> IssueRecord:
        """Record the issue as sending, with its variants and the audience snapshot,
        in one transaction; if another sender got there first, return its issue."""
        subject = variants[0].subject if variants else ""
        try:
            with self.engine.begin() as conn:
                issue_id = self.store.claim_issue(conn, schedule, period, subject, now)
                if issue_id is not None:
                    self._fill_issue(conn, issue_id, article_ids, variants, audience, now)
        except sa.exc.IntegrityError:
            pass  # a concurrent sender inserted it between our attempts: it is theirs
        found = self.store.issue(schedule, period.end)
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
        if article_ids:
            conn.execute(
                issue_articles.insert(),
                [{"issue_id": issue_id, "article_id": a} for a in dict.fromkeys(article_ids)],
            )
        variant_ids = {}
        for v in variants:
            result = conn.execute(
                issue_variants.insert().values(
                    issue_id=issue_id, variant=v.key, subject=v.subject, html=v.html, text=v.text
                )
            )
            variant_ids[v.key] = int(result.inserted_primary_key[0])
        rows = [
            _delivery_row(issue_id, s, variant_ids.get(key) if key else None, now)
            for s, key in audience.members
        ]
        if rows:
            conn.execute(deliveries.insert(), rows)

    def record_skipped(self, schedule: str, period: Period, now: datetime) -> IssueRecord:
        return self.store.record_issue(schedule, period, "skipped", "", [], now)

    def variants(self, issue_id: int) -> dict[int, Variant]:
        query = sa.select(issue_variants).where(issue_variants.c.issue_id == issue_id)
        with self.engine.connect() as conn:
            return {r.id: Variant(r.variant, r.subject, r.html, r.text) for r in conn.execute(query)}

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
            self.store.move_issue(conn, issue_id, (IssueStatus.SENDING,), IssueStatus.SENT, sent_at=now)
        return True

    def issue_by_id(self, issue_id: int) -> IssueRecord:
        with self.engine.connect() as conn:
            return issue_record(self.store.issue_row_by_id(conn, issue_id))

    # -- deliveries -------------------------------------------------------

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
        params = {
            "issue": issue_id,
            "now": now,
            "gone": list(gone),
            "me": claimer.me(),
            "lease_until": now + lease,
        }
        with self.engine.connect() as conn:
            ids = list(conn.scalars(DUE, params)) or list(conn.scalars(ORPHANED, params))
        for delivery_id in ids:
            with self.engine.begin() as conn:
                taken = {**params, "d_id": delivery_id, "message_id": message_id(delivery_id) or None}
                if conn.execute(TAKE, taken).rowcount != 1:
                    continue  # another connection or sender took it first
                row = conn.execute(CLAIMED, {"d_id": delivery_id}).one()
            if row.subscriber_status == ACTIVE:
                return _delivery(row)
            self.finish(delivery_id, "suppressed", now)  # unsubscribed since the snapshot
        return None

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
        pending row (None counts as now), or the end of an in-flight row's lease."""
        with self.engine.connect() as conn:
            pending = conn.execute(
                sa.select(sa.func.count(), sa.func.min(deliveries.c.not_before)).where(
                    deliveries.c.issue_id == issue_id,
                    deliveries.c.status == D.PENDING,
                    deliveries.c.not_before.is_not(None),
                )
            ).one()
            ready = conn.scalar(
                sa.select(sa.func.count())
                .select_from(deliveries)
                .where(
                    deliveries.c.issue_id == issue_id,
                    sa.or_(
                        sa.and_(deliveries.c.status == D.PENDING, deliveries.c.not_before.is_(None)),
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
            conn.execute(
                FINISH,
                {
                    "d_id": delivery_id,
                    "b_status": status,
                    "now": now,
                    "error": error,
                    "b_sent_at": now if status == "sent" else None,
                },
            )

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
                self.store.move_issue(
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

    # -- bounces, complaints, mailto unsubscribes (newsletter/delivery/bounces.py) --

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

    # -- data rights: `subscribers export` and `subscribers forget` ---------

    def export_people(self, email: str | None = None) -> list[dict[str, Any]]:
        """Everything stored about each person (one, given `email`): their subscriber row
        and, from every other table with a `subscriber_id` or `email` column, their rows.
        Forgotten people have nothing left to export."""
        query = sa.select(subscribers).where(subscribers.c.status != FORGOTTEN).order_by(subscribers.c.email)
        if email is not None:
            query = query.where(subscribers.c.email == email.strip().lower())
        with self.engine.connect() as conn:
            return [_person(conn, row) for row in conn.execute(query)]

    def forget(self, email: str, now: datetime) -> Forgotten:
        """Erase an address and the name with it from every table, in one transaction;
        keep its delivery rows anonymised (the counts stay) and its keyed hash, so it is
        never imported, signed up or mailed again. Idempotent. Then the old bytes go too:
        `Forgotten.left` names a file that may still hold them (erasure.scrub)."""
        address = email.strip().lower()
        with erasure.erasing(self.engine) as conn:
            digest = _address_hash(_suppression_key(conn, create=True), address)
            already = conn.scalar(sa.select(sa.func.count()).where(schema.forgotten.c.address_hash == digest))
            if not already:
                conn.execute(schema.forgotten.insert().values(address_hash=digest, forgotten_at=now))
            row = conn.execute(sa.select(subscribers).where(subscribers.c.email == address)).first()
            erased = _erase_subscriber(conn, row, now) if row is not None else 0
            erased += _erase_by_email(conn, address)
        touched = {t.name for column in ("subscriber_id", "email") for t in _other_tables(column)}
        left = erasure.scrub(self.engine, [*OWN_TABLES, *sorted(touched)])
        return Forgotten(subscriber=row is not None, rows=erased, already=bool(already), left=left)

    def is_forgotten(self, email: str) -> bool:
        """Whether `subscribers forget` erased this address: no import or signup takes it."""
        with self.engine.connect() as conn:
            return bool(_forgotten_among(conn, [email.strip().lower()]))


HARD, SOFT, DELAYED, COMPLAINT, UNSUBSCRIBE = "hard", "soft", "delayed", "complaint", "unsubscribe"
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
DUE = sa.select(deliveries.c.id).where(_IN_ISSUE, _DUE).order_by(deliveries.c.id).limit(16)
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


# A confirmation link is void once its subscriber left after it was sent: unsubscribed,
# suppressed otherwise, removed or forgotten (`updated_at` dates that change).
LEFT = (*SUPPRESSED, "removed", "forgotten")


def _current(conn: Any, consent: Any, person: Any) -> bool:
    """Whether a consent's link still speaks for its subscriber: it is their newest
    consent (a newer signup's link replaces it) and they have not left since it was made."""
    newest = conn.scalar(sa.select(sa.func.max(consents.c.id)).where(consents.c.subscriber_id == person.id))
    left = person.status in LEFT and person.updated_at >= consent.created_at
    return bool(newest == consent.id and not left)


def _subscriber(row: Any) -> Subscriber:
    return Subscriber(
        row.id,
        row.email,
        row.name,
        tuple(json.loads(row.categories)),
        row.status,
        tuple(json.loads(row.schedules or "[]")),
    )


def _new_id(result: Any) -> int:
    return int(result.inserted_primary_key[0])


def _choice_values(choices: Choices) -> dict[str, str]:
    return {
        "name": person_name(choices.name),  # whoever calls: never a line break or NUL stored
        "categories": json.dumps(list(choices.categories), ensure_ascii=False),
        "schedules": json.dumps(list(choices.schedules), ensure_ascii=False),
    }


def _delivery(row: Any) -> Delivery:
    return Delivery(
        row.id,
        row.issue_id,
        row.subscriber_id,
        row.variant_id,
        row.email,
        row.name,
        row.attempts,
        row.message_id or "",
    )


# -- data rights ------------------------------------------------------------

FORGOTTEN = "forgotten"  # the subscriber row left by `forget`: no address, no name
SUPPRESSION_KEY = "suppression_key"  # meta: this database's key for the forgotten hashes
OWN_TABLES = ("subscribers", "deliveries", "bounce_reports", "forgotten")  # erased field by field


@dataclass(frozen=True)
class Forgotten:
    """What `forget` did: whether a subscriber had the address, how many rows it erased or
    anonymised, and whether the address was forgotten before."""

    subscriber: bool
    rows: int
    already: bool
    left: str | None = None  # a write-ahead log a reader kept from being emptied


def _suppression_key(conn: Any, create: bool = False) -> bytes | None:
    """This database's random key for address hashes; made (once) when `create`."""
    query = sa.select(schema.meta.c.value).where(schema.meta.c.key == SUPPRESSION_KEY)
    found = conn.scalar(query)
    if found is None and create:
        conn.execute(schema.meta.insert().values(key=SUPPRESSION_KEY, value=secrets.token_hex(32)))
        found = conn.scalar(query)
    return bytes.fromhex(found) if found is not None else None


def _address_hash(key: bytes | None, address: str) -> str:
    assert key is not None
    return hmac.new(key, address.encode("utf-8"), hashlib.sha256).hexdigest()


def _forgotten_among(conn: Any, addresses: Sequence[str]) -> set[str]:
    """The addresses among `addresses` (lower-cased) that were forgotten."""
    key = _suppression_key(conn)
    if key is None or not addresses:
        return set()  # nothing was ever forgotten here
    hashes = {_address_hash(key, a): a for a in addresses}
    found: set[str] = set()
    digests = list(hashes)
    for start in range(0, len(digests), 500):
        query = sa.select(schema.forgotten.c.address_hash).where(
            schema.forgotten.c.address_hash.in_(digests[start : start + 500])
        )
        found.update(hashes[d] for d in conn.scalars(query))
    return found


def _other_tables(column: str) -> list[sa.Table]:
    """Tables other than ours with this column: consent records, rate limits, notices..."""
    return [t for t in schema.metadata.sorted_tables if column in t.c and t.name not in OWN_TABLES]


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _rows(conn: Any, query: Any) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in row._mapping.items()} for row in conn.execute(query)]


def _person(conn: Any, row: Any) -> dict[str, Any]:
    """One subscriber's rows in every table, by table name."""
    found: dict[str, Any] = {"subscriber": {k: _plain(v) for k, v in row._mapping.items()}}
    issue = sa.select(issues.c.schedule, issues.c.period_end, issues.c.subject)
    found["deliveries"] = _rows(
        conn,
        sa.select(deliveries, *(c.label(f"issue_{c.name}") for c in issue.selected_columns))
        .join(issues, issues.c.id == deliveries.c.issue_id)
        .where(deliveries.c.subscriber_id == row.id)
        .order_by(deliveries.c.id),
    )
    found["bounce_reports"] = _rows(
        conn,
        sa.select(bounce_reports)
        .where(bounce_reports.c.subscriber_id == row.id)
        .order_by(bounce_reports.c.id),
    )
    for table in _other_tables("subscriber_id"):
        found[table.name] = _rows(conn, sa.select(table).where(table.c.subscriber_id == row.id))
    for table in _other_tables("email"):
        if "subscriber_id" not in table.c:
            found.setdefault(table.name, []).extend(
                _rows(conn, sa.select(table).where(sa.func.lower(table.c.email) == row.email))
            )
    return found


def _erase_subscriber(conn: Any, row: Any, now: datetime) -> int:
    """The subscriber row anonymised (it holds the delivery counts), their deliveries'
    address, name and errors blanked, their bounce reports' diagnostics, their rows in any
    other table deleted. Returns the number of rows changed."""
    changed = conn.execute(
        subscribers.update()
        .where(subscribers.c.id == row.id)
        .values(email=f"{FORGOTTEN}:{row.id}", name="", categories="[]", status=FORGOTTEN, updated_at=now)
    ).rowcount
    changed += conn.execute(
        deliveries.update()
        .where(deliveries.c.subscriber_id == row.id)
        .values(email="", name="", last_error="", updated_at=now)
    ).rowcount
    theirs = sa.select(deliveries.c.id).where(deliveries.c.subscriber_id == row.id)
    changed += conn.execute(
        bounce_reports.update()
        .where(sa.or_(bounce_reports.c.subscriber_id == row.id, bounce_reports.c.delivery_id.in_(theirs)))
        .values(detail="")
    ).rowcount
    for table in _other_tables("subscriber_id"):
        changed += conn.execute(table.delete().where(table.c.subscriber_id == row.id)).rowcount
    return int(changed)


def _erase_by_email(conn: Any, address: str) -> int:
    """Rows that name the address without a subscriber (deliveries of a removed row
    included): deleted, or blanked in our own tables."""
    changed = conn.execute(
        deliveries.update().where(deliveries.c.email == address).values(email="", name="", last_error="")
    ).rowcount
    for table in _other_tables("email"):
        changed += conn.execute(table.delete().where(sa.func.lower(table.c.email) == address)).rowcount
    return int(changed)
