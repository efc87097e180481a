"""Several `run` daemons on one PostgreSQL database (issue 22): the one holding the
scheduler lock records each period, the other stands by; SIGKILL the active one and the
standby takes the next fire time. Real processes, the private PostgreSQL, aiosmtpd on
127.0.0.1, a schedule firing every minute on the real clock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from newsletter.core.clock import local_time
from newsletter.project import Project
from newsletter.storage.issues import Issues
from tests.conftest import SMTPServer
from tests.postgres import needs_postgres, postgresql  # noqa: F401 (the fixture)
from tests.test_scheduler import ENV, Lines, root, subscribe, write_markdown, write_schedule  # noqa: F401

READERS = 5


def daemon(folder: Path, url: str, transport: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(ENV, PYTHONUNBUFFERED="1", NEWSLETTER_ALLOW_PLACEHOLDERS="1", NEWSLETTER_DATABASE_URL=url)
    command = [sys.executable, "-m", "newsletter.cli", "--project", str(folder), "run"]
    return subprocess.Popen(
        [*command, "--transport", transport, "--grace", "20s"],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )


def next_minute_with_time_to_start() -> datetime:
    """The next fire time of `* * * * *`, at least 25 s away; the last one over 20 s (the
    grace) ago, so no daemon's catch-up sends it."""
    while (datetime.now(UTC).second + 35) % 60 > 10:  # wait for :25 .. :35
        time.sleep(0.5)
    return (datetime.now(UTC) + timedelta(minutes=1)).replace(second=0, microsecond=0)


def sent_line(fire: datetime) -> str:
    """The log line of the period ending at `fire` sent."""
    return f"daily {local_time(fire - timedelta(minutes=1), 'UTC')} .. {local_time(fire, 'UTC')}: sent"


@needs_postgres
@pytest.mark.slow
def test_one_daemon_records_each_period_and_a_standby_takes_over_after_sigkill(
    root: Path,  # noqa: F811
    smtp_server: SMTPServer,
    postgresql: Callable[[], str],  # noqa: F811
):
    url = postgresql()
    project = Project(root, environ={**ENV, "NEWSLETTER_DATABASE_URL": url})
    write_schedule(root, "daily", "* * * * *")
    emails = subscribe(project, READERS)
    first = next_minute_with_time_to_start()
    second = first + timedelta(minutes=1)
    for fire in (first, second):
        write_markdown(root.parent / "src", f"at-{fire:%H%M}", fire - timedelta(seconds=30))
    project.ingest([str(root.parent / "src")], first - timedelta(minutes=2))
    a = daemon(root, url, smtp_server.url)
    b = None
    try:
        a_log = Lines(a)
        a_log.wait_for("scheduler lock taken: this daemon records the periods")
        b = daemon(root, url, smtp_server.url)
        b_log = Lines(b)
        b_log.wait_for("another daemon holds the scheduler lock: this one stands by")

        a_log.wait_for(sent_line(first), f"({READERS} sent; {READERS} sent by this run", timeout=90)
        b_log.wait_for(f"daily {local_time(first, 'UTC')}: another daemon holds the scheduler lock")
        assert sorted(r for m in smtp_server.handler.messages for r in m.recipients) == sorted(emails)

        a.send_signal(signal.SIGKILL)  # no goodbye: its session, and the lock, die with it
        a.wait(timeout=10)
        b_log.wait_for("took the scheduler lock: this daemon records the periods from now on", timeout=90)
        b_log.wait_for(sent_line(second), f"({READERS} sent; {READERS} sent by this run", timeout=30)
    finally:
        for process in (a, b):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    issues = Issues(project.store).issues("daily")
    assert sorted(i.period.end for i in issues) == [first, second]  # one issue a period
    assert all(i.status == "sent" for i in issues)
    received = sorted(r for m in smtp_server.handler.messages for r in m.recipients)
    assert received == sorted(emails * 2)  # each reader once a period
    project.close()
