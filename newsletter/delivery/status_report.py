"""How the newsletter is doing, as `newsletter status` says it: what was gathered
(status.py) in lines and in JSON, and what needs a person. Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from newsletter.core.clock import local_time


@dataclass(frozen=True)
class LastIssue:
    end: datetime
    status: str  # skipped | sending | sent
    subject: str
    sent_at: datetime | None
    counts: dict[str, int]


@dataclass(frozen=True)
class Unfinished:
    """An issue still sending: its deliveries waiting, and why."""

    end: datetime
    waiting: int
    reason: str  # the last reply a waiting delivery got; "" if none was tried yet
    next_try: datetime | None
    attention: str = ""  # what a person must do; "" if the retry timer finishes it


@dataclass(frozen=True)
class ScheduleStatus:
    name: str
    timezone: str
    last: LastIssue | None
    next_send: datetime
    missed: str = ""  # due_sends.missed_words, the command to send it included
    unfinished: tuple[Unfinished, ...] = ()
    waiting: str = ""  # approval.waiting_words: the next issue, built, needs its editor


@dataclass(frozen=True)
class SourceStatus:
    name: str
    status: str  # new | ok | not-modified | partial | failed | never polled
    polled_at: datetime | None
    succeeded_at: datetime | None
    message: str


@dataclass(frozen=True)
class MailboxStatus:
    name: str
    waiting: int = 0  # not read yet
    unhandled: int = 0  # read, not acted on, put aside for a person
    last_acted: datetime | None = None
    error: str = ""  # it could not be read


@dataclass(frozen=True)
class ListStatus:
    counts: dict[str, int]
    movements: tuple[tuple[int, int, int], ...]  # (days, joined, left)


@dataclass(frozen=True)
class Status:
    now: datetime
    timezone: str  # the site's zone, for times not a schedule's
    schedules: tuple[ScheduleStatus, ...]
    sources: tuple[SourceStatus, ...]
    mailbox: MailboxStatus | None
    audience: ListStatus


def needs(status: Status) -> list[str]:
    """What needs a person, one line each: a missed period, a paused or expired send, a
    failing source, bounce mails put aside or a mailbox that cannot be read."""
    found = [s.missed for s in status.schedules if s.missed]
    found += [s.waiting for s in status.schedules if s.waiting]
    found += [f"{s.name}: {u.attention}" for s in status.schedules for u in s.unfinished if u.attention]
    found += [
        f"source {s.name}: its last poll failed ({s.message}); fix it and run `newsletter fetch {s.name}`"
        for s in status.sources
        if s.status == "failed"
    ]
    box = status.mailbox
    if box is not None and box.error:
        found.append(f"bounce mailbox: {box.error}")
    elif box is not None and box.unhandled:
        found.append(
            f"bounce mailbox: {box.unhandled} mails could not be acted on and wait in .Unhandled; "
            "read them, delete what is not for the newsletter"
        )
    return found


def lines(status: Status) -> list[str]:
    out = [f"status at {local_time(status.now, status.timezone)}"]
    for s in status.schedules:
        out += _schedule_lines(s)
    out += (
        ["sources:"] + [f"  {_source_line(s, status.timezone)}" for s in status.sources]
        if status.sources
        else []
    )
    if status.mailbox is not None:
        out.append(_mailbox_line(status.mailbox, status.timezone))
    out.append(_list_line(status.audience))
    todo = needs(status)
    out += ["needs a person:"] + [f"  {line}" for line in todo] if todo else ["nothing needs a person"]
    return out


def _schedule_lines(s: ScheduleStatus) -> list[str]:
    zone = s.timezone
    if s.last is None:
        last = "no issue sent yet"
    else:
        counts = ", ".join(f"{n} {k}" for k, n in s.last.counts.items() if n) or "no deliveries"
        last = f"last issue {local_time(s.last.end, zone)} {s.last.status} ({counts})"
    out = [f"schedule {s.name}: {last}; next send {local_time(s.next_send, zone)}"]
    if s.missed:
        out.append(f"  missed: {s.missed}")
    if s.waiting:
        out.append(f"  waiting: {s.waiting}")
    for u in s.unfinished:
        retry = f"; next try {local_time(u.next_try, zone)}" if u.next_try and not u.attention else ""
        why = f" (last reply: {u.reason})" if u.reason else ""
        out.append(f"  unfinished {local_time(u.end, zone)}: {u.waiting} deliveries waiting{why}{retry}")
        if u.attention:
            out.append(f"    {u.attention}")
    return out


def _source_line(s: SourceStatus, zone: str) -> str:
    if s.polled_at is None:
        return f"{s.name}: never polled"
    good = "" if s.succeeded_at == s.polled_at else f"; last read {local_time(s.succeeded_at, zone)}"
    return f"{s.name}: {s.status} at {local_time(s.polled_at, zone)} ({s.message}){good}"


def _mailbox_line(box: MailboxStatus, zone: str) -> str:
    if box.error:
        return f"bounce mailbox {box.name}: {box.error}"
    return (
        f"bounce mailbox {box.name}: {box.waiting} waiting, {box.unhandled} unhandled; "
        f"last acted on {local_time(box.last_acted, zone)}"
    )


def _list_line(audience: ListStatus) -> str:
    counts = audience.counts
    shown = ", ".join(
        f"{counts.get(k, 0)} {k}"
        for k in ("active", "pending", "paused", "bounced", "complained", "unsubscribed")
    )
    moved = "; ".join(f"{days} days: +{joined} -{left}" for days, joined, left in audience.movements)
    return f"list: {shown} ({moved})"


def as_json(status: Status) -> dict[str, Any]:
    data: dict[str, Any] = _jsonable(asdict(status))
    data["needs"] = needs(status)
    data["audience"]["movements"] = [
        {"days": d, "joined": j, "left": left} for d, j, left in status.audience.movements
    ]
    return data


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
