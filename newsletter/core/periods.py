"""Fire times and periods: when a schedule's cron fires and which span each issue covers.

APScheduler 3's CronTrigger decides which wall-clock times a cron matches; everything else
is arithmetic on UTC instants, because `aware_local + timedelta` is wall-clock arithmetic
that drops `fold` and, in the repeated hour of an autumn change, steps back an hour.

What APScheduler 3.11.3 does across a clock change, and the rule here (Vixie cron's):

- A wall-clock time that occurs twice (01:30 on 25 October 2026 in London) fires twice in
  APScheduler, at 01:30 BST and 01:30 GMT. Here it fires once: the first occurrence.
- A wall-clock time that does not exist (02:30 on 8 March 2026 in New York) fires in
  APScheduler at that wall time read with the offset before the gap (02:30 EST, that is
  03:30 EDT), but not from every starting point: searching from 03:10 EDT skips it, and
  `*/20 2 * * *` fires at 03:00 EDT and never at 02:20 or 02:40. So it does not reliably
  fire once there. Here every missing time fires at the first instant after the gap
  (03:00 EDT), all of one gap together, once.
- Its iteration also steps over whole days after a 23-hour day (its day increment adds 24
  real hours): after the spring change in London, `0 0 * * mon` next fires on 6 April
  2026, not on 30 March. Here the wall times are matched where no clock changes.

So APScheduler is asked only about wall-clock times, with a copy of the trigger in UTC,
where no clock ever changes; each matching wall time then becomes an instant by the two
rules above. That mapping keeps order, so a fire time is well defined whatever moment a
search starts from, and the next fire after a fire is the next one in the list.

Every search is bounded: a cron fires at least once every MAX_GAP (checked when the
schedule loads), searches give up after SEARCH_LIMIT, and loops after a fixed count.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from datetime import timezone as fixed_offset
from functools import lru_cache
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

from newsletter.core.errors import NewsletterError
from newsletter.core.models import Period

# Feb 29 is the rarest date a cron can name; 2100 is no leap year, so 2096 -> 2104.
MAX_GAP = timedelta(days=8 * 366)
# Probes of the schedule check are a year apart, so a gap passing the check is shorter.
SEARCH_LIMIT = MAX_GAP + timedelta(days=366)
# A lookback reaches back at most this far: nothing is unbounded.
MAX_LOOKBACK = timedelta(days=3 * 366)
# A catch-up after missed sends: at most `catch_up` back (the schedule's key; by default
# CATCH_UP_PERIODS of its own periods), and never more than a year, whatever the key says:
# news older than that is history, not this issue's.
MAX_CATCH_UP = timedelta(days=366)
CATCH_UP_PERIODS = 4
# The schedule check probes one moment a year across these years.
PROBE_YEARS = range(2000, 2111)
# Longer than any clock change ever (Samoa skipped 30 December 2011, 24 hours).
CHANGE_WINDOW = timedelta(hours=25)
MAX_STEPS = 10_000  # wall times walked by one search: a day of minutes is 1,440
MAX_BISECT = 64  # bisection steps: 9 years in seconds is under 2**29
MAX_WIDENINGS = 64  # doublings of a search window: a minute to 9 years is 23
WALK_STEPS = 8  # fires walked before bisecting
TICK = timedelta(microseconds=1)
SECOND = timedelta(seconds=1)
FIRST_WINDOW = timedelta(minutes=1)

DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


class FireTimeError(NewsletterError, ValueError):
    """A cron has no fire time where one was looked for (or a search ran out of steps).
    A ValueError too: callers that guard computations around arbitrary moments catch that."""

    hint = "Check the schedule's cron: it must fire at least once every 8 years."


class CrontabTrigger(CronTrigger):
    """APScheduler's CronTrigger with the rules above, so the daemon's jobs wake exactly
    at the fire times periods are computed from (once in a repeated hour)."""

    __slots__ = ("_walls",)
    _walls: CronTrigger
    timezone: ZoneInfo  # cron_trigger makes every one with a ZoneInfo

    @property
    def walls(self) -> CronTrigger:
        """The same cron in UTC: its fire times are the matching wall-clock times."""
        try:
            return self._walls
        except AttributeError:  # unset, also after unpickling
            self._walls = CronTrigger.__new__(CronTrigger)
            self._walls.__setstate__({**self.__getstate__(), "timezone": UTC})
            return self._walls

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        start = _instant(now)
        if previous_fire_time is not None:
            start = min(start, _instant(previous_fire_time) + TICK)
        try:
            return next_fire(self, start).astimezone(self.timezone)  # APScheduler's convention
        except FireTimeError:  # the trigger protocol's "no more fire times"
            return None


class AheadTrigger(BaseTrigger):
    """Fires `lead` before each fire time of another trigger: `run` polls a schedule's
    sources there, so what they publish up to then is in the issue."""

    def __init__(self, trigger: CrontabTrigger, lead: timedelta) -> None:
        self.trigger, self.lead = trigger, lead

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        previous = previous_fire_time + self.lead if previous_fire_time is not None else None
        fire = self.trigger.get_next_fire_time(previous, now + self.lead)
        return fire - self.lead if fire is not None else None


def translate(expression: str) -> str:
    """Crontab's day-of-week numbers as names: APScheduler 3 counts from Monday = 0,
    crontab from Sunday = 0 (and 7). Numeric ranges and steps are spelled out, as
    `0-3` would become `sun-wed`, a range APScheduler runs backwards from Sunday = 6."""
    fields = expression.split()
    if len(fields) == 5:
        fields[4] = ",".join(_day_names(item) for item in fields[4].split(","))
    return " ".join(fields)


DAY_ITEM = re.compile(r"(?:(\*)|([0-7])(?:-([0-7]))?)(?:/([1-9]\d?))?")


def _day_names(item: str) -> str:
    """One item of a crontab day-of-week list (`1-5`, `*/2`, `0`) as APScheduler names;
    names, a bare `*` and anything unusual are left for APScheduler to judge."""
    match = DAY_ITEM.fullmatch(item)
    if item == "*" or not match:
        return item
    every, first, last, step = match.groups()
    # `N/step` counts from N to the end of the week, as `*/step` does from Sunday.
    low, high = (0, 6) if every else (int(first), int(last) if last else 6 if step else int(first))
    if low > high:
        return item
    return ",".join(dict.fromkeys(DAY_NAMES[d] for d in range(low, high + 1, int(step or 1))))


def cron_trigger(expression: str, timezone: str) -> CrontabTrigger:
    """The trigger of a crontab expression in a zone; ValueError if it does not parse."""
    return CrontabTrigger.from_crontab(translate(expression), timezone=ZoneInfo(timezone))


def check_fires(expression: str, timezone: str) -> None:
    """ValueError unless the cron parses and fires at least once every MAX_GAP."""
    problem = _fire_problem(expression, timezone)
    if problem:
        raise ValueError(problem)


@lru_cache(maxsize=256)
def _fire_problem(expression: str, timezone: str) -> str:
    """Probed a year apart over this century and the next decade. Cached, answer and
    all: schedules load on every command and preview request, and a cron that never
    fires takes APScheduler 0.1 s to give up on."""
    trigger = cron_trigger(expression, timezone)
    for year in PROBE_YEARS:
        probe = datetime(year, 1, 1, tzinfo=UTC)
        if _raw_next(trigger.walls, probe, MAX_GAP) is None:  # wall times: each one fires
            return f"no fire time in the 8 years after {probe:%Y-%m-%d}"
    return ""


def next_fire(trigger: CrontabTrigger, at: datetime) -> datetime:
    """The first fire time at or after `at`, in the trigger's zone."""
    moment = _instant(at)
    fire = _first_fire(trigger, moment)
    if fire is None:
        raise FireTimeError(
            f"cron {_name(trigger)} does not fire in the {SEARCH_LIMIT.days} days after {moment.isoformat()}"
        )
    return _clock(trigger.timezone, fire)


def previous_fire(trigger: CrontabTrigger, before: datetime) -> datetime:
    """The last fire time strictly before `before`, in the trigger's zone. APScheduler only
    looks forward: widen a window back from `before` until a fire falls in it (starting
    from the spacing of the fires after it, the likely size), then find the last one."""
    end = _instant(before)
    window = _spacing(trigger, end)
    for _ in range(MAX_WIDENINGS):
        first = _first_fire(trigger, end - window)
        if first is not None and first < end:
            return _clock(trigger.timezone, _last_before(trigger, first, end))
        if window >= SEARCH_LIMIT:
            break
        window = min(window * 2, SEARCH_LIMIT)
    raise FireTimeError(
        f"cron {_name(trigger)}: no fire time in the {SEARCH_LIMIT.days} days before {end.isoformat()}"
    )


def fire_times(
    trigger: CrontabTrigger, start: datetime, end: datetime, limit: int = MAX_STEPS
) -> list[datetime]:
    """The fire times in [start, end), at most `limit` of them (then FireTimeError)."""
    fires: list[datetime] = []
    fire, stop = _first_fire(trigger, _instant(start)), _instant(end)
    while fire is not None and fire < stop:
        if len(fires) == limit:
            raise FireTimeError(
                f"cron {_name(trigger)}: more than {limit} fire times before {stop.isoformat()}"
            )
        fires.append(_clock(trigger.timezone, fire))
        fire = _first_fire(trigger, fire + TICK)
    return fires


def period_for(
    trigger: CrontabTrigger,
    at: datetime,
    lookback: timedelta | None = None,
    last_end: datetime | None = None,
    catch_up: timedelta | None = None,
) -> Period:
    """The period of the issue that goes out at the first fire time at or after `at`.

    It starts at the previous fire time, or further back: `lookback` before its end if
    that is earlier (a lookback decides the reach alone, at most MAX_LOOKBACK); else,
    when the schedule's last issue that went out (`last_end`) ended before the previous
    fire time, at that end, so no article falls between missed sends, but never more
    than `catch_up` before the end (default: CATCH_UP_PERIODS fire times back; at most
    MAX_CATCH_UP): an issue sent long ago (a test `send --at`, a year of downtime) must
    not turn this one into a year of news. A period always covers at least its own
    span, from the previous fire time. A new schedule (no `last_end`) starts there.
    """
    end = next_fire(trigger, at)
    previous = _instant(previous_fire(trigger, end))
    if lookback is not None:
        start = min(previous, _instant(end) - min(lookback, MAX_LOOKBACK))
    elif last_end is None or _instant(last_end) >= previous:
        start = previous
    else:
        reach = catch_up_reach(trigger, previous, _instant(end), catch_up)
        start = max(_instant(last_end), min(previous, reach))
    return Period(_clock(trigger.timezone, start), end)


def catch_up_reach(
    trigger: CrontabTrigger, previous: datetime, end: datetime, catch_up: timedelta | None
) -> datetime:
    """The earliest start of a catch-up period ending at `end` (whose previous fire time is
    `previous`): `catch_up` before `end`, or by default the fire time CATCH_UP_PERIODS back."""
    floor = _instant(end) - MAX_CATCH_UP
    if catch_up is not None:
        return max(_instant(end) - catch_up, floor)
    fire = _instant(previous)
    for _ in range(CATCH_UP_PERIODS - 1):
        if fire <= floor:
            break
        fire = _instant(previous_fire(trigger, fire))
    return max(fire, floor)


def _spacing(trigger: CrontabTrigger, moment: datetime) -> timedelta:
    """The time between the two fires after `moment`: a first guess at the one before."""
    after = _first_fire(trigger, moment)
    following = _first_fire(trigger, after + TICK) if after is not None else None
    if after is None or following is None:  # no future to guess from; the past may have fires
        return FIRST_WINDOW
    return min(max(following - after, FIRST_WINDOW), SEARCH_LIMIT)


def _last_before(trigger: CrontabTrigger, fire: datetime, end: datetime) -> datetime:
    """The last fire time before `end`, given one (`fire`): a few steps forward (the
    window is about one spacing wide), else bisection."""
    for _ in range(WALK_STEPS):
        following = _first_fire(trigger, fire + TICK)
        if following is None or following >= end:
            return fire
        fire = following
    return _bisect_last(trigger, fire, end)


def _bisect_last(trigger: CrontabTrigger, fire: datetime, end: datetime) -> datetime:
    """Bisect the moment a search starts from: up to the last fire before `end` it finds
    one before `end`, after it none (next_fire is monotonic)."""
    low, high = fire, end  # `low` is a fire before `end`; none is in [high, end)
    for _ in range(MAX_BISECT):
        if high - low <= SECOND:  # fire times are whole seconds: none is in (low, high)
            return low
        middle = low + (high - low) / 2
        found = _first_fire(trigger, middle)
        if found is not None and found < end:
            low = found
        else:
            high = middle
    raise FireTimeError(f"cron {_name(trigger)}: bisection did not converge before {end.isoformat()}")


def _first_fire(trigger: CrontabTrigger, moment: datetime) -> datetime | None:
    """The first fire time at or after the instant `moment`, as a UTC instant; None if the
    cron matches no wall-clock time within SEARCH_LIMIT."""
    zone = trigger.timezone
    wall = _wall(zone, moment) - _backstep(zone, moment)
    for _ in range(MAX_STEPS):
        match = _raw_next(trigger.walls, wall.replace(tzinfo=UTC), SEARCH_LIMIT)
        if match is None:
            return None
        fire = _fire_of(zone, match.replace(tzinfo=None))
        if fire >= moment:
            return fire
        wall = match.replace(tzinfo=None) + TICK
    raise FireTimeError(
        f"cron {_name(trigger)}: no fire time found near {moment.isoformat()} in {MAX_STEPS} steps"
    )


def _raw_next(trigger: CronTrigger, moment: datetime, limit: timedelta) -> datetime | None:
    """The base class's answer as a UTC instant, or None when it is further than `limit`.
    A cron that never fires is None after APScheduler has tried every year up to 9999
    (about 0.1 s, once, when the schedule loads)."""
    try:
        fire = CronTrigger.get_next_fire_time(trigger, None, moment)
    except (ValueError, OverflowError):  # past year 9999
        return None
    if fire is None or _instant(fire) - moment > limit:
        return None
    return _instant(fire)


def _fire_of(zone: ZoneInfo, wall: datetime) -> datetime:
    """The instant a matching wall-clock time fires at: its first occurrence (fold=0 is
    the earlier one), or the first instant after the gap when the clock skips it."""
    fire = wall.replace(tzinfo=zone).astimezone(UTC)
    if _wall(zone, fire) == wall:
        return fire
    # Missing: fold=0 reads it with the offset before the gap, fold=1 with the one after,
    # so the change is between the two readings.
    return _change_between(zone, wall.replace(tzinfo=zone, fold=1).astimezone(UTC), fire)


def _change_between(zone: ZoneInfo, before: datetime, after: datetime) -> datetime:
    """The first instant with the offset of `after`, bisected over whole seconds (tzdata
    changes fall on whole seconds, so the fire time is one too)."""
    target = _offset(zone, after)
    low, high = math.floor(before.timestamp()), math.ceil(after.timestamp())
    for _ in range(MAX_BISECT):
        if high - low <= 1:
            return datetime.fromtimestamp(high, UTC)
        middle = (low + high) // 2
        if _offset(zone, datetime.fromtimestamp(middle, UTC)) == target:
            high = middle
        else:
            low = middle
    raise FireTimeError(f"no clock change found in {zone} between {before} and {after}")


def _backstep(zone: ZoneInfo, moment: datetime) -> timedelta:
    """How far before the wall time of `moment` to start matching. A missing wall time
    fires at the end of its gap: at that instant the clock reads the gap's end, after
    the time itself. So right after a clock goes forward, start the gap's length back."""
    jump = _offset(zone, moment) - _offset(zone, moment - CHANGE_WINDOW)
    return max(jump, timedelta(0))


def _wall(zone: ZoneInfo, moment: datetime) -> datetime:
    """The naive wall-clock time of an instant in `zone`."""
    return moment.astimezone(zone).replace(tzinfo=None)


def _clock(zone: ZoneInfo, moment: datetime) -> datetime:
    """An instant as the zone's clock read it, with that fixed offset rather than the zone:
    prints and formats the same (local date, +01:00), but compares and adds as an instant.
    A ZoneInfo datetime does neither in a repeated hour: 01:30 BST on 25 October is `!=`
    the same instant in UTC (PEP 495), and `+ timedelta` drops its fold."""
    local = moment.astimezone(zone)
    return local.replace(tzinfo=fixed_offset(local.utcoffset() or timedelta(0)))


def _offset(zone: ZoneInfo, moment: datetime) -> timedelta:
    return moment.astimezone(zone).utcoffset() or timedelta(0)


def _instant(moment: datetime) -> datetime:
    """An aware datetime as a UTC instant; a naive one is refused, as it names no instant."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"expected a datetime with a time zone, got {moment.isoformat()}")
    return moment.astimezone(UTC)


def _name(trigger: CronTrigger) -> str:
    return f"{trigger} in {trigger.timezone}"
