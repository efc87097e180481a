"""Date parsing shared by the readers (dateutil does the parsing)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from dateutil import parser as dateparser

# Two different defaults: a field dateutil filled in differs between the two
# parses, which tells an incomplete date ("July 2025", "2") from a full one.
_DEFAULTS = (datetime(2001, 1, 1), datetime(2002, 2, 2))


def _parse_complete(text: str) -> datetime | None:
    try:
        first, second = (dateparser.parse(text.strip(), default=d) for d in _DEFAULTS)
    except (ValueError, OverflowError, TypeError):
        return None
    return first if first.date() == second.date() else None


def parse_datetime(text: str, zone: ZoneInfo) -> datetime | None:
    """Parse a full date or date-time; naive values are in `zone`. Returns UTC, or None."""
    parsed = _parse_complete(text)
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC)


def parse_date(text: str) -> date | None:
    """Parse a calendar date such as `July 19, 2025` or `2025-07-19`."""
    parsed = _parse_complete(text)
    return parsed.date() if parsed else None


def midnight(day: date, zone: ZoneInfo) -> datetime:
    """A date-only article is published at midnight in the site's zone."""
    return datetime.combine(day, time(0, 0), tzinfo=zone).astimezone(UTC)
