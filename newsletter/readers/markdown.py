"""Markdown articles with YAML front matter (title, date, category, summary, url, tags).

The body is not rendered: a digest needs plain paragraphs and subheadings, so
a few regexes strip the common inline markup. Errors name the front-matter key
and its line, so the author can go straight to it.

python-frontmatter and PyYAML load with the first Markdown file read.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

from newsletter.errors import SourceError
from newsletter.models import Article, Block, BlockKind
from newsletter.readers import ReadOptions, ReadResult, decode_utf8
from newsletter.readers.dates import midnight, parse_datetime, to_utc

if TYPE_CHECKING:
    import yaml

DATE_EXAMPLES = "a date such as 2025-07-19 or 2025-07-19 08:30 or 2025-07-19T08:30:00+01:00"

_FENCE = re.compile(r"^-{3,}[ \t]*$", re.MULTILINE)  # python-frontmatter's YAML delimiter
_TOP_LEVEL_KEY = re.compile(r"^([A-Za-z_][\w-]*)[ \t]*:", re.MULTILINE)
_CODE_FENCE = re.compile(r"^[ \t]{0,3}(```|~~~)")
_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}(?:[ \t]+|$)")
_CLOSING_HASHES = re.compile(r"(?:^|[ \t]+)#+[ \t]*$")
_RULE = re.compile(r"^[ \t]*([-*_])([ \t]*\1){2,}[ \t]*$")
_LINK_DEFINITION = re.compile(r"^[ \t]{0,3}\[[^\]]+\]:[ \t]*\S+")
_LINE_MARKER = re.compile(r"^[ \t]*(?:>[ \t]?)*(?:(?:[-*+]|\d{1,9}[.)])[ \t]+)?")
# Inline markup, applied in order: images and links keep their text.
_INLINE = (
    (re.compile(r"!\[([^\]]*)\]\([^)]*\)"), r"\1"),
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),
    (re.compile(r"\[([^\]]+)\]\[[^\]]*\]"), r"\1"),
    (re.compile(r"<(https?://[^>\s]+)>"), r"\1"),
    (re.compile(r"</?[A-Za-z][^<>]*>"), ""),
    (re.compile(r"`+"), ""),
    (re.compile(r"~~(?=\S)(.+?)(?<=\S)~~"), r"\1"),
    (re.compile(r"(?<![\w*])(\*{1,3})(?=\S)(.+?)(?<=\S)\1(?!\*)"), r"\2"),
    # "_" only around words: snake_case names keep their underscores.
    (re.compile(r"(?<![\w_])(_{1,3})(?=\S)(.+?)(?<=\S)\1(?![\w_])"), r"\2"),
    (re.compile(r"\\([\\`*_{}\[\]()#+\-.!>~|])"), r"\1"),
)


@dataclass(frozen=True)
class _FrontMatter:
    """The parsed keys, and the raw header they came from (for line numbers)."""

    source: str
    header: str
    meta: dict[str, object]

    def line(self, key: str) -> int | None:
        for match in _TOP_LEVEL_KEY.finditer(self.header):
            if match.group(1) == key:
                return self.header.count("\n", 0, match.start()) + 1
        return None

    def error(self, key: str, expected: str) -> SourceError:
        return SourceError(self.source, f"front matter: {key}: expected {expected}", self.line(key))


def read(source: str, data: bytes, options: ReadOptions) -> ReadResult:
    """Read one Markdown file with a `---` YAML front-matter block as one article."""
    text = _decode(source, data)
    fm, content = _front_matter(source, text)
    result = ReadResult()
    url = _url(fm, result.warnings)
    result.articles.append(
        Article(
            title=_title(fm),
            published=_published(fm, options),
            source=source,
            standfirst=_plain(_optional_text(fm, "summary")),
            category=_optional_text(fm, "category"),
            url=url,
            body=_body(content),
            tags=_tags(fm),
            key=url or source,
        )
    )
    return result


# --- the file and its front matter -------------------------------------------


def _decode(source: str, data: bytes) -> str:
    return decode_utf8(source, data).replace("\r\n", "\n").replace("\r", "\n")


def _front_matter(source: str, text: str) -> tuple[_FrontMatter, str]:
    # python-frontmatter strips the text first, so leading blank lines are
    # allowed; count them back in for line numbers.
    stripped = text.lstrip()
    leading = text[: len(text) - len(stripped)]
    fence_line = leading.count("\n") + 1
    fences = list(_FENCE.finditer(stripped))
    if not fences or fences[0].start() != 0:
        raise SourceError(source, "front matter: expected a `---` block with title and date first", 1)
    if len(fences) < 2:
        raise SourceError(source, "front matter: expected a closing `---` line", fence_line)
    header = leading + stripped[: fences[1].end()]
    import frontmatter
    import yaml

    try:
        post = frontmatter.loads(text)
    except yaml.YAMLError as exc:
        raise _yaml_error(source, header, fence_line, exc) from None
    except (ValueError, TypeError, AttributeError, OverflowError, RecursionError) as exc:
        # PyYAML's constructors fail with plain Python errors on some values:
        # date(2025, 2, 30) is a ValueError, "!!timestamp x" an AttributeError.
        reason = f"front matter: expected valid values ({exc})"
        raise SourceError(source, reason, fence_line) from None
    return _FrontMatter(source, header, dict(post.metadata)), post.content


def _yaml_error(source: str, header: str, fence_line: int, exc: yaml.YAMLError) -> SourceError:
    # The construct's start (an unclosed quote or bracket) beats where the
    # parser gave up; YAML counts from the opening `---` line, 0-based.
    mark = getattr(exc, "context_mark", None) or getattr(exc, "problem_mark", None)
    line = fence_line + mark.line if mark is not None else fence_line
    keys = [m for m in _TOP_LEVEL_KEY.finditer(header) if header.count("\n", 0, m.start()) < line]
    where = f"{keys[-1].group(1)}: " if keys else ""
    problem = getattr(exc, "problem", None) or str(exc)
    return SourceError(source, f"front matter: {where}expected valid YAML ({problem})", line)


# --- keys ----------------------------------------------------------------------


def _text_value(fm: _FrontMatter, key: str, value: object) -> str:
    if isinstance(value, (dict, list, tuple, set)):
        raise fm.error(key, f"a single line of text, got {_shown(value)}")
    return " ".join(str(value).split())


def _shown(value: object) -> str:
    # Only scalars are quoted: the repr of a YAML structure built from
    # aliases can be exponentially long.
    if isinstance(value, (str, int, float, bool, date)) or value is None:
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."
    return f"a {type(value).__name__}"


def _title(fm: _FrontMatter) -> str:
    title = _text_value(fm, "title", fm.meta.get("title") or "")
    if not title:
        raise fm.error("title", "the article's title")
    return title


def _optional_text(fm: _FrontMatter, key: str) -> str:
    value = fm.meta.get(key)
    return "" if value is None else _text_value(fm, key, value)


def _published(fm: _FrontMatter, options: ReadOptions) -> datetime:
    value = fm.meta.get("date")
    if value is None:
        raise fm.error("date", DATE_EXAMPLES)
    published = _to_datetime(value, options)
    if published is None:
        raise fm.error("date", f"{DATE_EXAMPLES}, got {_shown(value)}")
    return published


def _to_datetime(value: object, options: ReadOptions) -> datetime | None:
    # YAML itself turns unquoted dates into date or datetime objects.
    if isinstance(value, datetime):
        return to_utc(value, options.timezone)
    if isinstance(value, date):
        return midnight(value, options.timezone)
    if isinstance(value, str):
        return parse_datetime(value, options.timezone)
    return None


def _url(fm: _FrontMatter, warns: list[str]) -> str:
    url = _optional_text(fm, "url")
    if not url or _is_web(url):
        return url
    line = fm.line("url")
    where = f"{fm.source}:{line}" if line else fm.source
    warns.append(f"{where}: url {url!r} is not an absolute http(s) URL; using the site's pattern")
    return ""


def _is_web(url: str) -> bool:
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def _tags(fm: _FrontMatter) -> tuple[str, ...]:
    value = fm.meta.get("tags")
    if value is None:
        return ()
    if isinstance(value, str):  # "tags: a, b" is common enough to accept
        value = value.split(",")
    if not isinstance(value, list) or any(isinstance(v, (dict, list)) for v in value):
        raise fm.error("tags", f"a list such as [health, sleep], got {_shown(value)}")
    return _dedupe(" ".join(str(v).split()) for v in value if v is not None)


def _dedupe(names: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for name in names:
        if name:
            seen.setdefault(name.casefold(), name)
    return tuple(seen.values())


# --- body ------------------------------------------------------------------


def _body(markdown: str) -> tuple[Block, ...]:
    """Paragraphs split on blank lines; `#` headings become subheadings.

    Fenced code stays one paragraph with its markup: its blank lines and
    `# comments` are code, not structure.
    """
    blocks: list[Block] = []
    lines: list[str] = []
    fenced = False
    for line in markdown.split("\n"):
        if _CODE_FENCE.match(line):
            _flush(blocks, lines, raw=fenced)
            fenced = not fenced
        elif fenced:
            lines.append(line)
        elif _HEADING.match(line):
            _flush(blocks, lines, raw=False)
            heading = _CLOSING_HASHES.sub("", _HEADING.sub("", line))
            _append(blocks, "subheading", _plain(heading))
        elif not line.strip():
            _flush(blocks, lines, raw=False)
        elif not _RULE.match(line) and not _LINK_DEFINITION.match(line):
            lines.append(_LINE_MARKER.sub("", line, count=1))
    _flush(blocks, lines, raw=fenced)
    return tuple(blocks)


def _flush(blocks: list[Block], lines: list[str], *, raw: bool) -> None:
    text = " ".join(lines)
    _append(blocks, "paragraph", " ".join(text.split()) if raw else _plain(text))
    lines.clear()


def _append(blocks: list[Block], kind: BlockKind, text: str) -> None:
    if text:
        blocks.append(Block(kind, text))


def _plain(text: str) -> str:
    for pattern, replacement in _INLINE:
        text = pattern.sub(replacement, text)
    return " ".join(text.split())
