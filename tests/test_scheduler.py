"""`newsletter run`: fire times, catch-up, DST weeks, two daemons on one database,
and the daemon itself. Real SQLite files, a real SMTP server on loopback."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.job import Job
from apscheduler.schedulers.background import BackgroundScheduler

from newsletter import scheduler
from newsletter.core.errors import ConfigError
from newsletter.core.models import Schedule, SubscriberRow
from newsletter.delivery import due_sends
from newsletter.delivery.send import SendOptions, send_schedule
from newsletter.project import Project
from newsletter.storage.issues import Issues
from newsletter.storage.roster import Roster
from tests.conftest import NOW, SMTPServer, write_article
from tests.test_bounces import dsn

SECRET = "a-test-secret-of-enough-length"
ENV = {"NEWSLETTER_SECRET_KEY": SECRET}
GRACE = timedelta(hours=6)
LONDON, NEW_YORK = ZoneInfo("Europe/London"), ZoneInfo("America/New_York")
CATEGORY = "News"
FAST = SendOptions(retry_base=0.05, retry_cap=0.2)


def schedule(cron: str = "0 8 * * mon", timezone: str = "Europe/London") -> Schedule:
    return Schedule(name="weekly", title="Weekly", cron=cron, timezone=timezone, categories=(CATEGORY,))


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def job_of(background: BackgroundScheduler, name: str) -> Job:
    """A schedule's job, which must be there."""
    job = background.get_job(f"schedule:{name}")
    assert job is not None, f"no job for {name}"
    return job


def next_run(background: BackgroundScheduler, name: str) -> datetime:
    """When a schedule's job runs next; it must have a time."""
    moment = job_of(background, name).next_run_time
    assert moment is not None, f"{name} has no next run time"
    return moment


# -- parse_grace and due_fire_time: pure --------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90m", timedelta(minutes=90)),
        ("6h", timedelta(hours=6)),
        ("1d", timedelta(days=1)),
        ("3600s", timedelta(hours=1)),
        ("1h30m", timedelta(minutes=90)),
        (" 2 W ", timedelta(weeks=2)),
    ],
)
def test_parse_grace(text: str, expected: timedelta):
    assert scheduler.parse_grace(text) == expected


@pytest.mark.parametrize("text", ["", "6", "h", "6 hours", "-1h", "0s", "1.5h", "367d"])
def test_parse_grace_rejects(text: str):
    with pytest.raises(ConfigError, match="--grace: expected a duration such as 6h or 90m"):
        scheduler.parse_grace(text)


def test_due_fire_time_is_the_latest_fire_within_grace():
    fire = datetime(2026, 11, 23, 8, tzinfo=LONDON)
    weekly = schedule()
    assert due_sends.due_fire_time(weekly, fire, GRACE) == fire
    assert due_sends.due_fire_time(weekly, fire + timedelta(hours=2), GRACE) == fire
    assert due_sends.due_fire_time(weekly, fire + GRACE, GRACE) == fire  # the boundary is in
    assert due_sends.due_fire_time(weekly, fire + GRACE + timedelta(seconds=1), GRACE) is None
    assert due_sends.due_fire_time(weekly, fire - timedelta(seconds=1), GRACE) is None
    assert due_sends.due_fire_time(weekly, fire + timedelta(days=6), timedelta(weeks=2)) == fire


def test_due_fire_time_picks_only_the_latest_of_many():
    every_minute = schedule(cron="* * * * *", timezone="UTC")
    assert due_sends.due_fire_time(every_minute, utc(2026, 11, 26, 12, 0, 30), timedelta(days=30)) == utc(
        2026, 11, 26, 12, 0
    )


def test_due_fire_time_across_the_clock_changes():
    london = schedule(cron="0 8 * * sun")
    # 25 Oct 2026: BST ends at 02:00. 08:00 is 08:00Z that day, not 07:00Z.
    assert due_sends.due_fire_time(london, utc(2026, 10, 25, 7, 30), GRACE) is None
    assert due_sends.due_fire_time(london, utc(2026, 10, 25, 8, 0), GRACE) == utc(2026, 10, 25, 8)
    assert due_sends.due_fire_time(london, utc(2026, 10, 25, 7), timedelta(days=8)) == utc(2026, 10, 18, 7)
    new_york = schedule(cron="0 9 * * sun", timezone="America/New_York")
    assert due_sends.due_fire_time(new_york, utc(2026, 11, 1, 14, 1), GRACE) == utc(2026, 11, 1, 14)


# -- catch-up with a fixed "now" ----------------------------------------------------


@pytest.fixture
def root(project_dir: Path) -> Path:
    """The project without its scaffolded schedules: each test writes its own."""
    for path in (project_dir / "schedules").glob("*.toml"):
        path.unlink()
    return project_dir


@pytest.fixture
def sender(root: Path) -> Iterator[Project]:
    opened = Project(root, environ=ENV)
    yield opened
    opened.close()


def write_schedule(
    root: Path, name: str, cron: str, timezone: str = "UTC", skip_if_empty: bool = True
) -> None:
    (root / "schedules" / f"{name}.toml").write_text(
        f'title = "{name.title()}"\ncron = "{cron}"\ntimezone = "{timezone}"\n'
        f'categories = ["{CATEGORY}"]\nskip_if_empty = {str(skip_if_empty).lower()}\n'
    )


def write_markdown(folder: Path, slug: str, published: datetime) -> None:
    """An article at an exact moment (the text format has dates only)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{slug}.md").write_text(
        f'---\ntitle: "{slug}"\ndate: "{published.isoformat()}"\ncategory: "{CATEGORY}"\n'
        f'summary: "About {slug}."\n---\nA paragraph about {slug}, long enough to be a paragraph.\n'
    )


def subscribe(project: Project, count: int) -> list[str]:
    emails = [f"reader{i}@example.com" for i in range(count)]
    Roster(project.store).import_subscribers(
        [SubscriberRow(e, f"Reader {i}") for i, e in enumerate(emails)], NOW
    )
    return emails


def recipients(smtp: SMTPServer) -> list[str]:
    return sorted(r for m in smtp.handler.messages for r in m.recipients)


def issue_titles(project: Project, name: str) -> set[str]:
    [issue] = Issues(project.store).issues(name)
    ids = set(Issues(project.store).issue_article_ids(issue.id))
    return {s.article.title for s in project.store.articles() if s.id in ids}


def test_catch_up_after_downtime_sends_once(
    root: Path, sender: Project, smtp_server: SMTPServer, tmp_path: Path
):
    write_schedule(root, "daily", "0 10 * * *")  # NOW is 12:00Z: it fired two hours ago
    write_article(tmp_path / "src", "a.txt", "Fresh news", "November 26, 2026")
    sender.ingest([str(tmp_path / "src")], NOW, CATEGORY)
    emails = subscribe(sender, 3)
    [summary] = due_sends.catch_up(sender, NOW, GRACE, smtp_server.url)
    assert summary is not None
    assert summary.outcome == "sent"
    assert summary.period_end == utc(2026, 11, 26, 10)
    assert recipients(smtp_server) == emails
    [again] = due_sends.catch_up(sender, NOW + timedelta(minutes=5), GRACE, smtp_server.url)
    assert again is not None
    assert again.outcome == "already sent"
    assert recipients(smtp_server) == emails
    assert [i.status for i in Issues(sender.store).issues("daily")] == ["sent"]


def test_catch_up_leaves_a_fire_time_older_than_grace(
    root: Path, sender: Project, smtp_server: SMTPServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    write_schedule(root, "daily", "0 10 * * *")
    write_article(tmp_path / "src", "a.txt", "Fresh news", "November 26, 2026")
    sender.ingest([str(tmp_path / "src")], NOW, CATEGORY)
    subscribe(sender, 2)
    with caplog.at_level("INFO", "newsletter.scheduler"):
        assert due_sends.catch_up(sender, NOW, timedelta(hours=1), smtp_server.url) == []
    assert smtp_server.handler.messages == []
    assert Issues(sender.store).issues("daily") == []
    assert "daily: nothing due; next send 2026-11-27 10:00 UTC" in caplog.text


def test_catch_up_resumes_an_interrupted_send_whatever_its_age(
    root: Path, sender: Project, smtp_server: SMTPServer, tmp_path: Path
):
    write_schedule(root, "daily", "0 10 * * *")
    write_article(tmp_path / "src", "a.txt", "Fresh news", "November 26, 2026")
    sender.ingest([str(tmp_path / "src")], NOW, CATEGORY)
    emails = subscribe(sender, 3)
    stopped = threading.Event()
    first = send_schedule(
        sender,
        "daily",
        utc(2026, 11, 26, 10),
        smtp_server.url,
        SendOptions(),
        progress=lambda done, _: stopped.set() if done else None,  # stop after the first message
        stop=stopped,
    )
    assert first.outcome == "stopped"
    assert (first.counts["sent"], first.counts["pending"]) == (1, 2)
    later = NOW + timedelta(days=1, hours=3)  # the next fire (27th 10:00) is past grace too
    [resumed] = due_sends.catch_up(sender, later, timedelta(hours=1), smtp_server.url)
    assert resumed is not None
    assert resumed.outcome == "sent"
    assert recipients(smtp_server) == emails  # part of the list has it: the rest gets it too
    assert [i.status for i in Issues(sender.store).issues("daily")] == ["sent"]


def test_a_recorded_but_unstarted_issue_waits_for_the_grace_like_a_missed_one(
    root: Path, sender: Project, smtp_server: SMTPServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    write_schedule(root, "daily", "0 10 * * *")
    write_article(tmp_path / "src", "a.txt", "Fresh news", "November 26, 2026")
    sender.ingest([str(tmp_path / "src")], NOW, CATEGORY)
    emails = subscribe(sender, 3)
    stopped = threading.Event()
    stopped.set()  # recorded and snapshotted, then stopped before the first message
    fire = utc(2026, 11, 26, 10)
    first = send_schedule(sender, "daily", fire, smtp_server.url, SendOptions(), stop=stopped)
    assert first.outcome == "stopped"
    later = NOW + timedelta(days=1, hours=3)  # the 27th's fire is past the grace too
    with caplog.at_level("INFO", "newsletter.scheduler"):
        assert due_sends.catch_up(sender, later, timedelta(hours=1), smtp_server.url) == []
        assert due_sends.retry_queued(root, smtp_server.url, threading.Event(), timedelta(hours=1)) == []
    assert smtp_server.handler.messages == []
    assert "daily 2026-11-26 10:00 UTC: recorded but never started, and past the 1h grace" in caplog.text
    assert f"`newsletter send daily --at {fire.isoformat()}`" in caplog.text
    # Within the grace it goes, as it would have; and an explicit send works whenever.
    [resumed] = due_sends.catch_up(sender, fire + timedelta(minutes=30), timedelta(hours=1), smtp_server.url)
    assert resumed is not None and resumed.outcome == "sent"
    assert recipients(smtp_server) == emails


def test_an_explicit_send_of_an_unstarted_issue_sends_it_late(
    root: Path, sender: Project, smtp_server: SMTPServer, tmp_path: Path
):
    write_schedule(root, "daily", "0 10 * * *")
    write_article(tmp_path / "src", "a.txt", "Fresh news", "November 26, 2026")
    sender.ingest([str(tmp_path / "src")], NOW, CATEGORY)
    emails = subscribe(sender, 2)
    stopped = threading.Event()
    stopped.set()
    fire = utc(2026, 11, 26, 10)
    send_schedule(sender, "daily", fire, smtp_server.url, SendOptions(), stop=stopped)
    assert due_sends.catch_up(sender, fire + timedelta(days=8, hours=7), GRACE, smtp_server.url) == []
    summary = send_schedule(sender, "daily", fire, smtp_server.url, SendOptions())
    assert summary.outcome == "sent"
    assert recipients(smtp_server) == emails


def test_skip_if_empty_records_a_skipped_issue(root: Path, sender: Project, smtp_server: SMTPServer):
    write_schedule(root, "daily", "0 10 * * *")
    subscribe(sender, 2)
    [summary] = due_sends.catch_up(sender, NOW, GRACE, smtp_server.url)
    assert summary is not None
    assert summary.outcome == "skipped"
    assert Issues(sender.store).issues("daily")[0].status == "skipped"
    [again] = due_sends.catch_up(sender, NOW, GRACE, smtp_server.url)
    assert again is not None
    assert again.outcome == "skipped"
    assert smtp_server.handler.messages == []


def test_broken_schedules_are_logged_and_the_others_still_go(
    root: Path, sender: Project, smtp_server: SMTPServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    write_schedule(root, "daily", "0 10 * * *")
    (root / "schedules" / "a-broken.toml").write_text('title = "Broken"\ncron = "99 * * * *"\n')
    write_schedule(root, "b-notemplate", "0 10 * * *")
    with (root / "schedules" / "b-notemplate.toml").open("a") as f:
        f.write('template = "missing"\n')
    write_article(tmp_path / "src", "a.txt", "Fresh news", "November 26, 2026")
    sender.ingest([str(tmp_path / "src")], NOW, CATEGORY)
    subscribe(sender, 1)
    results = due_sends.catch_up(sender, NOW, GRACE, smtp_server.url)
    assert results[:2] == [None, None]
    assert results[2] is not None
    assert results[2].outcome == "sent"
    assert "a-broken: schedule not loaded" in caplog.text
    assert "b-notemplate 2026-11-26 10:00 UTC: failed: template" in caplog.text
    assert len(smtp_server.handler.messages) == 1


@pytest.mark.parametrize(
    ("zone", "cron", "now", "start", "end", "inside", "outside"),
    [
        # BST ends Sunday 25 Oct 2026: 18 Oct 08:00 BST (07:00Z) .. 25 Oct 08:00 GMT (08:00Z).
        (
            LONDON,
            "0 8 * * sun",
            utc(2026, 10, 25, 8, 30),
            utc(2026, 10, 18, 7),
            utc(2026, 10, 25, 8),
            [utc(2026, 10, 18, 7, 30), utc(2026, 10, 25, 7, 30)],
            [utc(2026, 10, 18, 6, 30), utc(2026, 10, 25, 8, 15)],
        ),
        # EDT ends Sunday 1 Nov 2026: 25 Oct 09:00 EDT (13:00Z) .. 1 Nov 09:00 EST (14:00Z).
        (
            NEW_YORK,
            "0 9 * * sun",
            utc(2026, 11, 1, 15),
            utc(2026, 10, 25, 13),
            utc(2026, 11, 1, 14),
            [utc(2026, 10, 25, 13, 30), utc(2026, 11, 1, 13, 30)],
            [utc(2026, 10, 25, 12, 30), utc(2026, 11, 1, 14, 30)],
        ),
    ],
)
def test_a_dst_week_is_sent_once_with_its_own_articles(
    root: Path,
    sender: Project,
    smtp_server: SMTPServer,
    tmp_path: Path,
    zone: ZoneInfo,
    cron: str,
    now: datetime,
    start: datetime,
    end: datetime,
    inside: list[datetime],
    outside: list[datetime],
):
    write_schedule(root, "sunday", cron, zone.key)
    for n, moment in enumerate(inside):
        write_markdown(tmp_path / "src", f"inside-{n}", moment)
    for n, moment in enumerate(outside):
        write_markdown(tmp_path / "src", f"outside-{n}", moment)
    sender.ingest([str(tmp_path / "src")], now)
    subscribe(sender, 1)
    [summary] = due_sends.catch_up(sender, now, GRACE, smtp_server.url)
    assert summary is not None
    assert summary.outcome == "sent"
    assert (summary.period_start, summary.period_end) == (start, end)
    assert issue_titles(sender, "sunday") == {f"inside-{n}" for n in range(len(inside))}
    [again] = due_sends.catch_up(sender, now + timedelta(hours=1), GRACE, smtp_server.url)
    assert again is not None
    assert again.outcome == "already sent"
    assert len(smtp_server.handler.messages) == 1


def test_jobs_fire_at_local_time_across_the_clock_changes(root: Path):
    write_schedule(root, "london", "0 8 * * sun", "Europe/London")
    write_schedule(root, "newyork", "0 9 * * sun", "America/New_York")
    background = BackgroundScheduler(timezone=UTC)
    background.start(paused=True)
    try:
        scheduler.ScheduleJobs(background, root, GRACE, None, threading.Event()).reload(utc(2026, 10, 19))
        assert next_run(background, "london") == utc(2026, 10, 25, 8)
        assert next_run(background, "newyork") == utc(2026, 10, 25, 13)
        later = job_of(background, "newyork").trigger.get_next_fire_time(None, utc(2026, 10, 26))
        assert later == utc(2026, 11, 1, 14)  # 09:00 EST, an hour later in UTC
    finally:
        background.shutdown()


# -- in real time: the jobs, two daemons, the daemon ------------------------------------


def due_an_hour_ago(root: Path, project: Project, name: str = "daily") -> datetime:
    """A daily schedule whose latest fire time was an hour ago, and an article for it."""
    fire = (datetime.now(UTC) - timedelta(hours=1)).replace(second=0, microsecond=0)
    write_schedule(root, name, f"{fire.minute} {fire.hour} * * *")
    write_markdown(root.parent / "src", "today", fire - timedelta(hours=2))
    project.ingest([str(root.parent / "src")], fire)
    return fire


def test_jobs_follow_the_schedule_files(root: Path, caplog: pytest.LogCaptureFixture):
    write_schedule(root, "daily", "0 10 * * *")
    write_schedule(root, "weekly", "0 8 * * mon", "Europe/London")
    caplog.set_level("INFO", "newsletter.scheduler")
    background = BackgroundScheduler(timezone=UTC)
    background.start(paused=True)
    try:
        jobs = scheduler.ScheduleJobs(background, root, GRACE, None, threading.Event())
        assert len(jobs.reload(NOW)) == 2
        assert jobs.reload() == []
        job = job_of(background, "weekly")
        assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, 6 * 3600)
        assert str(job.trigger.timezone) == "Europe/London"
        assert job.next_run_time == datetime(2026, 11, 30, 8, tzinfo=LONDON)
        os.utime(root / "schedules" / "weekly.toml", ns=(1, 1))  # same timing: the job stands
        write_schedule(root, "daily", "30 11 * * *")
        (root / "schedules" / "broken.toml").write_text("title = ")
        notes = jobs.reload()
        assert "weekly updated" in notes
        assert "broken invalid (not scheduled)" in notes
        assert next_run(background, "daily").time().isoformat() == "11:30:00"
        (root / "schedules" / "weekly.toml").unlink()
        assert jobs.reload() == ["weekly removed"]
        assert {j.id for j in background.get_jobs()} == {"schedule:daily", "sources:daily"}
        poll = background.get_job("sources:daily")
        assert poll is not None and poll.next_run_time is not None
        assert poll.next_run_time.time().isoformat() == "11:20:00"  # POLL_AHEAD before the send
        assert "reloaded schedules: weekly removed" in caplog.text
    finally:
        background.shutdown()


def test_a_job_past_its_time_still_runs_within_grace(
    root: Path, sender: Project, smtp_server: SMTPServer, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET)  # jobs open the project from the environment
    fire = due_an_hour_ago(root, sender)
    emails = subscribe(sender, 3)
    background = BackgroundScheduler(timezone=UTC)
    jobs = scheduler.ScheduleJobs(background, root, GRACE, smtp_server.url, threading.Event())
    jobs.reload(since=fire - timedelta(minutes=1))  # as if the catch-up had begun before it fired
    background.start()
    try:
        deadline = time.monotonic() + 10
        while (
            Issues(sender.store).issues("daily") == []
            or Issues(sender.store).issues("daily")[0].status != "sent"
        ):
            assert time.monotonic() < deadline, "the job did not run"
            time.sleep(0.05)
    finally:
        background.shutdown(wait=True)
    assert recipients(smtp_server) == emails
    assert Issues(sender.store).issues("daily")[0].period.end == fire


def daemon(root: Path, *args: str, secret: bool = True) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update({**(ENV if secret else {}), "PYTHONUNBUFFERED": "1", "NEWSLETTER_ALLOW_PLACEHOLDERS": "1"})
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter.cli", "--project", str(root), "run", *args],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_two_daemons_on_one_database_send_each_message_once(
    root: Path, sender: Project, smtp_server: SMTPServer
):
    due_an_hour_ago(root, sender)
    emails = subscribe(sender, 50)
    smtp_server.handler.delay = 0.01  # long enough for the two to overlap
    both = [daemon(root, "--once", "--transport", smtp_server.url) for _ in range(2)]
    logs = [p.communicate(timeout=60)[1] for p in both]
    assert [p.returncode for p in both] == [0, 0], logs
    assert recipients(smtp_server) == sorted(emails)
    [issue] = Issues(sender.store).issues("daily")
    assert issue.status == "sent"
    # Each logs its run; between them they sent each message once (usually about half each).
    by_each = [int(n) for log in logs for n in re.findall(r"(\d+) sent by this run", log)]
    assert len(by_each) == 2, logs
    assert sum(by_each) == 50, logs


class Lines:
    """A process's stderr, read by a thread, waited on line by line."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.seen: list[str] = []
        self.queue: queue.Queue[str] = queue.Queue()
        stream = process.stderr
        assert stream is not None

        def pump() -> None:
            for line in stream:
                self.queue.put(line)

        threading.Thread(target=pump, daemon=True).start()

    def wait_for(self, *needles: str, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while True:
            for line in self.seen:
                if all(n in line for n in needles):
                    return line
            try:
                self.seen.append(self.queue.get(timeout=max(0.01, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"no line with {needles} in:\n{''.join(self.seen)}") from None


@pytest.mark.slow
def test_the_daemon_catches_up_reloads_and_stops_on_sigterm(
    root: Path, sender: Project, smtp_server: SMTPServer
):
    fire = due_an_hour_ago(root, sender)
    subscribe(sender, 2)
    process = daemon(root, "--transport", smtp_server.url, "--grace", "3h")
    try:
        lines = Lines(process)
        assert "(2 sent; 2 sent by this run" in lines.wait_for("daily ", f"{fire:%Y-%m-%d %H:%M} UTC: sent")
        lines.wait_for("schedules: daily next ")
        write_schedule(root, "extra", "0 6 * * mon", "Europe/London")
        write_schedule(root, "daily", f"{(fire.minute + 1) % 60} {fire.hour} * * *")
        lines.wait_for("reloaded schedules: ", "extra next ")  # one reload, or two if a poll
        lines.wait_for("reloaded schedules: ", "daily next ")  # fell between the writes
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        lines.wait_for("stopped")
    finally:
        if process.poll() is None:
            process.kill()
    assert len(smtp_server.handler.messages) == 2


@pytest.mark.slow
def test_sigterm_mid_send_finishes_the_message_in_flight_and_a_restart_sends_the_rest(
    root: Path, sender: Project, smtp_server: SMTPServer
):
    due_an_hour_ago(root, sender)
    emails = subscribe(sender, 20)
    smtp_server.handler.delay = 0.1
    process = daemon(root, "--transport", smtp_server.url)
    try:
        deadline = time.monotonic() + 15
        while len(smtp_server.handler.messages) < 2:
            assert time.monotonic() < deadline, "no send started"
            assert process.poll() is None, "no send started"
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        _, log = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, log
    assert "WARNING daily " in log
    assert ": stopped (" in log
    assert "INFO running" not in log
    assert 2 <= len(smtp_server.handler.messages) < 20
    assert Issues(sender.store).issues("daily")[0].status == "sending"
    smtp_server.handler.delay = 0
    again = daemon(root, "--once", "--transport", smtp_server.url)
    _, log = again.communicate(timeout=30)
    assert again.returncode == 0, log
    assert ": sent (20 sent;" in log, log
    assert recipients(smtp_server) == sorted(emails)  # each exactly once
    assert Issues(sender.store).issues("daily")[0].status == "sent"


@pytest.mark.slow
def test_run_once_reads_the_bounce_mailbox_before_it_sends(
    root: Path, sender: Project, smtp_server: SMTPServer, tmp_path: Path
):
    fire = due_an_hour_ago(root, sender)
    write_markdown(root.parent / "src", "yesterday", fire - timedelta(days=1, hours=2))
    sender.ingest([str(root.parent / "src")], fire)
    gone, kept = subscribe(sender, 2)
    yesterday = send_schedule(sender, "daily", fire - timedelta(days=1), smtp_server.url, FAST)
    assert yesterday.outcome == "sent"
    mailbox = tmp_path / "bounces"
    for sub in ("cur", "new", "tmp"):
        (mailbox / sub).mkdir(parents=True)
    verp = smtp_server.handler.received_by(gone)[-1].sender
    (mailbox / "new" / "1.bounce").write_bytes(dsn(verp, gone, "5.1.1"))
    settings = root / "newsletter.toml"
    settings.write_text(settings.read_text() + f'\n[bounces]\nmailbox = "{mailbox}"\n')
    smtp_server.handler.messages.clear()
    process = daemon(root, "--once", "--transport", smtp_server.url)
    _, log = process.communicate(timeout=60)
    assert process.returncode == 0, log
    assert "bounces: " in log and "1 hard bounces; 1 suppressed" in log
    assert recipients(smtp_server) == [kept]  # today's issue skipped the address that bounced
    assert os.listdir(mailbox / "new") == []


@pytest.mark.slow
def test_run_once_exits_1_when_a_send_fails(root: Path, sender: Project):
    due_an_hour_ago(root, sender)
    subscribe(sender, 1)
    process = daemon(root, "--once", secret=False)
    _, log = process.communicate(timeout=60)
    assert process.returncode == 1, log
    assert "NEWSLETTER_SECRET_KEY" in log
    assert "Error: 1 of 1 scheduled sends did not complete" in log


def test_a_catch_up_after_twelve_missed_fire_times_carries_all_their_articles(
    root: Path, sender: Project, smtp_server: SMTPServer, tmp_path: Path
):
    write_schedule(root, "hourly", "0 * * * *")
    (root / "schedules" / "hourly.toml").write_text(
        (root / "schedules" / "hourly.toml").read_text() + 'max_per_category = 20\ncatch_up = "1d"\n'
    )
    subscribe(sender, 1)
    last = utc(2026, 11, 26, 0)
    for hour in range(13):  # one article an hour; the first goes out before the daemon stops
        published = last - timedelta(minutes=30) + timedelta(hours=hour)
        write_markdown(tmp_path / "src", f"hour-{hour:02}", published)
    sender.ingest([str(tmp_path / "src")], last + timedelta(hours=13), CATEGORY)
    [first] = due_sends.catch_up(sender, last, GRACE, smtp_server.url)
    assert first is not None
    assert first.outcome == "sent"
    # Down for the 12 fire times after `last`; back within a grace that covers them all.
    [caught_up] = due_sends.catch_up(
        sender, last + timedelta(hours=12, minutes=5), timedelta(hours=13), smtp_server.url
    )
    assert caught_up is not None
    assert caught_up.outcome == "sent"
    assert (caught_up.period_start, caught_up.period_end) == (last, last + timedelta(hours=12))
    newest = Issues(sender.store).issues("hourly")[0]
    carried = set(Issues(sender.store).issue_article_ids(newest.id))
    titles = {s.article.title for s in sender.store.articles() if s.id in carried}
    assert titles == {f"hour-{h:02}" for h in range(1, 13)}  # none fell between the missed hours
