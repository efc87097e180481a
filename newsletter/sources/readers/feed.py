"""RSS and Atom feeds, read with feedparser (`newsletter.sources.fetching` gets them over HTTP(S)).

feedparser is lenient on purpose: it recovers entries from malformed XML and
guesses encodings. We keep what it recovers and say so in a warning, because a
feed with one bad entity is still worth reading; only a source that yields no
entries at all is an error.

Links: feedparser already applies `xml:base` (on the feed, the channel, the
item or the link itself) to entry links; what is still relative after that is
resolved against the channel's `<link>`, itself resolved against the feed's URL
(where it was fetched from, else its `atom:link rel="self"`). A link that is not
an absolute http(s) URL even then is left "" for the site's URL pattern.

Categories: an entry's own tags, all kept, the first one its category; an entry
with none is filed under the source's default category (`ReadOptions.category`),
else the feed's: its `<category>` (RSS channel or Atom feed), else its
`itunes:category`.

Images: the largest suitable (`digest/images.py`: no tracking pixel, icon or image
declared tiny) of the first kind an entry offers: `media:content` of an image type
(or of no type but an image file name), `media:thumbnail`, image enclosures,
`itunes:image`, `<img>` of its content or summary; an absolute http(s) URL once
resolved as links are
(feedparser applies `xml:base` to Atom enclosures and content, not to the
Media RSS elements or RSS enclosures: we do). Authors: the entry's name, else
the feed's, as plain text without markup or email address.

feedparser, inscriptis and dateparser load with the first feed read (dateparser
with the first date nothing else reads), not with the module.
"""

from __future__ import annotations

import html
import io
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import TYPE_CHECKING

from newsletter.core.errors import SourceError
from newsletter.core.models import Article, Block
from newsletter.digest import images
from newsletter.sources.readers import ReadOptions, ReadResult, is_web
from newsletter.sources.readers.dates import parse_datetime, parse_datetime_any_language

if TYPE_CHECKING:
    from feedparser import FeedParserDict

TITLE_WORDS = 10
# feedparser's scheme for itunes:category (and itunes:keywords) tags.
ITUNES_SCHEME = "http://www.itunes.com/"

# What a `media:content` with neither `type` nor `medium` must end in to count as a picture.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif")
# WordPress.com lists the author's avatar as the first `media:content medium="image"`.
AVATAR_HOSTS = ("gravatar.com",)

_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")
# An address in a byline ("jo@example.org (Jo Bloggs)", "Jo <jo@example.org>"): never shown.
_EMAIL = re.compile(r"(?:mailto:)?[^\s<>()\[\]\"',;:]+@[^\s<>()\[\]\"',;:]+")
_EMPTY_BRACKETS = re.compile(r"<\s*>|\(\s*\)|\[\s*\]")
_TAG = re.compile(r"<[^<>]*>")
_XML_DECLARATION = re.compile(rb"<\?xml[^>]*?>")
# Text declared (or sniffed) as ISO-8859-1 is almost always cp1252, as browsers
# assume: its C1 control characters are really curly quotes, dashes and euros.
_C1_AS_CP1252 = {
    code: bytes([code]).decode("cp1252")
    for code in range(0x80, 0xA0)
    if code not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)
}


@dataclass(frozen=True)
class _Feed:
    """What the feed gives every entry: the base of relative links, and the
    category and author of entries that name none."""

    base: str
    category: str
    author: str


def read(source: str, data: bytes, options: ReadOptions, content_type: str | None = None) -> ReadResult:
    """Read the entries of an RSS or Atom document as articles."""
    parsed = _parse(source, data, content_type)
    channel = _Feed(_base_url(source, parsed.feed), _feed_category(parsed.feed), _author(parsed.feed))
    result = ReadResult()
    for entry in parsed.entries:
        article = _article(entry, source, channel, options, result.warnings)
        if article is not None:
            result.articles.append(article)
    if parsed.bozo:
        result.warnings.insert(0, _bozo_warning(source, parsed, data, len(result.articles)))
    elif not parsed.entries:
        result.warnings.append(f"{source}: feed has no entries")
    return result


# --- parsing ---------------------------------------------------------------


def _parse(source: str, data: bytes, content_type: str | None) -> FeedParserDict:
    # A stream, not bytes: feedparser would treat bytes that look like a file
    # path as one and open it. Headers carry the charset when we fetched it.
    import feedparser

    headers = {"content-type": content_type} if content_type else None
    parsed: FeedParserDict = feedparser.parse(io.BytesIO(data), response_headers=headers)
    if not parsed.entries and _is_unusable(parsed):
        exc = parsed.get("bozo_exception")
        reason = f"not an RSS or Atom feed: {_describe(exc, data)}"
        raise SourceError(source, reason, _error_line(exc, data))
    return parsed


def _is_unusable(parsed: FeedParserDict) -> bool:
    from feedparser.exceptions import CharacterEncodingOverride, NonXMLContentType

    if not parsed.get("version"):
        return True
    # Bozo reasons that say nothing about the XML itself: the text decoded fine.
    harmless = (CharacterEncodingOverride, NonXMLContentType)
    return bool(parsed.bozo) and not isinstance(parsed.get("bozo_exception"), harmless)


def _describe(exc: BaseException | None, data: bytes) -> str:
    if exc is None:
        return "empty" if not data.strip() else "no <rss>, <feed> or <rdf:RDF> element"
    get_message = getattr(exc, "getMessage", None)  # SAX errors: no "<unknown>:l:c:"
    return str(get_message() if get_message else exc) or type(exc).__name__


def _error_line(exc: BaseException | None, data: bytes) -> int | None:
    get_line = getattr(exc, "getLineNumber", None)
    line = get_line() if get_line else None
    if not isinstance(line, int) or line < 1:
        return None
    return max(1, line - _declaration_shift(data))


def _declaration_shift(data: bytes) -> int:
    """Lines feedparser added before parsing: it prepends an XML declaration
    and a newline when there is none, and rewrites an existing one as one line."""
    head = data[:1024].lstrip(b"\xef\xbb\xbf\xfe\xff\x00").replace(b"\x00", b"")
    match = _XML_DECLARATION.match(head)
    return -match.group().count(b"\n") if match else 1


def _bozo_warning(source: str, parsed: FeedParserDict, data: bytes, count: int) -> str:
    exc = parsed.get("bozo_exception")
    line = _error_line(exc, data)
    where = f"{source}:{line}" if line else source
    return f"{where}: feed is malformed ({_describe(exc, data)}); read {count} entries anyway"


# --- entries ---------------------------------------------------------------


def _article(
    entry: FeedParserDict, source: str, channel: _Feed, options: ReadOptions, warns: list[str]
) -> Article | None:
    standfirst, body = _standfirst(entry), _body(entry)
    title = _title(entry) or title_from_text(standfirst, body)
    if not title:
        ref = entry.get("id") or entry.get("link") or "no id or link"
        warns.append(f"{source}: skipped an entry with no title and no text ({ref})")
        return None
    published, undated = _published(entry, options)
    if undated:
        raw = _raw_date(entry)
        warns.append(f"{source}: entry {title!r} has no usable date ({raw!r}); using first-seen time")
    tags, url = _tags(entry), _url(entry, channel.base)
    key = entry.get("id") or url or entry.get("link") or f"{source}#{title}"
    image, width, height = _image(entry, channel.base)
    return Article(
        title=title,
        published=published,
        source=source,
        standfirst=standfirst,
        # What the operator set for the source beats what the feed says of itself.
        category=tags[0] if tags else (options.category or channel.category),
        url=url,
        body=body,
        tags=tags,
        key=key,
        undated=undated,
        image=image,
        image_width=width,
        image_height=height,
        author=_author(entry) or channel.author,
    )


def _title(entry: FeedParserDict) -> str:
    # Titles may carry markup (Atom type="html") or leftover escapes.
    return clean(html.unescape(_TAG.sub("", entry.get("title") or "")))


def title_from_text(standfirst: str, body: tuple[Block, ...]) -> str:
    """A title for an entry that has none (microblogs): its first words."""
    words = (standfirst or (body[0].text if body else "")).split()
    if len(words) <= TITLE_WORDS:
        return " ".join(words)
    return " ".join(words[:TITLE_WORDS]) + "…"


def _standfirst(entry: FeedParserDict) -> str:
    detail = entry.get("summary_detail") or {}
    text = _to_text(entry.get("summary") or "", detail.get("type"))
    # A double-escaped "&amp;hellip;" (Hugo) is still "&hellip;" after one
    # round of unescaping; the standfirst is shown as text, so undo it.
    return clean(html.unescape(text))


def _body(entry: FeedParserDict) -> tuple[Block, ...]:
    content = entry.get("content") or [entry.get("summary_detail") or {}]
    return text_blocks(content[0].get("value") or "", content[0].get("type"))


def text_blocks(value: str, media_type: str | None) -> tuple[Block, ...]:
    """HTML (or plain text) as paragraphs: what every feed format's content becomes."""
    text = _to_text(value, media_type)
    paragraphs = (clean(part) for part in _PARAGRAPH_BREAK.split(text))
    return tuple(Block("paragraph", p) for p in paragraphs if p)


def _to_text(value: str, media_type: str | None) -> str:
    # Plain text (an Atom type="text") must not go through an HTML parser,
    # which would eat "<" and run its paragraphs together.
    if media_type == "text/plain":
        return value
    from inscriptis import get_text

    text: str = get_text(value)
    return text


def clean(text: str) -> str:
    """One line of feed text: cp1252's C1 characters restored, white space collapsed."""
    return " ".join(text.translate(_C1_AS_CP1252).split())


def _tags(entry: FeedParserDict) -> tuple[str, ...]:
    """Entry tags, first-seen spelling kept, duplicates dropped ignoring case."""
    return _tag_names(entry.get("tags") or [])


def _feed_category(feed: FeedParserDict) -> str:
    """The category of entries without tags: the feed's own, else its itunes:category.

    feedparser gives itunes:keywords the same scheme as itunes:category, so a
    podcast with neither a channel <category> nor an entry tag may get a keyword.
    """
    tags = feed.get("tags") or []
    own = [tag for tag in tags if tag.get("scheme") != ITUNES_SCHEME]
    itunes = [tag for tag in tags if tag.get("scheme") == ITUNES_SCHEME]
    names = _tag_names(own) + _tag_names(itunes)
    return names[0] if names else ""


def _tag_names(tags: list[FeedParserDict]) -> tuple[str, ...]:
    names: dict[str, str] = {}
    for tag in tags:
        name = clean(tag.get("term") or "") or clean(tag.get("label") or "")
        names.setdefault(name.casefold(), name)
    names.pop("", None)
    return tuple(names.values())


# --- dates -----------------------------------------------------------------


def _raw_date(entry: FeedParserDict) -> str | None:
    # dict.get: FeedParserDict maps a missing "updated" to "published" with a
    # DeprecationWarning; we ask for each one explicitly.
    return dict.get(entry, "published") or dict.get(entry, "updated")


def _published(entry: FeedParserDict, options: ReadOptions) -> tuple[datetime, bool]:
    """The entry's date in UTC, and whether it is only the first-seen time."""
    # dateutil first: feedparser fills published_parsed for "2020/1/10 14:33"
    # too, but reads it as year/day/month and drops the time.
    # dateparser last: it is slow, and reads every language ("Seg, 24 Set 2018").
    raw = _raw_date(entry)
    found = _from_text(raw, options) or _from_struct(entry) or _from_any_language(raw, options)
    if found is not None:
        return found, False
    now = options.now if options.now.tzinfo else options.now.replace(tzinfo=options.timezone)
    return now.astimezone(UTC), True


def _from_text(raw: str | None, options: ReadOptions) -> datetime | None:
    if not raw:
        return None
    return parse_datetime(raw, options.timezone)


def _from_any_language(raw: str | None, options: ReadOptions) -> datetime | None:
    if not raw:
        return None
    return parse_datetime_any_language(raw, options.timezone, options.now)


def _from_struct(entry: FeedParserDict) -> datetime | None:
    parsed = dict.get(entry, "published_parsed") or dict.get(entry, "updated_parsed")
    if not parsed:
        return None
    try:  # feedparser's struct_time is UTC
        year, month, day, hour, minute, second = parsed[:6]
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except (TypeError, ValueError):
        return None


# --- URLs ------------------------------------------------------------------


def join(base: str, link: str) -> str:
    """`link` made absolute against `base`; "" when it cannot be."""
    try:
        return urllib.parse.urljoin(base, link.strip())
    except ValueError:  # e.g. a broken IPv6 host: treat as no URL
        return ""


def _base_url(source: str, feed: FeedParserDict) -> str:
    """What entry links are relative to: the channel's link, made absolute
    against the feed's URL (Jekyll's channel <link> is "/")."""
    return join(_feed_url(source, feed), feed.get("link") or "")


def _feed_url(source: str, feed: FeedParserDict) -> str:
    """Where the feed was fetched from, else where it says it lives (rel="self")."""
    if is_web(source):
        return source
    for link in feed.get("links") or []:
        href = link.get("href") or ""
        if link.get("rel") == "self" and is_web(href):
            return str(href)
    return ""


def web_url(base: str, link: str) -> str:
    """`link` as an absolute http(s) URL, made so against `base` if need be; ""
    when there is no link or it cannot be one (`javascript:`, `data:`, `ftp:`)."""
    # No link is no URL: urljoin would answer `base` itself, the channel's page.
    if not link.strip():
        return ""
    url = join(base, link)
    return url if is_web(url) else ""


def _url(entry: FeedParserDict, base: str) -> str:
    """The entry's absolute http(s) link, or "" for the site's URL pattern."""
    return web_url(base, entry.get("link") or "")


# --- images ----------------------------------------------------------------


def _image(entry: FeedParserDict, base: str) -> tuple[str, int, int]:
    """The entry's picture and its declared size (0: not said): the largest suitable of
    its first kind of candidate that offers one (`images.choose`: no tracking pixel, icon
    or tiny image), as an http(s) URL once resolved."""
    within = _xml_base(entry)
    for group in _image_candidates(entry):
        resolved = ((web_url(base, join(within, url)), w, h) for url, w, h in group if url.strip())
        chosen = images.choose((url, w, h) for url, w, h in resolved if url and not _is_avatar(url))
        if chosen:
            return chosen
    return "", 0, 0


def _is_avatar(url: str) -> bool:
    """A picture of the author, not of the article."""
    host = (urllib.parse.urlsplit(url).hostname or "").lower()  # web_url made it: it splits
    return any(host == avatar or host.endswith("." + avatar) for avatar in AVATAR_HOSTS)


def _xml_base(entry: FeedParserDict) -> str:
    """The `xml:base` in force inside the entry, which feedparser records on its
    text fields only; "" without one."""
    details = [entry.get("title_detail"), entry.get("summary_detail"), *(entry.get("content") or [])]
    return next((str(d["base"]) for d in details if d and d.get("base")), "")


Candidate = tuple[str, int, int]  # url as written, declared width and height (0: not said)


def _image_candidates(entry: FeedParserDict) -> Iterator[list[Candidate]]:
    """Picture candidates in groups, by order of preference: Media RSS (content, then
    thumbnails), image enclosures, the podcast's `itunes:image`, `<img>` in the HTML."""
    media = [m for m in entry.get("media_content") or [] if _is_image(m)]
    yield [_sized(m.get("url"), m) for m in media]
    yield [_sized(t.get("url"), t) for t in entry.get("media_thumbnail") or []]
    links = entry.get("links") or []
    yield [
        (link.get("href") or "", 0, 0)
        for link in links
        if link.get("rel") == "enclosure" and _media_type(link).startswith("image/")
    ]
    yield [(str((entry.get("image") or {}).get("href") or ""), 0, 0)]  # itunes:image
    yield [found for value in _html_values(entry) for found in _img_sources(value)]


def _sized(url: object, element: FeedParserDict) -> Candidate:
    return str(url or ""), _pixels(element.get("width")), _pixels(element.get("height"))


def _pixels(value: object) -> int:
    text = str(value or "").strip().lower().removesuffix("px")
    return int(text) if text.isdigit() and len(text) < 7 else 0


def _is_image(media: FeedParserDict) -> bool:
    """A `media:content` that is a picture: said so, or (saying nothing) named like one."""
    medium, kind = (media.get("medium") or "").strip().lower(), _media_type(media)
    if medium == "image" or kind.startswith("image/"):
        return True
    return not medium and not kind and _path(media.get("url") or "").lower().endswith(IMAGE_SUFFIXES)


def _path(url: str) -> str:
    try:
        return urllib.parse.urlsplit(url).path
    except ValueError:  # a broken IPv6 host: no file name to go by
        return ""


def _media_type(element: FeedParserDict) -> str:
    return str(element.get("type") or "").strip().lower()


def _html_values(entry: FeedParserDict) -> list[str]:
    """The entry's content, then its summary, where HTML and mentioning an image."""
    parts = [*(entry.get("content") or []), entry.get("summary_detail") or {}]
    values = [p.get("value") or "" for p in parts if p.get("type") != "text/plain"]
    # Content is often repeated as the summary: parse each text once.
    return [v for v in dict.fromkeys(values) if "<img" in v.lower()]


def _img_sources(value: str) -> list[Candidate]:
    collector = _ImageSources()
    collector.feed(value)
    collector.close()
    return collector.sources


class _ImageSources(HTMLParser):
    """The `src` of every `<img>` in some HTML, in order, entities decoded, with the
    `width` and `height` it declares (a beacon says 1 by 1)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sources: list[Candidate] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        given = dict(attrs)
        src = given.get("src") if tag == "img" else None
        if src:
            self.sources.append((src, _pixels(given.get("width")), _pixels(given.get("height"))))


# --- authors ---------------------------------------------------------------


def _author(owner: FeedParserDict) -> str:
    """An entry's (or the feed's) author: feedparser's parsed name, else the raw
    element, as plain text."""
    detail = owner.get("author_detail") or {}
    return plain_name(detail.get("name") or "") or plain_name(owner.get("author") or "")


def plain_name(raw: str) -> str:
    """A person's name as one line of text: entities decoded, markup and email
    addresses gone, so `jo@example.org (Jo Bloggs)` is "Jo Bloggs"."""
    # Unescaped first, so an escaped "&lt;b&gt;" goes as a tag too.
    text = _EMAIL.sub("", _TAG.sub("", html.unescape(raw)))
    text = clean(_EMPTY_BRACKETS.sub("", text))
    # RSS's "address (Name)" leaves the name in brackets.
    if text.startswith("(") and text.endswith(")"):
        text = clean(text[1:-1])
    return text
