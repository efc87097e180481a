"""Date parsing shared by the readers (dateutil does the parsing, loaded with the first date).

`parse_datetime_any_language` is the last resort for dates in other languages
("Seg, 24 Set 2018 19:42:40 -0300"): dateparser, loaded with the first such date
(it is slow to import).
"""

from __future__ import annotations

import re
import warnings
from datetime import UTC, date, datetime, time
from functools import lru_cache
from zoneinfo import ZoneInfo

# Two different defaults: a field dateutil filled in differs between the two
# parses, which tells an incomplete date ("July 2025", "2") from a full one.
_DEFAULTS = (datetime(2001, 1, 1), datetime(2002, 2, 2))
# dateutil ignores named zones it does not know and returns a naive time that
# would then land in the site's zone; RFC 822 defines these few, so spell
# them as offsets first.
_RFC822_ZONES = {
    "UT": "+0000",
    "EST": "-0500",
    "EDT": "-0400",
    "CST": "-0600",
    "CDT": "-0500",
    "MST": "-0700",
    "MDT": "-0600",
    "PST": "-0800",
    "PDT": "-0700",
}
_NAMED_ZONE = re.compile(r"\b(" + "|".join(_RFC822_ZONES) + r")\s*$")


@lru_cache(maxsize=4096)  # archives repeat dates: related entries cite the same days
def _parse_complete(text: str) -> datetime | None:
    from dateutil import parser as dateparser
    from dateutil.parser import UnknownTimezoneWarning

    text = _NAMED_ZONE.sub(lambda m: _RFC822_ZONES[m.group(1)], text.strip())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownTimezoneWarning)
        try:
            first, second = (dateparser.parse(text, default=d) for d in _DEFAULTS)
        except (ValueError, OverflowError, TypeError):
            return None
    return first if first.date() == second.date() else None


# dateparser, set up for dates written by a feed, never for "2 days ago": only its
# absolute parser (not "timestamp", "relative-time" or "no-spaces-time"), a day,
# month and year all required (so "24 Set" does not take this year), two-digit
# years in the past of the `now` the caller passes (never its own clock), and the
# result aware and in UTC.
_ANY_LANGUAGE_SETTINGS: dict[str, object] = {
    "PARSERS": ["absolute-time"],
    "REQUIRE_PARTS": ["day", "month", "year"],
    "PREFER_DATES_FROM": "past",
    "RETURN_AS_TIMEZONE_AWARE": True,
    "TO_TIMEZONE": "UTC",
}


@lru_cache(maxsize=1024)
def _parse_any_language(text: str, zone_name: str, now: datetime) -> datetime | None:
    import dateparser  # ships no types: see [tool.mypy] overrides

    settings = {**_ANY_LANGUAGE_SETTINGS, "TIMEZONE": zone_name, "RELATIVE_BASE": now}
    try:
        parsed = dateparser.parse(text, settings=settings)
    except Exception:  # a fallback on untrusted text: any failure is "no date"
        return None
    return parsed if isinstance(parsed, datetime) else None


def parse_datetime_any_language(text: str, zone: ZoneInfo, now: datetime) -> datetime | None:
    """Parse a full date-time in any language dateparser knows; naive values are in `zone`.

    `now` (the caller's) only places a two-digit year in the past. Returns UTC, or None.
    """
    text = text.strip()
    if not text:
        return None
    moment = now if now.tzinfo else now.replace(tzinfo=zone)
    parsed = _parse_any_language(text, zone.key or "UTC", moment.astimezone(UTC))
    return None if parsed is None else to_utc(parsed, zone)


def parse_datetime(text: str, zone: ZoneInfo) -> datetime | None:
    """Parse a full date or date-time; naive values are in `zone`. Returns UTC, or None."""
    parsed = _parse_complete(text)
    return None if parsed is None else to_utc(parsed, zone)


def to_utc(value: datetime, zone: ZoneInfo) -> datetime | None:
    """An aware UTC datetime; naive values are in `zone`."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 pushed past the range by its offset
        return None


def parse_date(text: str) -> date | None:
    """Parse a calendar date such as `July 19, 2025` or `2025-07-19`."""
    parsed = _parse_complete(text)
    return parsed.date() if parsed else None


def midnight(day: date, zone: ZoneInfo) -> datetime:
    """A date-only article is published at midnight in the site's zone."""
    try:
        return datetime.combine(day, time(0, 0), tzinfo=zone).astimezone(UTC)
    except OverflowError:  # 0001-01-01 east of Greenwich: the earliest moment will do
        return datetime.min.replace(tzinfo=UTC)
