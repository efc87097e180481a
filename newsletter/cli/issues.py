"""Commands on issues: build, demo, preview, approve, send, run."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from newsletter.core.errors import NewsletterError

if TYPE_CHECKING:
    from datetime import datetime

    from newsletter.delivery.send import SendSummary
    from newsletter.project import Build, Project

from newsletter.cli.archive import show_ingest
from newsletter.cli.base import (
    checked_transport,
    echo_err,
    emit_json,
    main,
    now,
    open_project,
    parse_moment,
    project_root,
)

# `send` and `worker` deliver alike: one wording of their delivery options.
rate_option = click.option(
    "--rate",
    type=click.FloatRange(min=0.1),
    default=None,
    help="At most this many messages per second through the transport: all connections and "
    "worker processes together, on every machine (the count is kept in the database).",
)
connections_option = click.option(
    "--connections",
    type=click.IntRange(1, 32),
    default=1,
    show_default=True,
    help="Parallel SMTP connections (of each worker process).",
)


@main.command()
@click.argument("schedule")
@click.option(
    "--at",
    "at",
    default=None,
    help="Build as of this moment (ISO 8601; default now; without an offset, in the schedule's time zone).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder for SCHEDULE-YYYY-MM-DD.{html,txt,eml} (default: PROJECT/issues).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the issue as JSON.")
@click.pass_context
def build(ctx: click.Context, schedule: str, at: str | None, out: str | None, as_json: bool) -> None:
    """Build a schedule's issue as of a moment and write its files."""
    project = open_project(ctx)
    zone = project.schedule(schedule).zone
    folder = Path(out) if out else project.root / "issues"
    result = project.build(schedule, parse_moment(at, zone), now(), folder)
    show_build(result, as_json)


def show_build(result: Build, as_json: bool) -> None:
    from newsletter.project import build_json

    if as_json:
        emit_json(build_json(result))
        return
    data = build_json(result)
    for warning in data["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    if result.skipped:
        click.echo(
            f"{result.schedule.name}: nothing new from {data['period']['start']} to "
            f"{data['period']['end']}; skipped (skip_if_empty)"
        )
        return
    assert result.issue is not None
    click.echo(
        f"{result.schedule.name}: {len(result.digest.articles)} articles, "
        f"{result.issue.html_size / 1024:.1f} KB HTML; subject: {result.issue.subject}"
    )
    for path in result.files.values():
        click.echo(f"  {path}")


@main.command()
@click.argument("directory", default="demo", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the built issues as JSON.")
def demo(directory: str, as_json: bool) -> None:
    """Make a demo project from the sample articles and build its issues."""
    from newsletter import scaffold
    from newsletter.audience import files as audience
    from newsletter.project import Project, build_json

    root = Path(directory)
    scaffold.init_demo(root)
    project = Project(root)
    try:
        report = project.ingest([str(scaffold.demo_articles())], now())
        audience.import_csv(project, scaffold.demo_subscribers(), now())
        if not as_json:
            show_ingest(report, as_json=False)
        builds = [
            project.build(s.name, scaffold.DEMO_AT, now(), project.root / "issues")
            for s in project.schedules()
        ]
    finally:
        project.close()
    if as_json:
        emit_json([build_json(b) for b in builds])
        return
    for result in builds:
        show_build(result, as_json=False)
    click.echo(
        f"\nOpen {project.root / 'issues'} in a browser. Next: "
        f"`newsletter --project {directory} preview`, or send to {directory}/outbox with "
        f"NEWSLETTER_SECRET_KEY=... newsletter --project {directory} send weekly "
        f"--at {scaffold.DEMO_AT.isoformat()}"
    )


@main.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; keep it on loopback unless you mean to share drafts (any other "
    "address requires a login: NEWSLETTER_PREVIEW_PASSWORD).",
)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.pass_context
def preview(ctx: click.Context, host: str, port: int) -> None:
    """Serve the editor preview: any schedule's issue as of any date, desktop and mobile."""
    from newsletter.web.preview import serve  # the web stack loads only when asked for

    serve(project_root(ctx), host, port)


@main.command()
@click.argument("schedule")
@click.option(
    "--at",
    "at",
    default=None,
    help="Send the issue due after this moment (ISO 8601; "
    "default now): the period ending at the next send time.",
)
@click.option(
    "--transport",
    default=None,
    callback=checked_transport,
    help="smtp://host:port, smtp+starttls://, smtps:// or file:DIR (default: [email] transport).",
)
@click.option("--dry-run", is_flag=True, help="Show who would get what; record and send nothing.")
@rate_option
@connections_option
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Worker processes that deliver the issue (default: one per core, at most one per 1,000 "
    "deliveries due).",
)
@click.option(
    "--retry-unknown",
    is_flag=True,
    help="Send again the messages whose outcome is "
    "unknown (connection lost after the whole message went out).",
)
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Queue again the deliveries that expired after "
    "server-wide failures (the relay refused or was unreachable for the queue lifetime).",
)
@click.option(
    "--allow-placeholders",
    is_flag=True,
    envvar="NEWSLETTER_ALLOW_PLACEHOLDERS",
    help="Send over SMTP even with the From or postal address `init` wrote as a placeholder "
    "(for a test; also NEWSLETTER_ALLOW_PLACEHOLDERS=1).",
)
@click.option(
    "--test",
    "tests",
    multiple=True,
    metavar="ADDRESS",
    help="Send only a test, subject marked [TEST], to this address (repeatable; each must be in "
    "[preview] test_recipients); nothing is recorded.",
)
@click.option("--editor", default=None, help="Who sends the test, for desk.log (default: your login name).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def send(
    ctx: click.Context,
    schedule: str,
    at: str | None,
    transport: str | None,
    dry_run: bool,
    rate: float | None,
    connections: int,
    workers: int | None,
    retry_unknown: bool,
    retry_failed: bool,
    allow_placeholders: bool,
    tests: tuple[str, ...],
    editor: str | None,
    as_json: bool,
) -> None:
    """Send a schedule's issue to its subscribers; run again to resume."""
    from newsletter.delivery import send as sending

    project = open_project(ctx)
    zone = project.schedule(schedule).zone
    if not allow_placeholders:
        sending.check_placeholders(project.settings, project.transport_url(transport))
    if tests:
        test_send(project, schedule, parse_moment(at, zone), tests, editor, transport)
        return
    if not dry_run:
        refuse_unapproved(project, schedule, parse_moment(at, zone))
    options = sending.SendOptions(
        connections=connections,
        workers=workers or 0,  # 0: one per core, at most one per 1,000 due (workers.auto)
        rate=rate,
        dry_run=dry_run,
        retry_unknown=retry_unknown,
        retry_failed=retry_failed,
    )
    stop = threading.Event()
    with sending.stop_on_signals(stop), progress_bar(enabled=not as_json and sys.stderr.isatty()) as progress:
        summary = sending.send_schedule(
            project,
            schedule,
            parse_moment(at, zone),
            transport,
            options,
            progress=progress,
            stop=stop,
            notify=echo_err,
        )
    show_send(summary, as_json)
    if summary.outcome in SEND_FAILURES:
        raise NewsletterError(summary.message or f"send {summary.outcome}", SEND_FAILURES[summary.outcome])


def refuse_unapproved(project: Project, name: str, at: datetime) -> None:
    """`send` by hand sends an approval-required schedule's issue only once approved."""
    from newsletter.delivery import approval
    from newsletter.digest.selection import send_time

    schedule = project.schedule(name)
    end = send_time(schedule, at)
    if approval.waiting(project, schedule, end):
        raise approval.NotApprovedError(
            f"not sent: {approval.waiting_words(schedule, end).split('; ')[0]}",
            f"Read it in `newsletter preview`, then: {approval.approve_command(name, end)}",
        )


@main.command()
@click.argument("schedule")
@click.option(
    "--at",
    "at",
    default=None,
    help="Approve the issue due after this moment (ISO 8601; default now): the one going out "
    "at the next send time.",
)
@click.option("--editor", default=None, help="Who approves, for the record (default: your login name).")
@click.pass_context
def approve(ctx: click.Context, schedule: str, at: str | None, editor: str | None) -> None:
    """Approve a schedule's issue (approval = "required") so it goes out at its send time."""
    import getpass

    from newsletter.core.text import plain_line
    from newsletter.delivery import approval
    from newsletter.digest.selection import send_time

    project = open_project(ctx)
    chosen = project.schedule(schedule)
    end = send_time(chosen, parse_moment(at, chosen.zone))
    who = plain_line(editor if editor is not None else getpass.getuser())[:100] or "unknown"
    done = approval.approve(project, chosen, end, who, now())
    click.echo(
        f"{schedule}: the {end.astimezone(chosen.zone):%Y-%m-%d %H:%M} issue approved by {done.editor} "
        f"at {done.approved_at.isoformat(timespec='seconds')}; it goes out at its send time."
    )


def test_send(
    project: Project,
    schedule: str,
    at: datetime,
    tests: tuple[str, ...],
    editor: str | None,
    transport: str | None,
) -> None:
    """`send --test`: the issue to the listed test recipients only, recorded nowhere."""
    import getpass

    from newsletter.delivery.desk import TestSend, send_test

    who = editor if editor is not None else getpass.getuser()
    sent = send_test(project, TestSend(schedule, at, tests, who, transport=transport), now(), echo_err)
    click.echo(f"Test of {schedule} sent to {', '.join(sent)} (subject marked [TEST]; nothing recorded).")


# Outcomes that exit 1, with what to do. "queued" exits 0: retries are on their way.
SEND_FAILURES = {
    "paused": "Check the SMTP server and the transport URL, then run send again: nobody was marked "
    "failed or bounced because of the pause.",
    "expired": "Once the relay works again: newsletter send SCHEDULE --at ... --retry-failed.",
    "failed": "See `newsletter subscribers list` and the relay's replies above.",
}


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr; the sender's threads report to it under a lock."""
    if not enabled:
        yield None
        return
    lock = threading.Lock()
    with click.progressbar(
        length=1, label="sending", file=sys.stderr, show_pos=True, show_percent=True, show_eta=True
    ) as bar:

        def advance(count: int, total: int) -> None:
            with lock:
                bar.length = max(total, 1)
                bar.update(count)

        yield advance


def show_send(summary: SendSummary, as_json: bool) -> None:
    if as_json:
        emit_json(summary.as_json())
        return
    counts = summary.counts
    click.echo(
        f"{summary.schedule} {summary.period_end:%Y-%m-%d}: {summary.outcome}"
        + (f" ({summary.message})" if summary.message else "")
    )
    if counts:
        shown = ", ".join(
            f"{counts.get(k, 0)} {k}"
            for k in ("sent", "failed", "unknown", "skipped", "suppressed", "pending", "expired", "variants")
            if k in counts
        )
        click.echo(f"  {shown}; {summary.sent_now} sent in {summary.seconds:.1f} s")


@main.command()
@click.option(
    "--once",
    is_flag=True,
    help="Catch up and send what is due now, then exit "
    "(for cron or systemd timers) instead of running as a daemon.",
)
@click.option(
    "--grace",
    default="6h",
    show_default=True,
    help="How late a missed send may still go out (e.g. 90m, 6h, 1d).",
)
@click.option("--transport", default=None, callback=checked_transport, help="Override [email] transport.")
@click.pass_context
def run(ctx: click.Context, once: bool, grace: str, transport: str | None) -> None:
    """The scheduler daemon: sends each schedule's issue at its cron time, once per period."""
    from newsletter.scheduler import parse_grace, run_daemon

    run_daemon(project_root(ctx), once=once, grace=parse_grace(grace), transport=transport)


@main.command()
@click.option("--once", is_flag=True, help="Deliver what is due now, then exit (instead of polling).")
@connections_option
@rate_option
@click.option("--transport", default=None, callback=checked_transport, help="Override [email] transport.")
@click.pass_context
def worker(
    ctx: click.Context, once: bool, connections: int, rate: float | None, transport: str | None
) -> None:
    """Deliver the issues going out from the shared database (run one per core, on any machine)."""
    from newsletter.delivery import send as sending
    from newsletter.delivery.workers import work

    project = open_project(ctx)
    stop = threading.Event()
    options = sending.SendOptions(connections=connections, rate=rate)
    with sending.stop_on_signals(stop):
        sent = work(project, transport, options, stop, echo_err, once)
    click.echo(f"worker: {sent} sent" + ("; stopped" if stop.is_set() else ""))
