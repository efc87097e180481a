"""Markdown articles with YAML (`---`) or TOML (`+++`) front matter, as Jekyll
and Hugo write them.

Keys: `title`; `date` (else the date of a Jekyll `YYYY-MM-DD-slug.md` file
name); `category`, else the first of `categories`; `categories` and `tags`
(lists, or one string split on commas, else on spaces) together as the tags;
`summary`, else `description`, else `excerpt`, as the standfirst; `url`, else
`permalink`, absolute or relative to the site's `base_url`; `slug`, for the
site's URL pattern when there is no `url` or `permalink` (the title's otherwise);
`image`, else `cover`, else `featured_image`, else the first of Hugo's `images`
(a table's `image`, `path`, `src` or `url` as themes nest it), resolved as `url`
is and kept only as an http(s) URL; `author`, else the first of `authors` (a
name, or a table's `name`). `draft: true` and `published: false` posts are
skipped with a warning.

The body is not rendered: a digest needs plain paragraphs and subheadings, so
a few regexes strip the common inline markup, and Hugo shortcodes and Liquid
tags are removed (their inner text kept). Errors name the front-matter key
and its line, so the author can go straight to it. The body's cleaning is
markdown_body.py.

python-frontmatter and PyYAML load with the first Markdown file read; TOML is
read by the standard library's `tomllib` (python-frontmatter's own TOML
handler needs the `toml` package).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Literal

from newsletter.core.errors import SourceError
from newsletter.core.models import Article
from newsletter.core.text import decode_utf8
from newsletter.sources.readers import ReadOptions, ReadResult, is_web
from newsletter.sources.readers.dates import midnight, parse_datetime, to_utc
from newsletter.sources.readers.feed import plain_name
from newsletter.sources.readers.markdown_body import body_blocks, plain, strip_templates

if TYPE_CHECKING:
    import yaml
    from frontmatter.default_handlers import BaseHandler

DATE_EXAMPLES = "a date such as 2025-07-19 or 2025-07-19 08:30 or 2025-07-19T08:30:00+01:00"
DATE_HINT = " (or a file name such as 2025-07-19-slug.md)"
STANDFIRST_KEYS = ("summary", "description", "excerpt")
URL_KEYS = ("url", "permalink")
IMAGE_KEYS = ("image", "cover", "featured_image", "images")
# Where themes nest the file when the key holds a table: PaperMod's `cover.image`,
# jekyll-seo-tag's `image.path`.
NESTED_IMAGE_KEYS = ("image", "path", "src", "url")
AUTHOR_KEYS = ("author", "authors")

Syntax = Literal["YAML", "TOML"]
_FENCES: dict[Syntax, re.Pattern[str]] = {
    "YAML": re.compile(r"^-{3,}[ \t]*$", re.MULTILINE),  # python-frontmatter's YAML delimiter
    "TOML": re.compile(r"^\+{3,}[ \t]*$", re.MULTILINE),
}
_TOP_LEVEL_KEYS: dict[Syntax, re.Pattern[str]] = {
    "YAML": re.compile(r"^([A-Za-z_][\w-]*)[ \t]*:", re.MULTILINE),
    "TOML": re.compile(r"^([A-Za-z_][\w-]*)[ \t]*=", re.MULTILINE),
}
_TOML_TABLE = re.compile(r"^[ \t]*\[", re.MULTILINE)  # keys after `[params]` are not top level
_TOML_WHERE = re.compile(r" \(at line (\d+), column \d+\)$| \(at end of document\)$")
_FILE_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})-.")
_TRUE = {"true", "yes", "on"}
_FALSE = {"false", "no", "off"}
_JEKYLL_PLACEHOLDER = re.compile(r"(?:^|/):[A-Za-z_]")


@dataclass(frozen=True)
class _FrontMatter:
    """The parsed keys, and the raw header they came from (for line numbers)."""

    source: str
    header: str
    meta: dict[str, object]
    syntax: Syntax = "YAML"

    def line(self, key: str) -> int | None:
        for match in _top_level_keys(self.header, self.syntax):
            if match.group(1) == key:
                return self.header.count("\n", 0, match.start()) + 1
        return None

    def where(self, key: str) -> str:
        """`source:line` of a key, for a warning (just `source` if not found)."""
        line = self.line(key)
        return f"{self.source}:{line}" if line else self.source

    def error(self, key: str, expected: str) -> SourceError:
        return SourceError(self.source, f"front matter: {key}: expected {expected}", self.line(key))


def _top_level_keys(header: str, syntax: Syntax) -> list[re.Match[str]]:
    if syntax == "TOML":
        table = _TOML_TABLE.search(header)
        header = header[: table.start()] if table else header
    return list(_TOP_LEVEL_KEYS[syntax].finditer(header))


def read(source: str, data: bytes, options: ReadOptions) -> ReadResult:
    """Read one Markdown file with a `---` YAML or `+++` TOML front-matter block
    as one article, or as none (with a warning) if it is a draft."""
    text = _decode(source, data)
    fm, content = _front_matter(source, text)
    result = ReadResult()
    draft = _draft(fm)
    if draft:
        # Before any other key is checked: a draft may be unfinished.
        result.warnings.append(f"{source}: {draft}; skipped")
        return result
    category, tags = _category_and_tags(fm)
    url = _url(fm, options, result.warnings)
    result.articles.append(
        Article(
            title=_title(fm),
            published=_published(fm, options),
            source=source,
            standfirst=plain(strip_templates(_standfirst(fm))),
            category=category,
            url=url,
            body=body_blocks(strip_templates(content)),
            tags=tags,
            key=url or source,
            image=_image(fm, options, result.warnings),
            author=_author(fm),
            slug=_optional_text(fm, "slug"),
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
    syntax: Syntax = "TOML" if stripped.startswith("+++") else "YAML"
    fence = "+++" if syntax == "TOML" else "---"
    fences = list(_FENCES[syntax].finditer(stripped))
    if not fences or fences[0].start() != 0:
        reason = "front matter: expected a `---` block (or `+++` for TOML) with title and date first"
        raise SourceError(source, reason, 1)
    if len(fences) < 2:
        raise SourceError(source, f"front matter: expected a closing `{fence}` line", fence_line)
    header = leading + stripped[: fences[1].end()]
    import tomllib

    import frontmatter
    import yaml

    try:
        post = frontmatter.loads(text, handler=_toml_handler() if syntax == "TOML" else None)
    except yaml.YAMLError as exc:
        raise _yaml_error(source, header, fence_line, exc) from None
    except tomllib.TOMLDecodeError as exc:
        raise _toml_error(source, header, fence_line, exc) from None
    except (ValueError, TypeError, AttributeError, OverflowError, RecursionError) as exc:
        # PyYAML's constructors fail with plain Python errors on some values:
        # date(2025, 2, 30) is a ValueError, "!!timestamp x" an AttributeError.
        reason = f"front matter: expected valid values ({exc})"
        raise SourceError(source, reason, fence_line) from None
    return _FrontMatter(source, header, dict(post.metadata), syntax), post.content


@cache
def _toml_handler() -> BaseHandler:
    """python-frontmatter's TOML handler exists only with the `toml` package
    installed; this one reads with the standard library's `tomllib`."""
    import tomllib

    from frontmatter.default_handlers import BaseHandler

    class TOMLHandler(BaseHandler):
        # Unlike python-frontmatter's `^\+{3,}\s*$`, this fence never swallows
        # the blank lines after it, so TOML's line numbers stay the file's.
        FM_BOUNDARY = _FENCES["TOML"]
        START_DELIMITER = END_DELIMITER = "+++"

        def load(self, fm: str) -> dict[str, Any]:
            return tomllib.loads(fm)

    return TOMLHandler()


def _yaml_error(source: str, header: str, fence_line: int, exc: yaml.YAMLError) -> SourceError:
    # The construct's start (an unclosed quote or bracket) beats where the
    # parser gave up; YAML counts from the opening `---` line, 0-based.
    mark = getattr(exc, "context_mark", None) or getattr(exc, "problem_mark", None)
    line = fence_line + mark.line if mark is not None else fence_line
    problem = getattr(exc, "problem", None) or str(exc)
    return _syntax_error(source, header, "YAML", line, problem)


def _toml_error(source: str, header: str, fence_line: int, exc: ValueError) -> SourceError:
    # tomllib counts from the opening `+++` line's end, 1-based; at the end of
    # the document (an unclosed string) it names no line: the last key's it is.
    message = str(exc)
    where = _TOML_WHERE.search(message)
    problem = message[: where.start()] if where else message
    # At the end of the document: the last line before the closing fence.
    line = fence_line + int(where.group(1)) - 1 if where and where.group(1) else header.count("\n")
    return _syntax_error(source, header, "TOML", line, problem)


def _syntax_error(source: str, header: str, syntax: Syntax, line: int, problem: str) -> SourceError:
    keys = [m for m in _top_level_keys(header, syntax) if header.count("\n", 0, m.start()) < line]
    where = f"{keys[-1].group(1)}: " if keys else ""
    return SourceError(source, f"front matter: {where}expected valid {syntax} ({problem})", line)


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


def _standfirst(fm: _FrontMatter) -> str:
    for key in STANDFIRST_KEYS:
        text = _optional_text(fm, key)
        if text:
            return text
    return ""


def _draft(fm: _FrontMatter) -> str:
    """Why the post is not to be published ("" if it is): Hugo's and many
    sites' `draft: true`, Jekyll's `published: false`."""
    if _flag(fm, "draft", strict=True) is True:
        return "draft"
    if _flag(fm, "published", strict=False) is False:
        return "draft (published: false)"
    return ""


def _flag(fm: _FrontMatter, key: str, *, strict: bool) -> bool | None:
    """A yes/no key; None when absent. Other values are an error if `strict`,
    else no flag at all (some sites give `published` a date)."""
    value = fm.meta.get(key)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    if strict:
        raise fm.error(key, f"true or false, got {_shown(value)}")
    return None


def _published(fm: _FrontMatter, options: ReadOptions) -> datetime:
    value = fm.meta.get("date")
    if value is None:
        return _file_name_date(fm, options)
    published = _to_datetime(value, options)
    if published is None:
        raise fm.error("date", f"{DATE_EXAMPLES}, got {_shown(value)}")
    return published


def _file_name_date(fm: _FrontMatter, options: ReadOptions) -> datetime:
    """Jekyll's `_posts/2025-07-19-slug.md`: midnight of that day in the site's zone."""
    match = _FILE_DATE.match(PurePath(fm.source).name)
    if not match:
        raise fm.error("date", DATE_EXAMPLES + DATE_HINT)
    try:
        day = date(*map(int, match.groups()))
    except ValueError:
        raise fm.error(
            "date", f"{DATE_EXAMPLES}; the file name's {match.group()[:-2]!r} is no date"
        ) from None
    return midnight(day, options.timezone)


def _to_datetime(value: object, options: ReadOptions) -> datetime | None:
    # YAML and TOML themselves turn unquoted dates into date or datetime objects.
    if isinstance(value, datetime):
        return to_utc(value, options.timezone)
    if isinstance(value, date):
        return midnight(value, options.timezone)
    if isinstance(value, str):
        return parse_datetime(value, options.timezone)
    return None


def _url(fm: _FrontMatter, options: ReadOptions, warns: list[str]) -> str:
    """`url`, else `permalink`, on the site (see `_on_site`); anything else falls
    back to the site's pattern with a warning."""
    key, url = next(((k, t) for k in URL_KEYS if (t := _optional_text(fm, k))), ("url", ""))
    resolved, reason = _on_site(url, options)
    if reason:
        warns.append(f"{fm.where(key)}: {key} {url!r} {reason}; using the site's pattern")
    return resolved


def _on_site(url: str, options: ReadOptions) -> tuple[str, str]:
    """An absolute http(s) URL as it is, a path (`/blog/x/`) under the site's
    `base_url`; for anything else "" and the reason it cannot be used."""
    if not url or is_web(url):
        return url, ""
    if not _is_path(url):
        return "", "is not an absolute http(s) URL"
    if _JEKYLL_PLACEHOLDER.search(url):
        return "", "has Jekyll placeholders (:name), which only Jekyll fills"
    if not options.base_url:
        return "", "is not an absolute http(s) URL"
    path = urllib.parse.quote(url.lstrip("/"), safe="/:@!$&'()*+,;=-._~%?#")
    return f"{options.base_url.rstrip('/')}/{path}", ""


def _image(fm: _FrontMatter, options: ReadOptions, warns: list[str]) -> str:
    """The first image key that gives a URL on the web (see `_on_site`); one that
    cannot (`javascript:`, a path without `base_url`) is passed over with a warning."""
    for key in IMAGE_KEYS:
        value = _first_text(fm.meta.get(key), NESTED_IMAGE_KEYS)
        url, reason = _on_site(value, options)
        if url:
            return url
        if reason:
            warns.append(f"{fm.where(key)}: {key} {value!r} {reason}; no image from it")
    return ""


def _author(fm: _FrontMatter) -> str:
    names = (plain_name(_first_text(fm.meta.get(key), ("name",))) for key in AUTHOR_KEYS)
    return next((name for name in names if name), "")


def _first_text(value: object, keys: tuple[str, ...]) -> str:
    """One piece of text however themes spell it: the text itself, a list's first
    item, a table's first of `keys`; "" for anything else (a number, a flag)."""
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, dict):
        value = next((value[key] for key in keys if value.get(key)), None)
    return " ".join(value.split()) if isinstance(value, str) else ""


def _is_path(url: str) -> bool:
    """A path on this site: no scheme (`javascript:`), no host (`//elsewhere`)."""
    if url.startswith(("//", "\\")):
        return False
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return False
    return not parts.scheme and not parts.netloc


def _category_and_tags(fm: _FrontMatter) -> tuple[str, tuple[str, ...]]:
    """`category`, else the first of `categories`; the tags are all of
    `categories` and then `tags`, the first spelling of each kept."""
    categories = _names(fm, "categories")
    category = _optional_text(fm, "category") or (categories[0] if categories else "")
    return category, _dedupe([*categories, *_names(fm, "tags")])


def _names(fm: _FrontMatter, key: str) -> list[str]:
    value = fm.meta.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        # "tags: a, b" is common enough to accept; Jekyll itself splits on spaces.
        value = value.split(",") if "," in value else value.split()
    elif isinstance(value, (int, float, date)):
        value = [value]
    if not isinstance(value, list) or any(isinstance(v, (dict, list)) for v in value):
        raise fm.error(key, f"a list such as [health, sleep], got {_shown(value)}")
    names = (" ".join(str(v).split()) for v in value if v is not None)
    return [name for name in names if name]


def _dedupe(names: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for name in names:
        if name:
            seen.setdefault(name.casefold(), name)
    return tuple(seen.values())
