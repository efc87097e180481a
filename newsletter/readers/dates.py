"""Date parsing shared by the readers (dateutil does the parsing, loaded with the first date)."""

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
