"""The delivery logic (variants, retries, the breaker, the queue lifetime) through the real
sender and a real SQLite ledger, with the relay scripted by a MockTransport handler.

What needs a real SMTP server (protocol replies, lost replies, resets, TLS, a killed
process) is in test_send.py and test_relay_faults.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import cast

import pytest
import sqlalchemy as sa

from newsletter import scaffold
from newsletter.core.models import SubscriberRow
from newsletter.core.tokens import Tokens
from newsletter.delivery.send import SendOptions, SendPlan, SendSummary, send, utc_now
from newsletter.delivery.transports import (
    DeliveryError,
    Envelope,
    MemoryTransport,
    MockTransport,
    PermanentFailure,
    TemporaryFailure,
    UnknownOutcome,
    transport_factory,
)
from newsletter.project import Project
from newsletter.storage.issues import Issues
from newsletter.storage.queue import DeliveryQueue
from newsletter.storage.roster import Roster
from newsletter.storage.schema import deliveries
from tests.conftest import NOW, THREE_READERS, VERP

SECRET = "test-secret-key-0123456789"
WEEK = scaffold.DEMO_AT
FAST = SendOptions(retry_base=0.001, retry_cap=0.01)
PEOPLE = ("ann@example.org", "bob@example.org", "cat@example.org")


@dataclass
class Relay:
    """A MockTransport handler: accepts every message, except that `script[address]` lists
    errors raised at that address's next attempts, and `everyone` is raised for all while set."""

    accepted: list[Envelope] = field(default_factory=list, repr=False)
    tried: list[str] = field(default_factory=list)
    script: dict[str, list[DeliveryError]] = field(default_factory=dict)
    everyone: DeliveryError | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, envelope: Envelope) -> None:
        with self.lock:
            self.tried.append(envelope.recipient)
            if self.everyone is not None:
                raise self.everyone
            queued = self.script.get(envelope.recipient)
            if queued:
                raise queued.pop(0)
            self.accepted.append(envelope)

    def accepted_by(self, address: str) -> list[Envelope]:
        with self.lock:
            return [e for e in self.accepted if e.recipient == address]


def reply(stage: str, code: int | None, enhanced: str = "", text: str = "") -> DeliveryError:
    """The error SMTPTransport raises for this reply at this stage."""
    kind = PermanentFailure if code and code >= 500 else TemporaryFailure
    return kind(" ".join(p for p in (f"{stage}:", str(code), enhanced, text) if p), code, enhanced, stage)


def deliver(
    project: Project,
    handler: Callable[[Envelope], None],
    options: SendOptions = FAST,
    at: datetime = WEEK,
    clock: Callable[[], datetime] = utc_now,
    schedule: str = "weekly",
) -> SendSummary:
    plan = SendPlan(project, schedule, at, options, clock)
    return send(plan, lambda: MockTransport(handler), lambda: Tokens(SECRET))


def parse(envelope: Envelope) -> EmailMessage:
    return message_from_bytes(envelope.message, policy=policy.default)


def plain(envelope: Envelope) -> str:
    body = parse(envelope).get_body(("plain",))
    assert body is not None
    return cast(str, body.get_content())


def add_readers(project: Project, count: int) -> list[str]:
    emails = [f"reader{i:02}@example.org" for i in range(count)]
    Roster(project.store).import_subscribers([SubscriberRow(e, e.split("@")[0]) for e in emails], NOW)
    return emails


def statuses(project: Project) -> dict[str, str]:
    """Each subscriber's status on the list (active, bounced, ...)."""
    return {s.email: s.status for s in Roster(project.store).subscribers()}


def outcomes(project: Project) -> dict[str, str]:
    """Each delivery's status in the one issue of the week."""
    [issue] = Issues(project.store).issues("weekly")
    query = sa.select(deliveries.c.email, deliveries.c.status).where(deliveries.c.issue_id == issue.id)
    with project.store.engine.connect() as conn:
        return {email: status for email, status in conn.execute(query)}


@pytest.fixture
def sender(demo_project: Project) -> Iterator[Project]:
    """The demo archive and three subscribers: Ann and Bob want everything, Cat only sleep."""
    Roster(demo_project.store).import_subscribers(THREE_READERS, NOW)
    yield demo_project


@pytest.fixture
def relay() -> Relay:
    return Relay()


# -- variants: who gets what --------------------------------------------------------------


def test_each_subscriber_gets_their_own_categories_once(sender: Project, relay: Relay):
    summary = deliver(sender, relay)
    assert summary.outcome == "sent"
    assert summary.counts["sent"] == 3
    assert sorted(relay.tried) == list(PEOPLE)
    [ann], [cat] = relay.accepted_by("ann@example.org"), relay.accepted_by("cat@example.org")
    assert "Nutrition & everyday eating" in plain(ann)
    assert "Sleep & recovery" in plain(ann)
    assert "Sleep & recovery" in plain(cat)
    assert "Nutrition & everyday eating" not in plain(cat)
    for envelope in relay.accepted:
        assert VERP.fullmatch(envelope.sender)  # MAIL FROM: the delivery's own return path
        assert parse(envelope)["To"].addresses[0].addr_spec == envelope.recipient
    again = deliver(sender, relay)
    assert again.outcome == "already sent"
    assert len(relay.tried) == 3


def test_subscriber_without_articles_this_period_gets_nothing(sender: Project, relay: Relay):
    Roster(sender.store).import_subscribers([SubscriberRow("dan@example.org", "Dan", ("Knitting",))], NOW)
    summary = deliver(sender, relay)
    assert summary.counts["skipped"] == 1
    assert summary.counts["sent"] == 3
    assert "dan@example.org" not in relay.tried


def test_sent_articles_are_not_repeated_by_the_next_issue(sender: Project, relay: Relay):
    weekly = sender.root / "schedules/weekly.toml"
    weekly.write_text(weekly.read_text() + 'lookback = "2w"\n')
    assert deliver(sender, relay, at=WEEK - timedelta(days=7)).outcome == "sent"
    first = {a.id for a in sender.digest(sender.schedule("weekly"), WEEK - timedelta(days=7)).articles}
    second = {a.id for a in sender.digest(sender.schedule("weekly"), WEEK).articles}
    assert first
    assert second
    assert not first & second


def test_dry_run_records_and_sends_nothing(sender: Project, relay: Relay):
    summary = deliver(sender, relay, SendOptions(dry_run=True))
    assert summary.outcome == "dry run"
    assert summary.counts["pending"] == 3
    assert relay.tried == []
    assert Issues(sender.store).issues("weekly") == []


# -- what a failure means, from a server that has accepted someone ------------------------


@pytest.mark.parametrize(
    ("error", "bob", "tries", "subscriber"),
    [
        (reply("RCPT TO", 550, "5.1.1", "no such user"), "failed", 1, "bounced"),
        (reply("RCPT TO", 552, "5.2.2", "mailbox full"), "failed", 1, "active"),
        (reply("RCPT TO", 550, "", "no such user"), "failed", 1, "active"),  # basic code only
        (reply("RCPT TO", 550, "5.7.1", "rejected by policy"), "sent", 2, "active"),
        (reply("RCPT TO", 553, "5.1.7", "bad sender address"), "sent", 2, "active"),  # the sender's
        (reply("RCPT TO", 451, "4.3.0", "try again later"), "sent", 2, "active"),
        (reply("RCPT TO", 450, "4.2.2", "mailbox full for now"), "sent", 2, "active"),
        (reply("MAIL FROM", 550, "5.1.1", "no such user"), "sent", 2, "active"),
        (reply("DATA", 554, "5.7.1", "rejected"), "sent", 2, "active"),
        (TemporaryFailure("connect: [Errno 111] Connection refused", stage="connect"), "sent", 2, "active"),
        (
            UnknownOutcome("connection lost after the message was sent", stage="end of DATA"),
            "unknown",
            1,
            "active",
        ),
    ],
    ids=lambda v: v.reason if isinstance(v, DeliveryError) else None,
)
def test_one_failure_for_one_address(
    sender: Project, relay: Relay, error: DeliveryError, bob: str, tries: int, subscriber: str
):
    """Bob's first attempt fails, after Ann was accepted. A refusal about his mailbox is
    final (5.1.1 also suppresses him); anything else is retried, and an unknown outcome is
    neither retried nor failed."""
    relay.script["bob@example.org"] = [error]
    summary = deliver(sender, relay)
    assert summary.outcome == "sent"
    assert relay.tried.count("bob@example.org") == tries
    assert outcomes(sender) == {"ann@example.org": "sent", "bob@example.org": bob, "cat@example.org": "sent"}
    assert statuses(sender) == {
        "ann@example.org": "active",
        "bob@example.org": subscriber,
        "cat@example.org": "active",
    }


def test_unknown_outcome_is_sent_again_only_when_asked(sender: Project, relay: Relay):
    relay.script["bob@example.org"] = [UnknownOutcome("connection lost after the message was sent")]
    assert deliver(sender, relay).counts["unknown"] == 1
    assert deliver(sender, relay).outcome == "already sent"
    assert relay.tried.count("bob@example.org") == 1
    retried = deliver(sender, relay, SendOptions(retry_base=0.001, retry_unknown=True))
    assert retried.counts["sent"] == 3
    assert len(relay.accepted_by("bob@example.org")) == 1
    assert len(relay.accepted_by("ann@example.org")) == 1  # only the unknown one is sent again


def test_a_5_1_1_before_anyone_was_accepted_is_held_not_bounced(sender: Project, relay: Relay):
    """Ann is tried first: until the server accepts someone, its 5.1.1 may be about itself."""
    relay.script["ann@example.org"] = [reply("RCPT TO", 550, "5.1.1", "no such user")]
    summary = deliver(sender, relay)
    assert summary.outcome == "sent"
    assert summary.counts["sent"] == 3
    assert relay.tried[0] == "ann@example.org"
    assert relay.tried.count("ann@example.org") == 2
    assert set(statuses(sender).values()) == {"active"}


# -- the breaker: a server refusing everyone pauses the send -------------------------------


def test_circuit_breaker_pauses_then_send_resumes(sender: Project, relay: Relay):
    relay.everyone = reply("RCPT TO", 421, "4.3.2", "service shutting down")
    options = SendOptions(retry_base=0.001, retry_cap=0.01, breaker=3)
    paused = deliver(sender, relay, options)
    assert paused.outcome == "paused"
    assert "run send again" in paused.message
    assert "421 4.3.2 service shutting down" in paused.message  # names the server's reply
    assert paused.counts["sent"] == 0
    assert paused.counts["pending"] == 3
    relay.everyone = None
    resumed = deliver(sender, relay, options)
    assert resumed.outcome == "sent"
    assert resumed.counts["sent"] == 3


def test_a_small_list_at_a_refusing_relay_pauses_too(demo_project: Project, relay: Relay):
    """Two people, a breaker of ten: the first deliveries are the whole list."""
    Roster(demo_project.store).import_subscribers(
        [SubscriberRow("a@example.org"), SubscriberRow("b@example.org")], NOW
    )
    relay.everyone = reply("RCPT TO", 550, "5.1.1", "no such user")
    summary = deliver(demo_project, relay)
    assert summary.outcome == "paused"
    assert "the first 2 deliveries all failed" in summary.message
    assert summary.counts["failed"] == 0
    assert statuses(demo_project) == {"a@example.org": "active", "b@example.org": "active"}


def test_failures_in_a_row_after_some_went_through_pause(sender: Project):
    """The relay takes five messages, then refuses everyone: `breaker` failures in a row pause
    the send, nobody is marked failed, and the next run sends the rest, nobody twice."""
    emails = add_readers(sender, 27)
    accepted: list[str] = []
    room = [5]  # messages the relay takes before it fills up

    def flaky(envelope: Envelope) -> None:
        if not room[0]:
            raise reply("DATA", 451, "4.3.0", "queue full")
        room[0] -= 1
        accepted.append(envelope.recipient)

    options = SendOptions(retry_base=0.001, retry_cap=0.01, breaker=4)
    paused = deliver(sender, flaky, options)
    assert paused.outcome == "paused"
    assert "4 failures in a row" in paused.message
    assert paused.counts["sent"] == 5
    assert paused.counts["failed"] == 0
    assert paused.counts["pending"] == 25
    room[0] = 100  # the relay is fixed
    resumed = deliver(sender, flaky, options)
    assert resumed.outcome == "sent"
    assert resumed.counts["sent"] == 30
    assert sorted(accepted) == sorted([*PEOPLE, *emails])  # nobody twice


def test_an_outage_over_four_runs_then_recovery_delivers_to_all(sender: Project, relay: Relay):
    emails = add_readers(sender, 27)
    relay.everyone = TemporaryFailure("connect: [Errno 111] Connection refused", stage="connect")
    for _ in range(4):
        summary = deliver(sender, relay)
        assert summary.outcome == "paused"
        assert summary.counts["pending"] == 30
    assert set(statuses(sender).values()) == {"active"}
    relay.everyone = None
    summary = deliver(sender, relay)
    assert summary.outcome == "sent"
    assert sorted(e.recipient for e in relay.accepted) == sorted([*PEOPLE, *emails])
    [issue] = Issues(sender.store).issues("weekly")
    assert issue.status == "sent"


# -- the queue lifetime ------------------------------------------------------------------


def test_past_the_queue_lifetime_deliveries_expire_and_retry_failed_sends_them(sender: Project, relay: Relay):
    relay.everyone = reply("DATA", 451, "4.3.0", "try again later")
    assert deliver(sender, relay).outcome == "paused"
    later = lambda: utc_now() + timedelta(days=4)  # noqa: E731 (past the 3 d lifetime)
    expired = deliver(sender, relay, clock=later)
    assert expired.outcome == "expired"
    assert "expired after the 3d queue lifetime" in expired.message
    assert expired.counts["expired"] == 3
    assert expired.counts["failed"] == 0
    [issue] = Issues(sender.store).issues("weekly")
    assert issue.status == "sending"  # unfinished, not sent
    tried = len(relay.tried)
    left = deliver(sender, relay, clock=later)
    assert left.outcome == "expired"
    assert "`send --retry-failed` queues them again" in left.message
    assert len(relay.tried) == tried  # expired deliveries are not retried on their own
    relay.everyone = None
    fixed = deliver(sender, relay, SendOptions(retry_base=0.001, retry_failed=True), clock=later)
    assert fixed.outcome == "sent"
    assert fixed.counts["sent"] == 3


# -- connections and the transport contract ---------------------------------------------


def test_each_connection_has_its_own_transport_and_closes_it(sender: Project, relay: Relay):
    emails = add_readers(sender, 27)
    opened: list[MockTransport] = []

    def factory() -> MockTransport:
        transport = MockTransport(relay)
        opened.append(transport)
        return transport

    options = SendOptions(connections=2)
    summary = send(SendPlan(sender, "weekly", WEEK, options), factory, lambda: Tokens(SECRET))
    assert summary.counts["sent"] == 30
    assert sorted(relay.tried) == sorted([*PEOPLE, *emails])  # everyone once
    assert len(opened) == 2
    assert all(t.closed for t in opened)


def test_a_421_for_too_many_connections_closes_that_connection_and_the_rest_carry_on(
    sender: Project, relay: Relay
):
    emails = add_readers(sender, 27)
    refused = reply("connect", 421, "4.7.0", "Too many connections from your IP")
    opened = 0

    def factory() -> MockTransport:
        nonlocal opened
        opened += 1
        if opened <= 2:  # slow enough that the other two connections are tried too

            def accepting(envelope: Envelope) -> None:
                time.sleep(0.01)
                relay(envelope)

            return MockTransport(accepting)

        def refusing(envelope: Envelope) -> None:  # the relay allows two connections
            raise refused

        return MockTransport(refusing)

    notes: list[str] = []
    options = SendOptions(connections=4, retry_base=0.001, retry_cap=0.01)
    summary = send(
        SendPlan(sender, "weekly", WEEK, options, notify=notes.append), factory, lambda: Tokens(SECRET)
    )
    assert (summary.outcome, summary.counts["sent"]) == ("sent", 30)
    assert sorted(relay.tried) == sorted([*PEOPLE, *emails])  # everyone once, by the two that work
    refusal = f"the server refused another connection ({refused.reason}); going on with 3"
    assert notes.count(refusal) == 1, notes
    # The fourth connection is refused too, or finds every row claimed by the others and
    # never opens (batches of 8 over 30 rows: on PostgreSQL, SKIP LOCKED passes locked rows).
    fewer = [n for n in notes if "refused another connection" in n]
    assert fewer in ([refusal], [refusal, refusal.replace("going on with 3", "going on with 2")]), notes


def test_a_421_at_the_only_connection_is_a_temporary_failure(sender: Project):
    refused = reply("connect", 421, "4.7.0", "Too many connections")

    def refusing(envelope: Envelope) -> None:
        raise refused

    summary = deliver(sender, refusing)
    assert summary.outcome == "paused"  # the breaker, as for any server-wide failure
    assert summary.counts["sent"] == 0


def test_a_bug_in_the_transport_ends_the_run_and_loses_no_one(sender: Project, relay: Relay):
    def broken(envelope: Envelope) -> None:
        if envelope.recipient == "bob@example.org":
            raise RuntimeError("a bug, not a delivery error")
        relay(envelope)

    with pytest.raises(RuntimeError, match="a bug"):
        deliver(sender, broken)
    [issue] = Issues(sender.store).issues("weekly")
    counts = DeliveryQueue(sender.store).counts(issue.id)
    assert (counts["sent"], counts["sending"], counts["pending"]) == (1, 1, 1)  # Bob stays in flight
    after_the_lease = lambda: utc_now() + timedelta(minutes=10)  # noqa: E731
    resumed = deliver(sender, relay, clock=after_the_lease)
    assert resumed.outcome == "sent"
    assert sorted(e.recipient for e in relay.accepted) == list(PEOPLE)


def test_the_memory_url_keeps_every_connections_messages_in_one_list(sender: Project):
    factory = transport_factory("memory:", {})
    shared = factory()
    assert isinstance(shared, MemoryTransport)
    summary = send(
        SendPlan(sender, "weekly", WEEK, SendOptions(connections=2)), factory, lambda: Tokens(SECRET)
    )
    assert summary.outcome == "sent"
    assert sorted(recipient for _, recipient, _ in shared.sent) == list(PEOPLE)
    assert all(VERP.fullmatch(origin) for origin, _, _ in shared.sent)
