"""Signups and consent: a signup's consent row, its confirmation, and whether a
confirmation link still speaks for its subscriber (newsletter/web/signup.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from newsletter.core.models import SubscriberStatus
from newsletter.core.text import storable
from newsletter.storage import outbox
from newsletter.storage.records import (
    ACTIVE,
    IMPORT_FORM,
    NEVER_AGAIN,
    PENDING,
    SUPPRESSED,
    Choices,
    Confirmation,
    Consent,
    Signup,
    Subscriber,
    choice_values,
    new_id,
    subscriber_from,
)
from newsletter.storage.rights import forgotten_among
from newsletter.storage.schema import (
    consents,
    subscribers,
)
from newsletter.storage.store import Store


class Consents:
    def __init__(self, store: Store) -> None:
        self.engine = store.engine

    def signup(self, email: str, choices: Choices, consent: Consent, double: bool, now: datetime) -> Signup:
        """Record a signup. A new address is `pending` (or `active` without double opt-in);
        an active, paused, bounced or complained one is left as it is and gets no mail; a
        pending, unsubscribed or removed one gets a new consent row to confirm."""
        with self.engine.begin() as conn:
            return self.signup_in(conn, email, choices, consent, double, now)

    def invite(
        self, email: str, choices: Choices, consent: Consent, domain: str, now: datetime
    ) -> int | None:
        """A double opt-in import's row: its signup and, when it calls for one, its
        confirmation mail queued in the outbox, in one transaction. Returns the outbox
        row, or None when the address needs no confirmation (already on the list)."""
        with self.engine.begin() as conn:
            signup = self.signup_in(conn, email, choices, consent, True, now)
            if signup.consent_id is None or signup.subscriber_id is None:
                return None
            message_id = outbox.new_message_id(domain)
            return outbox.queue(
                conn, outbox.CONFIRM, signup.subscriber_id, message_id, now, signup.consent_id
            )

    def signup_in(
        self, conn: Any, email: str, choices: Choices, consent: Consent, double: bool, now: datetime
    ) -> Signup:
        """`signup` in the caller's transaction (signup.py's, serialised on the address)."""
        old = conn.execute(sa.select(subscribers).where(subscribers.c.email == email)).first()
        if old is not None and old.status not in (PENDING, SubscriberStatus.UNSUBSCRIBED, "removed"):
            return Signup(old.id, None)
        if old is None and forgotten_among(conn, [email]):  # `subscribers forget`: never again
            return Signup(None, None)
        if old is None:
            values = choice_values(choices)
            status = PENDING if double else ACTIVE
            result = conn.execute(
                subscribers.insert().values(
                    email=email, status=status, created_at=now, updated_at=now, **values
                )
            )
            subscriber_id = new_id(result)
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
                **choice_values(choices),
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
                return Confirmation(subscriber_from(before), activated=False, void=True)
            activated = before.status not in NEVER_AGAIN and self._activate(
                conn, row.subscriber_id, consent_id, now
            )
            person = conn.execute(sa.select(subscribers).where(subscribers.c.id == row.subscriber_id)).one()
        return Confirmation(subscriber_from(person), activated)

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
        return subscriber_from(row) if row is not None else None

    def consents_of(self, subscriber_id: int) -> list[dict[str, Any]]:
        """The consent records of a subscriber, oldest first."""
        query = sa.select(consents).where(consents.c.subscriber_id == subscriber_id).order_by(consents.c.id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]


# A confirmation link is void once its subscriber left after it was sent: unsubscribed,
# suppressed otherwise, removed or forgotten (`updated_at` dates that change).
LEFT = (*SUPPRESSED, "removed", "forgotten")


def _current(conn: Any, consent: Any, person: Any) -> bool:
    """Whether a consent's link still speaks for its subscriber: it is their newest
    consent (a newer signup's link replaces it) and they have not left since it was made."""
    newest = conn.scalar(sa.select(sa.func.max(consents.c.id)).where(consents.c.subscriber_id == person.id))
    left = person.status in LEFT and person.updated_at >= consent.created_at
    return bool(newest == consent.id and not left)
