"""Selection: which articles an issue of a schedule contains. Pure: the
caller passes the moment and the candidates; nothing here reads a clock."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from newsletter.config import cron_trigger
from newsletter.models import Period, Schedule, StoredArticle

# How far back to look for the previous fire time before giving up: a yearly
# cron is the rarest schedule anyone sends a digest on.
MAX_GAP = timedelta(days=400)


def send_time(schedule: Schedule, at: datetime) -> datetime:
    """The fire time the issue built at `at` goes out at: the next one at or after `at`."""
    trigger = cron_trigger(schedule.cron, schedule.timezone)
    fire = trigger.get_next_fire_time(None, at)
    if fire is None:
        raise ValueError(f"cron {schedule.cron!r} never fires after {at.isoformat()}")
    return fire


def previous_send_time(schedule: Schedule, end: datetime) -> datetime:
    """The fire time before `end`. APScheduler 3 only looks forward, so walk
    forward from further and further back until the last fire before `end`."""
    trigger = cron_trigger(schedule.cron, schedule.timezone)
    window = timedelta(days=1)
    while window <= MAX_GAP:
        fire, previous = trigger.get_next_fire_time(None, end - window), None
        while fire is not None and fire < end:
            previous, fire = fire, trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
        if previous is not None:
            return previous
        window *= 2
    return end - MAX_GAP


def period_for(schedule: Schedule, at: datetime) -> Period:
    """From the previous fire time (or `lookback` before the send, if further) to the send."""
    end = send_time(schedule, at)
    start = previous_send_time(schedule, end)
    if schedule.lookback is not None:
        start = min(start, end - schedule.lookback)
    return Period(start, end)


def select(schedule: Schedule, period: Period, at: datetime, candidates: Iterable[StoredArticle],
           already_sent: set[int]) -> list[tuple[str, list[StoredArticle]]]:
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
