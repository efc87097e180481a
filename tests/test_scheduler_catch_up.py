"""A bounded catch-up: after missed sends (or a test `send --at` long ago) an issue
reaches back at most `catch_up`, four of the schedule's periods by default, and says
what it left out. Real SQLite, a real SMTP server on loopback, a fixed clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.core import periods
from newsletter.core.errors import ConfigError
from newsletter.core.models import Schedule, SubscriberRow
from newsletter.delivery import due_sends
from newsletter.digest import selection as select
from newsletter.project import Project
from newsletter.storage.issues import Issues
from newsletter.storage.roster import Roster
from tests.conftest import NOW, SECRET, CliRunnerForProject, SMTPServer

CATEGORY = "News"
WEEKLY = 'title = "Weekly"\ncron = "0 8 * * mon"\ntimezone = "Europe/London"\ncategories = ["News"]\n'
# Monday 7 December 2026, half an hour after the weekly's 08:00 (GMT) send.
NOW_MONDAY = datetime(2026, 12, 7, 8, 30, tzinfo=UTC)
END = datetime(2026, 12, 7, 8, tzinfo=UTC)


def utc(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


@pytest.fixture
def root(project_dir: Path) -> Path:
    for path in (project_dir / "schedules").glob("*.toml"):
        path.unlink()
    (project_dir / "schedules" / "weekly.toml").write_text(WEEKLY)
    return project_dir


@pytest.fixture
def sender(root: Path) -> Iterator[Project]:
    opened = Project(root, environ=SECRET)
    yield opened
    opened.close()


def write_markdown(folder: Path, slug: str, published: datetime) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{slug}.md").write_text(
        f'---\ntitle: "{slug}"\ndate: "{published.isoformat()}"\ncategory: "{CATEGORY}"\n'
        f'summary: "About {slug}."\n---\nA paragraph about {slug}, long enough to be a paragraph.\n'
    )


def carried(project: Project, end: datetime) -> set[str]:
    issue = Issues(project.store).issue("weekly", end)
    assert issue is not None
    ids = set(Issues(project.store).issue_article_ids(issue.id))
    return {s.article.title for s in project.store.articles() if s.id in ids}


# -- finding 9: a past `send --at`, then `run --once` -----------------------------------


@pytest.mark.timeout(60)
def test_a_past_send_at_does_not_make_the_daemon_send_a_year_of_news(
    root: Path,
    sender: Project,
    smtp_server: SMTPServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    src = tmp_path / "src"
    write_markdown(src, "july-test", utc(2025, 7, 16, 9))  # in the test send's week
    write_markdown(src, "seventeen-months-old", utc(2025, 7, 25, 9))
    write_markdown(src, "seven-weeks-old", utc(2026, 10, 20, 9))
    write_markdown(src, "four-weeks-old", utc(2026, 11, 10, 9))
    write_markdown(src, "this-week", utc(2026, 12, 2, 9))
    sender.ingest([str(src)], NOW_MONDAY - timedelta(hours=1), CATEGORY)
    Roster(sender.store).import_subscribers([SubscriberRow(f"r{i}@example.com", "") for i in range(3)], NOW)
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET["NEWSLETTER_SECRET_KEY"])
    test_send = CliRunnerForProject(root)(
        "send", "weekly", "--at", "2025-07-21T08:00", "--transport", smtp_server.url
    )
    assert test_send.exit_code == 0, test_send.output
    assert carried(sender, utc(2025, 7, 21, 7)) == {"july-test"}

    with caplog.at_level("INFO", "newsletter.scheduler"):
        [summary] = due_sends.catch_up(sender, NOW_MONDAY, timedelta(hours=24), smtp_server.url)
    assert summary is not None
    assert summary.outcome == "sent"
    # Four weeks back (the default: four periods), not to the test send of July 2025.
    assert (summary.period_start, summary.period_end) == (END - timedelta(weeks=4), END)
    assert carried(sender, END) == {"four-weeks-old", "this-week"}
    [left_out] = [r for r in caplog.records if "left out" in r.getMessage()]
    assert left_out.levelname == "WARNING"
    assert (
        "weekly: the last issue went out for the period ending 2025-07-21 08:00 BST; this issue "
        "covers only the last 28d (catch_up: by default 4 of its periods), from 2026-11-09 08:00 GMT: "
        "articles published in between are left out"
    ) in caplog.text


def test_build_says_what_a_bounded_catch_up_leaves_out(root: Path, sender: Project, cli: CliRunnerForProject):
    Issues(sender.store).record_issue(
        "weekly", select.period_for(sender.schedule("weekly"), utc(2025, 7, 21)), "sent", "", [], NOW
    )
    (root / "schedules" / "weekly.toml").write_text(WEEKLY + 'catch_up = "10d"\nskip_if_empty = false\n')
    built = CliRunnerForProject(root)("build", "weekly", "--at", "2026-12-07T08:00", "--json")
    assert built.exit_code == 0, built.output
    assert '"start": "2026-11-27T08:00:00+00:00"' in built.output
    assert "covers only the last 10d (catch_up = 10d), from 2026-11-27 08:00 GMT" in built.output


# -- the bound: default four periods, or the schedule's key --------------------------------


def schedule(cron: str, catch_up: timedelta | None = None, timezone: str = "Europe/London") -> Schedule:
    return Schedule("s", "S", cron, timezone, (CATEGORY,), catch_up=catch_up)


@pytest.mark.parametrize(
    ("cron", "end", "reach"),
    [
        ("0 8 * * mon", END, END - timedelta(weeks=4)),
        ("0 8 * * *", END, END - timedelta(days=4)),
        # Across the October clock change: four fire times back, 08:00 BST (07:00Z).
        ("0 8 * * mon", utc(2026, 11, 2, 8), utc(2026, 10, 5, 7)),
        ("0 8 * * mon,thu", END, utc(2026, 11, 23, 8)),  # four periods of an uneven cron
    ],
)
def test_the_default_catch_up_is_four_periods(cron: str, end: datetime, reach: datetime):
    period = select.period_for(schedule(cron), end - timedelta(minutes=1), last_end=utc(2025, 7, 21, 7))
    assert (period.start, period.end) == (reach, end)
    recent = select.period_for(schedule(cron), end - timedelta(minutes=1), last_end=reach + timedelta(days=1))
    assert recent.start == reach + timedelta(days=1)  # within the bound: from the last issue


def test_a_custom_catch_up_from_the_schedule_file(sender: Project, root: Path):
    (root / "schedules" / "weekly.toml").write_text(WEEKLY + 'catch_up = "3w"\n')
    weekly = sender.schedule("weekly")
    assert weekly.catch_up == timedelta(weeks=3)
    Issues(sender.store).record_issue(
        "weekly", select.period_for(weekly, utc(2025, 7, 21)), "sent", "", [], NOW
    )
    assert sender.period(weekly, END - timedelta(hours=1)).start == END - timedelta(weeks=3)
    (root / "schedules" / "weekly.toml").write_text(WEEKLY + 'catch_up = "1d"\n')
    # Shorter than a period: the issue still covers its own week.
    assert sender.period(sender.schedule("weekly"), END - timedelta(hours=1)).start == END - timedelta(
        weeks=1
    )


@pytest.mark.parametrize("value", ['"4 weeks"', '"0s"', '"-1d"', '"367d"', "28"])
def test_a_bad_catch_up_is_one_error_naming_the_file_and_key(sender: Project, root: Path, value: str):
    (root / "schedules" / "weekly.toml").write_text(WEEKLY + f"catch_up = {value}\n")
    with pytest.raises(ConfigError) as raised:
        sender.schedule("weekly")
    message = str(raised.value)
    assert message.startswith(f"{root / 'schedules' / 'weekly.toml'}: catch_up: expected")
    assert "\n" not in message


CRONS = ["0 8 * * mon", "0 8 * * *", "30 6 * * mon,thu", "0 * * * *", "0 9 1 * *"]


@pytest.mark.timeout(120)
@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(CRONS),
    st.sampled_from(["Europe/London", "America/New_York", "UTC"]),
    st.datetimes(datetime(2026, 1, 1), datetime(2028, 1, 1), timezones=st.just(UTC)),
    st.integers(1, 3 * 366 * 24),
    st.one_of(st.none(), st.integers(1, 366 * 24).map(lambda h: timedelta(hours=h))),
)
def test_a_period_never_reaches_further_back_than_its_catch_up(
    cron: str, zone: str, now: datetime, hours_since: int, catch_up: timedelta | None
):
    trigger = periods.cron_trigger(cron, zone)
    last_end = periods.previous_fire(trigger, now - timedelta(hours=hours_since))
    period = periods.period_for(trigger, now, last_end=last_end, catch_up=catch_up)
    previous = periods.previous_fire(trigger, period.end)
    if catch_up is None:
        fire = previous
        for _ in range(periods.CATCH_UP_PERIODS - 1):
            fire = periods.previous_fire(trigger, fire)
        reach = max(fire, period.end - periods.MAX_CATCH_UP)
    else:
        reach = period.end - catch_up
    assert period.start <= previous  # always its own period
    assert period.start >= min(previous, reach)  # beyond it, at most catch_up back
    if catch_up is not None and catch_up >= period.end - previous:
        assert period.start >= period.end - catch_up  # as the key says
    assert period.start >= min(previous, last_end)  # never before the last issue's end
    if period.start > last_end:  # something left out: only because of the bound
        assert period.start == min(previous, reach)
        assert select.left_out(schedule(cron, catch_up, zone), period, last_end) is not None
    else:
        assert select.left_out(schedule(cron, catch_up, zone), period, last_end) is None
