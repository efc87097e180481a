"""The article text format: a scraped article page, one block per line.

line 1   title
line 2   standfirst (the article's own summary)
...      `Published <date>`, an optional share bar, the body
...      optional `Related Articles`: groups of category, summary, `-`, date
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from newsletter.core.errors import SourceError
from newsletter.core.models import Article, Block, RelatedRef
from newsletter.core.text import decode_utf8
from newsletter.sources.readers import ReadOptions, ReadResult
from newsletter.sources.readers.dates import midnight, parse_date

SHARE_BAR = "Facebook X Reddit Pinterest Email"
DROPPED_LINES = {"ADVERTISEMENT", SHARE_BAR}
RELATED_HEADING = "Related Articles"
PUBLISHED = re.compile(r"^Published\s+(?P<date>.+)$")
# A line this short between paragraphs is a subheading or pull quote: the
# seed's paragraphs run to 80+ words, its subheadings to about ten.
SUBHEADING_MAX_WORDS = 20
HEADER_LINES = 6  # the Published line must come this early


def read(source: str, data: bytes, options: ReadOptions) -> ReadResult:
    lines = decode_utf8(source, data).splitlines()
    title = _title(source, lines)
    published_at, published = _published_line(source, lines)
    day = parse_date(published)
    if day is None:
        raise SourceError(
            source,
            f"unreadable date in {lines[published_at].strip()!r}; expected e.g. 'Published July 19, 2025'",
            published_at + 1,
        )
    standfirst = lines[1].strip() if published_at > 1 else ""
    body_lines, related_at = _split_related(lines, published_at + 1)
    result = ReadResult()
    related = tuple(_related(source, lines, related_at, result.warnings))
    article = Article(
        title=title,
        standfirst=standfirst,
        published=midnight(day, options.timezone),
        source=source,
        body=tuple(_blocks(body_lines)),
        related=related,
        key=source,  # ingest makes it the file's stable key, whatever path was typed
    )
    result.articles.append(article)
    return result


def _title(source: str, lines: list[str]) -> str:
    if not lines or not lines[0].strip():
        raise SourceError(source, "expected the title on line 1, found an empty line", 1)
    return " ".join(lines[0].split())


def _published_line(source: str, lines: list[str]) -> tuple[int, str]:
    """The index of the Published line and its date text."""
    for index, line in enumerate(lines[1:HEADER_LINES], start=1):
        match = PUBLISHED.match(line.strip())
        if match:
            return index, match["date"]
    raise SourceError(
        source,
        f"expected a line 'Published <date>' within the first {HEADER_LINES} "
        "lines (title, standfirst, Published ...)",
        2,
    )


def _split_related(lines: list[str], start: int) -> tuple[list[str], int | None]:
    for index in range(start, len(lines)):
        if lines[index].strip() == RELATED_HEADING:
            return lines[start:index], index
    return lines[start:], None


def _blocks(lines: list[str]) -> Iterator[Block]:
    for raw in lines:
        line = " ".join(raw.split())
        if not line or line in DROPPED_LINES:
            continue
        short = line.count(" ") < SUBHEADING_MAX_WORDS  # words joined by single spaces: one split
        yield Block("subheading" if short else "paragraph", line)


def _related(source: str, lines: list[str], heading: int | None, warnings: list[str]) -> Iterator[RelatedRef]:
    if heading is None:
        return
    entries = [(n, line.strip()) for n, line in enumerate(lines[heading + 1 :], heading + 2) if line.strip()]
    while entries:
        group, entries = _take_group(entries)
        ref = _related_ref(group)
        if ref is None:
            warnings.append(
                f"{source}:{group[0][0]}: related entry skipped; expected category, summary, '-', date"
            )
            continue
        yield ref


def _take_group(entries: list[tuple[int, str]]) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """One group runs to its date line (the line after `-`), or 4 lines at most."""
    for i, (_, text) in enumerate(entries[:4]):
        if text == "-":
            return entries[: i + 2], entries[i + 2 :]
    return entries[:4], entries[4:]


def _related_ref(group: list[tuple[int, str]]) -> RelatedRef | None:
    texts = [t for _, t in group]
    if len(texts) != 4 or texts[2] != "-":
        return None
    return RelatedRef(category=texts[0], summary=texts[1], published=parse_date(texts[3]))
