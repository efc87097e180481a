from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.core.models import Article, Schedule, StoredArticle
from newsletter.digest.selection import period_for, pick_articles, previous_send_time, send_time

LONDON = ZoneInfo("Europe/London")


def schedule(**changes) -> Schedule:
    base = dict(
        name="weekly",
        title="Weekly",
        cron="0 8 * * mon",
        timezone="Europe/London",
        categories=("A", "B"),
        max_per_category=3,
    )
    return Schedule(**{**base, **changes})


def test_period_runs_from_previous_to_next_fire_time():
    period = period_for(schedule(), datetime(2026, 11, 26, 12, tzinfo=UTC))
    assert period.start == datetime(2026, 11, 23, 8, tzinfo=LONDON)
    assert period.end == datetime(2026, 11, 30, 8, tzinfo=LONDON)


def test_at_a_fire_time_the_issue_is_the_one_going_out_then():
    at = datetime(2026, 11, 23, 8, tzinfo=LONDON)
    assert period_for(schedule(), at).end == at


def test_period_across_the_clock_change_keeps_local_time():
    period = period_for(schedule(), datetime(2026, 10, 27, tzinfo=UTC))  # BST ended 25 Oct
    assert period.start == datetime(2026, 10, 26, 8, tzinfo=LONDON)
    assert period.end - period.start == timedelta(days=7)
    autumn = period_for(schedule(), datetime(2026, 10, 22, tzinfo=UTC))
    # Seven days on the clock, 7 days and an hour of real time: period datetimes are
    # instants (fixed offsets), so subtracting them gives the time that passed.
    assert autumn.end - autumn.start == timedelta(days=7, hours=1)
    assert autumn.end == datetime(2026, 10, 26, 8, tzinfo=LONDON)
    assert autumn.end.astimezone(UTC).hour == 8
    assert autumn.start.astimezone(UTC).hour == 7


def test_crontab_numbers_sunday_as_zero():
    period = period_for(schedule(cron="30 6 * * 0"), datetime(2026, 11, 26, tzinfo=UTC))
    assert period.end == datetime(2026, 11, 29, 6, 30, tzinfo=LONDON)


def test_lookback_reaches_further_back():
    period = period_for(schedule(lookback=timedelta(days=10)), datetime(2026, 11, 26, tzinfo=UTC))
    assert period.end - period.start == timedelta(days=10)


def stored(i: int, category: str, published: datetime) -> StoredArticle:
    return StoredArticle(i, Article(title=f"t{i}", published=published, source="s", category=category))


moments = st.datetimes(
    min_value=datetime(2026, 10, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["A", "B", "C"]), moments), max_size=40),
    moments,
    st.integers(1, 5),
    st.sets(st.integers(0, 40)),
)
def test_selection_stays_in_period_by_at_under_cap_and_unsent(items, at, cap, sent):
    sched = schedule(max_per_category=cap)
    period = period_for(sched, at)
    candidates = [stored(i, c, p) for i, (c, p) in enumerate(items)]
    sections = pick_articles(sched, period, at, candidates, sent)
    for category, chosen in sections:
        assert category in sched.categories
        assert 0 < len(chosen) <= cap
        for c in chosen:
            assert c.article.category == category
            assert c.id not in sent
            assert period.start <= c.article.published < period.end
            assert c.article.published <= at
        dates = [c.article.published for c in chosen]
        assert dates == sorted(dates, reverse=True)


@pytest.mark.timeout(30)
def test_the_repeated_hour_is_answered_once_and_without_a_hang():
    """Europe/London, 25 Oct 2026: 01:30 happens at 00:30Z (BST) and again at 01:30Z (GMT).
    It fires once, the first time; asking from inside the repeat used to spin forever."""
    sunday = schedule(cron="30 1 * * sun")
    first = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert previous_send_time(sunday, datetime(2026, 10, 25, 1, 45, tzinfo=UTC)) == first
    following = datetime(2026, 11, 1, 1, 30, tzinfo=UTC)
    assert send_time(sunday, datetime(2026, 10, 25, 1, 0, tzinfo=UTC)) == following
    assert period_for(sunday, datetime(2026, 10, 30, tzinfo=UTC)).start == first


def test_period_datetimes_compare_and_add_as_instants():
    period = period_for(schedule(cron="30 1 * * sun"), datetime(2026, 10, 24, tzinfo=UTC))
    assert period.end == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # a ZoneInfo 01:30 BST would be !=
    assert period.end.isoformat() == "2026-10-25T01:30:00+01:00"  # printed as the schedule's clock
    assert period.end + timedelta(hours=1) == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)


def test_a_catch_up_period_starts_where_the_last_issue_ended():
    last = datetime(2026, 11, 9, 8, tzinfo=LONDON)
    period = period_for(schedule(), datetime(2026, 11, 26, tzinfo=UTC), last_end=last)
    assert (period.start, period.end) == (last, datetime(2026, 11, 30, 8, tzinfo=LONDON))
    assert period_for(schedule(), datetime(2026, 11, 26, tzinfo=UTC), last_end=period.end) == period_for(
        schedule(), datetime(2026, 11, 26, tzinfo=UTC)
    )
