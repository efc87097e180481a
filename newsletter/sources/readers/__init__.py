"""Readers: one module per source format, each yielding `Article`s.

Every reader has the same shape, `read(source, data, options) -> ReadResult`:
it gets the raw bytes (the caller did the I/O) and never touches the store.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from newsletter.core.models import Article

WEB_SCHEMES = ("http", "https")


@dataclass(frozen=True)
class ReadOptions:
    """What a reader needs to know beyond the bytes.

    `timezone` places date-only and naive dates (the site's zone);
    `now` is the first-seen time given to entries without a usable date;
    `base_url` (the site's, "" if unknown) is what a relative article URL
    such as a Markdown `permalink: /blog/x/` is resolved against;
    `category` (the source's default or `--category`, "" for none) is for
    entries that name none, before a feed's own channel category.
    """

    timezone: ZoneInfo
    now: datetime
    base_url: str = ""
    category: str = ""


@dataclass
class ReadResult:
    """The articles of one source, and warnings as `source[:line]: message`."""

    articles: list[Article] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def is_web(url: str) -> bool:
    """An absolute http(s) URL: the only kind an article link or a feed may be."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in WEB_SCHEMES and bool(parts.netloc)
