"""Sending through a real SMTP server on loopback, with a real SQLite ledger: what the
protocol decides (replies, a lost reply, header bytes on the wire) and killed processes.
The delivery logic itself is tested faster with a MockTransport in test_delivering.py."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
import sqlalchemy as sa

from newsletter import scaffold, scheduler
from newsletter.audience.subscribers import parse_csv
from newsletter.core.errors import ConfigError, NewsletterError
from newsletter.core.models import SubscriberRow
from newsletter.delivery.send import ALLOW_PLACEHOLDERS, SendOptions, send_schedule
from newsletter.project import Project
from newsletter.storage.issues import Issues
from newsletter.storage.queue import DeliveryQueue
from newsletter.storage.roster import Roster
from newsletter.storage.schema import deliveries, issue_variants, issues
from tests.conftest import NOW, SECRET, THREE_READERS, VERP, SMTPServer, write_article

FAST = SendOptions(retry_base=0.05, retry_cap=0.2)
WEEK = scaffold.DEMO_AT


def parse(data: bytes):
    return message_from_bytes(data, policy=policy.default)


def test_headers_are_personal_and_stable(sender: Project, smtp_server: SMTPServer):
    summary = send_schedule(sender, "weekly", WEEK, smtp_server.url, FAST)
    assert summary.outcome == "sent"
    assert summary.counts["sent"] == 3
    senders = {m.sender for m in smtp_server.handler.messages}  # MAIL FROM: one return path each (VERP)
    assert len(senders) == 3 and all(VERP.fullmatch(s) for s in senders)
    messages = [parse(m.data) for m in smtp_server.handler.messages]
    ids = {m["Message-ID"] for m in messages}
    assert len(ids) == 3
    for message in messages:
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        https, mailto = re.findall(r"<([^>]+)>", message["List-Unsubscribe"])
        assert https.startswith("https://example.org/newsletter/unsubscribe?token=")
        assert mailto.startswith("mailto:unsubscribe@example.org?subject=unsubscribe%20")
        html = message.get_body(("html",)).get_content()
        assert f'href="{https}"' in html  # the visible link is the same token's page
        assert message["List-Id"].startswith("Mind & Body Weekly <weekly.")


def test_permanent_failure_for_one_address(sender: Project, smtp_server: SMTPServer):
    # 5.7.1 is the server's policy, not the address: retried (and accepted the second time);
    # 5.1.1 from a server that accepts the others is final, and suppresses the address.
    smtp_server.handler.rcpt_replies["bob@example.org"] = ["550 5.7.1 rejected by policy"]
    smtp_server.handler.rcpt_replies["cat@example.org"] = ["550 5.1.1 no such user"] * 2
    summary = send_schedule(sender, "weekly", WEEK, smtp_server.url, FAST)
    assert summary.outcome == "sent"
    assert (summary.counts["sent"], summary.counts["failed"]) == (2, 1)
    statuses = {s.email: s.status for s in Roster(sender.store).subscribers()}
    assert statuses == {
        "ann@example.org": "active",
        "bob@example.org": "active",
        "cat@example.org": "bounced",
    }  # 5.1.1: the mailbox does not exist


def test_disconnect_after_data_is_unknown_and_not_resent(sender: Project, smtp_server: SMTPServer):
    smtp_server.handler.drop_after_data.add("bob@example.org")
    summary = send_schedule(sender, "weekly", WEEK, smtp_server.url, FAST)
    assert summary.counts["unknown"] == 1
    assert summary.counts["sent"] == 2
    assert summary.outcome == "sent"
    assert send_schedule(sender, "weekly", WEEK, smtp_server.url, FAST).outcome == "already sent"
    assert len(smtp_server.handler.received_by("bob@example.org")) == 1
    retried = send_schedule(
        sender, "weekly", WEEK, smtp_server.url, FAST.__class__(retry_base=0.05, retry_unknown=True)
    )
    assert retried.counts["sent"] == 3
    assert len(smtp_server.handler.received_by("bob@example.org")) == 2  # asked for explicitly


def test_crlf_in_name_and_title_never_adds_a_header(sender: Project, smtp_server: SMTPServer, tmp_path: Path):
    csv = b'email,name,categories\neve@example.org,"Eve\rBcc: victim@example.org",\n'
    Roster(sender.store).import_subscribers(parse_csv("s.csv", csv).rows, NOW)
    write_article(tmp_path, "x.txt", "Title\rBcc: victim@example.org", "November 22, 2026")
    sender.ingest([str(tmp_path / "x.txt")], NOW, "Sleep & recovery")
    sleep = sender.root / "schedules/sleep.toml"
    sleep.write_text(
        sleep.read_text().replace(
            'subject = "{{ title }} · {{ lead.title }}"', 'subject = "{{ lead.title }}"'
        )
    )
    send_schedule(sender, "sleep", WEEK, smtp_server.url, FAST)
    for received in smtp_server.handler.messages:
        headers = received.data.split(b"\r\n\r\n", 1)[0]
        assert not re.search(rb"^Bcc:", headers, re.M | re.I)
        assert parse(received.data)["Bcc"] is None
    assert smtp_server.handler.received_by("eve@example.org")


def test_plaintext_auth_is_refused_off_loopback(sender: Project):
    from newsletter.core.errors import ConfigError

    with pytest.raises(ConfigError, match="without TLS"):
        send_schedule(
            Project(sender.root, environ={**SECRET, "NEWSLETTER_SMTP_PASSWORD": "pw"}),
            "weekly",
            WEEK,
            "smtp://user@mail.example.org:25",
            FAST,
        )


def recorded(project: Project) -> tuple[int, int, int]:
    """Issues, variants and delivery rows in the ledger."""
    with project.store.engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            conn.scalar(sa.select(sa.func.count()).select_from(t))
            for t in (issues, issue_variants, deliveries)
        )


def test_a_failed_preflight_records_nothing_and_a_later_subscriber_gets_the_issue(
    sender: Project, smtp_server: SMTPServer
):
    unsigned = Project(sender.root, environ={})  # no NEWSLETTER_SECRET_KEY
    try:
        with pytest.raises(ConfigError, match="NEWSLETTER_SECRET_KEY: expected a secret"):
            send_schedule(unsigned, "weekly", WEEK, smtp_server.url, FAST)
    finally:
        unsigned.close()
    with pytest.raises(ConfigError, match="--transport: expected smtp://"):
        send_schedule(sender, "weekly", WEEK, "smpt://127.0.0.1:25", FAST)
    with pytest.raises(ConfigError, match=r"--transport: expected \?timeout= a number of seconds"):
        send_schedule(sender, "weekly", WEEK, f"{smtp_server.url}x", FAST)
    sleep = sender.root / "schedules/sleep.toml"
    sleep.write_text(sleep.read_text().replace('"Sleep & recovery"', '"Sleep and recovery"'))
    with pytest.raises(NewsletterError, match="category 'Sleep and recovery' has no articles"):
        send_schedule(sender, "sleep", WEEK, smtp_server.url, FAST)
    assert recorded(sender) == (0, 0, 0)
    assert not (sender.root / "issues").exists()  # not even the browser copy
    assert smtp_server.handler.messages == []

    Roster(sender.store).import_subscribers([SubscriberRow("dan@example.org", "Dan")], NOW)
    summary = send_schedule(sender, "weekly", WEEK, smtp_server.url, FAST)
    assert (summary.outcome, summary.counts["sent"]) == ("sent", 4)
    assert len(smtp_server.handler.received_by("dan@example.org")) == 1


def test_message_ids_are_random_stored_and_the_same_on_a_retry(sender: Project, smtp_server: SMTPServer):
    smtp_server.handler.drop_after_data.add("bob@example.org")
    first = send_schedule(sender, "weekly", WEEK, smtp_server.url, FAST)
    assert first.counts["unknown"] == 1
    send_schedule(sender, "weekly", WEEK, smtp_server.url, SendOptions(retry_base=0.05, retry_unknown=True))
    with sender.store.engine.connect() as conn:
        stored = dict(conn.execute(sa.select(deliveries.c.email, deliveries.c.message_id)).all())
    sent = {m.recipients[0]: parse(m.data)["Message-ID"] for m in smtp_server.handler.messages}
    assert sent == stored  # what went out is what the ledger keeps
    bob = [parse(m.data)["Message-ID"] for m in smtp_server.handler.received_by("bob@example.org")]
    assert len(bob) == 2 and bob[0] == bob[1]  # the retry is the same message to Bob's provider
    with sender.store.engine.connect() as conn:
        ids = dict(conn.execute(sa.select(deliveries.c.email, deliveries.c.id)).all())
    for email, message_id in stored.items():
        # 128 random bits: unique across projects and recreated databases; then the delivery.
        assert re.fullmatch(rf"<[0-9a-f]{{32}}\.{ids[email]}@example\.org>", message_id)


def test_feedback_id_names_issue_and_schedule_and_no_precedence_bulk(
    sender: Project, smtp_server: SMTPServer
):
    summary = send_schedule(sender, "weekly", WEEK, smtp_server.url, FAST)
    for received in smtp_server.handler.messages:
        message = parse(received.data)
        assert message["Feedback-ID"] == f"{summary.issue_id}:weekly:newsletter:example.org"
        assert message["Precedence"] is None


def test_send_refuses_the_scaffold_placeholders_unless_allowed(
    demo_project: Project, cli, smtp_server: SMTPServer, monkeypatch: pytest.MonkeyPatch
):
    Roster(demo_project.store).import_subscribers(THREE_READERS, NOW)
    monkeypatch.delenv(ALLOW_PLACEHOLDERS)
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET["NEWSLETTER_SECRET_KEY"])
    args = ("send", "weekly", "--at", WEEK.isoformat(), "--transport", smtp_server.url)
    refused = cli(*args)
    assert refused.exit_code == 1
    assert refused.stderr.splitlines() == [
        "Error: newsletter.toml: [email] from ('Mind & Body <digest@example.org>') and [site] "
        "postal_address ('1 Example Street, London') are still the placeholder from `newsletter init`",
        "Hint: Put your own From address and postal address in newsletter.toml; to send anyway "
        "(a test), pass --allow-placeholders or set NEWSLETTER_ALLOW_PLACEHOLDERS=1.",
    ]
    assert recorded(demo_project) == (0, 0, 0)
    settings = demo_project.root / "newsletter.toml"
    text = settings.read_text().replace("digest@example.org", "digest@mindandbody.news")
    settings.write_text(text)
    only_postal = cli(*args)
    assert only_postal.exit_code == 1
    assert "[site] postal_address ('1 Example Street, London') is still the placeholder" in only_postal.stderr
    settings.write_text(text.replace("1 Example Street, London", "4 Privet Drive, Little Whinging"))
    assert cli(*args, "--dry-run").exit_code == 0
    assert cli(*args).exit_code == 0
    assert len(smtp_server.handler.messages) == 3


def test_placeholders_go_to_a_local_outbox_or_with_allow_placeholders(
    demo_project: Project, cli, smtp_server: SMTPServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    Roster(demo_project.store).import_subscribers(THREE_READERS, NOW)
    monkeypatch.delenv(ALLOW_PLACEHOLDERS)
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET["NEWSLETTER_SECRET_KEY"])
    outbox = cli("send", "weekly", "--at", WEEK.isoformat(), "--transport", f"file:{tmp_path / 'out'}")
    assert outbox.exit_code == 0, outbox.stderr  # the demo's own walk-through: nothing leaves
    allowed = cli(
        "send", "sleep", "--at", WEEK.isoformat(), "--transport", smtp_server.url, "--allow-placeholders"
    )
    assert allowed.exit_code == 0, allowed.stderr
    assert smtp_server.handler.received_by("cat@example.org")


def test_run_refuses_the_scaffold_placeholders_and_logs_it(
    demo_project: Project,
    smtp_server: SMTPServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    monkeypatch.delenv(ALLOW_PLACEHOLDERS)
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET["NEWSLETTER_SECRET_KEY"])
    with pytest.raises(NewsletterError, match="run sends nothing from placeholder settings"):
        scheduler.run_daemon(
            demo_project.root, once=True, grace=timedelta(days=30), transport=smtp_server.url
        )
    assert "not sending: newsletter.toml: [email] from ('Mind & Body <digest@example.org>')" in caplog.text
    assert recorded(demo_project) == (0, 0, 0)


def cli(project: Project, *args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, **SECRET}
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter.cli", "--project", str(project.root), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,
    )


@pytest.mark.slow
def test_sigkill_then_resume_skips_no_one(sender: Project, smtp_server: SMTPServer):
    people = [SubscriberRow(f"reader{i}@example.org", f"Reader {i}") for i in range(300)]
    Roster(sender.store).import_subscribers(people, NOW)
    smtp_server.handler.delay = 0.01
    url = f"smtp://127.0.0.1:{smtp_server.port}?timeout=1"
    first = cli(sender, "send", "weekly", "--at", WEEK.isoformat(), "--transport", url, "--connections", "2")
    deadline = time.monotonic() + 30
    while len(smtp_server.handler.messages) < 60 and time.monotonic() < deadline:
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = len(smtp_server.handler.messages)
    assert 0 < killed_at < 303
    second = cli(
        sender, "send", "weekly", "--at", WEEK.isoformat(), "--transport", url, "--connections", "2", "--json"
    )
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    received: dict[str, int] = {}
    for message in smtp_server.handler.messages:
        for address in message.recipients:
            received[address] = received.get(address, 0) + 1
    assert len(received) == 303  # no one skipped
    duplicates = sum(n - 1 for n in received.values())
    assert duplicates <= 2  # at most the messages in flight: one per connection
    assert b'"outcome": "sent"' in out


@pytest.mark.slow
def test_sigterm_finishes_in_flight_and_exits_cleanly(sender: Project, smtp_server: SMTPServer):
    people = [SubscriberRow(f"reader{i}@example.org", f"Reader {i}") for i in range(200)]
    Roster(sender.store).import_subscribers(people, NOW)
    smtp_server.handler.delay = 0.02
    process = cli(
        sender, "send", "weekly", "--at", WEEK.isoformat(), "--transport", smtp_server.url, "--json"
    )
    while len(smtp_server.handler.messages) < 20:
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert b'"outcome": "stopped"' in out
    counts = DeliveryQueue(sender.store).counts(Issues(sender.store).issues("weekly")[0].id)
    assert counts["sending"] == 0  # nothing left in flight
    assert counts["sent"] == len(smtp_server.handler.messages)
