"""Now, and moments as people type them (`--at`, the preview's `?at=`).

Pure stages never call `utc_now`: the edges (cli, web, scheduler, send) read the
clock once and pass the moment in. Fire times and periods are in `periods`,
durations in `durations`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

# "2026-11-23T08:00 00:00": a `+` typed into a URL arrives as a space.
SPACED_OFFSET = re.compile(r"(\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d:?\d\d)$")
EXAMPLE = "ISO 8601 such as 2026-11-23T08:00 or 2026-11-23T08:00+00:00"


def utc_now() -> datetime:
    return datetime.now(UTC)


def parse_moment(value: str | None, zone: ZoneInfo, now: datetime) -> datetime:
    """ISO 8601 with or without an offset (without one it is in `zone`); a bare date is
    midnight; nothing given is `now`. ValueError naming what was expected otherwise."""
    if value is None or not value.strip():
        return now
    text = SPACED_OFFSET.sub(r"\1+\2", value.strip())
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"expected {EXAMPLE}, got {value!r}") from None
    if len(text) == 10:
        moment = datetime.combine(moment.date(), time(0, 0))
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def local_time(moment: datetime | None, zone: str | ZoneInfo) -> str:
    """How logs, notes and `status` show a moment: `2026-11-30 08:00 GMT`, in the
    schedule's (or site's) zone; `never` for none (a job APScheduler keeps paused)."""
    if moment is None:
        return "never"
    return f"{moment.astimezone(ZoneInfo(zone) if isinstance(zone, str) else zone):%Y-%m-%d %H:%M %Z}"
