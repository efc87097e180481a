"""Our crontab reading against a reference: croniter, over many generated expressions.

In UTC (no clock changes: those rules are tested in test_periods.py) the fire times of
`periods` must be croniter's, for every expression a crontab user may write, with
crontab's day-of-week numbering (0 and 7 are Sunday, `*/2` means Sun, Tue, Thu, Sat).
Expressions naming both a day of the month and a day of the week are refused at load
(crontab fires when either matches, APScheduler when both do): see the last test.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.core import periods, schedules
from newsletter.core.errors import ConfigError

START = datetime(2026, 1, 1, tzinfo=UTC)
FIRES = 12


def field(low: int, high: int) -> st.SearchStrategy[str]:
    """One crontab field: *, a number, a range, a step, or a list of those. Left out: a
    one-value range `N-N` (croniter 7 reads `0-0` in the day of week as every day) and a
    step wider than its range (`0-1/2`: APScheduler refuses it, and so does our load)."""
    number = st.integers(low, high)
    single = st.one_of(
        st.just("*"),
        number.map(str),
        st.tuples(number, number).filter(lambda p: p[0] < p[1]).map(lambda p: f"{p[0]}-{p[1]}"),
        st.integers(1, max(1, (high - low) // 2 + 1)).map(lambda s: f"*/{s}"),
        st.tuples(number, number, st.integers(1, 5))
        .filter(lambda p: p[0] + p[2] <= p[1])
        .map(lambda p: f"{p[0]}-{p[1]}/{p[2]}"),
    )
    listed = st.lists(single.filter(lambda f: f != "*"), min_size=2, max_size=3).map(",".join)
    return st.one_of(single, listed)


@st.composite
def crontab(draw: st.DrawFn) -> str:
    minute, hour = draw(field(0, 59)), draw(field(0, 23))
    month = draw(st.one_of(st.just("*"), field(1, 12)))
    if draw(st.booleans()):
        day, weekday = draw(field(1, 28)), "*"
    else:
        day, weekday = "*", draw(field(0, 7))
    return f"{minute} {hour} {day} {month} {weekday}"


def ours(expression: str) -> list[datetime]:
    trigger = periods.cron_trigger(expression, "UTC")
    fires, moment = [], START
    for _ in range(FIRES):
        fire = periods.next_fire(trigger, moment)
        fires.append(fire.astimezone(UTC))
        moment = fire + timedelta(seconds=1)
    return fires


def reference(expression: str) -> list[datetime]:
    # croniter counts a fire at START itself as "next" only from just before it.
    it = croniter(expression, START - timedelta(seconds=1))
    return [it.get_next(datetime).astimezone(UTC) for _ in range(FIRES)]


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@given(crontab())
def test_fire_times_are_croniters(expression: str):
    assert ours(expression) == reference(expression)


@pytest.mark.parametrize(
    "expression",
    ["0 8 * * */2", "0 8 * * 0", "0 8 * * 7", "0 8 * * 1-5", "30 1 * * sun", "0 8 * * 5-7", "0 8 * * 0-3"],
)
def test_the_day_of_week_rules_crontab_users_write(expression: str):
    assert ours(expression) == reference(expression)


def test_every_other_day_of_the_week_is_sunday_tuesday_thursday_saturday():
    days = {fire.strftime("%a") for fire in ours("0 8 * * */2")}
    assert days == {"Sun", "Tue", "Thu", "Sat"}


def test_a_day_of_month_with_a_day_of_week_is_refused_at_load(tmp_path: Path):
    (tmp_path / "newsletter.toml").write_text(
        '[site]\nname = "X"\nbase_url = "https://example.org"\n[email]\nfrom = "X <x@example.org>"\n'
    )
    (tmp_path / "schedules").mkdir()
    (tmp_path / "schedules" / "first.toml").write_text(
        'title = "First Monday"\ncron = "0 8 1-7 * mon"\ncategories = ["News"]\n'
    )
    with pytest.raises(ConfigError, match="both a day of the month and a day of the week"):
        schedules.load_schedule(tmp_path, "first")
