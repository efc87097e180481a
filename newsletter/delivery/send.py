"""Sending: an issue goes to its audience through a transport, crash-safe.

First everything a send needs is checked (the pre-flight: secret, transport URL,
From address, templates rendered and encoded, the schedule's categories known), and
only then is the issue recorded (unique on schedule + send time) with every
variant and one delivery row per subscriber: the audience is a snapshot. A failed
pre-flight records nothing, so whoever subscribes before the send that works gets the
issue. Only then do messages go out, each claimed in the ledger before it is sent and
finished after. Variants are rendered once per distinct category set and encoded once,
and stored (delivery/variants.py): the one with most readers before the issue is
recorded, the others while the first messages go out. Each message is spliced from them.
With `--workers N` the messages go out from N worker processes (delivery/workers.py).
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from newsletter.core.clock import utc_now as utc_now  # the one clock; re-exported
from newsletter.core.config import Settings
from newsletter.core.errors import ConfigError, NewsletterError
from newsletter.core.models import DeliveryStatus, Digest, IssueStatus, Schedule, SubscriberStatus
from newsletter.core.output import write_files
from newsletter.core.tokens import Tokens, secret_key
from newsletter.delivery import approval
from newsletter.delivery.delivering import Clock, Delivering, Limiter, Notify, Progress
from newsletter.delivery.delivering import SendOptions as SendOptions  # where it is used; re-exported
from newsletter.delivery.signing import Signer
from newsletter.delivery.signing import preflight as dkim_preflight
from newsletter.delivery.transports import TransportFactory, rate_key, timeout_of, transport_factory
from newsletter.delivery.variants import encoded, render_rest, template
from newsletter.digest.mail import PREFERENCES_PLACEHOLDER, TOKEN_PLACEHOLDER, sender
from newsletter.digest.render import Links
from newsletter.project import Project, issue_stem
from newsletter.storage.issues import EncodedBody, IssueRecord, Issues, Variant
from newsletter.storage.queue import DeliveryQueue
from newsletter.storage.rates import SharedRate
from newsletter.storage.records import EXPIRED, Audience, Subscriber
from newsletter.storage.roster import Roster


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
    """The sections of `categories`; the editor's intro and subject go with every variant."""
    return replace(digest, sections=tuple(s for s in digest.sections if s.category in categories))


def variant_key(digest: Digest) -> str:
    """Subscribers whose categories give the same sections share one rendering."""
    return "\x1f".join(s.category for s in digest.sections)


def plan_audience(digest: Digest, people: Sequence[Subscriber]) -> tuple[dict[str, Digest], Audience]:
    """Variants (the one with most readers first) and audience; addresses still to be
    confirmed (double opt-in) are not in it."""
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
    readers = Counter(key for _, key in members)
    return dict(sorted(variants.items(), key=lambda kv: -readers[kv[0]])), Audience(members)


def render_variant(project: Project, digest: Digest) -> Variant:
    issue = project.renderer.render(digest, project.settings, recipient_links(project, digest))
    return Variant(variant_key(digest), issue.subject, issue.html, issue.text)


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
RESERVED_TLDS = ("test", "example", "invalid", "localhost")  # RFC 2606: no real mail there either
PLACEHOLDER_POSTAL = "1 example street"
ALLOW_PLACEHOLDERS = "NEWSLETTER_ALLOW_PLACEHOLDERS"  # `send --allow-placeholders`, and `run`
LOCAL_TRANSPORTS = ("file", "memory")  # nothing leaves the machine


def placeholders(settings: Settings) -> list[str]:
    """The settings still as `init` wrote them, as `[section] key ('value')`."""
    found = []
    if placeholder_domain(sender(settings.email.from_).domain):
        found.append(f"[email] from ({settings.email.from_!r})")
    if PLACEHOLDER_POSTAL in settings.site.postal_address.lower():
        found.append(f"[site] postal_address ({settings.site.postal_address!r})")
    return found


def placeholder_domain(domain: str) -> bool:
    """An example domain (RFC 2606) or under one of its reserved top-level names."""
    domain = domain.lower().rstrip(".")
    return domain.rsplit(".", 1)[-1] in RESERVED_TLDS or any(
        domain == d or domain.endswith(f".{d}") for d in PLACEHOLDER_DOMAINS
    )


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


def encode_variant(project: Project, schedule: Schedule, variant: Variant) -> EncodedBody:
    """Encode a variant as delivering will (From, Subject, List-Id, bodies): a header or
    address that cannot go out fails here, before the issue is recorded."""
    return encoded(template(variant, project.settings, schedule, 0, utc_now(), None))


# -- the send ----------------------------------------------------------------


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class SendPlan:
    """One send: the issue of schedule `name` going out after `at`, how it goes out
    (`options`), and the clock and the hooks that watch it."""

    project: Project
    name: str
    at: datetime
    options: SendOptions = SendOptions()
    clock: Clock = utc_now
    progress: Progress | None = None
    stop: threading.Event | None = None
    notify: Notify = _quiet

    @property
    def again(self) -> bool:
        """Retry deliveries of an issue that went out already."""
        return self.options.retry_unknown or self.options.retry_failed


def send_schedule(
    project: Project,
    name: str,
    at: datetime,
    transport: str | None = None,
    options: SendOptions = SendOptions(),
    clock: Clock = utc_now,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    notify: Notify = _quiet,
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
    resolved = options.resolved(project.settings.sending, lease)
    plan = SendPlan(project, name, at, resolved, clock, progress, stop, notify)
    return send(plan, factory, tokens, url)


def send(
    plan: SendPlan, factory: TransportFactory, tokens: Callable[[], Tokens], url: str = ""
) -> SendSummary:
    """Record (or resume) the issue of `plan.name` going out after `plan.at`, and deliver it.
    Every check comes before the first write: a failed one records nothing. `url`: the
    transport's, for worker processes (`--workers`) and the rate's key."""
    started = time.monotonic()
    plan = replace(
        plan,
        options=plan.options.resolved(plan.project.settings.sending),
        stop=plan.stop or threading.Event(),
    )
    schedule = plan.project.schedule(plan.name)
    dkim, link_tokens = preflight(plan, schedule, tokens)
    digest = plan.project.digest(schedule, plan.at)
    summary = SendSummary(plan.name, digest.period.start, digest.period.end, "sent")
    ledger = DeliveryQueue(plan.project.store)
    issue = record_or_resume(plan, schedule, digest, ledger, summary)
    if issue is not None and link_tokens is None:  # a dry run of an issue recorded before
        summarise(summary, ledger, issue.id, "dry run")
    elif issue is not None and link_tokens is not None:
        courier = Courier(factory, link_tokens, dkim, url)
        with rendering(plan, schedule, digest, ledger, issue.id) as rendered:
            deliver(plan, schedule, ledger, issue.id, courier, summary, rendered)
    summary.seconds = time.monotonic() - started
    return summary


def preflight(
    plan: SendPlan, schedule: Schedule, tokens: Callable[[], Tokens]
) -> tuple[Signer | None, Tokens | None]:
    """The checks before any record: DKIM, the secret (none for a dry run), the categories.
    Returns the DKIM signer (None: unsigned) and the tokens (None: a dry run)."""
    project = plan.project
    dkim = dkim_preflight(project.settings, project.environ, project.root, plan.notify)
    link_tokens = None if plan.options.dry_run else tokens()  # no secret, no send: say so first
    check_categories(project, schedule, plan.notify)
    return dkim, link_tokens


def record_or_resume(
    plan: SendPlan, schedule: Schedule, digest: Digest, ledger: DeliveryQueue, summary: SendSummary
) -> IssueRecord | None:
    """The issue to deliver: the one recorded before (resumed), or recorded now. None when
    there is nothing to deliver (already sent, skipped, a dry run): `summary` says why."""
    existing = Issues(plan.project.store).issue(plan.name, digest.period.end)
    plan.project.keep_links(existing, digest)  # gone out before its links were kept (a crash): now
    if existing is None or existing.status == IssueStatus.BUILT:
        check_approved(plan, schedule, digest)
        return record(plan, schedule, digest, ledger, summary)
    if existing.status in (IssueStatus.SENT, IssueStatus.SKIPPED) and not plan.again:
        outcome = "already sent" if existing.status == IssueStatus.SENT else "skipped"
        summarise(summary, ledger, existing.id, outcome)
        return None
    return existing


def check_approved(plan: SendPlan, schedule: Schedule, digest: Digest) -> None:
    """Asked again after the digest is read (the callers asked before): an editor's save
    withdraws the approval in its own transaction, so an approval found now covers the
    overrides version this digest carries, never an older one."""
    if plan.options.dry_run or not approval.waiting(plan.project, schedule, digest.period.end):
        return
    words = approval.waiting_words(schedule, digest.period.end)
    raise approval.NotApprovedError(f"not sent: {words.split('; ')[0]}", words.split("; ")[1].capitalize())


def record(
    plan: SendPlan, schedule: Schedule, digest: Digest, ledger: DeliveryQueue, summary: SendSummary
) -> IssueRecord | None:
    """Record the issue: skipped when empty (if the schedule says so), else its variants
    and the audience snapshot, the variant with most readers rendered and stored (the
    others are, once recorded, by `rendering`). None when nothing is to be delivered."""
    if note := plan.project.left_out(schedule, digest.period):  # said once, when it is recorded
        plan.notify(f"warning: {note}")
    if digest.is_empty and schedule.skip_if_empty:
        skipped = (
            None
            if plan.options.dry_run
            else Issues(plan.project.store).record_skipped(plan.name, digest.period, plan.clock())
        )
        summarise(summary, ledger, skipped.id if skipped else None, "skipped")
        return None
    digests, audience = plan_audience(digest, Roster(plan.project.store).subscribers())
    if plan.options.dry_run:
        dry_run(summary, digests, audience)
        return None
    first = [render_variant(plan.project, d) for d in list(digests.values())[:1]]
    bodies = [encode_variant(plan.project, schedule, v) for v in first]
    # Written before recording: a folder that cannot take it fails the send, not the
    # "view in browser" link of every message. A concurrent sender's copy is the same.
    write_browser_copy(plan.project, digest, plan.clock())
    articles = [a.id for a in digest.articles]
    # Recorded unrendered ("" html), the first with its subject (the issue's); stored next.
    variants = [Variant(key, first[0].subject if n == 0 else "", "", "") for n, key in enumerate(digests)]
    issue = ledger.open_issue(
        plan.name, digest.period, articles, variants, audience, plan.clock(), digest.overrides_version or None
    )
    plan.project.keep_links(issue, digest)  # its rebuilds show the links that went out
    for variant, body in zip(first, bodies, strict=True):
        ledger.store_rendering(ledger.unrendered(issue.id).get(variant.key, 0), variant, body)
    return issue


@contextmanager
def rendering(
    plan: SendPlan, schedule: Schedule, digest: Digest, ledger: DeliveryQueue, issue_id: int
) -> Iterator[threading.Event]:
    """The issue's variants not rendered yet, rendered and stored one by one in a thread
    while the messages go out; the event is set when all are stored. A rendering that
    fails stops the send and is raised here; its deliveries wait, recorded, for a rerun."""
    rendered, failed = threading.Event(), []
    unrendered = ledger.unrendered(issue_id)
    digests = {key: variant_digest(digest, key.split("\x1f")) for key in unrendered}
    stop = plan.stop or threading.Event()

    def render_all() -> None:
        try:
            render = lambda d: render_variant(plan.project, d)  # noqa: E731
            encode = lambda v: encode_variant(plan.project, schedule, v)  # noqa: E731
            render_rest(digests, unrendered, render, encode, ledger.store_rendering)
        except BaseException as e:  # noqa: BLE001 (raised in the sender's thread)
            failed.append(e)
            stop.set()
        finally:
            rendered.set()

    worker = threading.Thread(target=render_all, name="render", daemon=True)
    if unrendered:
        worker.start()
    else:
        rendered.set()
    yield rendered
    if unrendered:
        worker.join()
    if failed:
        raise failed[0]


@dataclass(frozen=True)
class Courier:
    """What carries and seals the messages: the transport, the tokens of each reader's
    links, the DKIM signer (None: unsigned), and the transport's URL ("": a factory only)."""

    factory: TransportFactory
    tokens: Tokens
    dkim: Signer | None
    url: str = ""


def deliver(
    plan: SendPlan,
    schedule: Schedule,
    ledger: DeliveryQueue,
    issue_id: int,
    courier: Courier,
    summary: SendSummary,
    rendered: threading.Event | None = None,
) -> None:
    """Queue again what `--retry-unknown` / `--retry-failed` ask for, then one delivering
    run: in this process, or in `--workers` processes."""
    options = plan.options
    if options.retry_unknown:
        ledger.requeue(issue_id, DeliveryStatus.UNKNOWN, plan.clock())
    if options.retry_failed:
        ledger.requeue(issue_id, EXPIRED, plan.clock())
    from newsletter.delivery import workers

    processes = options.workers or workers.auto(ledger.waiting(issue_id))
    if processes > 1 and courier.url:
        run = workers.in_processes(
            replace(plan, options=replace(options, workers=processes)), issue_id, courier.url, rendered
        )
        summary.sent_now = run.sent
        summarise(summary, ledger, issue_id, run.outcome, run.message)
        return
    delivering = Delivering(
        plan.project.settings,
        ledger,
        issue_id,
        schedule,
        courier.factory,
        courier.tokens,
        options,
        plan.clock,
        plan.progress,
        plan.stop or threading.Event(),
        plan.notify,
        courier.dkim,
        shared_rate(plan.project, options, courier.url),
        rendered,
    )
    summary.sent_now = delivering.deliver()
    summarise(summary, ledger, issue_id, delivering.outcome, delivering.message)


def shared_rate(project: Project, options: SendOptions, url: str) -> Limiter | None:
    """`--rate` as every worker on this transport shares it (storage/rates.py)."""
    return SharedRate(project.store, rate_key(url), options.rate) if options.rate else None


def summarise(
    summary: SendSummary, ledger: DeliveryQueue, issue_id: int | None, outcome: str, message: str = ""
) -> None:
    """The outcome, and the issue's deliveries counted by state."""
    summary.issue_id, summary.outcome, summary.message = issue_id, outcome, message
    if issue_id is not None:
        summary.counts = ledger.counts(issue_id)


def dry_run(summary: SendSummary, digests: dict[str, Digest], audience: Audience) -> None:
    """What a send would queue, counted from the audience: nothing is recorded."""
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
    summary.outcome = "dry run"


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
