"""Ingest: sources are read, completed with the site's defaults, and upserted.

One bad source never stops the others: its error is collected and the
rest are stored.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from newsletter.config import SiteSettings
from newsletter.errors import SourceError
from newsletter.models import Article, Block
from newsletter.readers import ReadOptions, ReadResult, feed, jsonfeed, markdown, text
from newsletter.render import plain_line
from newsletter.store import Store, UpsertCounts

UNCATEGORIZED = "Uncategorized"
TEXT_SUFFIXES = {".txt"}
MARKDOWN_SUFFIXES = {".md", ".markdown"}
FEED_SUFFIXES = {".xml", ".rss", ".atom", ".feed"}
SLUG_MAX = 80
KNOWN_SUFFIXES = TEXT_SUFFIXES | MARKDOWN_SUFFIXES | FEED_SUFFIXES
# Control characters a body block may not hold: all but tab and newline.
BODY_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@dataclass
class IngestReport:
    counts: UpsertCounts = field(default_factory=UpsertCounts)
    sources: int = 0
    articles: int = 0
    warnings: list[str] = field(default_factory=list)
    errors: list[SourceError] = field(default_factory=list)


def expand(sources: Iterable[str]) -> Iterator[str]:
    """Folders become the article files inside them, sorted; URLs pass through."""
    for source in sources:
        path = Path(source)
        if not _is_url(source) and path.is_dir():
            yield from sorted(
                str(p) for p in path.rglob("*") if p.suffix.lower() in KNOWN_SUFFIXES and p.is_file()
            )
        else:
            yield source


def read_source(source: str, options: ReadOptions) -> ReadResult:
    """Read one file or URL with the reader its name (or its first bytes) calls for."""
    if _is_url(source):
        data, content_type = feed.fetch(source)
        if jsonfeed.looks_like(data):
            return jsonfeed.read(source, data, options)
        return feed.read(source, data, options, content_type)
    data = _read_bytes(source)
    suffix = Path(source).suffix.lower()
    if suffix == ".json" or jsonfeed.looks_like(data):  # a JSON Feed, whatever its name
        return jsonfeed.read(source, data, options)
    if suffix in FEED_SUFFIXES or (suffix not in KNOWN_SUFFIXES and data.lstrip()[:1] == b"<"):
        return feed.read(source, data, options)
    if suffix in MARKDOWN_SUFFIXES or data.startswith(b"---"):
        return markdown.read(source, data, options)
    return text.read(source, data, options)


def _read_bytes(source: str) -> bytes:
    try:
        return Path(source).read_bytes()
    except FileNotFoundError as e:
        raise SourceError(source, "no such file") from e
    except IsADirectoryError as e:
        raise SourceError(source, "is a directory with no article files") from e
    except OSError as e:
        raise SourceError(source, f"cannot read ({e.strerror})") from e


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def complete(article: Article, site: SiteSettings, category: str | None) -> tuple[Article, list[str]]:
    """Clean and cap the text, then give an article its category, URL and key
    where the source named none. Raises SourceError for a title that is empty
    once cleaned."""
    article, warnings = clean(article)
    article, capped = cap_body(article, site.max_body_chars)
    warnings += capped
    chosen = article.category or plain_line(category or "") or _related_category(article)
    if not chosen:
        chosen = UNCATEGORIZED
        warnings.append(
            f"{article.source}: no category named; filed under {UNCATEGORIZED!r} (pass --category NAME)"
        )
    url = article.url or article_url(site, chosen, article)
    return replace(article, category=chosen, url=url, key=article.key or url), warnings


def clean(article: Article) -> tuple[Article, list[str]]:
    """Every reader's text made safe in one place: a NUL in a title otherwise
    reaches the MJML of every issue carrying it. Single-line fields become plain
    lines; body blocks keep their newlines and tabs only."""
    cleaned = replace(
        article,
        title=plain_line(article.title),
        standfirst=plain_line(article.standfirst),
        category=plain_line(article.category),
        url=plain_line(article.url),
        tags=tuple(tag for tag in map(plain_line, article.tags) if tag),
        related=tuple(
            replace(r, category=plain_line(r.category), summary=plain_line(r.summary))
            for r in article.related
        ),
        body=_clean_body(article.body),
    )
    if not cleaned.title:
        raise SourceError(article.source, "the title is empty once control characters are removed")
    if any(BODY_CONTROL.search(text) for text in _texts(article)):
        return cleaned, [f"{article.source}: control characters removed from {cleaned.title!r}"]
    return cleaned, []


def _clean_body(blocks: tuple[Block, ...]) -> tuple[Block, ...]:
    cleaned = (replace(block, text=body_text(block.text)) for block in blocks)
    return tuple(block for block in cleaned if block.text.strip())


def body_text(text: str) -> str:
    """A body block without NUL or control characters; newlines and tabs stay."""
    return BODY_CONTROL.sub(" ", text.replace("\r\n", "\n"))


def _texts(article: Article) -> Iterator[str]:
    yield from (article.title, article.standfirst, article.category, article.url, *article.tags)
    for ref in article.related:
        yield from (ref.category, ref.summary)
    yield from (block.text for block in article.body)


def cap_body(article: Article, limit: int) -> tuple[Article, list[str]]:
    """At most `limit` characters of body, cut on a block boundary: the whole
    archive is read again for similarity at every build."""
    total = sum(len(block.text) for block in article.body)
    if total <= limit:
        return article, []
    warning = f"{article.source}: body of {total:,} characters cut to {limit:,} ([site] max_body_chars)"
    return replace(article, body=_first_blocks(article.body, limit)), [warning]


def _first_blocks(blocks: tuple[Block, ...], limit: int) -> tuple[Block, ...]:
    """Whole blocks while they fit; a first block longer than the limit on its
    own (a one-line body) is cut on a word boundary instead."""
    kept: list[Block] = []
    used = 0
    for block in blocks:
        if used + len(block.text) > limit:
            break
        kept.append(block)
        used += len(block.text)
    if not kept:
        head = blocks[0].text[:limit]
        kept.append(replace(blocks[0], text=head.rsplit(" ", 1)[0] if " " in head else head))
    return tuple(kept)


def _related_category(article: Article) -> str:
    counts = Counter(r.category for r in article.related if r.category)
    return counts.most_common(1)[0][0] if counts else ""


def article_url(site: SiteSettings, category: str, article: Article) -> str:
    published = article.published.astimezone(site.zone)
    return site.article_url.format(
        base_url=site.base_url,
        category=slugify(category),
        slug=slugify(article.title),
        year=f"{published:%Y}",
        month=f"{published:%m}",
        day=f"{published:%d}",
    )


def slugify(text: str) -> str:
    """ASCII, lower case, words joined by '-': how the site names its pages."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if len(slug) > SLUG_MAX:
        slug = slug[: SLUG_MAX + 1].rsplit("-", 1)[0]  # whole words only
    # A title with no Latin letters (日本語) still needs a unique, stable slug.
    return slug or f"article-{hashlib.blake2b(text.encode(), digest_size=4).hexdigest()}"


def ingest(
    store: Store, sources: Iterable[str], site: SiteSettings, now: datetime, category: str | None = None
) -> IngestReport:
    report = IngestReport()
    options = ReadOptions(site.zone, now)
    batch: list[Article] = []
    for source in expand(sources):
        report.sources += 1
        batch.extend(_articles_of(source, options, site, category, report))
    report.articles = len(batch)
    report.warnings = collapse(report.warnings)
    report.counts = store.upsert(batch, now)
    return report


def _articles_of(
    source: str, options: ReadOptions, site: SiteSettings, category: str | None, report: IngestReport
) -> list[Article]:
    """One source's articles, completed; its warnings and errors go to the report."""
    try:
        result = read_source(source, options)
    except SourceError as e:
        report.errors.append(e)
        return []
    report.warnings.extend(result.warnings)
    completed = []
    for article in result.articles:
        try:
            done, warnings = complete(article, site, category)
        except SourceError as e:
            report.errors.append(e)
            continue
        completed.append(done)
        report.warnings.extend(warnings)
    return completed


def collapse(warnings: list[str]) -> list[str]:
    """One line per distinct warning, counted: a feed of 40 untagged entries says so once."""
    counts = Counter(warnings)
    return [w if counts[w] == 1 else f"{w} ({counts[w]} times)" for w in counts]
