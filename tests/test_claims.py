"""Claims in batches (issue 22): a connection claims several deliveries in one commit,
concurrent claimers never take the same one and skip no one, and a batch's rest is
given back when its connection stops. The PostgreSQL twin is in tests/test_postgres.py."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import sqlalchemy as sa

from newsletter import scaffold
from newsletter.core.models import SubscriberRow
from newsletter.delivery.send import SendOptions, send_schedule
from newsletter.project import Project
from newsletter.storage.issues import Issues
from newsletter.storage.queue import DeliveryQueue
from newsletter.storage.roster import Roster
from tests.conftest import NOW

LEASE = timedelta(minutes=2)


def recorded_issue(project: Project, people: int) -> int:
    """The weekly issue recorded for `people` readers, nothing delivered yet."""
    readers = [SubscriberRow(f"reader{i}@example.org", f"Reader {i}") for i in range(people)]
    Roster(project.store).import_subscribers(readers, NOW)
    stop = threading.Event()
    stop.set()  # record the issue, deliver nothing
    send_schedule(project, "weekly", scaffold.DEMO_AT, "memory:", SendOptions(), stop=stop)
    return Issues(project.store).issues("weekly")[0].id


def claimed_concurrently(project: Project, issue_id: int, claimers: int = 4) -> Counter[int]:
    """Every delivery claimed by `claimers` threads, 8 at a time, each on its own ledger."""
    taken: Counter[int] = Counter()
    lock = threading.Lock()

    def claim() -> None:
        ledger = DeliveryQueue(project.store)
        while batch := ledger.claim_batch(issue_id, NOW, LEASE, size=8):
            for delivery in batch:
                with lock:
                    taken[delivery.id] += 1
                ledger.finish(delivery.id, "sent", NOW)

    threads = [threading.Thread(target=claim) for _ in range(claimers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return taken


def test_concurrent_batches_take_each_delivery_once(sender: Project):
    issue_id = recorded_issue(sender, 200)
    taken = claimed_concurrently(sender, issue_id)
    counts = DeliveryQueue(sender.store).counts(issue_id)
    assert counts["pending"] == counts["sending"] == 0  # no one skipped
    assert len(taken) == counts["sent"] == 203 and set(taken.values()) == {1}  # no one twice


def test_a_send_commits_about_once_a_message_not_twice(sender: Project):
    readers = [SubscriberRow(f"reader{i}@example.org", f"Reader {i}") for i in range(80)]
    Roster(sender.store).import_subscribers(readers, NOW)
    commits = [0]
    sa.event.listen(sender.store.engine, "commit", lambda _: commits.__setitem__(0, commits[0] + 1))
    summary = send_schedule(sender, "weekly", scaffold.DEMO_AT, "memory:", SendOptions(connections=1))
    assert summary.counts["sent"] == 83
    assert commits[0] < 1.5 * 83  # a finish each, a claim each batch (was a claim and a finish each)


def test_a_batch_given_back_is_due_at_once_and_its_claim_undone(sender: Project):
    issue_id = recorded_issue(sender, 10)
    ledger = DeliveryQueue(sender.store)
    batch = ledger.claim_batch(issue_id, NOW, LEASE, size=8)
    assert len(batch) == 8 and ledger.counts(issue_id)["sending"] == 8
    ledger.give_back([d.id for d in batch], NOW)
    assert ledger.counts(issue_id)["sending"] == 0
    again = ledger.claim_batch(issue_id, NOW, LEASE, size=13)
    assert [d.id for d in again[:8]] == [d.id for d in batch]  # due at once, nobody waits for a lease
    assert {d.attempts for d in again} == {1}  # the claim given back is not counted as a try
