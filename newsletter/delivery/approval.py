"""Approval: an issue of an `approval = "required"` schedule goes out only once an editor
approved it. `run` builds it ahead (within the schedule's `approve_ahead` of its send time)
so the preview shows it waiting; `approve` (the CLI, the preview's button) records who and
when; due_sends.py and `send` ask `waiting` before a send starts.

Reaches no sending internals: the preview imports it (the web-sending contract).
"""

from __future__ import annotations

import logging
from datetime import datetime

from newsletter.core.durations import format_duration
from newsletter.core.errors import NewsletterError
from newsletter.core.models import Schedule
from newsletter.digest import selection as select
from newsletter.project import Project
from newsletter.storage.approvals import Approval, Approvals
from newsletter.storage.issues import GONE_OUT, Issues

# The daemon's log: approvals and waiting issues are read where the sends are.
log = logging.getLogger("newsletter.scheduler")


class NotApprovedError(NewsletterError):
    """A send of an approval-required schedule's issue nobody approved yet."""


def waiting(project: Project, schedule: Schedule, end: datetime) -> bool:
    """True when the issue going out at `end` needs an approval it does not have. An issue
    already sending or sent is past asking (it resumes as it started)."""
    if not schedule.needs_approval:
        return False
    issue = Issues(project.store).issue(schedule.name, end)
    if issue is not None and issue.status in GONE_OUT:
        return False
    return issue is None or Approvals(project.store).approval(issue.id) is None


def approved(project: Project, schedule: Schedule, end: datetime) -> Approval | None:
    """Who approved the issue going out at `end`, and when; None if nobody (or no issue yet)."""
    issue = Issues(project.store).issue(schedule.name, end)
    return None if issue is None else Approvals(project.store).approval(issue.id)


def approve(project: Project, schedule: Schedule, end: datetime, editor: str, now: datetime) -> Approval:
    """Approve the issue going out at `end` (a send time), recording it as `build` does if
    `run` has not built it yet; logged with the time and the editor's name."""
    issues = Issues(project.store)
    issue = issues.issue(schedule.name, end)
    if issue is None and project.build(schedule.name, end, now).skipped:
        raise NewsletterError(
            f"{schedule.name}: the {_local(schedule, end)} issue has nothing new yet; nothing to approve",
            "Approve it once its articles are in (`newsletter build` shows what it would hold).",
        )
    issue = issue or issues.issue(schedule.name, end)
    assert issue is not None  # project.build recorded it
    approval = Approvals(project.store).approve(issue.id, editor, now)
    log.info(
        "%s: the %s issue approved by %s at %s",
        schedule.name,
        _local(schedule, end),
        approval.editor,
        approval.approved_at.isoformat(timespec="seconds"),
    )
    return approval


def build_ahead(project: Project, schedule: Schedule, now: datetime) -> datetime | None:
    """Build and record the next issue once `now` is within `approve_ahead` of its send time,
    so an editor can read and approve it; its send time when it is waiting."""
    if not schedule.needs_approval:
        return None
    end = select.send_time(schedule, now)
    if end - now > schedule.approve_ahead:
        return None
    if Issues(project.store).issue(schedule.name, end) is not None:
        return end if waiting(project, schedule, end) else None
    if project.build(schedule.name, end, now).skipped:  # nothing new yet: nothing to read
        return None
    log.info(
        "%s: the %s issue is built %s ahead of its send and waiting for approval",
        schedule.name,
        _local(schedule, end),
        format_duration(end - now),
    )
    return end


def waiting_words(schedule: Schedule, end: datetime) -> str:
    """How `run`, `status` and `send` say it: which issue, and the command that approves it."""
    return (
        f"{schedule.name}: the {_local(schedule, end)} issue is waiting for approval; "
        f"approve it with `{approve_command(schedule.name, end)}`"
    )


def approve_command(name: str, end: datetime) -> str:
    return f"newsletter approve {name} --at {end.isoformat()}"


def _local(schedule: Schedule, end: datetime) -> str:
    return f"{end.astimezone(schedule.zone):%Y-%m-%d %H:%M}"
