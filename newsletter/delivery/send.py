"""Sending: an issue goes to its audience through a transport, crash-safe.

First everything a send needs is checked (the pre-flight: secret, transport URL,
From address, templates rendered and encoded, the schedule's categories known), and
only then is the issue recorded (unique on schedule + send time) with every
rendered variant and one delivery row per subscriber: the audience is a
snapshot. A failed pre-flight records nothing, so whoever subscribes before the
send that works gets the issue. Only then do messages go out, each claimed in the ledger before
it is sent and finished after. Variants are rendered once per distinct
category set and encoded once; each message is spliced from them.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from newsletter.core.clock import utc_now as utc_now  # the one clock; re-exported
from newsletter.core.config import Settings
from newsletter.core.errors import ConfigError, NewsletterError
from newsletter.core.models import DeliveryStatus, Digest, IssueStatus, Schedule, SubscriberStatus
from newsletter.core.output import write_files
from newsletter.core.tokens import Tokens, secret_key
from newsletter.delivery.delivering import Clock, Delivering, Notify, Progress, list_headers
from newsletter.delivery.delivering import SendOptions as SendOptions  # where it is used; re-exported
from newsletter.delivery.mail import PREFERENCES_PLACEHOLDER, TOKEN_PLACEHOLDER, MessageTemplate, sender
from newsletter.delivery.signing import preflight as dkim_preflight
from newsletter.delivery.transports import TransportFactory, timeout_of, transport_factory
from newsletter.digest.render import Links
from newsletter.project import Project, issue_stem
from newsletter.storage.ledger import EXPIRED, Audience, Ledger, Subscriber, Variant


@dataclass
class SendSummary:
    schedule: str
    period_start: datetime
    period_end: datetime
    outcome: str  # sent | already sent | skipped | dry run | paused | stopped
    issue_id: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    sent_now: int = 0
    seconds: float = 0.0
    message: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "schedule": self.schedule,
            "period": {"start": self.period_start.isoformat(), "end": self.period_end.isoformat()},
            "outcome": self.outcome,
            "issue": self.issue_id,
            "counts": self.counts,
            "sent_now": self.sent_now,
            "seconds": round(self.seconds, 3),
            "message": self.message,
        }


# -- preparing: audience and variants ---------------------------------------


def wanted_categories(schedule: Schedule, subscriber: Subscriber) -> tuple[str, ...]:
    """A subscriber's categories within this schedule; none named means all of them.
    A reader who chose other schedules (the preference centre) wants none of this one."""
    if subscriber.schedules and schedule.name not in subscriber.schedules:
        return ()
    if not subscriber.categories:
        return schedule.categories
    chosen = set(subscriber.categories)
    return tuple(c for c in schedule.categories if c in chosen)


def variant_digest(digest: Digest, categories: Sequence[str]) -> Digest:
    sections = tuple(s for s in digest.sections if s.category in categories)
    return Digest(digest.schedule, digest.period, digest.at, sections)


def variant_key(digest: Digest) -> str:
    """Subscribers whose categories give the same sections share one rendering."""
    return "\x1f".join(s.category for s in digest.sections)


def plan_audience(digest: Digest, people: Sequence[Subscriber]) -> tuple[dict[str, Digest], Audience]:
    """Variants and audience; addresses still to be confirmed (double opt-in) are not in it."""
    variants: dict[str, Digest] = {}
    members: list[tuple[Subscriber, str | None]] = []
    for person in people:
        if person.status == SubscriberStatus.PENDING:
            continue
        own = variant_digest(digest, wanted_categories(digest.schedule, person))
        if own.is_empty:
            members.append((person, None))  # nothing for them this time: they get nothing
            continue
        key = variant_key(own)
        variants.setdefault(key, own)
        members.append((person, key))
    return variants, Audience(members)


def render_variants(project: Project, digests: dict[str, Digest]) -> list[Variant]:
    rendered = []
    for key, digest in digests.items():
        issue = project.renderer.render(digest, project.settings, recipient_links(project, digest))
        rendered.append(Variant(key, issue.subject, issue.html, issue.text))
    return rendered


def recipient_links(project: Project, digest: Digest) -> Links:
    """Links whose unsubscribe and preferences URLs carry placeholders for each recipient's
    tokens (spliced in by mail.MessageTemplate)."""
    generic = project.links(digest.schedule, digest.period)
    return Links(
        f"{generic.unsubscribe}?token={TOKEN_PLACEHOLDER}",
        generic.browser,
        f"{generic.preferences}?token={PREFERENCES_PLACEHOLDER}",
    )


# -- pre-flight: nothing is recorded until all of this holds -----------------

# What `init` writes for the user to replace: its From address on an example domain
# (RFC 2606), and its postal address.
PLACEHOLDER_DOMAINS = ("example.org", "example.com", "example.net")
PLACEHOLDER_POSTAL = "1 example street"
ALLOW_PLACEHOLDERS = "NEWSLETTER_ALLOW_PLACEHOLDERS"  # `send --allow-placeholders`, and `run`
LOCAL_TRANSPORTS = ("file", "memory")  # nothing leaves the machine


def placeholders(settings: Settings) -> list[str]:
    """The settings still as `init` wrote them, as `[section] key ('value')`."""
    found = []
    domain = sender(settings.email.from_).domain.lower()
    if any(domain == d or domain.endswith(f".{d}") for d in PLACEHOLDER_DOMAINS):
        found.append(f"[email] from ({settings.email.from_!r})")
    if PLACEHOLDER_POSTAL in settings.site.postal_address.lower():
        found.append(f"[site] postal_address ({settings.site.postal_address!r})")
    return found


def check_placeholders(settings: Settings, transport_url: str) -> None:
    """Refuse to send over SMTP what `init` wrote as a placeholder: mail from an example
    domain is refused or junked, and bulk mail must carry a real postal address (CAN-SPAM).
    A file: or memory: transport keeps the messages here, so the demo sends to its outbox."""
    if urlsplit(transport_url).scheme in LOCAL_TRANSPORTS:
        return
    found = placeholders(settings)
    if found:
        raise ConfigError(
            "newsletter.toml",
            "",
            f"{' and '.join(found)} {'is' if len(found) == 1 else 'are'} still the placeholder "
            "from `newsletter init`",
            "Put your own From address and postal address in newsletter.toml; to send anyway "
            f"(a test), pass --allow-placeholders or set {ALLOW_PLACEHOLDERS}=1.",
        )


def allowed_placeholders(environ: dict[str, str]) -> bool:
    return environ.get(ALLOW_PLACEHOLDERS, "").strip().lower() in ("1", "true", "yes")


def check_categories(project: Project, schedule: Schedule, notify: Notify) -> None:
    """A named category with no article in the archive is a typo in all but name: an issue
    recorded with it leaves that section out for the whole audience, for good. In an
    empty archive every name is unknown and says nothing: a warning, as for `build`."""
    unknown = project.category_warnings(schedule)
    if unknown and not project.categories():
        for warning in unknown:
            notify(f"warning: {warning}")
    elif unknown:
        raise NewsletterError(
            "; ".join(unknown),
            f"Fix the name in schedules/{schedule.name}.toml (names match exactly), "
            "or ingest that category's articles first.",
        )


def encode_variants(project: Project, schedule: Schedule, variants: Sequence[Variant]) -> None:
    """Encode each variant as delivering will (From, Subject, List-Id, bodies): a header
    or address that cannot go out fails here, before the issue is recorded."""
    from_ = project.settings.email.from_
    list_id, feedback = list_headers(schedule, from_, 0)
    for v in variants:
        MessageTemplate(v.subject, v.text, v.html, from_, utc_now(), list_id, feedback)


# -- the send ----------------------------------------------------------------


def send_schedule(
    project: Project,
    name: str,
    at: datetime,
    transport: str | None = None,
    options: SendOptions = SendOptions(),
    clock: Clock = utc_now,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    notify: Notify = lambda _: None,
) -> SendSummary:
    """`send` with the project's transport and secrets: what the CLI and the daemon call.
    The transport URL and the secret are checked here, before anything is recorded (a dry
    run records nothing and needs no secret)."""
    url = project.transport_url(transport)
    factory = transport_factory(url, project.environ)
    # The default lease covers the longest a live sender holds one message: two SMTP
    # timeouts (a slow DATA and its reply) and a margin.
    lease = timedelta(seconds=2 * timeout_of(url) + 5)
    secret = "" if options.dry_run else secret_key(project.environ)
    tokens = lambda: Tokens(secret or secret_key(project.environ))  # noqa: E731
    return send(
        project,
        name,
        at,
        factory,
        tokens,
        options.resolved(project.settings.sending, lease),
        clock,
        progress,
        stop,
        notify,
    )


def send(
    project: Project,
    name: str,
    at: datetime,
    factory: TransportFactory,
    tokens: Callable[[], Tokens],
    options: SendOptions = SendOptions(),
    clock: Clock = utc_now,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    notify: Notify = lambda _: None,
) -> SendSummary:
    """Record (or resume) the issue of `name` going out after `at`, and deliver it.
    Every check comes before the first write: a failed one records nothing."""
    started = time.monotonic()
    options = options.resolved(project.settings.sending)
    ledger = Ledger(project.store)
    schedule = project.schedule(name)
    dkim = dkim_preflight(project.settings, project.environ, project.root, notify)  # before any record
    signer = None if options.dry_run else tokens()  # no secret, no send: say so first
    check_categories(project, schedule, notify)
    digest = project.digest(schedule, at)
    summary = SendSummary(name, digest.period.start, digest.period.end, "sent")
    existing = project.store.issue(name, digest.period.end)
    project.keep_links(existing, digest)  # gone out before its links were kept (a crash): now
    again = options.retry_unknown or options.retry_failed
    if existing is not None and existing.status in (IssueStatus.SENT, IssueStatus.SKIPPED) and not again:
        return _finished(
            summary,
            ledger,
            existing.id,
            "already sent" if existing.status == IssueStatus.SENT else "skipped",
            started,
        )
    if existing is None or existing.status == IssueStatus.BUILT:
        if note := project.left_out(schedule, digest.period):  # said once, when it is recorded
            notify(f"warning: {note}")
        if digest.is_empty and schedule.skip_if_empty:
            if options.dry_run:
                return _finished(summary, ledger, None, "skipped", started)
            record = ledger.record_skipped(name, digest.period, clock())
            return _finished(summary, ledger, record.id, "skipped", started)
        digests, audience = plan_audience(digest, ledger.subscribers())
        if options.dry_run:
            return _dry_run(summary, digests, audience, started)
        variants = render_variants(project, digests)
        encode_variants(project, schedule, variants)
        # Written before recording: a folder that cannot take it fails the send, not the
        # "view in browser" link of every message. A concurrent sender's copy is the same.
        write_browser_copy(project, digest, clock())
        existing = ledger.open_issue(
            name, digest.period, [a.id for a in digest.articles], variants, audience, clock()
        )
        project.keep_links(existing, digest)  # its rebuilds show the links that went out
    if options.dry_run or signer is None:
        return _finished(summary, ledger, existing.id, "dry run", started)
    if options.retry_unknown:
        ledger.requeue(existing.id, DeliveryStatus.UNKNOWN, clock())
    if options.retry_failed:
        ledger.requeue(existing.id, EXPIRED, clock())
    run = Delivering(
        project.settings,
        ledger,
        existing.id,
        schedule,
        factory,
        signer,
        options,
        clock,
        progress,
        stop or threading.Event(),
        notify,
        dkim,
    )
    summary.sent_now = run.deliver()
    summary.outcome = run.outcome
    return _finished(summary, ledger, existing.id, run.outcome, started, run.message)


def _finished(
    summary: SendSummary,
    ledger: Ledger,
    issue_id: int | None,
    outcome: str,
    started: float,
    message: str = "",
) -> SendSummary:
    summary.issue_id, summary.outcome, summary.message = issue_id, outcome, message
    if issue_id is not None:
        summary.counts = ledger.counts(issue_id)
    summary.seconds = time.monotonic() - started
    return summary


def _dry_run(
    summary: SendSummary, digests: dict[str, Digest], audience: Audience, started: float
) -> SendSummary:
    statuses = [
        "pending" if key else "skipped"
        for person, key in audience.members
        if person.status == SubscriberStatus.ACTIVE
    ]
    suppressed = sum(1 for person, _ in audience.members if person.status != SubscriberStatus.ACTIVE)
    summary.counts = {
        "pending": statuses.count("pending"),
        "skipped": statuses.count("skipped"),
        "suppressed": suppressed,
        "variants": len(digests),
    }
    summary.outcome, summary.seconds = "dry run", time.monotonic() - started
    return summary


def write_browser_copy(project: Project, digest: Digest, now: datetime) -> None:
    """The whole issue as a web page, where the emails' "view in browser" link points; with
    its text and .eml beside it, written as one set, so they never mix with an older build."""
    issue = project.renderer.render(digest, project.settings, project.links(digest.schedule, digest.period))
    stem = issue_stem(digest.schedule, digest.period)
    write_files(project.root / "issues", stem, project.parts(issue, now))


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and Ctrl-C only set `stop`; the work stops itself at the next message."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals can only be handled in the main thread (an embedding caller's)
        return
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
