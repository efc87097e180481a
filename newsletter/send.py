"""Sending: an issue goes to its audience through a transport, crash-safe.

First the issue is recorded (unique on schedule + send time) with every
rendered variant and one delivery row per subscriber: the audience is a
snapshot. Only then do messages go out, each claimed in the ledger before
it is sent and finished after. Variants are rendered once per distinct
category set and encoded once; each message is spliced from them.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from newsletter.ledger import Audience, Delivery, Ledger, Subscriber, Variant
from newsletter.mail import TOKEN_PLACEHOLDER, MessageTemplate, Recipient, sender
from newsletter.models import Digest, Schedule
from newsletter.output import atomic_write
from newsletter.project import Project, issue_stem
from newsletter.render import Links
from newsletter.tokens import Tokens, secret_key
from newsletter.transports import (
    PermanentFailure,
    TemporaryFailure,
    Transport,
    TransportFactory,
    UnknownOutcome,
    timeout_of,
    transport_factory,
)

ALL = "*"
Clock = Callable[[], datetime]
Progress = Callable[[int, int], None]  # (messages just finished, messages this run started with)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SendOptions:
    connections: int = 1
    rate: float | None = None  # messages per second over all connections
    dry_run: bool = False
    retry_unknown: bool = False
    max_attempts: int = 5  # temporary failures before a delivery counts as failed
    retry_base: float = 2.0  # seconds; doubled per attempt, capped, with full jitter
    retry_cap: float = 120.0
    breaker: int = 10  # consecutive failures that pause the whole send
    lease: timedelta = timedelta(minutes=2)  # after this, an in-flight row is an orphan


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
        return {"schedule": self.schedule, "period": {"start": self.period_start.isoformat(),
                "end": self.period_end.isoformat()}, "outcome": self.outcome, "issue": self.issue_id,
                "counts": self.counts, "sent_now": self.sent_now, "seconds": round(self.seconds, 3),
                "message": self.message}


# -- preparing: audience and variants ---------------------------------------

def wanted_categories(schedule: Schedule, subscriber: Subscriber) -> tuple[str, ...]:
    """A subscriber's categories within this schedule; none named means all of them."""
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
    variants: dict[str, Digest] = {}
    members: list[tuple[Subscriber, str | None]] = []
    for person in people:
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
    """Links whose unsubscribe URL carries a placeholder for each recipient's token."""
    generic = project.links(digest.schedule, digest.period)
    return Links(f"{generic.unsubscribe}?token={TOKEN_PLACEHOLDER}", generic.browser)


# -- the send ----------------------------------------------------------------

def send_schedule(project: Project, name: str, at: datetime, transport: str | None = None,
                  options: SendOptions = SendOptions(), clock: Clock = utc_now,
                  progress: Progress | None = None, stop: threading.Event | None = None) -> SendSummary:
    """`send` with the project's transport and secrets: what the CLI and the daemon call."""
    url = project.transport_url(transport)
    factory = transport_factory(url, project.environ)
    tokens = lambda: Tokens(secret_key(project.environ))  # noqa: E731 (needed only to deliver)
    # An in-flight row older than this belongs to a sender that died mid-message.
    lease = timedelta(seconds=2 * timeout_of(url) + 5)
    return send(project, name, at, factory, tokens, replace(options, lease=lease), clock, progress, stop)


def send(project: Project, name: str, at: datetime, factory: TransportFactory, tokens: Callable[[], Tokens],
         options: SendOptions = SendOptions(), clock: Clock = utc_now,
         progress: Progress | None = None, stop: threading.Event | None = None) -> SendSummary:
    """Record (or resume) the issue of `name` going out after `at`, and deliver it."""
    started = time.monotonic()
    ledger = Ledger(project.store)
    schedule = project.schedule(name)
    digest = project.digest(schedule, at)
    summary = SendSummary(name, digest.period.start, digest.period.end, "sent")
    existing = project.store.issue(name, digest.period.end)
    if existing is not None and existing.status in ("sent", "skipped") and not options.retry_unknown:
        return _finished(summary, ledger, existing.id, "already sent" if existing.status == "sent"
                         else "skipped", started)
    if existing is None or existing.status == "built":
        if digest.is_empty and schedule.skip_if_empty:
            if options.dry_run:
                return _finished(summary, ledger, None, "skipped", started)
            record = ledger.record_skipped(name, digest.period, clock())
            return _finished(summary, ledger, record.id, "skipped", started)
        digests, audience = plan_audience(digest, ledger.subscribers())
        if options.dry_run:
            return _dry_run(summary, digests, audience, started)
        variants = render_variants(project, digests)
        existing = ledger.open_issue(name, digest.period, [a.id for a in digest.articles], variants,
                                     audience, clock())
        write_browser_copy(project, digest, clock())
    if options.dry_run:
        return _finished(summary, ledger, existing.id, "dry run", started)
    signer = tokens()
    if options.retry_unknown:
        ledger.requeue(existing.id, "unknown", clock())
    run = Delivering(project, ledger, existing.id, schedule, factory, signer, options, clock, progress,
                     stop or threading.Event())
    summary.sent_now = run.deliver()
    summary.outcome = run.outcome
    return _finished(summary, ledger, existing.id, run.outcome, started, run.message)


def _finished(summary: SendSummary, ledger: Ledger, issue_id: int | None, outcome: str,
              started: float, message: str = "") -> SendSummary:
    summary.issue_id, summary.outcome, summary.message = issue_id, outcome, message
    if issue_id is not None:
        summary.counts = ledger.counts(issue_id)
    summary.seconds = time.monotonic() - started
    return summary


def _dry_run(summary: SendSummary, digests: dict[str, Digest], audience: Audience,
             started: float) -> SendSummary:
    statuses = ["pending" if key else "skipped" for person, key in audience.members
                if person.status == "active"]
    suppressed = sum(1 for person, _ in audience.members if person.status != "active")
    summary.counts = {"pending": statuses.count("pending"), "skipped": statuses.count("skipped"),
                      "suppressed": suppressed, "variants": len(digests)}
    summary.outcome, summary.seconds = "dry run", time.monotonic() - started
    return summary


def write_browser_copy(project: Project, digest: Digest, now: datetime) -> None:
    """The whole issue as a web page, where the emails' "view in browser" link points."""
    issue = project.renderer.render(digest, project.settings, project.links(digest.schedule, digest.period))
    atomic_write(project.root / "issues" / f"{issue_stem(digest.schedule, digest.period)}.html",
                 issue.html.encode())


class RateLimiter:
    """At most `rate` messages a second over every connection together."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self.next_slot = time.monotonic()
        self.lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            slot = max(self.next_slot, time.monotonic())
            self.next_slot = slot + self.interval
        time.sleep(max(0.0, slot - time.monotonic()))


class Delivering:
    """One run over an issue's ledger with N connections (one thread each)."""

    def __init__(self, project: Project, ledger: Ledger, issue_id: int, schedule: Schedule,
                 factory: TransportFactory, tokens: Tokens, options: SendOptions, clock: Clock,
                 progress: Progress | None, stop: threading.Event) -> None:
        self.ledger, self.issue_id, self.factory, self.tokens = ledger, issue_id, factory, tokens
        self.options, self.clock, self.progress, self.stop = options, clock, progress, stop
        self.settings = project.settings
        self.public_url = project.settings.public_url
        self.templates = self._templates(schedule)
        self.limiter = RateLimiter(options.rate)
        self.lock = threading.Lock()
        self.failures_in_a_row = 0
        self.sent = 0
        self.outcome, self.message = "sent", ""
        self.crash: BaseException | None = None
        self.total = 0

    def _templates(self, schedule: Schedule) -> dict[int, MessageTemplate]:
        from_, now = self.settings.email.from_, self.clock()
        list_id = f"{schedule.title} <{schedule.name}.{sender(from_).domain}>"
        return {variant_id: MessageTemplate(v.subject, v.text, v.html, from_, now, list_id)
                for variant_id, v in self.ledger.variants(self.issue_id).items()}

    def deliver(self) -> int:
        self.ledger.sweep_suppressed(self.issue_id, self.clock())
        self.total = self.ledger.waiting(self.issue_id)
        self._report(0)
        workers = [threading.Thread(target=self._work, name=f"send-{n}", daemon=True)
                   for n in range(max(1, self.options.connections))]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        if self.crash is not None:
            raise self.crash  # a bug, not a delivery problem: the ledger keeps what was done
        self.ledger.sweep_suppressed(self.issue_id, self.clock())
        if self.outcome == "sent" and not self.ledger.complete(self.issue_id, self.clock()):
            self.outcome = "incomplete"
        return self.sent

    def _work(self) -> None:
        try:
            self._work_on()
        except BaseException as e:  # noqa: BLE001 (handed to the main thread)
            self.crash = e
            self.stop.set()

    def _work_on(self) -> None:
        transport = self.factory()
        try:
            while not self.stop.is_set() and self.outcome == "sent":
                delivery = self.ledger.claim(self.issue_id, self.clock(), self.options.lease)
                if delivery is not None:
                    self._deliver(transport, delivery)
                elif not self.ledger.waiting(self.issue_id):
                    return
                else:
                    self.stop.wait(0.1)  # others in flight, or retries backing off
            if self.stop.is_set() and self.outcome == "sent":
                self.outcome, self.message = "stopped", "stopped on request; run send again to resume"
        finally:
            transport.close()

    def _deliver(self, transport: Transport, delivery: Delivery) -> None:
        template = self.templates[delivery.variant_id or 0]
        self.limiter.wait()
        message = template.render(self._recipient(delivery, template.origin.domain))
        try:
            transport.send(template.origin.addr_spec, delivery.email, message)
        except PermanentFailure as e:
            self._permanent(delivery, e)
        except TemporaryFailure as e:
            self._temporary(delivery, e)
        except UnknownOutcome as e:
            self.ledger.finish(delivery.id, "unknown", self.clock(), e.reason)
            self._failed_in_a_row(e.reason)
            self._report()
        else:
            self.ledger.finish(delivery.id, "sent", self.clock())
            with self.lock:
                self.sent += 1
                self.failures_in_a_row = 0
            self._report()

    def _recipient(self, delivery: Delivery, domain: str) -> Recipient:
        token = self.tokens.make(delivery.subscriber_id)
        return Recipient(
            name=delivery.name, email=delivery.email,
            message_id=f"<issue{delivery.issue_id}.delivery{delivery.id}@{domain}>",
            token=token, unsubscribe_url=f"{self.public_url}/unsubscribe?token={token}",
            unsubscribe_mailto=f"mailto:{self.mailbox(domain)}?subject=unsubscribe%20{token}",
        )

    def mailbox(self, domain: str) -> str:
        return self.settings.email.unsubscribe_mailbox or f"unsubscribe@{domain}"

    def _permanent(self, delivery: Delivery, error: PermanentFailure) -> None:
        self.ledger.finish(delivery.id, "failed", self.clock(), error.reason)
        self._report()
        if error.mailbox_unknown:  # 5.1.1: the mailbox does not exist; never try it again
            self.ledger.suppress(delivery.subscriber_id, "bounced", self.clock())

    def _temporary(self, delivery: Delivery, error: TemporaryFailure) -> None:
        if delivery.attempts >= self.options.max_attempts:
            reason = f"gave up after {delivery.attempts} attempts: {error.reason}"
            self.ledger.finish(delivery.id, "failed", self.clock(), reason)
            self._report()
        else:
            delay = random.uniform(0, min(self.options.retry_cap,
                                          self.options.retry_base * 2 ** (delivery.attempts - 1)))
            not_before = self.clock() + timedelta(seconds=delay)
            self.ledger.retry_later(delivery.id, not_before, self.clock(), error.reason)
        self._failed_in_a_row(error.reason)

    def _failed_in_a_row(self, reason: str) -> None:
        """The circuit breaker: many failures in a row mean the server, not the message."""
        with self.lock:
            self.failures_in_a_row += 1
            if self.failures_in_a_row >= self.options.breaker and self.outcome == "sent":
                self.outcome = "paused"
                self.message = (f"paused after {self.failures_in_a_row} failures in a row "
                                f"(last: {reason}); run send again to resume")

    def _report(self, finished: int = 1) -> None:
        if self.progress is not None:
            self.progress(finished, self.total)


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
