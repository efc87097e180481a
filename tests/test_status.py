"""`newsletter status`: one place that says how the newsletter is doing, and exits 1 when
something needs a person (issue 24). Real SQLite, aiosmtpd on loopback, a real Maildir,
a feed on a loopback port nobody answers."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from newsletter.delivery.due_sends import catch_up
from newsletter.delivery.send import SendOptions, send_schedule
from newsletter.delivery.status import gather
from newsletter.delivery.status_report import lines, needs
from newsletter.project import Project
from tests.conftest import NOW, THREE_READERS, CliRunnerForProject, SMTPServer, free_port

FAST = SendOptions(retry_base=0.01, retry_cap=0.05)
GRACE = timedelta(hours=6)
LAST_MONDAY = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # the demo's week; Europe/London is UTC in winter
MONDAY_EVENING = datetime(2026, 11, 30, 18, 57, tzinfo=UTC)  # the 08:00 send of the day missed
COMMAND = "newsletter send weekly --at 2026-11-30T08:00:00+00:00"


def sent_last_week(sender: Project, smtp_server: SMTPServer) -> None:
    summary = send_schedule(sender, "weekly", LAST_MONDAY, smtp_server.url, FAST, clock=lambda: LAST_MONDAY)
    assert summary.outcome in ("sent", "skipped")


def test_a_missed_period_is_named_with_the_command_that_sends_it(
    sender: Project, smtp_server: SMTPServer, caplog: pytest.LogCaptureFixture
):
    sent_last_week(sender, smtp_server)
    status = gather(sender, MONDAY_EVENING, GRACE)
    weekly = next(s for s in status.schedules if s.name == "weekly")
    assert weekly.missed == (
        "weekly: the 2026-11-30 08:00 GMT send was missed (past the 6h grace) and not sent; "
        f"send it with `{COMMAND}`"
    )
    assert weekly.next_send == datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    assert weekly.missed in needs(status)
    # `run` says it in the same words where it used to say only "nothing due"
    with caplog.at_level(logging.INFO, logger="newsletter.scheduler"):
        assert catch_up(sender, MONDAY_EVENING, GRACE, smtp_server.url) == []
    assert f"{weekly.missed}; next send 2026-12-07 08:00 GMT" in caplog.text
    # the command it names sends that period, and then nothing is missed
    at = datetime.fromisoformat(COMMAND.rsplit(" ", 1)[1])
    late = send_schedule(sender, "weekly", at, smtp_server.url, FAST, clock=lambda: MONDAY_EVENING)
    assert late.period_end == at
    assert needs(gather(sender, MONDAY_EVENING, GRACE)) == []


def test_within_the_grace_or_before_any_send_nothing_is_missed(sender: Project, smtp_server: SMTPServer):
    assert all(not s.missed for s in gather(sender, MONDAY_EVENING, GRACE).schedules)  # nothing sent yet
    sent_last_week(sender, smtp_server)
    within = gather(sender, datetime(2026, 11, 30, 13, 0, tzinfo=UTC), GRACE)
    assert all(not s.missed for s in within.schedules)


def test_a_paused_send_is_shown_with_its_reason_and_the_command_to_resume(
    sender: Project, smtp_server: SMTPServer
):
    for reader in THREE_READERS:
        smtp_server.handler.rcpt_replies[reader.email] = ["451 4.3.0 mail server busy"] * 5
    summary = send_schedule(sender, "weekly", LAST_MONDAY, smtp_server.url, FAST, clock=lambda: LAST_MONDAY)
    assert summary.outcome == "paused"
    status = gather(sender, LAST_MONDAY + timedelta(minutes=5), GRACE)
    [unfinished] = next(s for s in status.schedules if s.name == "weekly").unfinished
    assert unfinished.waiting == 3 and "451 4.3.0 mail server busy" in unfinished.reason
    assert needs(status) == [
        "weekly: paused; resume it with `newsletter send weekly --at 2026-11-23T08:00:00+00:00` "
        "once the server takes mail again"
    ]
    assert "  unfinished 2026-11-23 08:00 GMT: 3 deliveries waiting (last reply: " in "\n".join(lines(status))


def add_source(root: Path, url: str) -> None:
    with (root / "newsletter.toml").open("a", encoding="utf-8") as f:
        f.write(f'\n[[sources]]\nname = "blog"\nurl = "{url}"\n')


def test_a_failing_source_needs_a_person(cli: CliRunnerForProject):
    add_source(cli.root, f"http://127.0.0.1:{free_port()}/feed.xml")  # nobody listens there
    assert "blog: never polled" in cli("status").stdout
    cli("fetch")
    result = cli("status")
    assert result.exit_code == 1
    assert "  blog: failed at " in result.stdout
    assert "source blog: its last poll failed (" in result.stdout
    assert "run `newsletter fetch blog`" in result.stdout
    data = json.loads(cli("status", "--json").stdout)
    assert data["sources"][0]["status"] == "failed" and len(data["needs"]) == 1


def test_bounce_mails_put_aside_need_a_person(cli: CliRunnerForProject, monkeypatch: pytest.MonkeyPatch):
    box = cli.root / "bounces"
    for sub in ("cur", "new", "tmp"):
        (box / sub).mkdir(parents=True)
    (box / "new" / "1.autoreply").write_bytes(b"From: ann@example.org\nSubject: Out of office\n\nAway.\n")
    monkeypatch.setenv("NEWSLETTER_BOUNCES_MAILBOX", str(box))
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "test-secret-key-0123456789")
    waiting = cli("status")
    assert waiting.exit_code == 0  # not read yet: the next `bounces` (or `run`) reads it
    assert f"bounce mailbox {box}: 1 waiting, 0 unhandled; last acted on never" in waiting.stdout
    assert cli("bounces").exit_code == 1  # reported once ...
    assert cli("bounces").exit_code == 0  # ... not again on every cron run
    result = cli("status")
    assert result.exit_code == 1
    assert f"bounce mailbox {box}: 0 waiting, 1 unhandled" in result.stdout
    assert "bounce mailbox: 1 mails could not be acted on and wait in .Unhandled" in result.stdout


def test_the_list_counts_and_how_it_moved(sender: Project):
    status = gather(sender, NOW + timedelta(days=10), GRACE)
    assert status.audience.counts["active"] == 3
    assert status.audience.movements == ((7, 0, 0), (30, 3, 0))  # imported on 2026-11-26 (NOW)


def test_after_a_send_ahead_of_its_time_the_next_send_is_the_one_after(
    sender: Project, smtp_server: SMTPServer
):
    """`send weekly` on a Thursday sends the coming Monday's issue early: the next send
    `status` names is the Monday after, not the one already gone."""
    thursday = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    early = send_schedule(sender, "weekly", thursday, smtp_server.url, FAST, clock=lambda: thursday)
    assert early.period_end == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    weekly = next(s for s in gather(sender, thursday, GRACE).schedules if s.name == "weekly")
    assert weekly.next_send == datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
