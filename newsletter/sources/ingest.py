"""Ingest: sources are read, completed with the site's defaults, and upserted.

One bad source never stops the others: its error is collected and the
rest are stored.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from newsletter.core.config import RelatedSettings, SiteSettings
from newsletter.core.errors import SourceError
from newsletter.core.models import Article, Block
from newsletter.core.text import plain_line
from newsletter.digest import images
from newsletter.sources import fetching, pictures
from newsletter.sources.readers import ReadOptions, ReadResult, feed, jsonfeed, markdown, text
from newsletter.storage import neighbours
from newsletter.storage.store import Store, UpsertCounts

UNCATEGORIZED = "Uncategorized"
TEXT_SUFFIXES = {".txt"}
MARKDOWN_SUFFIXES = {".md", ".markdown"}
FEED_SUFFIXES = {".xml", ".rss", ".atom", ".feed"}
SLUG_MAX = 80
FILE_KEY = "file:"  # an article file's key: file:<folder>/<path inside it>
KNOWN_SUFFIXES = TEXT_SUFFIXES | MARKDOWN_SUFFIXES | FEED_SUFFIXES
# Control characters a body block may not hold: all but tab and newline.
BODY_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Origin:
    """What a source adds to the articles read from it: a `[[sources]]` table's name,
    default category and category map, and whether this is its first read (undated
    entries of a first read are a backlog, never a period's news). A one-off `ingest`
    is a first read with no name."""

    name: str = ""
    category: str = ""
    categories: Mapping[str, str] = field(default_factory=dict)
    first_read: bool = True

    def apply(self, article: Article) -> Article:
        """The source's categories as the site's: the article's own category through the
        map, else the first of its tags the map names (a Hugo post with tags only)."""
        mapped = tuple(dict.fromkeys(self.category_for(t) for t in article.tags))
        named = [self.category_for(t) for t in article.tags if self.category_for(t) != t]
        category = self.category_for(article.category) if article.category else next(iter(named), "")
        return replace(
            article,
            category=category,
            tags=mapped,
            origin=self.name,
            backlog=article.undated and self.first_read,
        )

    @property
    def hint(self) -> str:
        """How to give its entries a category."""
        if not self.name:
            return "pass --category NAME"
        return f"set category, or map its tags with categories, in [[sources]] {self.name!r}"

    def category_for(self, tag: str) -> str:
        """A source tag as the site's category: the map's entry, else one differing only
        in case (so `Tools` finds `tools`), else the tag as it is."""
        if tag in self.categories:
            return self.categories[tag]
        folded = tag.casefold()
        return next((c for t, c in self.categories.items() if t.casefold() == folded), tag)


@dataclass
class IngestReport:
    counts: UpsertCounts = field(default_factory=UpsertCounts)
    sources: int = 0
    articles: int = 0
    warnings: list[str] = field(default_factory=list)
    errors: list[SourceError] = field(default_factory=list)


def expand(sources: Iterable[str]) -> Iterator[tuple[str, str]]:
    """(source, root) pairs: folders become the article files inside them, sorted, each
    with the folder as its root; files and URLs are their own root."""
    for source in sources:
        path = Path(source)
        if not _is_url(source) and path.is_dir():
            found = sorted(
                str(p) for p in path.rglob("*") if p.suffix.lower() in KNOWN_SUFFIXES and p.is_file()
            )
            yield from ((p, source) for p in found)
        else:
            yield source, source


def file_key(path: str, root: str) -> str:
    """An article file's identity: `file:` and its path from the folder holding `root`
    (the folder or file the user named), so `posts/a.md` by a relative or an absolute
    path, from any working directory, folder or file alone, is `file:posts/a.md`. The
    holding folder's name keeps two `index.md` of different folders apart."""
    given = Path(root)
    top, is_dir = _holding(root)
    prefix = _prefix(root)
    if is_dir and path.startswith(prefix) and "/." not in path and "//" not in path:
        inside: tuple[str, ...] = tuple(path[len(prefix) :].split("/"))  # expand's own paths: no Path
    else:
        inside = Path(path).relative_to(given).parts if is_dir else (given.name,)
    parts = (top.name, *inside) if top.name else inside
    return FILE_KEY + "/".join(parts)


@lru_cache(maxsize=256)
def _prefix(root: str) -> str:
    """What a path found inside the folder `root` starts with, as `expand` writes it."""
    return str(Path(root)) + "/"


@lru_cache(maxsize=256)  # a folder of 1,000 files is resolved once; cleared by each ingest
def _holding(root: str) -> tuple[Path, bool]:
    """The resolved folder a named folder or file stands in, and whether it is a folder."""
    given = Path(root)
    if given.is_dir():
        return given.resolve(), True
    return given.resolve().parent, False


def _place(source: str) -> str:
    """Where a stored source string points now (its resolved path), "" for a URL."""
    if not source or _is_url(source):
        return ""
    try:
        return str(Path(source).resolve())
    except (OSError, ValueError, RuntimeError):
        return ""


def read_source(source: str, options: ReadOptions) -> ReadResult:
    """Read one file or URL with the reader its name (or its first bytes) calls for."""
    if _is_url(source):
        fetched = fetching.fetch(source)  # a one-off: no validators kept ([[sources]] keep them)
        return read_fetched(source, fetched.data, fetched.content_type, options)
    data = _read_bytes(source)
    suffix = Path(source).suffix.lower()
    if suffix == ".json" or jsonfeed.looks_like(data):  # a JSON Feed, whatever its name
        return jsonfeed.read(source, data, options)
    if suffix in FEED_SUFFIXES or (suffix not in KNOWN_SUFFIXES and data.lstrip()[:1] == b"<"):
        return feed.read(source, data, options)
    if suffix in MARKDOWN_SUFFIXES or data.startswith(b"---"):
        return markdown.read(source, data, options)
    return text.read(source, data, options)


def read_fetched(url: str, data: bytes, content_type: str | None, options: ReadOptions) -> ReadResult:
    """A feed fetched from `url`: JSON Feed or RSS/Atom, by its first bytes."""
    if jsonfeed.looks_like(data):
        return jsonfeed.read(url, data, options)
    return feed.read(url, data, options, content_type)


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


def complete(
    article: Article, site: SiteSettings, category: str | None, hint: str = "pass --category NAME"
) -> tuple[Article, list[str]]:
    """Clean and cap the text, then give an article its category, URL and key
    where the source named none. Raises SourceError for a title that is empty
    once cleaned."""
    article, warnings = clean(article)
    article, capped = cap_body(article, site.max_body_chars)
    warnings += capped
    chosen = article.category or plain_line(category or "") or _related_category(article)
    if not chosen:
        chosen = UNCATEGORIZED
        warnings.append(f"{article.source}: no category named; filed under {UNCATEGORIZED!r} ({hint})")
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
        image=_picture(article),
        author=plain_line(article.author),
        tags=tuple(tag for tag in map(plain_line, article.tags) if tag),
        related=tuple(
            replace(r, category=plain_line(r.category), summary=plain_line(r.summary))
            for r in article.related
        ),
        body=_clean_body(article.body),
    )
    if not cleaned.title:
        raise SourceError(article.source, "the title is empty once control characters are removed")
    if BODY_CONTROL.search("\n".join(_texts(article))):  # one search: a newline is allowed
        return cleaned, [f"{article.source}: control characters removed from {cleaned.title!r}"]
    return cleaned, []


def _picture(article: Article) -> str:
    """Whatever reader chose it: never a tracking pixel, an icon or a tiny image."""
    url = plain_line(article.image)
    return "" if images.refusal(url, article.image_width, article.image_height) else url


def _clean_body(blocks: tuple[Block, ...]) -> tuple[Block, ...]:
    cleaned = []
    for block in blocks:
        text = body_text(block.text)
        if text.strip():  # a block kept as it is unless cleaning changed it (most are clean)
            cleaned.append(block if text == block.text else replace(block, text=text))
    return tuple(cleaned)


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


def article_url(site: SiteSettings, category: str, article: Article, suffix: int = 1) -> str:
    """The site's URL for an article; `suffix` 2, 3, ... tells apart articles whose
    slugs are the same (`-2` after the slug)."""
    published = article.published.astimezone(site.zone)
    slug = slugify(article.slug or article.title)
    return site.article_url.format(
        base_url=site.base_url,
        category=slugify(category),
        slug=slug if suffix == 1 else f"{slug}-{suffix}",
        year=f"{published:%Y}",
        month=f"{published:%m}",
        day=f"{published:%d}",
    )


def unique_urls(store: Store, site: SiteSettings, entries: list[tuple[Article, bool]]) -> list[Article]:
    """The articles, those whose URL the site's pattern made (`True`) given one no other
    article holds, in the store or the batch: the slug, else the slug with `-2`, `-3`...
    An article keeps the variant it was stored with, so a re-ingest changes no URL."""
    made = list({a.key: a for a, generated in entries if generated}.values())
    holders = store.urls_held([a.url for a in made], [a.key for a in made])  # url -> key
    for article, generated in entries:
        if not generated:
            holders.setdefault(article.url, article.key)
    kept = {key: url for url, key in holders.items()}
    chosen = {a.key: kept[a.key] for a in made if _is_variant(site, a, kept.get(a.key, ""))}
    pending = [a for a in made if a.key not in chosen]
    suffix = 1
    while pending:
        # `complete` made each the first choice already: its URL as it is
        wanted = {a.key: a.url if suffix == 1 else article_url(site, a.category, a, suffix) for a in pending}
        if suffix > 1:
            holders.update(store.urls_held(wanted.values()))
        waiting = []
        for article in pending:
            url = wanted[article.key]
            if holders.get(url, article.key) == article.key:
                chosen[article.key] = url
                holders[url] = article.key
            else:
                waiting.append(article)
        pending, suffix = waiting, suffix + 1
    return [replace(a, url=chosen[a.key]) if generated else a for a, generated in entries]


def _is_variant(site: SiteSettings, article: Article, url: str) -> bool:
    """Whether `url` is the article's pattern URL with some suffix."""
    if not url:
        return False
    if url == article_url(site, article.category, article):
        return True
    found = {int(n) for n in re.findall(r"-([1-9][0-9]{0,5})(?![0-9])", url)}
    return any(url == article_url(site, article.category, article, n) for n in found if n > 1)


def slugify(text: str) -> str:
    """ASCII, lower case, words joined by '-': how the site names its pages."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if len(slug) > SLUG_MAX:
        slug = slug[: SLUG_MAX + 1].rsplit("-", 1)[0]  # whole words only
    # A title with no Latin letters (日本語) still needs a unique, stable slug.
    return slug or f"article-{hashlib.blake2b(text.encode(), digest_size=4).hexdigest()}"


def ingest(
    store: Store,
    sources: Iterable[str],
    site: SiteSettings,
    related: RelatedSettings,
    now: datetime,
    category: str | None = None,
    origin: Origin | None = None,
    fetch: pictures.FirstBytes | None = pictures.first_bytes,
) -> IngestReport:
    """Read files, folders and URLs and store their articles; `origin` is the
    `[[sources]]` table they belong to (a one-off import: none, and `category`);
    `fetch` reads a picture's first bytes (None: only sizes the sources declare)."""
    origin = origin or Origin(category=category or "")
    report = IngestReport()
    _holding.cache_clear()  # folders moved or relinked since the last ingest resolve afresh
    options = ReadOptions(site.zone, now, base_url=site.base_url, category=origin.category)
    entries: list[tuple[Article, bool]] = []
    for source, root in expand(sources):
        report.sources += 1
        try:
            result = read_source(source, options)
        except SourceError as e:
            report.errors.append(e)
            continue
        entries.extend(completed(result, source, root, site, origin, report))
    return store_entries(store, site, related, entries, now, report, fetch)


def store_entries(
    store: Store,
    site: SiteSettings,
    related: RelatedSettings,
    entries: list[tuple[Article, bool]],
    now: datetime,
    report: IngestReport,
    fetch: pictures.FirstBytes | None = pictures.first_bytes,
) -> IngestReport:
    """Upsert what the sources gave, with unique URLs: a transaction per 2,000 articles
    and their related links. The one way into the archive: `ingest`, `fetch` and the
    daemon's polls all store here, so the similarity index is made with the project's
    `[related]` settings, recorded (`neighbours.adopt`) before the first article."""
    report.articles = len(entries)
    report.warnings = collapse([*report.warnings, *neighbours.adopt(store, related)])
    # Stored under an old rule's key (the generated URL, the path as typed): re-keyed, not copied.
    store.adopt_legacy([a for a, _ in entries if a.key.startswith(FILE_KEY)], _place)
    # Related links computed once, stored in the same transactions as their articles.
    batch = pictures.settle(store, unique_urls(store, site, entries), now, fetch)
    report.counts = store.upsert(batch, now, neighbours.index, chunk=neighbours.BATCH)
    return report


def completed(
    result: ReadResult, source: str, root: str, site: SiteSettings, origin: Origin, report: IngestReport
) -> list[tuple[Article, bool]]:
    """One source's articles, completed, each with whether the site's pattern made its
    URL; its warnings and errors go to the report. An article identified by nothing
    better than its file (the reader's key is "" or the path) gets the file's key."""
    report.warnings.extend(result.warnings)
    done = []
    for article in result.articles:
        if not _is_url(source) and article.key in ("", source):
            article = replace(article, key=file_key(source, root))
        try:
            finished, warnings = complete(origin.apply(article), site, origin.category, origin.hint)
        except SourceError as e:
            report.errors.append(e)
            continue
        done.append((finished, not plain_line(article.url)))
        report.warnings.extend(warnings)
    return done


def collapse(warnings: list[str]) -> list[str]:
    """One line per distinct warning, counted: a feed of 40 untagged entries says so once."""
    counts = Counter(warnings)
    return [w if counts[w] == 1 else f"{w} ({counts[w]} times)" for w in counts]
