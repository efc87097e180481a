"""Workers on the shared ledger (issue 22): variants rendered and encoded once per issue and
stored, a delivery claimable once its variant is, `newsletter worker`, `send --workers N`,
and `--rate` held over every worker together. The PostgreSQL fault test (workers killed
with SIGKILL) is in tests/test_workers_postgres.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import sqlalchemy as sa

from newsletter import scaffold
from newsletter.core.models import SubscriberRow
from newsletter.delivery import workers
from newsletter.delivery.send import SendOptions, send_schedule
from newsletter.project import Project
from newsletter.storage.issues import Issues
from newsletter.storage.queue import DeliveryQueue
from newsletter.storage.roster import Roster
from newsletter.storage.schema import issue_variants, variant_bodies
from tests.conftest import NOW, SECRET, SMTPServer

LEASE_FREE = SendOptions()


def readers(project: Project, count: int) -> list[str]:
    people = [SubscriberRow(f"reader{i}@example.org", f"Reader {i}") for i in range(count)]
    Roster(project.store).import_subscribers(people, NOW)
    return [p.email for p in people]


def recorded(project: Project, transport: str = "memory:") -> int:
    """The weekly issue recorded, every variant stored, nothing delivered."""
    stop = threading.Event()
    stop.set()
    send_schedule(project, "weekly", scaffold.DEMO_AT, transport, LEASE_FREE, stop=stop)
    return Issues(project.store).issues("weekly")[0].id


def bodies(project: Project) -> dict[int, tuple[str, list[str]]]:
    with project.store.engine.connect() as conn:
        rows = conn.execute(sa.select(variant_bodies))
        return {r.variant_id: (r.boundary, json.loads(r.pieces)) for r in rows}


def test_every_variant_is_stored_encoded_once_and_a_resumed_send_sends_the_stored_body(
    sender: Project, smtp_server: SMTPServer
):
    issue_id = recorded(sender)
    stored = bodies(sender)
    assert len(stored) == len(Issues(sender.store).variants(issue_id)) == 2  # Ann and Bob share one
    # What goes out is the stored body, not a new rendering: a word changed in it shows.
    with sender.store.engine.begin() as conn:
        for variant_id, (_, pieces) in stored.items():
            changed = [pieces[0].replace("Mind", "Stored"), *pieces[1:]]
            conn.execute(
                variant_bodies.update()
                .where(variant_bodies.c.variant_id == variant_id)
                .values(pieces=json.dumps(changed))
            )
    summary = send_schedule(sender, "weekly", scaffold.DEMO_AT, smtp_server.url)
    assert summary.outcome == "sent" and summary.counts["sent"] == 3
    boundaries = {boundary for boundary, _ in stored.values()}
    for message in smtp_server.handler.messages:
        assert b"Stored" in message.data
        assert any(b.encode() in message.data for b in boundaries)  # encoded once: its boundary
    assert bodies(sender).keys() == stored.keys()  # nothing stored again


def test_a_delivery_is_claimable_only_once_its_variant_is_stored(sender: Project):
    issue_id = recorded(sender)
    ledger = DeliveryQueue(sender.store)
    variant_id = max(bodies(sender))  # Cat's: recorded after Ann and Bob's (fewer readers)
    variant, body = ledger.variant(variant_id)
    with sender.store.engine.begin() as conn:  # as the recorder leaves it before rendering it
        conn.execute(variant_bodies.delete().where(variant_bodies.c.variant_id == variant_id))
        conn.execute(issue_variants.update().where(issue_variants.c.id == variant_id).values(html=""))
    lease = LEASE_FREE.resolved(sender.settings.sending).lease
    assert lease is not None
    first = ledger.claim_batch(issue_id, NOW, lease, size=8)
    assert sorted(d.email for d in first) == ["ann@example.org", "bob@example.org"]
    for delivery in first:
        ledger.finish(delivery.id, "sent", NOW)
    assert ledger.next_due(issue_id, NOW) is None  # not due: the recorder says when it is
    assert body is not None
    ledger.store_rendering(variant_id, variant, body)
    assert [d.email for d in ledger.claim_batch(issue_id, NOW, lease, size=8)] == ["cat@example.org"]


def test_a_variant_stored_before_bodies_were_is_encoded_at_its_next_send(
    sender: Project, smtp_server: SMTPServer
):
    recorded(sender)
    with sender.store.engine.begin() as conn:  # an issue recorded by schema 11, in flight
        conn.execute(variant_bodies.delete())
    summary = send_schedule(sender, "weekly", scaffold.DEMO_AT, smtp_server.url)
    assert summary.counts["sent"] == 3 and len(bodies(sender)) == 2


def test_the_variants_after_the_first_are_rendered_while_it_goes_out(
    sender: Project, smtp_server: SMTPServer
):
    """The variant with most readers is stored before the issue is recorded; the others
    after it (from a thread, while its messages go out): all arrive, each reader once."""
    readers(sender, 30)
    summary = send_schedule(sender, "weekly", scaffold.DEMO_AT, smtp_server.url)
    assert summary.outcome == "sent" and summary.counts["sent"] == 33
    got = sorted(r for m in smtp_server.handler.messages for r in m.recipients)
    assert len(got) == len(set(got)) == 33


# -- processes ----------------------------------------------------------------


def newsletter(project: Project, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    environ = {**os.environ, **SECRET, "NEWSLETTER_ALLOW_PLACEHOLDERS": "1", **(env or {})}
    command = [sys.executable, "-m", "newsletter.cli", "--project", str(project.root), *args]
    return subprocess.Popen(command, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow  # processes
def test_worker_once_delivers_what_send_recorded_and_exits(sender: Project, smtp_server: SMTPServer):
    readers(sender, 20)
    issue_id = recorded(sender, smtp_server.url)
    done = newsletter(sender, "worker", "--once", "--transport", smtp_server.url)
    out, err = done.communicate(timeout=120)
    assert done.returncode == 0, err
    assert "worker: 23 sent" in out
    assert DeliveryQueue(sender.store).counts(issue_id)["sent"] == 23
    assert Issues(sender.store).issue_by_id(issue_id).status == "sent"


@pytest.mark.slow  # processes
def test_send_with_two_workers_delivers_each_reader_once(sender: Project, smtp_server: SMTPServer):
    readers(sender, 60)
    done = newsletter(
        sender,
        "send",
        "weekly",
        "--at",
        scaffold.DEMO_AT.isoformat(),
        "--transport",
        smtp_server.url,
        "--workers",
        "2",
        "--json",
    )
    out, err = done.communicate(timeout=180)
    assert done.returncode == 0, err
    summary = json.loads(out)
    assert summary["outcome"] == "sent" and summary["counts"]["sent"] == 63 and summary["sent_now"] == 63
    got = sorted(r for m in smtp_server.handler.messages for r in m.recipients)
    assert len(got) == len(set(got)) == 63


@pytest.mark.slow  # processes
def test_the_rate_holds_over_two_workers_together(sender: Project, smtp_server: SMTPServer):
    """Two workers at --rate 10: 24 messages take at least 2.3 s between the first and the
    last (each worker on its own would allow 20 a second together: 1.1 s)."""
    readers(sender, 21)
    recorded(sender, smtp_server.url)
    arrivals: list[float] = []
    original = smtp_server.handler.handle_DATA

    async def timed(server, session, envelope):  # noqa: ANN001 (aiosmtpd's hook)
        arrivals.append(time.monotonic())
        return await original(server, session, envelope)

    smtp_server.handler.handle_DATA = timed  # type: ignore[method-assign]
    two = [
        newsletter(sender, "worker", "--once", "--rate", "10", "--transport", smtp_server.url)
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=120) for w in two]
    assert all(w.returncode == 0 for w in two), outputs
    sent = [int(out.split("worker: ")[1].split()[0]) for out, _ in outputs]
    assert sum(sent) == len(arrivals) == 24 and all(sent)  # both took part
    assert arrivals[-1] - arrivals[0] >= 23 / 10 * 0.95


def test_send_uses_one_process_per_core_but_none_for_a_small_list():
    assert workers.auto(3) == 1  # over before a second process has started
    assert workers.auto(10**6) == (os.cpu_count() or 1)


@pytest.mark.slow  # a process
def test_a_worker_without_once_polls_until_sigterm_and_stops_cleanly(
    sender: Project, smtp_server: SMTPServer
):
    running = newsletter(sender, "worker", "--transport", smtp_server.url)
    time.sleep(3)  # started, found nothing due, polling
    assert running.poll() is None
    running.send_signal(signal.SIGTERM)
    out, err = running.communicate(timeout=30)
    assert running.returncode == 0, err
    assert out.strip() == "worker: 0 sent; stopped"
