"""JSON Feed 1.0 and 1.1 (https://jsonfeed.org/version/1.1): a dozen keys, read by hand.

An item's identity is its `id` (required by the spec), else its `url`. Relative
links resolve against the feed's `home_page_url`. `content_html` and
`content_text` become paragraphs as a feed's content does; `summary` is the
standfirst; the first tag is the category. The picture is `image`, else
`banner_image` (http(s) only, relative ones resolved as links are); the author
is the item's first named one of 1.1 `authors` or 1.0 `author`, else the feed's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from newsletter.core.errors import SourceError
from newsletter.core.models import Article, Block
from newsletter.core.text import decode_utf8
from newsletter.sources.readers import ReadOptions, ReadResult, is_web
from newsletter.sources.readers.dates import parse_datetime
from newsletter.sources.readers.feed import clean, join, plain_name, text_blocks, title_from_text, web_url

VERSION_PREFIX = "https://jsonfeed.org/version/1"
IMAGE_KEYS = ("image", "banner_image")


@dataclass(frozen=True)
class _Feed:
    """What the feed gives every item: the base of relative links, and the
    author of items that name none."""

    base: str
    author: str


def looks_like(data: bytes) -> bool:
    """A JSON object that names the JSON Feed version near its start."""
    head = data.lstrip()[:4096]
    return head[:1] == b"{" and b"jsonfeed.org/version/" in head


def read(source: str, data: bytes, options: ReadOptions) -> ReadResult:
    feed = _document(source, data)
    base = join(source if is_web(source) else "", _text(feed.get("home_page_url")))
    channel = _Feed(base, _author(feed))
    result = ReadResult()
    items = feed.get("items")
    if not isinstance(items, list):
        raise SourceError(source, 'expected "items", a list of the feed\'s entries')
    for number, item in enumerate(items, start=1):
        article = _article(item, number, source, channel, options, result.warnings)
        if article is not None:
            result.articles.append(article)
    if not items:
        result.warnings.append(f"{source}: feed has no items")
    return result


def _document(source: str, data: bytes) -> dict[str, Any]:
    try:
        feed = json.loads(decode_utf8(source, data))
    except json.JSONDecodeError as e:
        raise SourceError(source, f"not valid JSON ({e.msg})", e.lineno) from None
    if not isinstance(feed, dict) or not _text(feed.get("version")).startswith(VERSION_PREFIX):
        raise SourceError(source, f'expected a JSON Feed: an object with "version": "{VERSION_PREFIX}.1"')
    return feed


def _article(
    item: Any, number: int, source: str, channel: _Feed, options: ReadOptions, warns: list[str]
) -> Article | None:
    if not isinstance(item, dict):
        warns.append(f"{source}: item {number} is not an object; skipped")
        return None
    standfirst, body = clean(_text(item.get("summary"))), _body(item)
    title = clean(_text(item.get("title"))) or title_from_text(standfirst, body)
    if not title:
        warns.append(f"{source}: item {number} has no title and no text; skipped")
        return None
    published, undated = _published(item, options)
    if undated:
        warns.append(f"{source}: item {title!r} has no usable date; using first-seen time")
    tags = _tags(item)
    url = _url(item, channel.base)
    return Article(
        title=title, published=published, source=source, standfirst=standfirst,
        category=tags[0] if tags else "", url=url, body=body, tags=tags,
        key=_text(item.get("id")) or url or f"{source}#{title}", undated=undated,
        image=_image(item, channel.base), author=_author(item) or channel.author,
    )  # fmt: skip


def _text(value: Any) -> str:
    """A string field; ids may be numbers in the wild (the spec says string)."""
    if isinstance(value, bool) or value is None:
        return ""
    return str(value).strip() if isinstance(value, (str, int, float)) else ""


def _body(item: dict[str, Any]) -> tuple[Block, ...]:
    if _text(item.get("content_html")):
        return text_blocks(_text(item.get("content_html")), "text/html")
    return text_blocks(_text(item.get("content_text")), "text/plain")


def _published(item: dict[str, Any], options: ReadOptions) -> tuple[datetime, bool]:
    for key in ("date_published", "date_modified"):
        found = parse_datetime(_text(item.get(key)), options.timezone) if _text(item.get(key)) else None
        if found is not None:
            return found, False
    now = options.now if options.now.tzinfo else options.now.replace(tzinfo=options.timezone)
    return now.astimezone(UTC), True


def _tags(item: dict[str, Any]) -> tuple[str, ...]:
    tags = item.get("tags")
    names: dict[str, str] = {}
    for tag in tags if isinstance(tags, list) else []:
        name = clean(_text(tag))
        if name:
            names.setdefault(name.casefold(), name)
    return tuple(names.values())


def _url(item: dict[str, Any], base: str) -> str:
    return web_url(base, _text(item.get("url")))


def _image(item: dict[str, Any], base: str) -> str:
    """`image`, else `banner_image`: the first that is an http(s) URL once resolved."""
    # Strings only: an id may be a number in the wild, a picture's address may not.
    values = (item.get(key) for key in IMAGE_KEYS)
    urls = (web_url(base, value) for value in values if isinstance(value, str))
    return next((url for url in urls if url), "")


def _author(owner: dict[str, Any]) -> str:
    """The first named author of an item or the feed: 1.1's `authors` list, then
    1.0's `author` object (1.1 feeds keep it for old readers)."""
    authors = owner.get("authors")
    people = [*(authors if isinstance(authors, list) else []), owner.get("author")]
    names = (plain_name(_text(person.get("name"))) for person in people if isinstance(person, dict))
    return next((name for name in names if name), "")
