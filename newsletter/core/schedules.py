"""The schedule files, `schedules/NAME.toml`: validated (pydantic), one `ConfigError`
naming the file and the key for each problem, and turned into `Schedule`s.

Their own room beside config.py (the settings file): a schedule's keys, its cron checked
to fire, its `lookback` and `catch_up`; the shared reading and validation come from there.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, field_validator

from newsletter.core.config import NAME, SCHEDULES_DIR, Strict, check_zone, read_toml, validate
from newsletter.core.durations import format_duration, parse_duration
from newsletter.core.errors import ConfigError, UnknownScheduleError
from newsletter.core.languages import check_language
from newsletter.core.models import Schedule

if TYPE_CHECKING:
    from newsletter.core.periods import CrontabTrigger


APPROVALS = ("auto", "required")


class ScheduleFile(Strict):
    title: str = Field(min_length=1)
    cron: str | None = None
    day_of_week: str | None = None
    hour: int | None = Field(default=None, ge=0, le=23)
    minute: int = Field(default=0, ge=0, le=59)
    timezone: str = "UTC"
    categories: list[str] = Field(min_length=1)
    max_per_category: int = Field(default=5, ge=1, le=100)
    related_per_article: int = Field(default=3, ge=0, le=10)
    subject: str = "{{ title }}: {{ lead.title }}"
    template: str = "digest"
    skip_if_empty: bool = True
    lookback: str | None = None
    catch_up: str | None = None
    summary_length: int = Field(default=280, ge=40, le=2000)
    language: str = ""  # default: [site] language
    preheader: str = ""  # Jinja; default: the next titles after the subject's
    approval: str = "auto"  # or "required": an editor approves each issue before it goes
    approve_ahead: str = "24h"

    _zone = field_validator("timezone")(check_zone)

    @field_validator("language")
    @classmethod
    def _language(cls, value: str) -> str:
        return check_language(value) if value else value

    @field_validator("template")
    @classmethod
    def _template(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError("a template name of letters, digits, '-' or '_' (no paths)")
        return value


def schedule_names(root: Path) -> list[str]:
    folder = root / SCHEDULES_DIR
    return sorted(p.stem for p in folder.glob("*.toml") if NAME.match(p.stem))


def load_schedule(root: Path, name: str) -> Schedule:
    if not NAME.match(name) or name not in schedule_names(root):
        raise UnknownScheduleError(name, schedule_names(root))
    path = root / SCHEDULES_DIR / f"{name}.toml"
    parsed = validate(ScheduleFile, read_toml(path), path)
    return _schedule(name, parsed, path)


def load_schedules(root: Path) -> list[Schedule]:
    return [load_schedule(root, name) for name in schedule_names(root)]


def _schedule(name: str, parsed: ScheduleFile, path: Path) -> Schedule:
    cron = _cron(parsed, path)
    return Schedule(
        name=name,
        title=parsed.title,
        cron=cron,
        timezone=parsed.timezone,
        categories=tuple(parsed.categories),
        max_per_category=parsed.max_per_category,
        related_per_article=parsed.related_per_article,
        subject=parsed.subject,
        template=parsed.template,
        skip_if_empty=parsed.skip_if_empty,
        lookback=_lookback(parsed.lookback, path),
        summary_length=parsed.summary_length,
        source=str(path),
        catch_up=_catch_up(parsed.catch_up, path),
        language=parsed.language,
        preheader=parsed.preheader,
        approval=_approval(parsed.approval, path),
        approve_ahead=_approve_ahead(parsed.approve_ahead, path),
    )


def _approval(value: str, path: Path) -> str:
    if value not in APPROVALS:
        hint = 'Write approval = "required" to approve each issue before it goes out, or leave it out.'
        raise ConfigError(str(path), "approval", f'expected "auto" or "required", got {value!r}', hint)
    return value


def _approve_ahead(value: str, path: Path) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError as e:
        raise ConfigError(str(path), "approve_ahead", f"expected {e}") from e


def _cron(parsed: ScheduleFile, path: Path) -> str:
    if parsed.cron and (parsed.day_of_week or parsed.hour is not None):
        raise ConfigError(str(path), "cron", "expected either cron or day_of_week/hour, not both")
    if parsed.cron:
        expression = " ".join(parsed.cron.split())
    elif parsed.day_of_week and parsed.hour is not None:
        expression = f"{parsed.minute} {parsed.hour} * * {parsed.day_of_week}"
    else:
        raise ConfigError(
            str(path), "cron", 'missing; expected cron = "0 8 * * mon" or day_of_week and hour keys'
        )
    _check_cron(expression, parsed.timezone, path)
    return expression


def cron_trigger(expression: str, timezone: str) -> CrontabTrigger:
    """A schedule's trigger (periods.cron_trigger). APScheduler loads with the first
    schedule, not with the settings: commands that read no schedule never import it."""
    from newsletter.core import periods

    return periods.cron_trigger(expression, timezone)


def _check_cron(expression: str, timezone: str, path: Path) -> None:
    """At load, so a cron that cannot be scheduled is one config error in every command
    (and a schedule the daemon leaves out), never a traceback at build time."""
    from newsletter.core.periods import check_fires

    fields = expression.split()
    if len(fields) == 5 and fields[2] != "*" and fields[4] != "*":
        # crontab fires when either matches, APScheduler only when both do: refuse to guess.
        raise ConfigError(
            str(path),
            "cron",
            f"expected a day of the month or a day of the week, "
            f"got both a day of the month and a day of the week in {expression!r} "
            "(crontab would fire on either); use one, or two schedules",
        )
    try:
        cron_trigger(expression, timezone)
    except ValueError as e:
        raise ConfigError(
            str(path),
            "cron",
            f'expected a crontab expression such as "0 8 * * mon" ({e}), got {expression!r}',
        ) from e
    try:
        check_fires(expression, timezone)
    except ValueError as e:  # e.g. 30 February: it parses, and never comes
        raise ConfigError(
            str(path),
            "cron",
            f"expected a crontab expression that fires at least once every 8 years, got {expression!r}",
        ) from e


def _lookback(value: str | None, path: Path) -> timedelta | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as e:
        raise ConfigError(str(path), "lookback", f"expected {e}") from e


def _catch_up(value: str | None, path: Path) -> timedelta | None:
    """How far back an issue after missed sends reaches; None: four of its periods."""
    from newsletter.core.periods import MAX_CATCH_UP

    if value is None:
        return None
    hint = 'Write how far back an issue after missed sends may reach, e.g. catch_up = "4w".'
    try:
        span = parse_duration(value)
    except ValueError as e:
        raise ConfigError(str(path), "catch_up", f"expected {e}", hint) from e
    if span > MAX_CATCH_UP:
        longest = format_duration(MAX_CATCH_UP)
        raise ConfigError(str(path), "catch_up", f"expected at most {longest}, got {value!r}", hint)
    return span
