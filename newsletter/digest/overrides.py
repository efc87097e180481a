"""An editor's overrides of one issue: a word of their own above the lead (Markdown), a
subject instead of the schedule's, one article pinned as the lead, articles left out, and
their order within a section.

Pure: `arrange` reorders the articles selection picked (it never adds one), `apply` puts
the intro and subject on the digest; `intro_html` and `intro_text` make the Markdown safe
for the email: raw HTML is escaped, images and headings are not made, and a link is a link
only to http(s) or mailto (anything else stays text). markdown-it-py loads with the first
intro rendered.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import urlsplit

from markupsafe import Markup

from newsletter.core.models import Digest

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.token import Token

LINK_SCHEMES = ("http", "https", "mailto")
INTRO_LIMIT = 5000  # characters: a note, not an article
SUBJECT_LIMIT = 200
KINDS = ("intro", "subject", "pin", "exclude", "order")  # what a version can change


@dataclass(frozen=True)
class Overrides:
    """One version of an issue's overrides. Articles are named by their archive id."""

    intro: str = ""  # Markdown; "": none
    subject: str = ""  # "": the schedule's subject
    pin: int = 0  # the lead; 0: the newest of the first section, as selection made it
    exclude: tuple[int, ...] = ()
    order: tuple[int, ...] = ()  # these first within their section, in this order

    def as_json(self) -> str:
        return json.dumps(
            {
                "intro": self.intro,
                "subject": self.subject,
                "pin": self.pin,
                "exclude": list(self.exclude),
                "order": list(self.order),
            },
            ensure_ascii=False,
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> Overrides:
        data: dict[str, Any] = json.loads(text)
        return cls(
            intro=str(data.get("intro", "")),
            subject=str(data.get("subject", "")),
            pin=int(data.get("pin", 0)),
            exclude=tuple(int(i) for i in data.get("exclude", ())),
            order=tuple(int(i) for i in data.get("order", ())),
        )


def changes(before: Overrides | None, after: Overrides) -> list[str]:
    """What a version changed against the one before it, as KINDS."""
    old = before or Overrides()
    return [kind for kind in KINDS if getattr(old, kind) != getattr(after, kind)]


class Card(Protocol):
    @property
    def id(self) -> int: ...


C = TypeVar("C", bound=Card)
Sections = list[tuple[str, list[C]]]


def arrange(sections: Sequence[tuple[str, Sequence[C]]], overrides: Overrides) -> Sections[C]:
    """The picked articles as the editor arranged them: the excluded ones left out (a
    section left empty goes), each section in `order`, and the pinned article first in its
    section, that section first: the lead. Never adds an article, never repeats one."""
    kept = _kept(sections, set(overrides.exclude))
    ordered = [(category, _ordered(cards, overrides.order)) for category, cards in kept]
    return _pinned(ordered, overrides.pin)


def _kept(sections: Sequence[tuple[str, Sequence[C]]], excluded: set[int]) -> Sections[C]:
    kept = [(category, [c for c in cards if c.id not in excluded]) for category, cards in sections]
    return [(category, cards) for category, cards in kept if cards]


def _ordered(cards: list[C], order: Sequence[int]) -> list[C]:
    """The listed ones first, in the list's order; the others after, as they were."""
    rank = {article: n for n, article in enumerate(dict.fromkeys(order))}
    return sorted(cards, key=lambda c: rank.get(c.id, len(rank)))  # stable: the rest keep theirs


def _pinned(sections: Sections[C], pin: int) -> Sections[C]:
    for n, (category, cards) in enumerate(sections):
        if any(c.id == pin for c in cards):
            lead = [c for c in cards if c.id == pin] + [c for c in cards if c.id != pin]
            return [(category, lead), *sections[:n], *sections[n + 1 :]]
    return sections  # not in the issue (excluded, or gone from the period): no lead pinned


def apply(digest: Digest, overrides: Overrides, version: int) -> Digest:
    """The intro and subject of `overrides` on a digest whose articles `arrange` made."""
    return replace(digest, intro=overrides.intro, subject=overrides.subject, overrides_version=version)


@cache
def _parser() -> MarkdownIt:
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark", {"html": False})  # raw HTML is text, escaped
    parser.disable(["image", "heading", "lheading"])  # no pixel to fetch, no rival to the title
    # Every link is parsed as one, then `_unlinked` keeps only the safe ones: a refused link
    # leaves its words, never its address (markdown-it's own check would print both).
    parser.validateLink = lambda url: True  # type: ignore[method-assign]
    return parser


def safe_link(url: str) -> bool:
    """A link the email may carry: absolute http(s), or mailto."""
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return False
    return scheme in LINK_SCHEMES


def _tokens(source: str) -> list[Token]:
    tokens = _parser().parse(source)
    for token in tokens:
        if token.children:
            token.children = _unlinked(token.children)
    return tokens


def _unlinked(children: list[Token]) -> list[Token]:
    """The inline tokens without any link to a refused address: a written link keeps its
    words; an autolink (`<javascript:...>`), whose words are the address, goes whole."""
    kept: list[Token] = []
    refused: list[bool] = []  # per open link
    hiding = 0  # inside a refused autolink
    for child in children:
        if child.type == "link_open":
            refused.append(not safe_link(str(child.attrs.get("href", ""))))
            hiding += refused[-1] and child.markup == "autolink"
            if not refused[-1]:
                kept.append(child)
        elif child.type == "link_close" and refused:
            bad = refused.pop()
            hiding -= bad and child.markup == "autolink"
            if not bad:
                kept.append(child)
        elif not hiding:
            kept.append(child)
    return kept


def intro_html(source: str) -> Markup:
    """The intro as HTML for the email: Markdown with every raw tag escaped."""
    if not source.strip():
        return Markup("")
    parser = _parser()
    return Markup(parser.renderer.render(_tokens(source), parser.options, {}))  # noqa: S704 (escaped: html off)


def intro_text(source: str) -> str:
    """The intro for the text part: its paragraphs and list items, a link's address after
    its words (only the links the HTML part makes)."""
    if not source.strip():
        return ""
    blocks: list[str] = []
    mark = ""
    for token in _tokens(source):
        if token.type == "list_item_open":
            mark = f"{token.info}{token.markup} " if token.info else f"{token.markup} "
        elif token.type == "inline":
            blocks.append(mark + _inline_text(token.children or []))
            mark = ""
        elif token.type in ("code_block", "fence"):
            blocks.append(token.content.rstrip("\n"))
    return "\n\n".join(blocks)


def _inline_text(children: Sequence[Token]) -> str:
    words: list[str] = []
    links: list[tuple[int, str]] = []  # where each open link's words start, and its address
    for child in children:
        if child.type in ("text", "code_inline"):
            words.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            words.append("\n")
        elif child.type == "link_open":
            links.append((len(words), str(child.attrs.get("href", ""))))
        elif child.type == "link_close" and links:
            start, href = links.pop()
            label = "".join(words[start:])
            words[start:] = [label if href in (label, f"mailto:{label}") else f"{label} <{href}>"]
    return "".join(words)
