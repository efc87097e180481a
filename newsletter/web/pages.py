"""The preview's own page templates: a Jinja environment apart from the email
renderer's, autoescaping everything, with filters for times in a schedule's zone and
the site's language (the `language` every page is given)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import jinja2
from jinja2.runtime import Context
from starlette.templating import Jinja2Templates

from newsletter.core.languages import direction
from newsletter.core.translations import hour_minute, moment, translations, weekday_day
from newsletter.project import Build, issue_stem

TEMPLATES = Path(__file__).parent / "templates"
CHECKED = "check: "  # how Project.build marks the quality check's findings among its warnings


def templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # every page: article text is untrusted here as in the email
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        # {% trans %} takes gettext from the page's context (the site's language): every
        # word of the preview goes through it or `_` (tests/test_preview_polish.py checks).
        extensions=["jinja2.ext.i18n"],
    )
    env.policies["ext.i18n.trimmed"] = True
    env.globals.update(words("en"))  # every render passes the site's: see `words`
    env.filters.update(
        when=when, day=day, clock=clock, hour=hour, picker=picker, relative=relative, zone=ZoneInfo
    )
    env.tests["checked"] = checked
    env.globals.update(issue_url=issue_url)
    return Jinja2Templates(env=env)


def words(language: str) -> dict[str, Any]:
    """What a page needs to speak `language`: `_` for its words (the mails' catalogues,
    core/translations.py), `language` for its dates, `direction` for text in it and `back`/`forth` arrows."""
    found = translations(language)
    rtl = direction(language) == "rtl"
    return {
        "_": found.gettext,
        "gettext": found.gettext,  # {% trans %} (jinja2.ext.i18n) takes these two from the context
        "ngettext": found.ngettext,
        "language": language,
        "direction": direction(language),
        # Arrows point the way the text reads: "back" and "forth" swap right to left.
        "back": "→" if rtl else "←",
        "forth": "←" if rtl else "→",
    }


def checked(warning: str) -> bool:
    """A build warning that comes from `newsletter check` (shown in its own panel)."""
    return warning.startswith(CHECKED)


def issue_url(
    name: str,
    at: datetime | None = None,
    part: str | None = None,
    variant: str | None = None,
    at_text: str | None = None,
    scheme: str | None = None,
) -> str:
    """/schedules/NAME[/issue.PART][?at=ISO][&variant=KEY][&scheme=dark]; the offset's `+`
    is encoded, not a space. `at_text`: a moment as a form sent it back."""
    path = f"/schedules/{quote(name, safe='')}" + (f"/issue.{part}" if part else "")
    query = {"at": at.isoformat() if at else at_text or "", "variant": variant or "", "scheme": scheme or ""}
    shown = {k: v for k, v in query.items() if v}
    return f"{path}?{urlencode(shown)}" if shown else path


def issue_stem_of(build: Build) -> str:
    return issue_stem(build.schedule, build.period)


@jinja2.pass_context
def when(context: Context, value: datetime, zone: ZoneInfo) -> str:
    """Mon 23 Nov 2026, 08:00 GMT: in the schedule's zone and the site's language."""
    return moment(value.astimezone(zone), language_of(context))


@jinja2.pass_context
def day(context: Context, value: datetime, zone: ZoneInfo) -> str:
    """Mon 23 Nov 2026"""
    return weekday_day(value.astimezone(zone), language_of(context))


@jinja2.pass_context
def clock(context: Context, value: datetime, zone: ZoneInfo) -> str:
    """Mon 23 Nov, 08:00 (the zone is said once, beside it)"""
    local = value.astimezone(zone)
    return moment(local, language_of(context), with_year=False).removesuffix(f" {local.tzname()}")


@jinja2.pass_context
def hour(context: Context, value: datetime, zone: ZoneInfo) -> str:
    """08:00, as a phone's inbox shows the time a mail came"""
    return hour_minute(value.astimezone(zone), language_of(context))


def language_of(context: Context) -> str:
    """The site's language ([site] language), which every page passes; English before a
    project opens (an error page)."""
    return str(context.get("language") or "en")


def picker(value: datetime, zone: ZoneInfo) -> str:
    """The "Another moment" field's value: wall time in the schedule's zone, as ISO 8601
    reads it back (`clock.parse_moment`) and in no language's own order."""
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def relative(value: datetime, now: datetime) -> str:
    """in 3 days / 5 hours ago: enough to see at a glance how far off a send is."""
    seconds = (value - now).total_seconds()
    amount = abs(seconds)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if amount >= size:
            count = int(amount // size)
            text = f"{count} {unit}{'s' if count != 1 else ''}"
            return f"in {text}" if seconds > 0 else f"{text} ago"
    return "now"
