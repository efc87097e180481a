"""Fire times and periods across clock changes, rare crons and catch-up: real code, real
SQLite, APScheduler's own iteration as the reference. Every computation here is bounded;
the timeouts turn a regression into a failure instead of a hang."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.core import periods, schedules
from newsletter.core.errors import ConfigError
from newsletter.core.models import Period, Schedule
from newsletter.core.periods import CrontabTrigger, cron_trigger, fire_times, next_fire, previous_fire
from newsletter.delivery import due_sends
from newsletter.digest import selection as select
from newsletter.project import Project
from newsletter.storage.issues import Issues

LONDON, NEW_YORK, SYDNEY = (ZoneInfo(z) for z in ("Europe/London", "America/New_York", "Australia/Sydney"))
ZONES = [LONDON, NEW_YORK, SYDNEY]
YEARS = (2026, 2027)
SECOND = timedelta(seconds=1)
TIMEOUT = 30  # seconds: generous on a shared machine; these finish in well under one


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def local_midnight(zone: ZoneInfo, day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def change_days(zone: ZoneInfo, year: int) -> list[date]:
    """The local dates on which the zone's clocks change, found by looking at each day."""
    days = [date(year, 1, 1) + timedelta(n) for n in range(366)]
    return [
        d
        for d in days
        if _offset(zone, local_midnight(zone, d)) != _offset(zone, local_midnight(zone, d + timedelta(1)))
    ]


def _offset(zone: ZoneInfo, moment: datetime) -> timedelta:
    return moment.astimezone(zone).utcoffset() or timedelta(0)


def matching_walls(expression: str, start: datetime, end: datetime) -> list[datetime]:
    """Every naive wall-clock time in [start, end) the cron matches (APScheduler in UTC,
    where no clock changes)."""
    walls = CronTrigger.from_crontab(periods.translate(expression), timezone=UTC)
    found, moment = [], start.replace(tzinfo=UTC)
    while (fire := walls.get_next_fire_time(None, moment)) is not None and fire < end.replace(tzinfo=UTC):
        found.append(fire.replace(tzinfo=None))
        moment = fire + timedelta(microseconds=1)
    return found


def expected_fire(zone: ZoneInfo, wall: datetime) -> datetime:
    """The rule, computed another way: the earliest instant whose wall time is `wall`;
    if there is none (the clock skipped it), the first minute whose wall time is later."""
    readings = [wall.replace(tzinfo=zone, fold=f).astimezone(UTC) for f in (0, 1)]
    real = [r for r in readings if r.astimezone(zone).replace(tzinfo=None) == wall]
    if real:
        return min(real)
    minute = min(readings)
    while minute.astimezone(zone).replace(tzinfo=None) <= wall:
        minute += timedelta(minutes=1)
    return minute


def expected_fires(expression: str, zone: ZoneInfo, start: date, end: date) -> list[datetime]:
    walls = matching_walls(
        expression, datetime(start.year, start.month, start.day), datetime(end.year, end.month, end.day)
    )
    return sorted({expected_fire(zone, w) for w in walls})


def as_utc(moments: list[datetime]) -> list[datetime]:
    return [m.astimezone(UTC) for m in moments]


# -- the clock changes of 2026 and 2027 ------------------------------------------------

WEEKLY = ["30 1 * * sun", "30 2 * * sun", "0 8 * * sun"]


@pytest.mark.timeout(TIMEOUT)
@pytest.mark.parametrize("zone", ZONES, ids=str)
@pytest.mark.parametrize("cron", WEEKLY)
def test_weekly_crons_fire_once_every_sunday_across_the_changes(zone: ZoneInfo, cron: str):
    trigger = cron_trigger(cron, zone.key)
    first, last = date(YEARS[0], 1, 1), date(YEARS[-1] + 1, 1, 1)
    fires = fire_times(trigger, local_midnight(zone, first), local_midnight(zone, last))
    days = [first + timedelta(n) for n in range((last - first).days)]
    sundays = [d for d in days if d.weekday() == 6]
    assert [f.astimezone(zone).date() for f in fires] == sundays  # one each, nothing more
    assert as_utc(fires) == expected_fires(cron, zone, first, last)


@pytest.mark.timeout(TIMEOUT)
@pytest.mark.parametrize("zone", ZONES, ids=str)
@pytest.mark.parametrize("cron", WEEKLY)
def test_weekly_periods_are_contiguous_and_hold_one_sunday_each(zone: ZoneInfo, cron: str):
    weekly = schedule(cron, zone.key)
    trigger = cron_trigger(cron, zone.key)
    fires = as_utc(fire_times(trigger, utc(YEARS[0], 1, 1), utc(YEARS[-1] + 1, 1, 1)))
    for before, end in zip(fires, fires[1:], strict=False):
        period = select.period_for(weekly, end - timedelta(hours=30))  # mid-week: the coming one
        assert (period.start, period.end) == (before, end)
        assert select.period_for(weekly, end) == period  # at the fire time: the one going out
        assert select.previous_send_time(weekly, end) == before
        assert as_utc(fire_times(trigger, period.start + SECOND, period.end + SECOND)) == [end]
        assert timedelta(days=6, hours=22) <= period.end - period.start <= timedelta(days=7, hours=2)


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT)
@pytest.mark.parametrize("zone", ZONES, ids=str)
@pytest.mark.parametrize("cron", ["0 * * * *", "0 1 * * *", "30 1 * * sun", "30 2 * * sun"])
def test_every_hour_around_each_change_is_answered_without_a_hang(zone: ZoneInfo, cron: str):
    """The old code spun forever here: in the repeated hour, `fire + 1 s` on a local
    datetime lost fold and went back an hour. Every hour of the week after each change."""
    sched = schedule(cron, zone.key)
    for year in YEARS:
        for day in change_days(zone, year):
            start = local_midnight(zone, day) - timedelta(days=1)
            for hour in range(8 * 24):
                moment = start + timedelta(hours=hour, minutes=hour % 60)
                period = select.period_for(sched, moment)
                assert period.start < period.end
                assert moment <= period.end
                assert select.previous_send_time(sched, period.end) == period.start
                latest = select.previous_send_time(sched, moment + timedelta(microseconds=1))
                assert latest <= moment
                assert select.send_time(sched, latest) == latest


@pytest.mark.timeout(TIMEOUT)
@pytest.mark.parametrize("zone", ZONES, ids=str)
@pytest.mark.parametrize("cron", ["0 * * * *", "0 1 * * *", "*/20 2 * * *"])
def test_hourly_and_daily_crons_fire_once_per_local_time_on_change_days(zone: ZoneInfo, cron: str):
    trigger = cron_trigger(cron, zone.key)
    for year in YEARS:
        for day in change_days(zone, year):
            first, last = day - timedelta(days=2), day + timedelta(days=3)
            fires = fire_times(trigger, local_midnight(zone, first), local_midnight(zone, last))
            assert as_utc(fires) == expected_fires(cron, zone, first, last)
            assert len(set(fires)) == len(fires)
            assert fires == sorted(fires)


@pytest.mark.timeout(TIMEOUT)
@pytest.mark.parametrize("zone", ZONES, ids=str)
def test_hourly_change_days_have_23_or_24_fires(zone: ZoneInfo):
    """Forward: the skipped hour fires with the first one after the gap (one instant, one
    fire), so 23. Back: the repeated hour fires once, so 24, not 25."""
    trigger = cron_trigger("0 * * * *", zone.key)
    for year in YEARS:
        spring, autumn = sorted(change_days(zone, year), key=lambda d: -_jump(zone, d))
        for day, count in ((spring, 23), (autumn, 24)):
            fires = fire_times(trigger, local_midnight(zone, day), local_midnight(zone, day + timedelta(1)))
            assert len(fires) == count
            assert len({f.astimezone(zone).hour for f in fires}) == count


def _jump(zone: ZoneInfo, day: date) -> timedelta:
    return _offset(zone, local_midnight(zone, day + timedelta(1))) - _offset(zone, local_midnight(zone, day))


@pytest.mark.timeout(TIMEOUT)
def test_the_documented_examples():
    london = cron_trigger("30 1 * * sun", "Europe/London")
    assert as_utc(fire_times(london, utc(2026, 10, 24), utc(2026, 10, 26))) == [utc(2026, 10, 25, 0, 30)]
    new_york = cron_trigger("30 2 * * sun", "America/New_York")
    [missing] = fire_times(new_york, utc(2026, 3, 7), utc(2026, 3, 9))
    assert missing.isoformat() == "2026-03-08T03:00:00-04:00"  # the first instant after the gap
    assert next_fire(new_york, utc(2026, 3, 8, 6, 59)) == missing
    assert next_fire(new_york, missing) == missing
    following = datetime(2026, 3, 15, 2, 30, tzinfo=NEW_YORK)
    assert next_fire(new_york, missing.astimezone(UTC) + SECOND) == following
    assert previous_fire(new_york, utc(2026, 3, 9)) == missing


@pytest.mark.timeout(TIMEOUT)
def test_a_monday_midnight_after_the_23_hour_day_is_not_skipped():
    """APScheduler's own iteration jumps from Saturday 28 March 2026 to 6 April: its day
    increment adds 24 real hours to a 23-hour Sunday and lands at 01:00 on Monday."""
    monday = cron_trigger("0 0 * * mon", "Europe/London")
    assert next_fire(monday, utc(2026, 3, 28, 12)) == datetime(2026, 3, 30, tzinfo=LONDON)
    assert monday.get_next_fire_time(None, utc(2026, 3, 28, 12)) == datetime(2026, 3, 30, tzinfo=LONDON)


@pytest.mark.parametrize(
    ("days", "weekdays"),
    [
        ("0", {6}),
        ("7", {6}),
        ("sun", {6}),
        ("1-5", {0, 1, 2, 3, 4}),
        ("mon-fri", {0, 1, 2, 3, 4}),
        ("0-3", {6, 0, 1, 2}),
        ("5-7", {4, 5, 6}),
        ("*/2", {6, 1, 3, 5}),
        ("6,0", {5, 6}),
        ("*", set(range(7))),
    ],
)
def test_crontab_day_numbers_count_from_sunday(days: str, weekdays: set[int]):
    trigger = cron_trigger(f"0 8 * * {days}", "UTC")
    assert {f.weekday() for f in fire_times(trigger, utc(2026, 11, 1), utc(2026, 11, 15))} == weekdays


@pytest.mark.parametrize("days", ["5-2", "8", "7/2", "x"])
def test_bad_day_numbers_do_not_parse(days: str):
    with pytest.raises(ValueError):
        cron_trigger(f"0 8 * * {days}", "UTC")


# -- rare crons ------------------------------------------------------------------------


def schedule(cron: str, timezone: str = "Europe/London", lookback: timedelta | None = None) -> Schedule:
    return Schedule(
        name="s", title="S", cron=cron, timezone=timezone, categories=("News",), lookback=lookback
    )


@pytest.mark.timeout(TIMEOUT)
def test_a_yearly_cron_has_a_one_year_period():
    period = select.period_for(schedule("0 8 1 6 *"), datetime(2026, 4, 27, tzinfo=LONDON))
    assert period == Period(datetime(2025, 6, 1, 8, tzinfo=LONDON), datetime(2026, 6, 1, 8, tzinfo=LONDON))
    trigger = cron_trigger("0 8 1 6 *", "Europe/London")
    fires = as_utc(fire_times(trigger, utc(2026, 1, 1), utc(2036, 1, 1)))
    assert len(fires) == 10
    for before, end in zip(fires, fires[1:], strict=False):
        assert select.period_for(schedule("0 8 1 6 *"), end - timedelta(days=40)) == Period(before, end)


@pytest.mark.timeout(TIMEOUT)
def test_a_leap_day_cron_works_also_across_2100():
    leap = schedule("0 8 29 2 *")
    period = select.period_for(leap, utc(2026, 4, 27))
    assert period == Period(datetime(2024, 2, 29, 8, tzinfo=LONDON), datetime(2028, 2, 29, 8, tzinfo=LONDON))
    skipped = select.period_for(leap, utc(2100, 3, 1))  # 2100 is no leap year
    assert skipped == Period(datetime(2096, 2, 29, 8, tzinfo=LONDON), datetime(2104, 2, 29, 8, tzinfo=LONDON))


@pytest.mark.timeout(TIMEOUT)
def test_a_cron_that_never_fires_is_a_config_error_at_load(project_dir: Path):
    path = project_dir / "schedules" / "never.toml"
    path.write_text('title = "Never"\ncron = "0 8 30 2 *"\ncategories = ["News"]\n')
    with pytest.raises(ConfigError) as raised:
        schedules.load_schedule(project_dir, "never")
    assert (raised.value.path, raised.value.key) == (str(path), "cron")
    assert raised.value.expected == (
        "expected a crontab expression that fires at least once every 8 years, got '0 8 30 2 *'"
    )
    with pytest.raises(ConfigError, match="fires at least once every 8 years"):
        schedules.load_schedule(project_dir, "never")  # cached, answered the same


@pytest.mark.timeout(TIMEOUT)
def test_a_cron_that_never_fires_is_one_error_line_and_the_daemon_skips_it(
    project_dir: Path, cli, caplog: pytest.LogCaptureFixture
):
    (project_dir / "schedules" / "never.toml").write_text(
        'title = "Never"\ncron = "0 8 30 2 *"\ncategories = ["News"]\n'
    )
    result = cli("build", "never")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "cron: expected a crontab expression that fires at least once every 8 years" in result.stderr
    project = Project(project_dir, environ={})
    try:
        results = due_sends.catch_up(project, utc(2026, 11, 26, 12), timedelta(hours=6))
    finally:
        project.close()
    assert None in results  # counted as a failure by `run --once`; the others still ran
    assert "never: schedule not loaded: " in caplog.text
    assert "Traceback" not in caplog.text


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT)
def test_a_bare_search_is_bounded_and_says_so():
    never = cron_trigger("0 8 31 4 *", "UTC")
    with pytest.raises(periods.FireTimeError, match="does not fire in the 3294 days after"):
        next_fire(never, utc(2026, 1, 1))
    assert fire_times(never, utc(2026, 1, 1), utc(2036, 1, 1)) == []
    with pytest.raises(periods.FireTimeError, match="no fire time in the 3294 days before"):
        previous_fire(never, utc(2026, 1, 1))
    with pytest.raises(ValueError, match="does not fire"):
        select.period_for(schedule("0 8 31 4 *"), utc(2026, 1, 1))
    with pytest.raises(ValueError, match="time zone"):
        next_fire(cron_trigger("0 8 * * *", "UTC"), datetime(2026, 1, 1))


# -- catch-up: the period after missed sends --------------------------------------------

HOURLY = (
    'title = "Hourly"\ncron = "0 * * * *"\ntimezone = "UTC"\ncategories = ["News"]\nmax_per_category = 50\n'
    'catch_up = "1d"\n'  # the default, four periods, would be four hours
)
LAST_SENT = utc(2026, 11, 26, 0)


@pytest.fixture
def hourly(project: Project) -> Iterator[Project]:
    """A project with an hourly schedule whose last issue went out at LAST_SENT, and one
    article in each of the 12 hours after it."""
    (project.root / "schedules" / "hourly.toml").write_text(HOURLY)
    Issues(project.store).record_issue(
        "hourly", Period(LAST_SENT - timedelta(hours=1), LAST_SENT), "sent", "Hourly", [], LAST_SENT
    )
    folder = project.root.parent / "src"
    folder.mkdir()
    for hour in range(12):
        published = LAST_SENT + timedelta(hours=hour, minutes=30)
        (folder / f"h{hour}.md").write_text(
            f'---\ntitle: "Hour {hour}"\ndate: "{published.isoformat()}"\ncategory: "News"\n'
            f'summary: "About hour {hour}."\n---\nA paragraph about hour {hour}, long enough.\n'
        )
    project.ingest([str(folder)], LAST_SENT + timedelta(hours=13))
    yield project


@pytest.mark.timeout(TIMEOUT)
def test_the_catch_up_period_after_12_missed_fire_times_covers_all_12(hourly: Project):
    end = LAST_SENT + timedelta(hours=12)  # the daemon was down for the 12 fire times up to here
    digest = hourly.digest(hourly.schedule("hourly"), end)
    assert (digest.period.start, digest.period.end) == (LAST_SENT, end)
    assert sorted(a.title for a in digest.articles) == sorted(f"Hour {h}" for h in range(12))


@pytest.mark.timeout(TIMEOUT)
def test_skipped_issues_count_as_gone_out_and_built_ones_do_not(hourly: Project):
    name, end = "hourly", LAST_SENT + timedelta(hours=12)
    Issues(hourly.store).record_issue(
        name, Period(LAST_SENT, LAST_SENT + timedelta(hours=3)), "built", "", [], end
    )
    assert hourly.period(hourly.schedule(name), end).start == LAST_SENT
    Issues(hourly.store).record_issue(
        name, Period(LAST_SENT, LAST_SENT + timedelta(hours=5)), "skipped", "", [], end
    )
    assert Issues(hourly.store).last_issue_end(name, end) == LAST_SENT + timedelta(hours=5)
    assert hourly.period(hourly.schedule(name), end).start == LAST_SENT + timedelta(hours=5)
    assert Issues(hourly.store).last_issue_end(name, LAST_SENT) is None  # strictly before
    assert Issues(hourly.store).last_issue_end("other", end) is None


@pytest.mark.timeout(TIMEOUT)
def test_without_an_earlier_issue_or_when_it_is_recent_the_period_is_fire_to_fire(project: Project):
    (project.root / "schedules" / "hourly.toml").write_text(HOURLY)
    sched, end = project.schedule("hourly"), utc(2026, 11, 26, 12)
    assert project.period(sched, end) == Period(end - timedelta(hours=1), end)  # a new schedule
    Issues(project.store).record_issue(
        "hourly", Period(end - timedelta(hours=2), end - timedelta(hours=1)), "sent", "", [], end
    )
    assert project.period(sched, end) == Period(end - timedelta(hours=1), end)


def test_period_start_rules():
    end, previous = utc(2026, 11, 26, 12), utc(2026, 11, 26, 11)
    hourly = cron_trigger("0 * * * *", "UTC")
    day = timedelta(days=1)
    assert periods.period_for(hourly, end).start == previous
    twelve = end - timedelta(hours=12)
    assert periods.period_for(hourly, end, last_end=twelve, catch_up=day).start == twelve
    assert periods.period_for(hourly, end, last_end=end - timedelta(minutes=30)).start == previous
    # A catch-up reaches back at most `catch_up`: by default four of the schedule's periods.
    assert periods.period_for(hourly, end, last_end=twelve).start == end - timedelta(hours=4)
    assert periods.period_for(
        hourly, end, last_end=twelve, catch_up=timedelta(hours=5)
    ).start == end - timedelta(hours=5)
    # ... and always its own period, however short the catch_up.
    assert periods.period_for(hourly, end, last_end=twelve, catch_up=timedelta(minutes=5)).start == previous
    # A lookback decides the reach, catch-up or not: min(previous fire, end - lookback).
    assert periods.period_for(
        hourly, end, timedelta(hours=3), end - timedelta(hours=12)
    ).start == end - timedelta(hours=3)
    assert periods.period_for(hourly, end, timedelta(minutes=10), end - timedelta(hours=12)).start == previous
    # Bounded: a catch-up reaches back at most MAX_CATCH_UP (a year), a lookback MAX_LOOKBACK.
    ancient = utc(2001, 1, 1)
    assert periods.period_for(hourly, end, last_end=ancient).start == end - timedelta(hours=4)
    assert (
        periods.period_for(hourly, end, last_end=ancient, catch_up=day * 9999).start
        == end - periods.MAX_CATCH_UP
    )
    assert periods.period_for(hourly, end, timedelta(weeks=99999)).start == end - periods.MAX_LOOKBACK


# -- the daemon's trigger and APScheduler's own iteration --------------------------------


@pytest.mark.timeout(TIMEOUT)
def test_the_daemons_trigger_wakes_at_the_same_fire_times():
    """APScheduler's jobs ask the trigger for the next fire after the previous one: the
    repeated 01:30 on 25 October fires once, as periods are computed."""
    trigger = schedules.cron_trigger("30 1 * * *", "Europe/London")
    assert isinstance(trigger, CrontabTrigger)
    fire, woken = trigger.get_next_fire_time(None, utc(2026, 10, 20)), []
    while fire is not None and fire < utc(2026, 10, 30):
        woken.append(fire)
        fire = trigger.get_next_fire_time(fire, fire + timedelta(minutes=5))
    assert as_utc(woken) == as_utc(fire_times(trigger, utc(2026, 10, 20), utc(2026, 10, 30)))
    assert len(woken) == 10
    assert [w.astimezone(LONDON).hour for w in woken] == [1] * 10


# Zones with odd clocks too: half-hour DST (Lord Howe), midnight changes (São Paulo until
# 2019), a skipped day (Samoa, 30 December 2011), negative DST (Dublin), +12:45 (Chatham).
PROPERTY_ZONES = [
    "Europe/London",
    "America/New_York",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "America/Sao_Paulo",
    "Pacific/Apia",
    "Europe/Dublin",
    "Pacific/Chatham",
    "America/St_Johns",
    "Asia/Kolkata",
    "UTC",
]
CHANGES = {
    z: [d for y in range(2010, 2029) for d in change_days(ZoneInfo(z), y)] or [date(2026, 3, 1)]
    for z in PROPERTY_ZONES
}
crontabs = st.builds(
    " ".join,
    st.tuples(
        st.sampled_from(["0", "30", "*/15", "15,45", "59", "0-2", "*/20"]),
        st.sampled_from(["*", "0", "1", "2", "3", "0-3", "*/2", "1,2,3", "23", "8"]),
        st.sampled_from(["*", "*", "1", "8-14", "29", "30,31"]),
        st.sampled_from(["*", "*", "3", "10,11", "4", "12"]),
        st.sampled_from(["*", "*", "0", "sun", "1-5", "6,0", "7", "*/2", "0-3", "5-7"]),
    ),
)


def apscheduler_fires(expression: str, zone: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """APScheduler's own forward iteration, stepped in UTC: its raw (local) answers."""
    trigger = CronTrigger.from_crontab(periods.translate(expression), timezone=zone)
    found: list[datetime] = []
    moment = start
    for _ in range(5000):
        fire = trigger.get_next_fire_time(None, moment)
        if fire is None or fire.astimezone(UTC) >= end:
            return found
        found.append(fire)
        moment = fire.astimezone(UTC) + timedelta(microseconds=1)
    raise AssertionError("APScheduler's iteration did not end")


def wall_matches(expression: str, instant: datetime, zone: ZoneInfo) -> bool:
    wall = instant.astimezone(zone).replace(tzinfo=None)
    return matching_walls(expression, wall, wall + SECOND) == [wall]


@pytest.mark.slow
@pytest.mark.timeout(300)
@settings(max_examples=250, deadline=None)
@given(crontabs, st.sampled_from(PROPERTY_ZONES), st.data(), st.integers(-40 * 60, 40 * 60))
def test_fire_times_agree_with_apschedulers_iteration_modulo_the_rules(expression, zone_name, data, minutes):
    zone = ZoneInfo(zone_name)
    change = data.draw(st.sampled_from(CHANGES[zone_name]))
    start = local_midnight(zone, change) + timedelta(minutes=minutes)
    end = start + timedelta(days=2)
    trigger = cron_trigger(expression, zone_name)
    mine = as_utc(fire_times(trigger, start, end))
    raw = apscheduler_fires(expression, zone, start, end)
    assert mine == sorted(set(mine))
    # A wall time that exists fires where APScheduler fires it, its first occurrence only
    # (APScheduler may reach that instant through a missing time: 01:00 is 02:00 BST).
    first_occurrences = {f.astimezone(UTC) for f in raw if _exists(f, zone) and not _repeat(f, zone)}
    assert first_occurrences <= set(mine)
    # APScheduler's iteration also steps over whole days after a 23-hour day (its day
    # increment adds 24 real hours: 0 0 * * mon in London skips 30 March 2026); a fire
    # missing from its iteration must be one it gives when asked from a second before.
    raw_instants = {f.astimezone(UTC) for f in raw if not _repeat(f, zone)}
    for m in mine:
        if wall_matches(expression, m, zone) and m not in raw_instants:
            assert apscheduler_fires(expression, zone, m - SECOND, m + SECOND) == [m], m
    # The rest are the ends of gaps in which the cron matched a wall time.
    for m in mine:
        if not wall_matches(expression, m, zone):
            jump = _offset(zone, m) - _offset(zone, m - SECOND)
            gap_start = (m - SECOND).astimezone(zone).replace(tzinfo=None) + SECOND
            assert jump > timedelta(0)
            assert matching_walls(expression, gap_start, gap_start + jump)
    # Where APScheduler fires a missing time (the gap's length late), it fired at the gap's end.
    for f in raw:
        if not _exists(f, zone):
            after, before = f.replace(fold=1).utcoffset(), f.utcoffset()
            assert after is not None
            assert before is not None
            gap = after - before
            if f.astimezone(UTC) - gap >= start:  # so the gap's end is in the window
                assert any(f.astimezone(UTC) - gap < m <= f.astimezone(UTC) for m in mine), f
    # Searches from any moment agree with the list.
    probe = start + data.draw(st.integers(0, 2 * 86400 - 1)) * SECOND
    later = [m for m in mine if m >= probe]
    if later:
        assert next_fire(trigger, probe) == later[0]
    earlier = [m for m in mine if m < probe]
    if earlier:
        assert previous_fire(trigger, probe) == earlier[-1]


def _exists(fire: datetime, zone: ZoneInfo) -> bool:
    """APScheduler's answer is a wall time that exists (not one in a gap)."""
    return fire.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == fire.replace(tzinfo=None)


def _repeat(fire: datetime, zone: ZoneInfo) -> bool:
    return fire.astimezone(UTC).astimezone(zone).fold == 1
