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
from newsletter.models import Article
from newsletter.readers import ReadOptions, ReadResult, feed, markdown, text
from newsletter.store import Store, UpsertCounts

UNCATEGORIZED = "Uncategorized"
TEXT_SUFFIXES = {".txt"}
MARKDOWN_SUFFIXES = {".md", ".markdown"}
FEED_SUFFIXES = {".xml", ".rss", ".atom", ".feed"}
SLUG_MAX = 80
KNOWN_SUFFIXES = TEXT_SUFFIXES | MARKDOWN_SUFFIXES | FEED_SUFFIXES


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
            yield from sorted(str(p) for p in path.rglob("*")
                              if p.suffix.lower() in KNOWN_SUFFIXES and p.is_file())
        else:
            yield source


def read_source(source: str, options: ReadOptions) -> ReadResult:
    """Read one file or URL with the reader its name (or its first bytes) calls for."""
    if _is_url(source):
        data, content_type = feed.fetch(source)
        return feed.read(source, data, options, content_type)
    data = _read_bytes(source)
    suffix = Path(source).suffix.lower()
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
    """Give an article its category, URL and key where the source named none."""
    warnings: list[str] = []
    chosen = article.category or category or _related_category(article)
    if not chosen:
        chosen = UNCATEGORIZED
        warnings.append(f"{article.source}: no category named; filed under {UNCATEGORIZED!r} "
                        "(pass --category NAME)")
    url = article.url or article_url(site, chosen, article)
    return replace(article, category=chosen, url=url, key=article.key or url), warnings


def _related_category(article: Article) -> str:
    counts = Counter(r.category for r in article.related if r.category)
    return counts.most_common(1)[0][0] if counts else ""


def article_url(site: SiteSettings, category: str, article: Article) -> str:
    published = article.published.astimezone(site.zone)
    return site.article_url.format(
        base_url=site.base_url, category=slugify(category), slug=slugify(article.title),
        year=f"{published:%Y}", month=f"{published:%m}", day=f"{published:%d}",
    )


def slugify(text: str) -> str:
    """ASCII, lower case, words joined by '-': how the site names its pages."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if len(slug) > SLUG_MAX:
        slug = slug[: SLUG_MAX + 1].rsplit("-", 1)[0]  # whole words only
    # A title with no Latin letters (日本語) still needs a unique, stable slug.
    return slug or f"article-{hashlib.blake2b(text.encode(), digest_size=4).hexdigest()}"


def ingest(store: Store, sources: Iterable[str], site: SiteSettings, now: datetime,
           category: str | None = None) -> IngestReport:
    report = IngestReport()
    options = ReadOptions(site.zone, now)
    batch: list[Article] = []
    for source in expand(sources):
        report.sources += 1
        try:
            result = read_source(source, options)
        except SourceError as e:
            report.errors.append(e)
            continue
        report.warnings.extend(result.warnings)
        for article in result.articles:
            completed, warnings = complete(article, site, category)
            batch.append(completed)
            report.warnings.extend(warnings)
    report.articles = len(batch)
    report.warnings = collapse(report.warnings)
    report.counts = store.upsert(batch, now)
    return report


def collapse(warnings: list[str]) -> list[str]:
    """One line per distinct warning, counted: a feed of 40 untagged entries says so once."""
    counts = Counter(warnings)
    return [w if counts[w] == 1 else f"{w} ({counts[w]} times)" for w in counts]
