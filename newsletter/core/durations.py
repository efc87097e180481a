"""Durations as people write them in settings and options: "90m", "6h", "3d", "1h30m"."""

from __future__ import annotations

import re
from datetime import timedelta

WHOLE = re.compile(r"(?:\d+[smhdw])+")
PART = re.compile(r"(\d+)([smhdw])")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
EXAMPLE = 'a duration such as "90m", "6h" or "3d" (units s, m, h, d, w)'


def parse_duration(text: str) -> timedelta:
    """A positive duration; ValueError naming what was expected otherwise."""
    compact = "".join(str(text).split()).lower()
    if not WHOLE.fullmatch(compact):
        raise ValueError(f"{EXAMPLE}, got {text!r}")
    seconds = sum(int(n) * UNIT_SECONDS[u] for n, u in PART.findall(compact))
    if seconds < 1:
        raise ValueError(f"a duration of at least 1s, got {text!r}")
    return timedelta(seconds=seconds)


def format_duration(span: timedelta) -> str:
    """The inverse of parse_duration, largest units first: 3d, 1h30m, 45s."""
    seconds, parts = int(span.total_seconds()), []
    for unit in "dhms":
        size = UNIT_SECONDS[unit]
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"
