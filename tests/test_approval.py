"""Approval (issue 20): an `approval = "required"` schedule's issue is built ahead for its
editor and goes out only once approved. The daemon's due logic with a fixed clock, a real
SQLite file and aiosmtpd on 127.0.0.1; the CLI in-process."""

from __future__ import annotations

import html
import re
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from newsletter.core.errors import ConfigError
from newsletter.delivery import approval, due_sends
from newsletter.delivery.status import gather
from newsletter.delivery.status_report import needs
from newsletter.project import Project
from newsletter.storage.approvals import Approvals
from newsletter.storage.issues import Issues
from newsletter.web.preview import create_app
from tests.conftest import NOW, CliRunnerForProject, SMTPServer
from tests.test_scheduler import (
    CATEGORY,
    ENV,
    GRACE,
    SECRET,
    recipients,
    root,
    sender,
    subscribe,
    utc,
    write_markdown,
)  # noqa: F401

__all__ = ["root", "sender"]  # the fixtures, shared with test_scheduler

FIRE = utc(2026, 11, 27, 10)  # NOW is 2026-11-26 12:00Z: the next 10:00 is 22 hours ahead
SHORT = timedelta(hours=1)  # at NOW, the 10:00 of the 26th is past it: nothing else is due
WAITING = (
    "daily: the 2026-11-27 10:00 issue is waiting for approval; approve it with "
    f"`newsletter approve daily --at {FIRE.isoformat()}`"
)


def write_required(root: Path, extra: str = 'approval = "required"\n') -> None:
    (root / "schedules" / "daily.toml").write_text(
        f'title = "Daily"\ncron = "0 10 * * *"\ntimezone = "UTC"\ncategories = ["{CATEGORY}"]\n{extra}'
    )


@pytest.fixture
def ready(root: Path, sender: Project, tmp_path: Path) -> list[str]:
    write_required(root)
    write_markdown(tmp_path / "src", "fresh-news", utc(2026, 11, 26, 11))
    sender.ingest([str(tmp_path / "src")], NOW, CATEGORY)
    return subscribe(sender, 2)


def test_run_builds_ahead_and_an_unapproved_issue_is_not_sent(
    ready: list[str], sender: Project, smtp_server: SMTPServer, caplog: pytest.LogCaptureFixture
):
    with caplog.at_level("INFO", "newsletter.scheduler"):
        assert due_sends.catch_up(sender, NOW, SHORT, smtp_server.url) == []
    [built] = Issues(sender.store).issues("daily")
    assert (built.status, built.period.end) == ("built", FIRE)
    assert "daily: the 2026-11-27 10:00 issue is built 22h ahead" in caplog.text
    assert WAITING in gather(sender, NOW, SHORT).schedules[0].waiting
    caplog.clear()
    with caplog.at_level("INFO", "newsletter.scheduler"):
        [result] = due_sends.catch_up(sender, FIRE + timedelta(minutes=1), GRACE, smtp_server.url)
    assert result is None  # a person is needed: `run --once` exits 1
    assert smtp_server.handler.messages == []
    assert WAITING in caplog.text
    assert WAITING in needs(gather(sender, FIRE + timedelta(minutes=1), GRACE))
    assert [i.status for i in Issues(sender.store).issues("daily")] == ["built"]


def test_approved_from_the_cli_it_goes_out_once_at_its_time(
    ready: list[str],
    sender: Project,
    smtp_server: SMTPServer,
    cli: CliRunnerForProject,
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET)
    due_sends.catch_up(sender, NOW, SHORT, smtp_server.url)
    result = cli("approve", "daily", "--at", NOW.isoformat(), "--editor", "Ada\nLovelace")
    assert result.exit_code == 0, result.output
    assert "daily: the 2026-11-27 10:00 issue approved by Ada Lovelace" in result.output
    [issue] = Issues(sender.store).issues("daily")
    approval = Approvals(sender.store).approval(issue.id)
    assert approval is not None and approval.editor == "Ada Lovelace"
    assert due_sends.catch_up(sender, FIRE - timedelta(minutes=1), GRACE, smtp_server.url) == []
    assert smtp_server.handler.messages == []  # approved is not early
    [sent] = due_sends.catch_up(sender, FIRE + timedelta(minutes=1), GRACE, smtp_server.url)
    assert sent is not None and sent.outcome == "sent"
    assert recipients(smtp_server) == ready
    [again] = due_sends.catch_up(sender, FIRE + timedelta(minutes=5), GRACE, smtp_server.url)
    assert again is not None and again.outcome == "already sent"
    assert recipients(smtp_server) == ready


def test_an_unapproved_issue_past_its_grace_is_not_sent_and_reported(
    ready: list[str],
    sender: Project,
    smtp_server: SMTPServer,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
):
    write_markdown(tmp_path / "early", "early-news", utc(2026, 11, 26, 9))
    sender.ingest([str(tmp_path / "early")], NOW, CATEGORY)
    early = utc(2026, 11, 26, 9, 30)
    sender.build("daily", early, early)  # an earlier issue ...
    [earlier] = Issues(sender.store).issues("daily")
    Approvals(sender.store).approve(earlier.id, "Ada", early)
    [went] = due_sends.catch_up(sender, utc(2026, 11, 26, 10, 5), GRACE, smtp_server.url)
    assert went is not None and went.outcome == "sent"  # ... went out; the next is never approved
    late = FIRE + GRACE + timedelta(hours=1)
    with caplog.at_level("INFO", "newsletter.scheduler"):
        due_sends.catch_up(sender, late, GRACE, smtp_server.url)
    assert len(smtp_server.handler.messages) == len(ready)
    assert "daily: the 2026-11-27 10:00 UTC issue was never approved and is past the 6h grace" in caplog.text
    assert any("never approved" in line for line in needs(gather(sender, late, GRACE)))


def test_send_by_hand_refuses_an_unapproved_issue(
    ready: list[str], cli: CliRunnerForProject, monkeypatch: pytest.MonkeyPatch, smtp_server: SMTPServer
):
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET)
    result = cli("send", "daily", "--at", NOW.isoformat(), "--transport", smtp_server.url)
    assert result.exit_code != 0
    assert "not sent: daily: the 2026-11-27 10:00 issue is waiting for approval" in result.stderr
    assert f"newsletter approve daily --at {FIRE.isoformat()}" in result.stderr
    assert smtp_server.handler.messages == []


@pytest.mark.parametrize(
    ("extra", "key"),
    [('approval = "maybe"\n', "approval"), ('approve_ahead = "soon"\n', "approve_ahead")],
)
def test_a_bad_approval_key_is_one_config_error(root: Path, extra: str, key: str):
    write_required(root, extra)
    with pytest.raises(ConfigError) as caught:
        Project(root, environ=ENV).schedule("daily")
    message = str(caught.value)
    assert "daily.toml" in message and key in message and "\n" not in message


def test_the_preview_shows_it_waiting_and_approves_with_its_token_only(
    ready: list[str], sender: Project, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET)
    with TestClient(create_app(sender.root, clock=lambda: NOW), base_url="http://127.0.0.1") as client:
        page = client.get("/schedules/daily", params={"at": NOW.isoformat()})
        assert page.status_code == 200 and 'id="waiting"' in page.text
        form_html = page.text[page.text.index('class="approve-form"') :]
        form = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', form_html)[:2])
        form = {k: html.unescape(v) for k, v in form.items()}
        assert form["at"] == FIRE.isoformat()
        forged = client.post("/schedules/daily/approve", data={**form, "token": "forged", "editor": "Eve"})
        assert forged.status_code == 403
        assert Issues(sender.store).issues("daily") == []
        done = client.post("/schedules/daily/approve", data={**form, "editor": "<b>Ada</b>"})
        assert done.status_code == 200, done.text
        assert "Approved by &lt;b&gt;Ada&lt;/b&gt;" in done.text
        again = client.get("/schedules/daily", params={"at": NOW.isoformat()})
        assert 'id="approved"' in again.text and 'id="waiting"' not in again.text
    [issue] = Issues(sender.store).issues("daily")
    approval = Approvals(sender.store).approval(issue.id)
    assert approval is not None and approval.editor == "<b>Ada</b>"


def test_approved_after_its_send_time_the_daemon_sends_it_once_within_grace(
    ready: list[str], sender: Project, smtp_server: SMTPServer, monkeypatch: pytest.MonkeyPatch
):
    due_sends.catch_up(sender, NOW, SHORT, smtp_server.url)
    [waiting] = due_sends.catch_up(sender, FIRE + timedelta(minutes=1), GRACE, smtp_server.url)
    assert waiting is None and smtp_server.handler.messages == []
    late = FIRE + timedelta(minutes=30)
    approval.approve(sender, sender.schedule("daily"), FIRE, "Ada", late)
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET)
    stop = threading.Event()
    [sent] = due_sends.approval_rounds(sender.root, GRACE, smtp_server.url, stop, late)
    assert sent is not None and sent.outcome == "sent"
    assert due_sends.approval_rounds(sender.root, GRACE, smtp_server.url, stop, late) == []
    assert recipients(smtp_server) == ready
