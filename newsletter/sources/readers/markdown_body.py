"""The body of a Markdown article as a digest's plain blocks: Hugo shortcodes and Liquid
tags removed (their inner text kept), inline markup stripped, `#` headings as subheadings.
Its own room: the text's cleaning knows nothing of front matter, keys or their lines.
"""

from __future__ import annotations

import re

from newsletter.core.models import Block, BlockKind

# Hugo shortcodes `{{< x >}}` `{{% x %}}` (their `{{</* x */>}}` escapes too),
# Liquid `{% x %}` and `{{ x }}`. The inner part never holds another `{{` or
# `{%`, so an unclosed tag costs a scan to the next one, not to the end.
_NOT_A_TAG_START = r"(?:[^{]|\{(?![{%]))*?"
_TEMPLATE_TAG = re.compile(
    rf"\{{\{{<(?P<hugo>{_NOT_A_TAG_START})>\}}\}}"
    rf"|\{{\{{%(?P<hugo_md>{_NOT_A_TAG_START})%\}}\}}"
    rf"|\{{%(?P<liquid>{_NOT_A_TAG_START})%\}}"
    rf"|\{{\{{(?P<output>{_NOT_A_TAG_START})\}}\}}"
)
_TAG_NAME = re.compile(r"[\s\-]*(/?[\w-]*)")
_CODE_FENCE = re.compile(r"^[ \t]{0,3}(```|~~~)")
_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}(?:[ \t]+|$)")
_CLOSING_HASHES = re.compile(r"(?:^|[ \t]+)#+[ \t]*$")
_RULE = re.compile(r"^[ \t]*([-*_])([ \t]*\1){2,}[ \t]*$")
_LINK_DEFINITION = re.compile(r"^[ \t]{0,3}\[[^\]]+\]:[ \t]*\S+")
_LINE_MARKER = re.compile(r"^[ \t]*(?:>[ \t]?)*(?:(?:[-*+]|\d{1,9}[.)])[ \t]+)?")
# Inline markup, applied in order: images and links keep their text.
_INLINE = (
    (re.compile(r"<!--.*?-->"), ""),  # `<!--more-->`, Jekyll's and Hugo's summary divider
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


# --- templates -----------------------------------------------------------------


def strip_templates(text: str) -> str:
    """Hugo shortcodes and Liquid tags removed, the text between a pair kept;
    `{% comment %}...{% endcomment %}` goes whole. A `highlight` pair on lines
    of their own becomes a code fence, so its code stays one paragraph."""
    # Removing a tag can join a new one (`{{<{{< x >}} >}}`): a few passes.
    for _ in range(10):
        if "{{" not in text and "{%" not in text:
            break
        stripped = _strip_template_pass(text)
        if stripped == text:
            break
        text = stripped
    return text


def _strip_template_pass(text: str, *, comments: bool = True) -> str:
    pieces: list[str] = []
    # Where an opening `highlight` line's fence may go, if a closing one follows.
    highlight: int | None = None
    in_comment = False
    end = 0
    for tag in _TEMPLATE_TAG.finditer(text):
        if not in_comment:
            pieces.append(text[end : tag.start()])
        end = tag.end()
        name = _tag_name(tag)
        if comments and name == "comment" and tag.group("liquid") is not None:
            in_comment = True
        elif name == "endcomment":
            in_comment = False
        elif in_comment:
            continue
        elif name == "highlight" and _on_own_line(text, tag):
            highlight = len(pieces)
            pieces.append("")
        elif name in ("/highlight", "endhighlight") and highlight is not None and _on_own_line(text, tag):
            pieces[highlight] = "\n```\n"
            pieces.append("\n```\n")
            highlight = None
    if in_comment:  # never closed: the rest is no comment, only the tag goes
        return _strip_template_pass(text, comments=False)
    pieces.append(text[end:])
    return "".join(pieces)


def _tag_name(tag: re.Match[str]) -> str:
    inner = next(group for group in tag.groups() if group is not None)
    match = _TAG_NAME.match(inner)
    return match.group(1).lower() if match else ""


def _on_own_line(text: str, tag: re.Match[str]) -> bool:
    line_start = text.rfind("\n", 0, tag.start()) + 1
    line_end = text.find("\n", tag.end())
    after = text[tag.end() :] if line_end == -1 else text[tag.end() : line_end]
    return not text[line_start : tag.start()].strip() and not after.strip()


# --- body ------------------------------------------------------------------


def body_blocks(markdown: str) -> tuple[Block, ...]:
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
            _append(blocks, "subheading", plain(heading))
        elif not line.strip():
            _flush(blocks, lines, raw=False)
        elif not _RULE.match(line) and not _LINK_DEFINITION.match(line):
            lines.append(_LINE_MARKER.sub("", line, count=1))
    _flush(blocks, lines, raw=fenced)
    return tuple(blocks)


def _flush(blocks: list[Block], lines: list[str], *, raw: bool) -> None:
    text = " ".join(lines)
    _append(blocks, "paragraph", " ".join(text.split()) if raw else plain(text))
    lines.clear()


def _append(blocks: list[Block], kind: BlockKind, text: str) -> None:
    if text:
        blocks.append(Block(kind, text))


def plain(text: str) -> str:
    for pattern, replacement in _INLINE:
        text = pattern.sub(replacement, text)
    return " ".join(text.split())
