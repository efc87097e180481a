"""What is due when `newsletter run` starts or wakes (a missed period within the grace, an
unfinished send, queued retries) and each due send run and logged. Its own room: it decides
*which* periods go out now; scheduler.py, the daemon, only decides *when* to look.
"""

from __future__ import annotations

import logging
import threading
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path

from newsletter.core import schedules
from newsletter.core.clock import local_time, utc_now
from newsletter.core.durations import format_duration
from newsletter.core.errors import NewsletterError
from newsletter.core.models import IssueStatus, Schedule
from newsletter.delivery import approval
from newsletter.delivery.send import SendSummary, allowed_placeholders, check_placeholders, send_schedule
from newsletter.digest import selection as select
from newsletter.project import Project
from newsletter.storage.issues import Issues
from newsletter.storage.queue import DeliveryQueue

# The daemon's log, whichever room a line comes from: one name to configure and to read.
log = logging.getLogger("newsletter.scheduler")

# Outcomes that need the operator; "queued" does not: the retry timer finishes it.
FAILED = ("paused", "incomplete", "stopped", "expired", "failed")
MAX_GRACE = timedelta(days=366)  # a yearly cron is the rarest; beyond that a "missed" send is history
Results = list[SendSummary | None]  # None: that schedule's run failed (and was logged)
WARNING_PREFIX = "warning: "  # how send marks a warning in what it notifies


def due_fire_time(schedule: Schedule, now: datetime, grace: timedelta) -> datetime | None:
    """The latest fire time at or before `now`, if it is at most `grace` ago."""
    latest = select.previous_send_time(schedule, now + timedelta(microseconds=1))
    return latest if now - latest <= grace else None


def run_due(
    project: Project,
    schedule: Schedule,
    fire_time: datetime,
    transport: str | None,
    stop: threading.Event | None = None,
) -> SendSummary | None:
    """Send the issue going out at `fire_time` (or learn it already went) and log one line.
    Errors are logged, not raised: one schedule's broken template must not stop the others."""
    try:
        summary = send_schedule(project, schedule.name, fire_time, transport, stop=stop, notify=_notify)
    except NewsletterError as e:
        log.error(
            "%s %s: failed: %s%s",
            schedule.name,
            local_time(fire_time, schedule.timezone),
            e,
            f" ({e.hint})" if e.hint else "",
        )
        return None
    except Exception:  # a bug or a database outage: log the traceback, keep the daemon alive
        log.exception("%s %s: failed", schedule.name, local_time(fire_time, schedule.timezone))
        return None
    level = logging.WARNING if summary.outcome in FAILED else logging.INFO
    log.log(level, "%s", describe(summary, schedule.timezone))
    return summary


def _notify(line: str) -> None:
    """What a send says along the way; its "warning: ..." lines (what a bounded catch-up
    left out, an unknown category, a DKIM key's place) at the warning level."""
    if line.startswith(WARNING_PREFIX):
        log.warning("%s", line.removeprefix(WARNING_PREFIX))
    else:
        log.info("%s", line)


def send_due(
    project: Project,
    schedule: Schedule,
    fire_time: datetime,
    now: datetime,
    transport: str | None,
    stop: threading.Event | None = None,
) -> SendSummary | None:
    """A period's send, after polling the sources that feed it: `run` needs no ingest. An
    issue waiting for approval is not sent: logged, and None (a person is needed)."""
    if approval.waiting(project, schedule, fire_time):
        log.warning("%s", approval.waiting_words(schedule, fire_time))
        return None
    refresh_sources(project, schedule, fire_time, now)
    return run_due(project, schedule, fire_time, transport, stop)


def refresh_sources(project: Project, schedule: Schedule, fire_time: datetime, now: datetime) -> None:
    """Poll the schedule's sources not polled within their `every`, unless its issue for
    `fire_time` is already going out (its articles are chosen). A source that fails is
    logged and the issue goes out with what is stored."""
    from newsletter.sources import polling as sources

    issue = Issues(project.store).issue(schedule.name, fire_time)
    if not project.settings.sources or (issue is not None and issue.status != IssueStatus.BUILT):
        return
    try:  # as the file names them: "*" is every category, also those not stored yet
        categories = schedules.load_schedule(project.root, schedule.name).categories
    except (NewsletterError, OSError):
        categories = schedule.categories
    feeding = sources.feeding(project.store, project.settings, categories)
    try:
        results = sources.poll_all(project.store, project.settings, project.root, feeding, now, due_only=True)
    except NewsletterError as e:  # the store itself failed: the send will say so too
        log.error("%s: sources not polled: %s", schedule.name, e)
        return
    except Exception:  # a bug in a reader must not keep the issue from going out
        log.exception("%s: sources not polled", schedule.name)
        return
    for result in results:
        for warning in result.warnings:
            log.warning("source %s", warning)
        level = logging.ERROR if result.failed else logging.INFO
        tail = "; the issue goes out with what is stored" if result.failed else ""
        log.log(level, "source %s: %s: %s%s", result.name, result.status, result.message, tail)


def describe(summary: SendSummary, timezone: str) -> str:
    """The run's log line: schedule, period, outcome, counts, and what this run did."""
    counts = ", ".join(f"{n} {status}" for status, n in summary.counts.items() if n)
    this_run = f"{summary.sent_now} sent by this run in {summary.seconds:.1f} s"
    detail = "; ".join(p for p in (counts, this_run, summary.message) if p)
    return (
        f"{summary.schedule} {local_time(summary.period_start, timezone)} .. "
        f"{local_time(summary.period_end, timezone)}: {summary.outcome} ({detail})"
    )


def load_logged(project: Project, name: str) -> Schedule | None:
    try:
        return project.schedule(name)
    except (NewsletterError, OSError) as e:
        log.error("%s: schedule not loaded: %s", name, e)
        return None


def catch_up(
    project: Project,
    now: datetime,
    grace: timedelta,
    transport: str | None = None,
    stop: threading.Event | None = None,
) -> Results:
    """For every schedule: finish the sends left in status "sending" (a crash or a
    stop), then send the latest period that fired within `grace` while we were down."""
    results: Results = []
    for name in schedules.schedule_names(project.root):
        if stop is not None and stop.is_set():
            break
        schedule = load_logged(project, name)
        if schedule is None:
            results.append(None)  # counted as a failure by `run --once`
            continue
        results += [
            send_due(project, schedule, end, now, transport, stop)
            for end in _catch_up_times(project, schedule, now, grace)
        ]
        build_ahead(project, schedule, now)
    return results


def build_ahead(project: Project, schedule: Schedule, now: datetime) -> None:
    """The next issue of an approval-required schedule built for its editor (logged, never
    raised: a broken template is the send's error to report, at its time)."""
    try:
        approval.build_ahead(project, schedule, now)
    except NewsletterError as e:
        log.error("%s: not built ahead for approval: %s", schedule.name, e)
    except Exception:
        log.exception("%s: not built ahead for approval", schedule.name)


def approval_rounds(
    root: Path, grace: timedelta, transport: str | None, stop: threading.Event, now: datetime | None = None
) -> Results:
    """The daemon's job for approval-required schedules: an issue approved after its send
    time (within the grace) goes out now, once; the next issue is built for its editor
    once within the schedule's `approve_ahead`. `now`: the clock's, unless a test pins it."""
    now = now or utc_now()
    try:
        opened = Project(root)
    except NewsletterError as e:
        log.error("approval: project not loaded: %s", e)
        return []
    results: Results = []
    with closing(opened) as project:
        if placeholders_refused(project, transport):
            return []
        for schedule in filter(None, (load_logged(project, n) for n in schedules.schedule_names(root))):
            if not schedule.needs_approval or stop.is_set():
                continue
            due = due_fire_time(schedule, now, grace)
            if due is not None and _approved_and_waiting_to_go(project, schedule, due):
                results.append(send_due(project, schedule, due, now, transport, stop))
            build_ahead(project, schedule, now)
    return results


def _approved_and_waiting_to_go(project: Project, schedule: Schedule, end: datetime) -> bool:
    issue = Issues(project.store).issue(schedule.name, end)
    return (
        issue is not None
        and issue.status == IssueStatus.BUILT
        and not approval.waiting(project, schedule, end)
    )


def _catch_up_times(project: Project, schedule: Schedule, now: datetime, grace: timedelta) -> list[datetime]:
    """Interrupted sends are resumed whatever their age: part of the list already has
    the issue, so the rest should get it too. A missed period only within grace."""
    ends = unfinished_sends(project, schedule, now, grace)
    due = due_fire_time(schedule, now, grace)
    if due is not None and due not in ends:
        ends.append(due)
    if not ends:
        missed = missed_send(project, schedule, now, grace)
        next_send = local_time(select.send_time(schedule, now), schedule.timezone)
        if missed is None:
            log.info("%s: nothing due; next send %s", schedule.name, next_send)
        elif approval.waiting(project, schedule, missed):
            log.warning("%s", missed_waiting_words(schedule, missed, grace))
        else:
            log.warning("%s; next send %s", missed_words(schedule, missed, grace), next_send)
    return ends


def missed_send(project: Project, schedule: Schedule, now: datetime, grace: timedelta) -> datetime | None:
    """The schedule's latest send time, if it passed more than `grace` ago and its issue
    never went out, while an earlier one did: the list expected it. A schedule that never
    sent anything has missed nothing yet (a new project's first period is no one's loss)."""
    latest = select.previous_send_time(schedule, now + timedelta(microseconds=1))
    if now - latest <= grace:
        return None
    gone = [i for i in Issues(project.store).issues(schedule.name) if i.status != IssueStatus.BUILT]
    if any(i.period.end == latest for i in gone) or not any(i.period.end < latest for i in gone):
        return None
    return latest


def missed_words(schedule: Schedule, missed: datetime, grace: timedelta) -> str:
    """How `run` and `status` say it: the period, why it did not go, the command that sends it."""
    return (
        f"{schedule.name}: the {local_time(missed, schedule.timezone)} send was missed "
        f"(past the {format_duration(grace)} grace) and not sent; send it with "
        f"`{send_command(schedule.name, missed)}`"
    )


def missed_waiting_words(schedule: Schedule, missed: datetime, grace: timedelta) -> str:
    """An approval-required issue nobody approved until past its grace: not sent."""
    return (
        f"{schedule.name}: the {local_time(missed, schedule.timezone)} issue was never approved "
        f"and is past the {format_duration(grace)} grace; not sent. To send it late: "
        f"`{approval.approve_command(schedule.name, missed)}`, then `{send_command(schedule.name, missed)}`"
    )


def send_command(name: str, end: datetime) -> str:
    return f"newsletter send {name} --at {end.isoformat()}"


def unfinished_sends(project: Project, schedule: Schedule, now: datetime, grace: timedelta) -> list[datetime]:
    """Send times of the schedule's issues still sending and within their queue lifetime;
    one recorded but never started only within `grace`, like a missed period."""
    lifetime = project.settings.sending.queue_lifetime
    ends = []
    for issue in sorted(Issues(project.store).issues(schedule.name), key=lambda i: i.period.end):
        if issue.status != IssueStatus.SENDING or not _resumable(schedule, issue.period.end):
            continue
        if issue.queued_at is not None and now - issue.queued_at > lifetime:
            log.warning(
                "%s %s: left unfinished past its %s queue lifetime; finish it with "
                "`newsletter send %s --at %s --retry-failed`",
                schedule.name,
                local_time(issue.period.end, schedule.timezone),
                format_duration(lifetime),
                schedule.name,
                issue.period.end.isoformat(),
            )
            continue
        if now - issue.period.end > grace and not DeliveryQueue(project.store).started(issue.id):
            # Nobody has it yet (recorded by an older version, or a crash before the first
            # message): sending it now would be a missed period sent late, so the grace rules.
            log.warning(
                "%s %s: recorded but never started, and past the %s grace; not sent. Send it "
                "anyway with `newsletter send %s --at %s`",
                schedule.name,
                local_time(issue.period.end, schedule.timezone),
                format_duration(grace),
                schedule.name,
                issue.period.end.isoformat(),
            )
            continue
        ends.append(issue.period.end)
    return ends


def retry_queued(
    root: Path, transport: str | None, stop: threading.Event, grace: timedelta = MAX_GRACE
) -> Results:
    """The retry timer's job: resume every unfinished send whose queued deliveries are due."""
    now = utc_now()
    try:
        opened = Project(root)
    except NewsletterError as e:
        log.error("queue: project not loaded: %s", e)
        return []
    with closing(opened) as project:
        if placeholders_refused(project, transport):
            return []
        return [
            run_due(project, schedule, end, transport, stop)
            for schedule in filter(None, (load_logged(project, n) for n in schedules.schedule_names(root)))
            for end in unfinished_sends(project, schedule, now, grace)
            if _due(project, schedule, end, now)
        ]


def _due(project: Project, schedule: Schedule, end: datetime, now: datetime) -> bool:
    issue = Issues(project.store).issue(schedule.name, end)
    if issue is None:
        return False
    due = DeliveryQueue(project.store).next_due(issue.id, now)
    return due is not None and due <= now


def _resumable(schedule: Schedule, end: datetime) -> bool:
    """Resuming calls send with `at` = the issue's end; if the cron changed since, that
    moment is no longer a send time and would name another period."""
    if select.send_time(schedule, end) == end:
        return True
    log.warning(
        "%s %s: left unfinished, and no longer a send time of cron %r; finish it with `newsletter send`",
        schedule.name,
        local_time(end, schedule.timezone),
        schedule.cron,
    )
    return False


def placeholders_refused(project: Project, transport: str | None) -> bool:
    """`run` sends nothing over SMTP from what `init` wrote as placeholders (checked at
    start and at every wake-up: newsletter.toml is read again each time), unless the
    environment says NEWSLETTER_ALLOW_PLACEHOLDERS=1."""
    if allowed_placeholders(project.environ):
        return False
    try:
        check_placeholders(project.settings, project.transport_url(transport))
    except NewsletterError as e:
        log.error("not sending: %s (%s)", e, e.hint)
        return True
    return False
