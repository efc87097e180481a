"""An issue's variants on their way out: each rendered and encoded once per issue, and stored.

The recorder (delivery/send.py) renders the variant with the most readers before it records
the issue (the pre-flight), records the others unrendered, and renders and stores them one by
one while the first messages go out: a delivery can be claimed once its variant's encoded
body is stored (storage/queue.py). Every sender, a resumed `send` or a worker on another
machine, makes its messages from the stored body and never renders or encodes again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from newsletter.delivery.signing import BodyHash
from newsletter.digest.mail import ListId, MessageTemplate, Recipient, feedback_id, sender
from newsletter.storage.issues import EncodedBody, Variant

if TYPE_CHECKING:
    from newsletter.core.config import Settings
    from newsletter.core.models import Digest, Schedule


class StoredVariants(Protocol):
    """What making messages asks of the store (storage/queue.py's DeliveryQueue)."""

    def variant(self, variant_id: int) -> tuple[Variant, EncodedBody | None]: ...
    def store_body(self, variant_id: int, body: EncodedBody) -> EncodedBody: ...
    def unencoded(self, issue_id: int) -> list[int]: ...


def list_headers(schedule: Schedule, from_: str, issue_id: int) -> tuple[ListId, str]:
    """List-Id and Feedback-ID of an issue's messages: the schedule names the list, and
    Gmail's feedback loop reports complaints per issue and schedule."""
    domain = sender(from_).domain
    return ListId(schedule.title, f"{schedule.name}.{domain}"), feedback_id(issue_id, schedule.name, domain)


def template(
    variant: Variant,
    settings: Settings,
    schedule: Schedule,
    issue_id: int,
    date: datetime,
    body: EncodedBody | None,
) -> MessageTemplate:
    """A variant's message template; from its stored body when there is one (nothing encoded)."""
    list_id, feedback = list_headers(schedule, settings.email.from_, issue_id)
    encoded = (body.boundary, body.pieces) if body is not None else None
    return MessageTemplate(
        variant.subject, variant.text, variant.html, settings.email.from_, date, list_id, feedback, encoded
    )


def encoded(message: MessageTemplate) -> EncodedBody:
    return EncodedBody(*message.encoded_body())


class Templates:
    """An issue's message templates, each made from the store the first time a delivery of
    its variant goes out (a variant stored before bodies were is encoded then, and kept)."""

    def __init__(
        self,
        ledger: StoredVariants,
        settings: Settings,
        schedule: Schedule,
        issue_id: int,
        date: datetime,
        signed: bool,
    ) -> None:
        self.ledger, self.settings, self.schedule, self.issue_id = ledger, settings, schedule, issue_id
        self.date, self.signed = date, signed
        self.made: dict[int, MessageTemplate] = {}
        # bh= of each variant's messages, its fixed parts canonicalised once (BodyHash).
        self.body_hashes: dict[int, BodyHash] = {}
        self.lock = threading.Lock()  # the connections' threads share them

    def encode_unencoded(self) -> None:
        """Variants rendered before their bodies were stored: encoded and stored now, so
        their deliveries can be claimed."""
        for variant_id in self.ledger.unencoded(self.issue_id):
            self.get(variant_id)

    def get(self, variant_id: int) -> MessageTemplate:
        with self.lock:
            if variant_id not in self.made:
                self.made[variant_id] = made = self._make(variant_id)
                if self.signed:
                    self.body_hashes[variant_id] = BodyHash(made.fixed_body())
            return self.made[variant_id]

    def _make(self, variant_id: int) -> MessageTemplate:
        variant, body = self.ledger.variant(variant_id)
        if body is None:  # stored before schema 12: encoded once, here, for everyone
            fresh = template(variant, self.settings, self.schedule, self.issue_id, self.date, None)
            body = self.ledger.store_body(variant_id, encoded(fresh))
        return template(variant, self.settings, self.schedule, self.issue_id, self.date, body)

    def body_hash(self, variant_id: int, recipient: Recipient) -> bytes | None:
        hasher = self.body_hashes.get(variant_id)
        return hasher.digest(self.made[variant_id].readers_body(recipient)) if hasher else None


# -- the recorder's side: rendering variant by variant -------------------------

Render = Callable[["Digest"], Variant]
Store = Callable[[int, Variant, EncodedBody], None]


def render_rest(
    digests: Mapping[str, Digest],
    unrendered: Mapping[str, int],
    render: Render,
    encode: Callable[[Variant], EncodedBody],
    store: Store,
) -> int:
    """Render, encode and store each variant still unrendered, one commit each, in the
    order given (most readers first): each one's deliveries can go out from its commit on.
    A stop does not stop it (seconds): the recorded issue is whole for every worker. The
    number stored."""
    done = 0
    for key, digest in digests.items():
        if key in unrendered:
            variant = render(digest)
            store(unrendered[key], variant, encode(variant))
            done += 1
    return done
