"""The editor's desk: what the preview and `send --test` need of sending, and no more.

`audience_plan` counts the variants an issue's audience gets with `plan_audience`, the
rule `send` records, so the preview's counts are the send's. `send_test` mails the
issue (or one variant) to the listed test recipients through the configured transport,
sealed as an issue's messages are (DKIM, return path, List-Id), its subject marked
`[TEST]`: nothing is recorded, no delivery and no issue.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from newsletter.core.addresses import normalize_email
from newsletter.core.errors import ConfigError, NewsletterError
from newsletter.core.models import Digest, Schedule, SubscriberStatus
from newsletter.core.tokens import Tokens, secret_key
from newsletter.delivery.delivering import sealed
from newsletter.delivery.send import plan_audience, render_variant
from newsletter.delivery.signing import preflight as dkim_preflight
from newsletter.delivery.transports import DeliveryError, transport_factory
from newsletter.delivery.variants import list_headers
from newsletter.digest.mail import MessageTemplate, Recipient, new_message_id
from newsletter.project import Project
from newsletter.storage.roster import Roster

TEST_PREFIX = "[TEST] "
NOBODY = 0  # the subscriber and delivery a test's links and return path name: none exists
DESK_LOG = "desk.log"  # in the project folder: test sends and approvals, with time and editor


@dataclass(frozen=True)
class VariantShare:
    """One variant: its key (the category set, as `send` records it) and its readers."""

    key: str
    categories: tuple[str, ...]
    readers: int


@dataclass(frozen=True)
class AudiencePlan:
    """The variants an issue goes out in, largest first, and who gets nothing this time."""

    variants: tuple[VariantShare, ...]
    digests: dict[str, Digest]
    nothing: int

    @property
    def readers(self) -> int:
        return sum(v.readers for v in self.variants)


def audience_plan(project: Project, digest: Digest) -> AudiencePlan:
    """The subscribers as they stand, planned as `send` plans them; counted as its queue
    counts them: an active reader with a variant is one message (paused, unsubscribed and
    bounced readers are skipped or suppressed there)."""
    digests, audience = plan_audience(digest, Roster(project.store).subscribers())
    active = [key for person, key in audience.members if person.status == SubscriberStatus.ACTIVE]
    counts = Counter(key for key in active if key)
    shares = [VariantShare(k, tuple(s.category for s in d.sections), counts[k]) for k, d in digests.items()]
    shares.sort(key=lambda v: (-v.readers, v.categories))
    return AudiencePlan(tuple(shares), digests, sum(1 for key in active if not key))


class UnknownVariant(NewsletterError):
    """A `?variant=` or `--variant` that this issue's audience does not get."""


def variant_of(plan: AudiencePlan, digest: Digest, key: str | None) -> Digest:
    """The digest of variant `key`; the whole issue when None or empty."""
    if not key:
        return digest
    if key not in plan.digests:
        raise UnknownVariant(
            f"no subscriber gets the variant {key!r} of this issue",
            "Pick one of the variants the preview lists (the audience may have changed).",
        )
    return plan.digests[key]


# -- test sends ---------------------------------------------------------------


def allowed_recipients(project: Project, addresses: Sequence[str]) -> list[str]:
    """The addresses as stored, each one listed in `[preview] test_recipients`."""
    listed = project.settings.preview.test_recipients
    chosen = []
    for raw in addresses:
        try:
            address = normalize_email(raw)
        except ValueError:
            address = raw.strip()
        if address not in listed:
            raise ConfigError(
                "newsletter.toml",
                "preview.test_recipients",
                f"{address!r} is not a test recipient: a test goes only to the addresses listed there",
                "Add it to [preview] test_recipients = [...] in newsletter.toml, "
                f"or pick one of: {', '.join(listed) or 'none listed yet'}.",
            )
        chosen.append(address)
    if not chosen:
        raise NewsletterError("no test recipient given", "Name one of [preview] test_recipients.")
    return chosen


@dataclass(frozen=True)
class TestSend:
    """What a test send asks: which issue (and variant), to whom, by whom."""

    __test__ = False  # a newsletter's test, not pytest's

    name: str
    at: datetime
    addresses: Sequence[str]
    editor: str
    variant: str | None = None
    transport: str | None = None


def _quiet(_: str) -> None:
    pass


def send_test(
    project: Project, test: TestSend, now: datetime, notify: Callable[[str], None] = _quiet
) -> list[str]:
    """Mail the issue to the test recipients; returns them. Raises NewsletterError first
    (recipient not listed, no secret, DKIM key, transport URL) and sends nothing then."""
    addresses = allowed_recipients(project, test.addresses)
    schedule = project.schedule(test.name)
    signer = dkim_preflight(project.settings, project.environ, project.root, notify)
    tokens = Tokens(secret_key(project.environ))
    factory = transport_factory(project.transport_url(test.transport), project.environ)
    digest = project.digest(schedule, test.at)
    chosen = variant_of(audience_plan(project, digest), digest, test.variant)
    template = _template(project, schedule, chosen, now)
    transport = factory()
    try:
        for address in addresses:
            message = template.render(_recipient(project, tokens, address, template.origin.domain))
            token = tokens.for_delivery(NOBODY)
            envelope, message = sealed(project.settings, signer, message, token, template.origin.domain)
            try:
                transport.send(envelope, address, message)
            except DeliveryError as e:  # the relay's word, as one line for the page or terminal
                raise NewsletterError(
                    f"the test to {address} was not sent: {e}", "Check [email] transport and the relay."
                ) from None
    finally:
        transport.close()
    log(
        project.root,
        now,
        test.editor,
        f"test send of {test.name} ({_shown(test.variant)}) to {', '.join(addresses)}",
    )
    return addresses


def _template(project: Project, schedule: Schedule, digest: Digest, now: datetime) -> MessageTemplate:
    if digest.is_empty and schedule.skip_if_empty:
        raise NewsletterError(
            f"nothing new for {schedule.name!r} in this period: no issue would go out",
            "Pick another moment (--at), or set skip_if_empty = false.",
        )
    variant = render_variant(project, digest)
    from_ = project.settings.email.from_
    list_id, feedback = list_headers(schedule, from_, NOBODY)
    return MessageTemplate(
        TEST_PREFIX + variant.subject, variant.text, variant.html, from_, now, list_id, feedback
    )


def _recipient(project: Project, tokens: Tokens, address: str, domain: str) -> Recipient:
    """The links of a test name no subscriber: following them changes nobody's list."""
    token = tokens.make(NOBODY)
    mailbox = project.settings.email.unsubscribe_mailbox or f"unsubscribe@{domain}"
    return Recipient(
        name="",
        email=address,
        message_id=new_message_id(NOBODY, domain),
        token=token,
        preferences_token=tokens.purposes.make_preferences(NOBODY),
        unsubscribe_url=f"{project.settings.public_url}/unsubscribe?token={token}",
        unsubscribe_mailto=f"mailto:{mailbox}?subject=unsubscribe%20{token}",
    )


def _shown(variant: str | None) -> str:
    return ", ".join(variant.split("\x1f")) if variant else "the whole issue"


def log(root: Path, now: datetime, editor: str, what: str) -> str:
    """One line in the project's desk.log (and returned, for the terminal)."""
    line = f"{now.isoformat()} {what} by {editor or 'an unnamed editor'}"
    with (root / DESK_LOG).open("a", encoding="utf-8") as file:
        file.write(line.replace("\n", " ") + "\n")
    return line
