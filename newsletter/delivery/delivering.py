"""Delivering: one run over an issue's ledger, N connections, like an MTA's queue.

What a failure does depends on what it says about whom:
- Until the server has accepted someone in this run it is not trusted: any refusal,
  5.1.1 included, holds the delivery (pending, nothing marked failed or bounced), and a
  run whose first deliveries all fail pauses (the server, not the list, is the problem).
- A refusal about the recipient (RCPT TO X.1.x, X.2.x) from a trusted server is final:
  `failed`, and 5.1.1 also suppresses the address for good.
- Temporary and server-wide failures stay pending and are retried with backoff for the
  queue lifetime (counted from when the issue was queued, in time, not in runs); past it
  they are `expired`, which leaves the issue unfinished until `send --retry-failed`.
- Within a run a delivery is retried `max_attempts` times; then it waits `retry_interval`
  for a later run (`newsletter run` resumes queued sends on its own timer).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol, TypeVar

from newsletter.core.durations import format_duration
from newsletter.core.models import DeliveryStatus, SubscriberStatus
from newsletter.delivery.transports import (
    DeliveryError,
    PermanentFailure,
    TemporaryFailure,
    Transport,
    TransportFactory,
    UnknownOutcome,
)
from newsletter.delivery.variants import Templates
from newsletter.digest.mail import Recipient, new_message_id, sender
from newsletter.storage import claimer
from newsletter.storage.issues import EncodedBody, IssueRecord, Variant
from newsletter.storage.records import EXPIRED, Delivery, InFlight

if TYPE_CHECKING:
    from newsletter.core.config import SendingSettings, Settings
    from newsletter.core.models import Schedule
    from newsletter.core.tokens import Tokens
    from newsletter.delivery.signing import Signer

Clock = Callable[[], datetime]
Progress = Callable[[int, int], None]  # (messages just finished, messages this run started with)
Notify = Callable[[str], None]
T = TypeVar("T")


@dataclass(frozen=True)
class SendOptions:
    """How one send runs: `send`'s and `Delivering`'s options, `resolved()` from [sending]."""

    connections: int = 1
    # Processes (delivery/workers.py), each with `connections` connections; 0: one per core,
    # at most one per PER_WORKER deliveries due (workers.auto).
    workers: int = 1
    alongside: bool = False  # a worker: others' claims are live workers', not a previous run's
    rate: float | None = None  # messages per second over all connections
    dry_run: bool = False
    retry_unknown: bool = False
    retry_failed: bool = False  # queue `expired` deliveries (server-wide failures) again
    max_attempts: int = 5  # tries of one delivery within a run before it waits for a later run
    retry_base: float = 2.0  # seconds; doubled per try, capped, with full jitter
    retry_cap: float = 120.0  # also: a run waits for retries due within this many seconds
    # None: from [sending] in newsletter.toml (see config.SendingSettings for the defaults).
    retry_interval: timedelta | None = None  # a queued delivery's wait for the next run
    breaker: int | None = None  # the first N of a run all failing, or N failures in a row, pause
    queue_lifetime: timedelta | None = None  # how long failures are retried, from queueing
    lease: timedelta | None = None  # stored with each claim; after it, a row is an orphan

    def resolved(self, sending: SendingSettings, lease: timedelta = timedelta(minutes=2)) -> SendOptions:
        return replace(
            self,
            retry_interval=self.retry_interval or sending.retry_interval,
            breaker=self.breaker or sending.breaker,
            queue_lifetime=self.queue_lifetime or sending.queue_lifetime,
            lease=self.lease or sending.lease or lease,
        )


class Limiter(Protocol):
    """Waits for the next message's slot: RateLimiter in this process, or the rate shared by
    every worker through the database (storage/rates.py)."""

    def wait(self) -> None: ...


class Flag(Protocol):
    def is_set(self) -> bool: ...


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


class Queue(Protocol):
    """What delivering asks of the delivery queue (storage/queue.py's DeliveryQueue), and
    nothing more: an issue's deliveries claimed one by one, their outcomes, its counts."""

    def issue_by_id(self, issue_id: int) -> IssueRecord: ...
    def variant(self, variant_id: int) -> tuple[Variant, EncodedBody | None]: ...
    def store_body(self, variant_id: int, body: EncodedBody) -> EncodedBody: ...
    def unencoded(self, issue_id: int) -> list[int]: ...
    def sweep_suppressed(self, issue_id: int, now: datetime) -> int: ...
    def claim_batch(
        self,
        issue_id: int,
        now: datetime,
        lease: timedelta,
        gone: Sequence[str] = (),
        message_id: Callable[[int], str] = ...,
        size: int = 1,
    ) -> list[Delivery]: ...
    def give_back(self, delivery_ids: Iterable[int], now: datetime) -> None: ...
    def finish(self, delivery_id: int, status: str, now: datetime, error: str = "") -> None: ...
    def retry_later(self, delivery_id: int, not_before: datetime, now: datetime, error: str) -> None: ...
    def release(self, delivery_ids: Iterable[int], now: datetime) -> None: ...
    def suppress(self, subscriber_id: int, status: str, now: datetime) -> bool: ...
    def in_flight(self, issue_id: int) -> list[InFlight]: ...
    def next_due(self, issue_id: int, now: datetime, gone: Sequence[str] = ()) -> datetime | None: ...
    def counts(self, issue_id: int) -> dict[str, int]: ...
    def waiting(self, issue_id: int) -> int: ...
    def complete(self, issue_id: int, now: datetime) -> bool: ...


BATCH = 8  # deliveries claimed in one commit by a connection: at most as many in flight
SLACK = timedelta(seconds=1)  # the most a batch's later rows wait after their claim


@dataclass
class Batch:
    """One connection's claimed deliveries, not sent yet."""

    deliveries: list[Delivery] = field(default_factory=list)
    claimed_at: datetime = datetime.min

    def rest(self) -> list[int]:
        ids, self.deliveries = [d.id for d in self.deliveries], []
        return ids


class Delivering:
    """One run over an issue's ledger with N connections (one thread each)."""

    def __init__(
        self,
        settings: Settings,
        ledger: Queue,
        issue_id: int,
        schedule: Schedule,
        factory: TransportFactory,
        tokens: Tokens,
        options: SendOptions,
        clock: Clock,
        progress: Progress | None,
        stop: threading.Event,
        notify: Notify,
        signer: Signer | None = None,
        limiter: Limiter | None = None,
        rendered: Flag | None = None,
    ) -> None:
        """`limiter`: the rate's (default: `options.rate` in this process). `rendered`: set
        once the recorder has stored every variant; until then rows not claimable yet are
        waited for (None: every variant is stored, or someone else's recorder renders it)."""
        self.ledger, self.issue_id, self.factory, self.tokens = ledger, issue_id, factory, tokens
        self.preferences = tokens.purposes  # the footer's preferences link, its own token
        self.options, self.clock, self.progress, self.stop = options, clock, progress, stop
        self.settings, self.notify = settings, notify
        self.signer = signer  # DKIM, its key parsed once for the whole send (signing.prepare)
        self.templates = Templates(ledger, settings, schedule, issue_id, clock(), signer is not None)
        self.rendered = rendered
        self.domain = sender(settings.email.from_).domain
        # SendOptions.resolved() filled these from [sending]; a None here is a bug.
        self.breaker, self.lease = _given(options.breaker), _given(options.lease)
        self.slack = min(SLACK, self.lease / 20)
        self.lifetime, self.retry_interval = _given(options.queue_lifetime), _given(options.retry_interval)
        issue = ledger.issue_by_id(issue_id)
        self.expires = (issue.queued_at or clock()) + self.lifetime
        self.limiter = limiter or RateLimiter(options.rate)
        self.lock = threading.Lock()
        self.trusted = False  # the server accepted someone in this run
        self.untrusted_failures: set[int] = set()  # deliveries that failed before that
        self.failures_in_a_row = 0
        self.tries: dict[int, int] = {}  # delivery id -> attempts in this run
        self.gone: list[str] = []  # claimers known dead: their rows are taken over at once
        self.sent = 0
        self.outcome, self.message = "sent", ""
        self.crash: BaseException | None = None
        self.running = 0  # connections (worker threads) still at work
        self.total = 0

    def _message_id(self, delivery_id: int) -> str:
        """A delivery's Message-ID, made at its first claim and stored with it."""
        return new_message_id(delivery_id, self.domain)

    # -- the run ------------------------------------------------------------

    def deliver(self) -> int:
        self.templates.encode_unencoded()
        self.ledger.sweep_suppressed(self.issue_id, self.clock())
        self._take_over_notice()
        self.total = self.ledger.waiting(self.issue_id)
        self._report(0)
        workers = [
            threading.Thread(target=self._work, name=f"send-{n}", daemon=True)
            for n in range(max(1, self.options.connections))
        ]
        self.running = len(workers)
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        if self.crash is not None:
            raise self.crash  # a bug or a database error: the ledger keeps what was done
        self.ledger.sweep_suppressed(self.issue_id, self.clock())
        if self.outcome == "sent":
            self._conclude()
        return self.sent

    def _take_over_notice(self) -> None:
        """Say what a resume waits for: rows a previous run left in flight."""
        now = self.clock()
        for group in self.ledger.in_flight(self.issue_id):
            if claimer.is_gone(group.claimer):
                self.gone.append(group.claimer)
                self.notify(
                    f"{group.count} deliveries in flight from a previous run "
                    f"({claimer.describe(group.claimer)}, no longer running); taking them over now"
                )
            elif group.lease_until is not None and group.lease_until > now and not self.options.alongside:
                wait = (group.lease_until - now).total_seconds()
                self.notify(
                    f"{group.count} deliveries in flight from a previous run; "
                    f"taking them over in {wait:.0f} s, when their lease ends"
                )

    def _conclude(self) -> None:
        """The outcome says `sent` only when the issue is finished and someone got it."""
        now = self.clock()
        counts = self.ledger.counts(self.issue_id)
        if self.ledger.complete(self.issue_id, now):
            if not counts["sent"]:
                self.outcome, self.message = "failed", "finished, but nobody was delivered to"
        elif counts["pending"] or counts["sending"]:
            self.outcome, self.message = "queued", self._queued_message(counts["pending"] + counts["sending"])
        else:
            self.outcome = "expired"
            self.message = (
                f"{counts[EXPIRED]} deliveries expired after the "
                f"{format_duration(self.lifetime)} queue lifetime; "
                "`send --retry-failed` queues them again"
            )

    def _queued_message(self, waiting: int) -> str:
        due = self.ledger.next_due(self.issue_id, self.clock(), self.gone)
        when = f"next try after {due:%Y-%m-%d %H:%M} UTC" if due else "waiting"
        return (
            f"{waiting} deliveries queued for a retry ({when}); `newsletter run` retries them, "
            "or run send again"
        )

    def _work(self) -> None:
        retired = False  # _fewer_connections counted it out already
        try:
            retired = self._work_on()
        except BaseException as e:  # noqa: BLE001 (handed to the main thread)
            self.crash = e
            self.stop.set()
        finally:
            if not retired:
                with self.lock:
                    self.running -= 1

    def _work_on(self) -> bool:
        """Deliver until the queue is done; True when this connection was let go."""
        transport, batch = self.factory(), Batch()
        try:
            while not self.stop.is_set() and self.outcome == "sent":
                delivery = self._next(batch)
                if delivery is not None:
                    if not self._deliver(transport, delivery):
                        return True  # the server wants fewer connections: this one goes
                elif not self._worth_waiting():
                    return False
                else:
                    self.stop.wait(0.1)  # others in flight, or retries backing off
            if self.stop.is_set() and self.outcome == "sent" and self.crash is None:
                self.outcome, self.message = "stopped", "stopped on request; run send again to resume"
            return False
        finally:
            transport.close()
            self.ledger.give_back(batch.rest(), self.clock())

    def _next(self, batch: Batch) -> Delivery | None:
        """The next delivery of this connection's batch, claimed BATCH at a time (one commit)
        when nothing is rate-limited. A batch's later rows go out only within the lease's
        slack after their claim: each message still has the whole lease a claim of one had;
        past it (a slow server), or after a failure, the rest is given back and claimed anew."""
        now = self.clock()
        if batch.deliveries and (now - batch.claimed_at > self.slack or self.failures_in_a_row):
            self.ledger.give_back(batch.rest(), now)
        if not batch.deliveries:
            size = 1 if self.options.rate else BATCH
            claimed = self.ledger.claim_batch(
                self.issue_id, now, self.lease, self.gone, self._message_id, size
            )
            batch.deliveries, batch.claimed_at = claimed, now
        return batch.deliveries.pop(0) if batch.deliveries else None

    def _worth_waiting(self) -> bool:
        """Wait while rows are in flight (ours, or a previous run's until their lease ends)
        and for retries due soon; leave later retries to a later run."""
        now = self.clock()
        if self.rendered is not None and not self.rendered.is_set():
            return True  # the recorder is still storing variants
        if self.ledger.counts(self.issue_id)["sending"]:
            self._notice_gone()
            return True
        due = self.ledger.next_due(self.issue_id, now, self.gone)
        return due is not None and due - now <= timedelta(seconds=self.options.retry_cap)

    def _notice_gone(self) -> None:
        """Another worker on this host died with rows in flight: take them over now, not
        after its lease (a claimer on another host is trusted until its lease ends)."""
        for group in self.ledger.in_flight(self.issue_id):
            if group.claimer not in self.gone and claimer.is_gone(group.claimer):
                self.gone.append(group.claimer)

    # -- one message --------------------------------------------------------

    def _deliver(self, transport: Transport, delivery: Delivery) -> bool:
        """Send one message; False when this connection should close for good."""
        template = self.templates.get(delivery.variant_id or 0)
        self.limiter.wait()
        recipient = self._recipient(delivery, template.origin.domain)
        message = template.render(recipient)
        token = self.tokens.for_delivery(delivery.id)
        body_hash = self.templates.body_hash(delivery.variant_id or 0, recipient)
        sender, message = sealed(
            self.settings, self.signer, message, token, template.origin.domain, body_hash
        )
        try:
            transport.send(sender, delivery.email, message)  # VERP: a bounce names its delivery
        except DeliveryError as e:
            if self._fewer_connections(e):
                self.ledger.retry_later(delivery.id, self.clock(), self.clock(), e.reason)  # due at once
                return False
            self._failed(delivery, e)
        else:
            self.ledger.finish(delivery.id, DeliveryStatus.SENT, self.clock())
            with self.lock:
                self.sent += 1
                self.trusted = True
                self.failures_in_a_row = 0
            self._report()
        return True

    def _fewer_connections(self, error: DeliveryError) -> bool:
        """A 421 when connecting while other connections work: the relay's "too many
        connections". This one closes and the others carry on; neither a failure nor a
        retry is counted. The last connection treats it as any temporary failure."""
        if not (isinstance(error, TemporaryFailure) and error.code == 421 and error.stage == "connect"):
            return False
        with self.lock:
            if self.running <= 1:
                return False
            self.running -= 1
            left = self.running
        self.notify(f"the server refused another connection ({error.reason}); going on with {left}")
        return True

    def _recipient(self, delivery: Delivery, domain: str) -> Recipient:
        token = self.tokens.make(delivery.subscriber_id)
        return Recipient(
            name=delivery.name,
            email=delivery.email,
            message_id=delivery.message_id,  # stored at the first claim: the same on a retry
            token=token,
            preferences_token=self.preferences.make_preferences(delivery.subscriber_id),
            unsubscribe_url=f"{self.settings.public_url}/unsubscribe?token={token}",
            unsubscribe_mailto=f"mailto:{self.mailbox(domain)}?subject=unsubscribe%20{token}",
        )

    def mailbox(self, domain: str) -> str:
        return self.settings.email.unsubscribe_mailbox or f"unsubscribe@{domain}"

    def _failed(self, delivery: Delivery, error: DeliveryError) -> None:
        now = self.clock()
        if isinstance(error, UnknownOutcome):
            self._finish(delivery, DeliveryStatus.UNKNOWN, error.reason)
        elif isinstance(error, PermanentFailure) and error.about_recipient and self.trusted:
            self._refused(delivery, error)
        elif now >= self.expires:  # final for this issue: no pause, the rest expire too
            final = DeliveryStatus.FAILED if error.about_recipient and self.trusted else EXPIRED
            self._finish(delivery, final, f"queue lifetime over: {error.reason}")
            return
        else:
            self._retry(delivery, error, now)
        self._breaker(delivery, error)

    def _finish(self, delivery: Delivery, status: str, reason: str) -> None:
        self.ledger.finish(delivery.id, status, self.clock(), reason)
        self._report()

    def _refused(self, delivery: Delivery, error: PermanentFailure) -> None:
        self._finish(delivery, DeliveryStatus.FAILED, error.reason)
        if error.mailbox_unknown:  # 5.1.1 from a server that accepts others: never try it again
            self.ledger.suppress(delivery.subscriber_id, SubscriberStatus.BOUNCED, self.clock())

    def _retry(self, delivery: Delivery, error: DeliveryError, now: datetime) -> None:
        """Back off within the run, then leave it for a later one (never past the lifetime)."""
        with self.lock:
            tries = self.tries[delivery.id] = self.tries.get(delivery.id, 0) + 1
        if tries >= self.options.max_attempts:
            delay = self.retry_interval.total_seconds()
        else:
            delay = random.uniform(0, min(self.options.retry_cap, self.options.retry_base * 2 ** (tries - 1)))
        not_before = min(now + timedelta(seconds=delay), max(self.expires, now))
        self.ledger.retry_later(delivery.id, not_before, now, error.reason)

    def _breaker(self, delivery: Delivery, error: DeliveryError) -> None:
        """Pause when the first deliveries of the run all fail (the server is refusing
        everyone), or when `breaker` fail in a row later on."""
        with self.lock:
            if error.about_recipient and self.trusted and isinstance(error, PermanentFailure):
                return  # a dead address at a working server says nothing about the server
            self.failures_in_a_row += 1
            if not self.trusted:
                self.untrusted_failures.add(delivery.id)
            first = min(self.breaker, max(1, self.total))
            if self.outcome != "sent":
                return
            if not self.trusted:
                if len(self.untrusted_failures) >= first or self.failures_in_a_row >= self.breaker:
                    tried = len(self.untrusted_failures)
                    self._pause(
                        f"the first {tried} deliveries all failed and none went through "
                        f"(last reply: {error.reason}); nobody was marked failed or bounced"
                    )
            elif self.failures_in_a_row >= self.breaker:
                self._pause(f"{self.failures_in_a_row} failures in a row (last: {error.reason})")

    def _pause(self, why: str) -> None:
        self.outcome, self.message = "paused", f"paused: {why}; run send again to resume"
        # Held deliveries are due at once for the next run: it is a fresh probe of the server.
        self.ledger.release(self.untrusted_failures, self.clock())

    def _report(self, finished: int = 1) -> None:
        if self.progress is not None:
            self.progress(finished, self.total)


def sealed(
    settings: Settings,
    signer: Signer | None,
    message: bytes,
    token: str,
    domain: str,
    body_hash: bytes | None = None,
) -> tuple[str, bytes]:
    """How every mail of ours goes out, an issue's or the outbox's (dispatch.py): signed
    for [dkim] when it is on, from its own return path (VERP, `[bounces] return_path`), so
    a receiver sees one kind of mail from the domain. Returns (envelope sender, bytes)."""
    if signer is not None:
        message = signer.sign(message, body_hash=body_hash)
    return settings.bounces.sender(token, domain), message


def _given(value: T | None) -> T:
    if value is None:
        raise TypeError("SendOptions must be resolved() before delivering")
    return value
