"""A relay that misbehaves must never cost the list or the issue: scripted SMTP servers
on 127.0.0.1 (aiosmtpd handlers, and a raw socket server for what aiosmtpd cannot do),
a real SQLite ledger, the real sender. The breaker and queue-lifetime logic with a scripted
MockTransport, no server: test_delivering.py."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from newsletter import scheduler
from newsletter.core.models import SubscriberRow
from newsletter.delivery import due_sends
from newsletter.delivery.send import SendOptions, send_schedule
from newsletter.delivery.transports import tls_context
from newsletter.project import Project
from newsletter.storage import claimer
from newsletter.storage.issues import Issues
from newsletter.storage.queue import DeliveryQueue
from newsletter.storage.roster import Roster
from newsletter.storage.schema import SCHEMA_VERSION, deliveries
from newsletter.storage.store import Store
from tests.conftest import NOW, SMTPHandler, SMTPServer, free_port

SECRET = {"NEWSLETTER_SECRET_KEY": "test-secret-key-0123456789"}
FAST = SendOptions(retry_base=0.01, retry_cap=0.05, retry_interval=timedelta(minutes=5))
WEEK = datetime.fromisoformat("2026-11-23T08:00:00+00:00")  # the demo week
PEOPLE = 30


@pytest.fixture
def sender(demo_project: Project) -> Iterator[Project]:
    project = Project(demo_project.root, environ=SECRET)
    people = [SubscriberRow(f"reader{i:02}@example.org", f"Reader {i}") for i in range(PEOPLE)]
    Roster(project.store).import_subscribers(people, NOW)
    yield project
    project.close()


@dataclass
class RefusingHandler(SMTPHandler):
    """Refuses every RCPT, or every DATA, with one reply, while `refusing` is set."""

    rcpt_reply: str = ""
    data_reply: str = ""
    refusing: bool = True

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if self.refusing and self.rcpt_reply:
            return self.rcpt_reply
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if self.refusing and self.data_reply:
            return self.data_reply
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def relay() -> Iterator[tuple[RefusingHandler, str]]:
    handler = RefusingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, f"smtp://127.0.0.1:{port}?timeout=2"
    finally:
        controller.stop()


def statuses(project: Project) -> dict[str, int]:
    found: dict[str, int] = {}
    for person in Roster(project.store).subscribers():
        found[person.status] = found.get(person.status, 0) + 1
    return found


def the_issue(project: Project):
    [issue] = Issues(project.store).issues("weekly")
    return issue


@pytest.mark.parametrize(("rcpt", "data"), [("550 5.1.1 no such user", ""), ("", "554 5.7.1 rejected")])
def test_a_relay_refusing_everyone_pauses_and_loses_no_one(sender: Project, relay, rcpt: str, data: str):
    handler, url = relay
    handler.rcpt_reply, handler.data_reply = rcpt, data
    summary = send_schedule(sender, "weekly", WEEK, url, FAST)
    assert summary.outcome == "paused"
    assert "deliveries all failed and none went through" in summary.message
    assert (rcpt or data) in summary.message  # names the server's reply
    assert statuses(sender) == {"active": PEOPLE}
    assert summary.counts["failed"] == 0
    assert summary.counts["pending"] == PEOPLE
    assert the_issue(sender).status == "sending"
    handler.refusing = False  # the relay is fixed
    again = send_schedule(sender, "weekly", WEEK, url, FAST)
    assert again.outcome == "sent"
    assert again.counts["sent"] == PEOPLE
    assert len({r for m in handler.messages for r in m.recipients}) == PEOPLE


def test_a_dead_address_at_a_working_relay_is_bounced_once_others_are_accepted(sender: Project, relay):
    handler, url = relay
    handler.refusing = False
    handler.rcpt_replies["reader00@example.org"] = ["550 5.1.1 no such user"] * 10
    summary = send_schedule(sender, "weekly", WEEK, url, FAST)
    assert summary.outcome == "sent"
    assert (summary.counts["sent"], summary.counts["failed"]) == (PEOPLE - 1, 1)
    assert statuses(sender) == {"active": PEOPLE - 1, "bounced": 1}


@pytest.mark.slow
def test_run_once_through_a_twelve_run_outage_then_delivers(sender: Project):
    port = free_port()
    url = f"smtp://127.0.0.1:{port}?timeout=1"
    start = WEEK
    for run in range(12):  # `run --once` every 5 minutes from cron, for both demo schedules
        results = due_sends.catch_up(sender, start + timedelta(minutes=5 * run), timedelta(hours=6), url)
        assert [r.outcome if r else None for r in results] == ["paused", "paused"]
    assert statuses(sender) == {"active": PEOPLE}
    handler = SMTPHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        results = due_sends.catch_up(sender, start + timedelta(hours=1), timedelta(hours=6), url)
    finally:
        controller.stop()
    assert [r.outcome if r else None for r in results] == ["sent", "sent"]
    weekly = Issues(sender.store).issue("weekly", start)
    assert weekly is not None
    assert DeliveryQueue(sender.store).counts(weekly.id)["sent"] == PEOPLE


@pytest.mark.slow
def test_a_greylisted_address_is_queued_and_the_retry_timer_delivers_it(sender: Project, relay):
    handler, url = relay
    handler.refusing = False
    handler.rcpt_replies["reader05@example.org"] = ["451 4.7.1 greylisted"] * 5
    (sender.root / "newsletter.toml").write_text(
        (sender.root / "newsletter.toml").read_text() + '\n[sending]\nretry_interval = "1s"\n'
    )
    project = Project(sender.root, environ=SECRET)
    summary = send_schedule(project, "weekly", WEEK, url, SendOptions(retry_base=0.01, retry_cap=0.05))
    assert summary.outcome == "queued"
    assert "1 deliveries queued for a retry" in summary.message
    time.sleep(1.1)  # the retry interval is 1 s
    os.environ.update(SECRET)
    try:
        [result] = due_sends.retry_queued(project.root, url, threading.Event())
    finally:
        del os.environ["NEWSLETTER_SECRET_KEY"]
    assert result is not None
    assert result.outcome == "sent"
    assert len(handler.received_by("reader05@example.org")) == 1
    project.close()


# -- a reset while the message is still going out: a raw socket server -------------------


@dataclass
class ResettingServer:
    """Speaks just enough SMTP; on the first DATA it reads a little of the message and
    resets the connection (RST), as a crashing or overloaded relay does. Later ones pass."""

    port: int = field(default_factory=free_port)
    resets: int = 0
    accepted: list[str] = field(default_factory=list)

    def start(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        conn.sendall(b"220 raw ESMTP\r\n")
        recipient = ""
        for line in reader:
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                conn.sendall(b"250 raw\r\n")
            elif verb == b"RCPT":
                recipient = line.decode().split("<", 1)[1].split(">", 1)[0]
                conn.sendall(b"250 OK\r\n")
            elif verb == b"DATA":
                conn.sendall(b"354 go ahead\r\n")
                if self.resets == 0:
                    self.resets += 1
                    reader.readline()
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    conn.close()  # RST: the rest of the message is never read
                    return
                for body in reader:
                    if body == b".\r\n":
                        break
                self.accepted.append(recipient)
                conn.sendall(b"250 queued\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                break
            else:  # MAIL, RSET, NOOP
                conn.sendall(b"250 OK\r\n")
        conn.close()

    def stop(self) -> None:
        self.sock.close()


def test_a_reset_during_data_is_retried_not_unknown(sender: Project):
    server = ResettingServer()
    server.start()
    try:
        summary = send_schedule(sender, "weekly", WEEK, f"smtp://127.0.0.1:{server.port}?timeout=2", FAST)
    finally:
        server.stop()
    assert server.resets == 1
    assert summary.counts["unknown"] == 0
    assert summary.counts["sent"] == PEOPLE
    assert sorted(server.accepted) == sorted(set(server.accepted))  # nobody twice


def test_a_self_signed_tls_relay_pauses_and_fails_no_one(sender: Project, tmp_path: Path):
    import ssl

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    port = free_port()
    controller = Controller(
        SMTPHandler(), hostname="127.0.0.1", port=port, server_hostname="127.0.0.1", ssl_context=context
    )
    controller.start()
    tls_context.cache_clear()
    try:
        summary = send_schedule(sender, "weekly", WEEK, f"smtps://127.0.0.1:{port}?timeout=2", FAST)
    finally:
        controller.stop()
    assert summary.outcome == "paused"
    assert "certificate" in summary.message
    # Every connection tried TLS with the one context of the process, made once.
    assert tls_context.cache_info().misses == 1 and tls_context.cache_info().hits >= 1
    assert summary.counts["failed"] == 0
    assert statuses(sender) == {"active": PEOPLE}


def test_plain_smtp_makes_no_tls_context(sender: Project, smtp_server: SMTPServer):
    tls_context.cache_clear()
    summary = send_schedule(sender, "weekly", WEEK, smtp_server.url + "&max_messages=1", FAST)
    assert summary.counts["sent"] == PEOPLE  # a connection each, and not one loaded certificates
    assert tls_context.cache_info().misses == 0


# -- resume: what it waits for, and the lease stored with the claim ---------------------


def test_resume_takes_over_a_dead_claimers_rows_at_once_and_says_so(sender: Project, smtp_server: SMTPServer):
    stop = threading.Event()
    stop.set()  # record the issue, deliver nothing
    send_schedule(sender, "weekly", WEEK, smtp_server.url, FAST, stop=stop)
    issue = the_issue(sender)
    gone = subprocess.run(
        [sys.executable, "-c", "from newsletter.storage import claimer; print(claimer.me())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert claimer.is_gone(gone)
    with sender.store.engine.begin() as conn:
        conn.execute(
            deliveries.update()
            .where(
                deliveries.c.id.in_(
                    sa.select(deliveries.c.id)
                    .where(deliveries.c.issue_id == issue.id)
                    .limit(3)
                    .scalar_subquery()
                )
            )
            .values(status="sending", claimed_by=gone, claimed_at=NOW, lease_until=NOW + timedelta(days=9))
        )
    notes: list[str] = []
    summary = send_schedule(sender, "weekly", WEEK, smtp_server.url, FAST, notify=notes.append)
    assert summary.outcome == "sent"
    assert summary.counts["sent"] == PEOPLE
    assert any(
        "3 deliveries in flight from a previous run" in n and "taking them over now" in n for n in notes
    )
    assert DeliveryQueue(sender.store).in_flight(issue.id) == []


@pytest.mark.slow
def test_a_live_claimers_rows_wait_for_its_own_lease(sender: Project, smtp_server: SMTPServer):
    (sender.root / "newsletter.toml").write_text(
        (sender.root / "newsletter.toml").read_text() + '\n[sending]\nlease = "7s"\n'
    )
    project = Project(sender.root, environ=SECRET)
    stop = threading.Event()
    stop.set()
    send_schedule(project, "weekly", WEEK, smtp_server.url, FAST, stop=stop)
    issue = the_issue(project)
    now = scheduler.utc_now()
    claimed = DeliveryQueue(project.store).claim(issue.id, now, timedelta(seconds=7))
    assert claimed is not None
    with project.store.engine.connect() as conn:
        row = conn.execute(sa.select(deliveries).where(deliveries.c.id == claimed.id)).one()
    assert row.lease_until - row.claimed_at == timedelta(seconds=7)  # stored with the claim
    with project.store.engine.begin() as conn:  # as if another live sender on another host
        conn.execute(
            deliveries.update().where(deliveries.c.id == claimed.id).values(claimed_by="elsewhere:1:1")
        )
    notes: list[str] = []
    summary = send_schedule(project, "weekly", WEEK, smtp_server.url, FAST, notify=notes.append)
    assert any("1 deliveries in flight from a previous run; taking them over in" in n for n in notes)
    assert summary.counts["sent"] == PEOPLE
    project.close()


# -- an existing project's database keeps working -----------------------------------------


def test_a_schema_1_database_is_upgraded_in_place(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    Store(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE alembic_version")  # from before the revisions
        conn.exec_driver_sql("DROP INDEX ix_articles_origin_category")
        conn.exec_driver_sql("DROP INDEX ix_articles_url")
        conn.exec_driver_sql("DROP TABLE sources")
        for table, column in (
            ("issues", "queued_at"),
            ("deliveries", "lease_until"),
            ("deliveries", "claimed_by"),
            *(("articles", c) for c in ("backlog", "origin", "image", "author")),
            ("deliveries", "message_id"),  # v4
            ("subscribers", "schedules"),  # v5
            ("subscribers", "chosen_at"),  # v7
            ("issues", "overrides_version"),  # v11
        ):
            conn.exec_driver_sql(f"ALTER TABLE {table} DROP COLUMN {column}")
        for table in ("consents", "signup_events", "subscriber_notices", "image_sizes", "issue_overrides"):
            conn.exec_driver_sql(f"DROP TABLE {table}")
        # v6: the inverted index as schema 5 kept it, a row per posting
        conn.exec_driver_sql("DROP TABLE similar_terms")
        conn.exec_driver_sql("CREATE TABLE similar_terms (term BIGINT PRIMARY KEY, df INTEGER NOT NULL)")
        conn.exec_driver_sql(
            "CREATE TABLE similar_postings (term BIGINT, article_id INTEGER, weight FLOAT, "
            "PRIMARY KEY (term, article_id))"
        )
        conn.exec_driver_sql("INSERT INTO similar_terms VALUES (7, 1)")
        conn.exec_driver_sql(
            "INSERT INTO subscribers (email, name, categories, status, created_at, updated_at) "
            "VALUES ('old@example.org', 'Old', '[]', 'active', '2024-01-01', '2024-01-01')"
        )
        conn.exec_driver_sql("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    engine.dispose()
    store = Store(url)
    assert store.schema_version == SCHEMA_VERSION == 12
    tables = set(sa.inspect(store.engine).get_table_names())
    assert {
        "consents",
        "signup_events",
        "subscriber_notices",
        "image_sizes",
        "variant_bodies",
        "send_rates",
        "issue_overrides",
    } <= tables
    assert "overrides_version" in {c["name"] for c in sa.inspect(store.engine).get_columns("issues")}
    assert "similar_postings" not in tables  # v6: a row per term, made again by `reindex`
    assert {c["name"] for c in sa.inspect(store.engine).get_columns("similar_terms")} == {
        "term",
        "df",
        "postings",
    }
    (old,) = Roster(store).subscribers()
    assert (old.email, old.status, old.schedules) == ("old@example.org", "active", ())
    assert "chosen_at" in {c["name"] for c in sa.inspect(store.engine).get_columns("subscribers")}
    columns = {c["name"] for c in sa.inspect(store.engine).get_columns("deliveries")}
    assert {"lease_until", "claimed_by", "message_id"} <= columns
    columns = {c["name"] for c in sa.inspect(store.engine).get_columns("articles")}
    assert {"backlog", "origin", "image", "author"} <= columns
    assert "sources" in sa.inspect(store.engine).get_table_names()
    indexes = {i["name"] for i in sa.inspect(store.engine).get_indexes("articles")}
    assert {"ix_articles_url", "ix_articles_origin_category"} <= indexes
    store.close()


def test_run_leaves_an_unfinished_send_past_its_queue_lifetime(
    sender: Project, smtp_server: SMTPServer, caplog: pytest.LogCaptureFixture
):
    stop = threading.Event()
    stop.set()  # recorded and queued, nothing delivered
    send_schedule(sender, "weekly", WEEK, smtp_server.url, FAST, stop=stop)
    later = scheduler.utc_now() + timedelta(days=4)
    with caplog.at_level("INFO", "newsletter.scheduler"):
        results = due_sends.catch_up(sender, later, timedelta(seconds=1), smtp_server.url)
    assert results == []
    assert smtp_server.handler.messages == []
    assert "left unfinished past its 3d queue lifetime" in caplog.text
    assert "--retry-failed" in caplog.text
