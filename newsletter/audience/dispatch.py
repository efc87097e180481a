"""The outbox sent (outbox.py): each due mail rendered from the rows it names (notices.py),
sealed as an issue's messages are (DKIM when [dkim] is on, its own return path, the
Message-ID stored when it was queued: delivering.sealed), and handed to the courier.

`serve` drains the outbox after answering (a background task, `kick`), and `run` at every
tick and on `run --once` (`drain_project`), so nothing queued is lost when `serve` dies. A
temporary failure is retried with backoff (1 minute, doubling, at most an hour apart); a
refusal about the recipient, MAX_ATTEMPTS tries or MAX_AGE since queueing mark it failed,
logged. A lost reply after the final dot is `unknown` and not re-sent (as for issues).
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from newsletter.audience import notices
from newsletter.core.clock import utc_now
from newsletter.core.models import Schedule, SubscriberStatus
from newsletter.core.tokens import Tokens, secret_key
from newsletter.delivery.delivering import sealed
from newsletter.delivery.send import wanted_categories
from newsletter.delivery.signing import prepare
from newsletter.delivery.transports import Courier as TransportCourier
from newsletter.delivery.transports import DeliveryError, PermanentFailure, UnknownOutcome
from newsletter.digest.mail import sender
from newsletter.project import Project
from newsletter.storage import limits, outbox
from newsletter.storage.consents import Consents
from newsletter.storage.dberrors import IntegrityError
from newsletter.storage.issues import Issues
from newsletter.storage.outbox import CONFIRM, FAILED, LATEST, SENT, SIGNUP, UNKNOWN, WELCOME, Notice, Outbox
from newsletter.storage.records import Choices, Consent, Subscriber
from newsletter.storage.roster import Roster
from newsletter.storage.store import Connection

MAX_ATTEMPTS = 8
MAX_AGE = timedelta(days=2)
FIRST_RETRY = timedelta(minutes=1)
LONGEST_WAIT = timedelta(hours=1)
LEASE = timedelta(minutes=5)  # a claim a dead process left is taken over after this
EVENTS_KEPT = timedelta(days=1)  # rate-limit events older than this and the IP window go
Clock = Callable[[], datetime]
log = logging.getLogger("newsletter.public")


class Courier(Protocol):
    def send(self, sender: str, recipient: str, message: bytes) -> None: ...


@dataclass
class Drained:
    sent: int = 0
    retried: int = 0
    failed: int = 0


class Dispatch:
    """Drains one project's outbox through one courier. A bad secret or DKIM key fails
    here, when `serve` or `run` starts, never mid-drain."""

    def __init__(self, project: Project, courier: Courier | None, clock: Clock = utc_now) -> None:
        self.project, self.courier, self.clock = project, courier, clock
        self.settings = project.settings
        self.tokens = Tokens(secret_key(project.environ))
        self.signer = prepare(self.settings, project.environ, project.root)
        self.outbox = Outbox(project.store)
        self.consents, self.roster = Consents(project.store), Roster(project.store)
        self.issues = Issues(project.store)
        self.domain = sender(self.settings.email.from_).domain
        self.lock = threading.Lock()
        self.again = threading.Event()

    def kick(self) -> None:
        """Drain now; if a drain is at work already, it goes round once more instead."""
        self.again.set()
        while self.again.is_set() and self.lock.acquire(blocking=False):
            try:
                self.again.clear()
                self.drain()
            finally:
                self.lock.release()

    def drain(self) -> Drained:
        """Send every mail due now; the ones that fail wait for a later drain."""
        done = Drained()
        while (notice := self.outbox.claim(self.clock(), LEASE)) is not None:
            outcome = self._send(notice)
            done.sent += outcome == SENT
            done.failed += outcome == FAILED
            done.retried += outcome == "retry"
        keep = max(self.settings.signup.ip_window, EVENTS_KEPT)
        limits.forget(self.project.store, self.clock() - keep)
        return done

    def _send(self, notice: Notice) -> str:
        if notice.kind == SIGNUP:
            return self._record(notice)
        what = f"{notice.kind} mail {notice.id}"
        try:
            mail = self._render(notice)
        except LookupError as e:  # what it was about is gone (forgotten, no issue): nothing to send
            return self._settle(notice, FAILED, f"{what} not sent: {e}")
        if self.courier is None:
            return self._failed(notice, what, "this server was started without a mail transport")
        token = self.tokens.for_notice(notice.id)
        envelope, data = sealed(self.settings, self.signer, mail.data, token, self.domain)
        try:
            self.courier.send(envelope, mail.recipient, data)
        except UnknownOutcome as e:
            return self._settle(notice, UNKNOWN, f"{what}: outcome unknown ({e.reason})")
        except PermanentFailure as e:
            if e.about_recipient:
                return self._settle(notice, FAILED, f"{what} refused: {e.reason}")
            return self._failed(notice, what, e.reason)
        except DeliveryError as e:
            return self._failed(notice, what, e.reason)
        except Exception as e:  # a transport's bug: retried, and the drain goes on
            log.exception("%s: the transport failed", what)
            return self._failed(notice, what, f"{type(e).__name__}: {e}")
        self.outbox.settle(notice.id, SENT, self.clock())
        log.info("%s sent", what)
        return SENT

    def _failed(self, notice: Notice, what: str, reason: str) -> str:
        """Back off, or give up past MAX_ATTEMPTS or MAX_AGE."""
        now = self.clock()
        if notice.attempts >= MAX_ATTEMPTS or now - notice.created_at >= MAX_AGE:
            return self._settle(notice, FAILED, f"{what} not sent after {notice.attempts} tries: {reason}")
        wait = min(LONGEST_WAIT, FIRST_RETRY * 2 ** (notice.attempts - 1))
        self.outbox.retry(notice.id, now + wait * random.uniform(0.5, 1.0), now, reason)
        log.warning("%s not sent (try %d), retried later: %s", what, notice.attempts, reason)
        return "retry"

    def _settle(self, notice: Notice, status: str, message: str) -> str:
        self.outbox.settle(notice.id, status, self.clock(), message)
        log.error("%s", message)
        return status

    # -- a signup, recorded after its answer (web/signup.py queued it) ------------

    def _record(self, notice: Notice) -> str:
        """The signup as the ledger keeps it, and the mail it calls for queued, in one
        transaction serialised on the address: parallel signups make one subscriber and
        at most one confirmation mail an hour."""
        asked = json.loads(notice.payload)
        choices = Choices(asked["name"], tuple(asked["categories"]), tuple(asked["schedules"]))
        consent = Consent(asked["form"], asked["consent_text"], asked["ip"])
        at, key = notice.created_at, asked["confirm_key"]
        try:
            with limits.serialised(self.project.store) as conn:
                limits.lock(conn, "address", key)
                done = self.consents.signup_in(
                    conn, notice.email, choices, consent, bool(asked["double"]), at
                )
                if done.active and done.subscriber_id is not None:  # single opt-in
                    person = Subscriber(
                        done.subscriber_id,
                        notice.email,
                        choices.name,
                        choices.categories,
                        "active",
                        choices.schedules,
                    )
                    welcome = self.settings.signup.welcome
                    outbox.queue_welcome(conn, person.id, welcome, self._latest_of(person), self.domain, at)
                elif done.consent_id is not None and done.subscriber_id is not None:
                    self._confirm_mail(conn, done.subscriber_id, done.consent_id, key, at)
                outbox.recorded(conn, notice.id, self.clock())
        except IntegrityError as e:  # an import of the address at the same moment
            return self._settle(notice, FAILED, f"signup {notice.id} not recorded: {e.orig}")
        return "recorded"

    def _confirm_mail(
        self, conn: Connection, subscriber_id: int, consent_id: int, key: str, at: datetime
    ) -> None:
        """At most one confirmation mail an hour; a consent no mail names is withdrawn, so
        the link sent within the hour stays the one that works (a double click)."""
        if limits.take(conn, "confirm-mail", key, 1, limits.CONFIRM_MAIL_EVERY, at, EVENTS_KEPT):
            message_id = outbox.new_message_id(self.domain)
            outbox.queue(conn, CONFIRM, subscriber_id, message_id, at, consent_id)
        else:
            self.consents.withdraw_consent(conn, consent_id)

    def _latest_of(self, person: Subscriber) -> list[str]:
        """The schedules whose latest issue a new reader gets ([signup] send_latest)."""
        if not self.settings.signup.send_latest:
            return []
        return [
            s.name
            for s in self._schedules(person)
            if self.issues.latest_variant(s.name, wanted_categories(s, person)) is not None
        ]

    # -- what each kind says ----------------------------------------------------

    def _render(self, notice: Notice) -> notices.Outgoing:
        person = None if notice.subscriber_id is None else self.roster.subscriber(notice.subscriber_id)
        if person is None or person.status == "forgotten":
            raise LookupError("the subscriber is gone")
        if notice.kind == CONFIRM:
            return self._confirmation(notice, person)
        if person.status not in (SubscriberStatus.ACTIVE, SubscriberStatus.PAUSED):
            raise LookupError(f"the subscriber is {person.status}")
        if notice.kind == WELCOME:
            return self._welcome(notice, person)
        if notice.kind == LATEST:
            return self._latest(notice, person)
        raise LookupError(f"unknown kind {notice.kind!r}")

    def _confirmation(self, notice: Notice, person: Subscriber) -> notices.Outgoing:
        lifetime = self.settings.signup.confirm_lifetime
        if self.clock() - notice.created_at >= lifetime:
            raise LookupError("its link expired before it could be sent")
        consent = next(
            (c for c in self.consents.consents_of(person.id) if c["id"] == notice.consent_id), None
        )
        if consent is None:
            raise LookupError("the consent record is gone")
        token = self.tokens.purposes.make_confirm(
            consent["id"], notice.created_at
        )  # its lifetime from signup
        url = f"{self.settings.public_url}/confirm?token={token}"
        renderer, now = self.project.renderer, self.clock()
        name = str(consent["name"])
        return notices.confirmation(
            renderer, self.settings, person.email, name, url, lifetime, now, notice.message_id
        )

    def _links(self, person: Subscriber) -> tuple[notices.Links, str]:
        public, token = self.settings.public_url, self.tokens.make(person.id)
        preferences = self.tokens.purposes.make_preferences(person.id)
        links = notices.Links(
            f"{public}/preferences?token={preferences}", f"{public}/unsubscribe?token={token}"
        )
        return links, token

    def _schedules(self, person: Subscriber) -> list[Schedule]:
        return [s for s in self.project.schedules() if not person.schedules or s.name in person.schedules]

    def _welcome(self, notice: Notice, person: Subscriber) -> notices.Outgoing:
        links, _ = self._links(person)
        return notices.welcome(
            self.project.renderer,
            self.settings,
            person.email,
            person.name,
            self._schedules(person),
            links,
            self.clock(),
            notice.message_id,
        )

    def _latest(self, notice: Notice, person: Subscriber) -> notices.Outgoing:
        schedule = next((s for s in self.project.schedules() if s.name == notice.detail), None)
        if schedule is None:
            raise LookupError(f"no schedule {notice.detail!r}")
        variant = self.issues.latest_variant(schedule.name, wanted_categories(schedule, person))
        if variant is None:
            raise LookupError(f"no sent issue of {schedule.name} for their categories")
        links, token = self._links(person)
        tokens = (token, self.tokens.purposes.make_preferences(person.id))
        return notices.issue(
            self.settings,
            variant.subject,
            variant.html,
            variant.text,
            person.email,
            person.name,
            tokens,
            links,
            self.clock(),
            notice.message_id,
        )


def for_serve(project: Project, courier: Courier | None, clock: Clock) -> Dispatch:
    """What `serve` drains with (cli.py hands it to web.public, which imports no transport)."""
    return Dispatch(project, courier, clock)


def drain_project(root: Path, transport: str | None = None) -> Drained | None:
    """`run`'s drain, each tick and on `run --once`: None when nothing was queued (no
    secret or transport is needed then); failures are logged, never raised."""
    with closing(Project(root)) as project:
        if not Outbox(project.store).waiting():
            return None
        try:
            courier = TransportCourier.for_url(project.transport_url(transport), project.environ)
            done = Dispatch(project, courier).drain()
        except Exception:  # a bad key, a store outage: logged, and tried again next tick
            log.exception("the outbox could not be drained")
            return None
    if done.sent or done.failed or done.retried:
        log.info("outbox: %d sent, %d to retry, %d failed", done.sent, done.retried, done.failed)
    return done
