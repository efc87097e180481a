"""The roster: who is on the list. Imports, the subscriber rows, removals and
suppressions, a reader's own preferences, and the one-time notices they get."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from newsletter.core.models import SubscriberRow
from newsletter.storage.records import (
    ACTIVE,
    PAUSED,
    SUPPRESSED,
    Choices,
    ImportCounts,
    Subscriber,
    choice_values,
    subscriber_from,
)
from newsletter.storage.rights import forgotten_among
from newsletter.storage.schema import (
    subscriber_notices,
    subscribers,
)
from newsletter.storage.store import Store


class Roster:
    def __init__(self, store: Store) -> None:
        self.engine = store.engine

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
            erased = forgotten_among(conn, [row.email for row in rows])
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
                    status=row.status,
                    created_at=now,
                    updated_at=now,
                )
            )
            counts.added += row.status == ACTIVE
            counts.kept_off += row.status != ACTIVE
        elif old.status in SUPPRESSED:
            counts.suppressed += 1
        elif row.status != ACTIVE:  # they left at the tool the file came from: never mail them
            conn.execute(
                subscribers.update()
                .where(subscribers.c.id == old.id)
                .values(status=row.status, updated_at=now)
            )
            counts.kept_off += 1
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
            return [subscriber_from(r) for r in conn.execute(query)]

    def subscriber(self, subscriber_id: int) -> Subscriber | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(subscribers).where(subscribers.c.id == subscriber_id)).first()
        return subscriber_from(row) if row is not None else None

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

    def set_preferences(self, subscriber_id: int, choices: Choices, paused: bool, now: datetime) -> bool:
        """A reader's own categories, schedules and pause. Only active or paused readers:
        False for anyone else (an unsubscribe stays one)."""
        values = choice_values(choices)
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
