"""What the ledger's tables hold, as the storage classes hand it out: subscribers,
signups and consents, deliveries; and the statuses they move through."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from newsletter.core.models import DeliveryStatus, SubscriberStatus
from newsletter.core.text import person_name

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


@dataclass
class ImportCounts:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    suppressed: int = 0  # in the file but unsubscribed or bounced: left alone
    kept_off: int = 0  # unsubscribed or bounced in the file (another tool's export): kept so, never mailed
    kept_choices: int = 0  # categories in the file, but the reader chose others: theirs kept


@dataclass(frozen=True)
class Audience:
    """Who an issue goes to: (subscriber, variant key or None when nothing is for them)."""

    members: Sequence[tuple[Subscriber, str | None]]


def subscriber_from(row: Any) -> Subscriber:
    return Subscriber(
        row.id,
        row.email,
        row.name,
        tuple(json.loads(row.categories)),
        row.status,
        tuple(json.loads(row.schedules or "[]")),
    )


def new_id(result: Any) -> int:
    return int(result.inserted_primary_key[0])


def choice_values(choices: Choices) -> dict[str, str]:
    return {
        "name": person_name(choices.name),  # whoever calls: never a line break or NUL stored
        "categories": json.dumps(list(choices.categories), ensure_ascii=False),
        "schedules": json.dumps(list(choices.schedules), ensure_ascii=False),
    }


def delivery_from(row: Any) -> Delivery:
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
