"""Selection: which articles an issue of a schedule contains. Pure: the
caller passes the moment and the candidates; nothing here reads a clock."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from newsletter.core import periods
from newsletter.core.clock import local_time
from newsletter.core.durations import format_duration
from newsletter.core.models import Period, Schedule, StoredArticle


def send_time(schedule: Schedule, at: datetime) -> datetime:
    """The fire time the issue built at `at` goes out at: the next one at or after `at`."""
    return periods.next_fire(_trigger(schedule), at)


def previous_send_time(schedule: Schedule, end: datetime) -> datetime:
    """The last fire time strictly before `end`."""
    return periods.previous_fire(_trigger(schedule), end)


def period_for(schedule: Schedule, at: datetime, last_end: datetime | None = None) -> Period:
    """The period of the issue going out at `send_time(schedule, at)`: from the previous
    fire time, or `lookback` before the send if further, or (catching up) from the end of
    the schedule's last issue that went out, `last_end`, at most `catch_up` back. See
    `periods.period_for`."""
    return periods.period_for(_trigger(schedule), at, schedule.lookback, last_end, schedule.catch_up)


def left_out(schedule: Schedule, period: Period, last_end: datetime | None) -> str | None:
    """What the period leaves out since the schedule's last issue that went out, in one
    line; None when it starts where that issue ended (or there was none)."""
    if last_end is None or last_end >= period.start:
        return None
    if schedule.lookback is not None:
        bound = f"lookback = {format_duration(schedule.lookback)}"
    elif schedule.catch_up is not None:
        bound = f"catch_up = {format_duration(schedule.catch_up)}"
    else:
        bound = f"catch_up: by default {periods.CATCH_UP_PERIODS} of its periods"
    return (
        f"{schedule.name}: the last issue went out for the period ending "
        f"{local_time(last_end, schedule.zone)}; "
        f"this issue covers only the last {format_duration(period.end - period.start)} ({bound}), "
        f"from {local_time(period.start, schedule.zone)}: articles published in between are left out"
    )


def _trigger(schedule: Schedule) -> periods.CrontabTrigger:
    return periods.cron_trigger(schedule.cron, schedule.timezone)


def pick_articles(
    schedule: Schedule,
    period: Period,
    at: datetime,
    candidates: Iterable[StoredArticle],
    already_sent: set[int],
) -> list[tuple[str, list[StoredArticle]]]:
    """Per category, in the schedule's order: the newest articles of the period
    published by `at`, never one sent before, at most `max_per_category`."""
    eligible = [c for c in candidates if _eligible(c, period, at, already_sent)]
    eligible.sort(key=lambda c: (c.article.published, c.id), reverse=True)
    sections = []
    for category in schedule.categories:
        chosen = [c for c in eligible if c.article.category == category]
        if chosen:
            sections.append((category, chosen[: schedule.max_per_category]))
    return sections


def _eligible(candidate: StoredArticle, period: Period, at: datetime, sent: set[int]) -> bool:
    published = candidate.article.published
    return period.start <= published < period.end and published <= at and candidate.id not in sent


def ids_of(sections: Sequence[tuple[str, Sequence[StoredArticle]]]) -> list[int]:
    return [c.id for _, chosen in sections for c in chosen]
