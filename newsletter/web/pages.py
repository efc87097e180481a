"""The preview's own page templates: a Jinja environment apart from the email
renderer's, autoescaping everything, with filters for times in a schedule's zone."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import jinja2
from starlette.templating import Jinja2Templates

from newsletter.core.translations import translations
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
        # {% trans %} takes gettext from the page's context (the site's language): the
        # desk's panels speak it (web/editor.py); the rest of the preview is English.
        extensions=["jinja2.ext.i18n"],
    )
    env.policies["ext.i18n.trimmed"] = True
    env.globals.update(gettext=_english, ngettext=_english_plural)
    env.filters.update(when=when, day=day, clock=clock, picker=picker, relative=relative, zone=ZoneInfo)
    env.tests["checked"] = checked
    env.globals.update(issue_url=issue_url)
    return Jinja2Templates(env=env)


def _english(message: str) -> str:
    return message


def _english_plural(singular: str, plural: str, n: int) -> str:
    return singular if n == 1 else plural


def words(language: str) -> dict[str, Any]:
    """What a page's context needs for {% trans %} in `language`."""
    found = translations(language)
    return {"gettext": found.gettext, "ngettext": found.ngettext}


def checked(warning: str) -> bool:
    """A build warning that comes from `newsletter check` (shown in its own panel)."""
    return warning.startswith(CHECKED)


def issue_url(
    name: str,
    at: datetime | None = None,
    part: str | None = None,
    variant: str | None = None,
    at_text: str | None = None,
) -> str:
    """/schedules/NAME[/issue.PART][?at=ISO][&variant=KEY]; the offset's `+` is encoded,
    not a space. `at_text`: a moment as a form sent it back."""
    path = f"/schedules/{quote(name, safe='')}" + (f"/issue.{part}" if part else "")
    query = {"at": at.isoformat() if at else at_text or "", "variant": variant or ""}
    shown = {k: v for k, v in query.items() if v}
    return f"{path}?{urlencode(shown)}" if shown else path


def issue_stem_of(build: Build) -> str:
    return issue_stem(build.schedule, build.period)


def when(value: datetime, zone: ZoneInfo) -> str:
    """Mon 23 Nov 2026, 08:00 GMT"""
    local = value.astimezone(zone)
    return f"{local:%a} {local.day} {local:%b %Y, %H:%M} {local.tzname()}"


def day(value: datetime, zone: ZoneInfo) -> str:
    """Mon 23 Nov 2026"""
    local = value.astimezone(zone)
    return f"{local:%a} {local.day} {local:%b %Y}"


def clock(value: datetime, zone: ZoneInfo) -> str:
    """Mon 23 Nov, 08:00"""
    local = value.astimezone(zone)
    return f"{local:%a} {local.day} {local:%b, %H:%M}"


def picker(value: datetime, zone: ZoneInfo) -> str:
    """The value of an <input type="datetime-local">: wall time in the schedule's zone."""
    return value.astimezone(zone).strftime("%Y-%m-%dT%H:%M")


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
