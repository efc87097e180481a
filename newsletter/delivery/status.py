"""`newsletter status`: gathers how the newsletter is doing, from the store, the schedule
files and the bounce mailbox; status_report.py says it. Reads only: nothing is sent,
polled or moved.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from newsletter.core import schedules
from newsletter.core.durations import format_duration
from newsletter.core.errors import NewsletterError
from newsletter.core.models import IssueStatus, Schedule
from newsletter.delivery import approval
from newsletter.delivery.due_sends import (
    due_fire_time,
    missed_send,
    missed_waiting_words,
    missed_words,
    send_command,
)
from newsletter.delivery.status_report import (
    LastIssue,
    ListStatus,
    MailboxStatus,
    ScheduleStatus,
    SourceStatus,
    Status,
    Unfinished,
)
from newsletter.digest import selection as select
from newsletter.project import Project
from newsletter.storage import census, polls
from newsletter.storage.issues import IssueRecord, Issues
from newsletter.storage.queue import DeliveryQueue


def gather(project: Project, now: datetime, grace: timedelta) -> Status:
    return Status(
        now=now,
        timezone=project.settings.site.timezone,
        schedules=tuple(
            _schedule(project, name, now, grace) for name in schedules.schedule_names(project.root)
        ),
        sources=_sources(project),
        mailbox=_mailbox(project),
        audience=ListStatus(
            census.list_counts(project.store),
            tuple((m.days, m.joined, m.left) for m in census.movements(project.store, now)),
        ),
    )


def _schedule(project: Project, name: str, now: datetime, grace: timedelta) -> ScheduleStatus:
    schedule = project.schedule(name)
    issues = sorted(Issues(project.store).issues(name), key=lambda i: i.period.end)
    gone = [i for i in issues if i.status != IssueStatus.BUILT]
    missed = missed_send(project, schedule, now, grace)
    next_send = _next_send(schedule, gone, now)
    return ScheduleStatus(
        name=name,
        timezone=schedule.timezone,
        last=_last(project, gone[-1]) if gone else None,
        next_send=next_send,
        missed=_missed(project, schedule, missed, grace),
        unfinished=tuple(
            _unfinished(project, schedule, i, now) for i in gone if i.status == IssueStatus.SENDING
        ),
        waiting=_waiting(project, schedule, next_send, now, grace),
    )


def _missed(project: Project, schedule: Schedule, missed: datetime | None, grace: timedelta) -> str:
    if missed is None:
        return ""
    if approval.waiting(project, schedule, missed):
        return missed_waiting_words(schedule, missed, grace)
    return missed_words(schedule, missed, grace)


def _waiting(
    project: Project, schedule: Schedule, next_send: datetime, now: datetime, grace: timedelta
) -> str:
    """The issue due now (within the grace) or the next one within `approve_ahead` of its
    send time, while unapproved."""
    due = due_fire_time(schedule, now, grace)
    ahead = next_send if next_send - now <= schedule.approve_ahead else None
    for end in (due, ahead):
        if end is not None and approval.waiting(project, schedule, end):
            return approval.waiting_words(schedule, end)
    return ""


def _next_send(schedule: Schedule, gone: list[IssueRecord], now: datetime) -> datetime:
    """The next fire time whose issue has not gone out: after a `send` ahead of its time
    (the upcoming period sent early) that is the one after it, not the one just sent."""
    upcoming = select.send_time(schedule, now)
    while any(i.period.end == upcoming for i in gone):
        upcoming = select.send_time(schedule, upcoming + timedelta(seconds=1))
    return upcoming


def _last(project: Project, issue: IssueRecord) -> LastIssue:
    counts = DeliveryQueue(project.store).counts(issue.id)
    return LastIssue(issue.period.end, issue.status, issue.subject, issue.sent_at, counts)


def _unfinished(project: Project, schedule: Schedule, issue: IssueRecord, now: datetime) -> Unfinished:
    queue = DeliveryQueue(project.store)
    held = census.held(project.store, issue.id)
    next_try = queue.next_due(issue.id, now)
    lifetime = project.settings.sending.queue_lifetime
    command = send_command(schedule.name, issue.period.end)
    attention = ""
    if issue.queued_at is not None and now - issue.queued_at > lifetime:
        attention = (
            f"past its {format_duration(lifetime)} queue lifetime; finish it with `{command} --retry-failed`"
        )
    elif held.tried and not held.in_flight and (next_try is None or next_try <= now):
        # Tried, due again, and nobody sending: the breaker paused it (or a send stopped).
        attention = f"paused; resume it with `{command}` once the server takes mail again"
    return Unfinished(issue.period.end, queue.waiting(issue.id), held.reason, next_try, attention)


def _sources(project: Project) -> tuple[SourceStatus, ...]:
    known = polls.states(project.store)
    found = []
    for source in project.settings.sources:
        state = known.get(source.name)
        if state is None:
            found.append(SourceStatus(source.name, "never polled", None, None, ""))
        else:
            found.append(
                SourceStatus(source.name, state.status, state.polled_at, state.succeeded_at, state.message)
            )
    return tuple(found)


def _mailbox(project: Project) -> MailboxStatus | None:
    from contextlib import closing

    from newsletter.delivery.mailbox import open_mailbox

    spec = project.settings.bounces.mailbox
    if not spec:
        return None
    last = census.last_bounce(project.store)
    try:
        with closing(open_mailbox(spec, project.root, project.environ)) as box:
            tally = box.tally()
    except NewsletterError as e:
        return MailboxStatus(spec, last_acted=last, error=str(e))
    return MailboxStatus(box.name, tally.waiting, tally.unhandled, last)
