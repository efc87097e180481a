"""MJML templates checked against MJML's own component definitions when they load.

The tags of a template are literal in its .j2 source, so the source itself is checked (with
the Jinja parts blanked out, lines kept): every finding names the file and line. An
`{% include %}` is followed, its tags checked against the includer's parent. mjml-python
(mrml) passes an unknown tag into the HTML as it is and ignores an unknown attribute, so this
is where a typo is caught. The tables come from mjml_spec.json (scripts/mjml_spec.js).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jinja2

SPEC_FILE = Path(__file__).with_name("mjml_spec.json")
INCLUDE_TAG = "nl-include"  # stands in for `{% include "x" %}` in the blanked source
ANY_CHILD = "/^.*^/"  # mjml-validator's "anything" (mj-attributes holds defaults per tag)


@dataclass(frozen=True)
class TemplateProblem:
    template: str
    line: int
    message: str
    fatal: bool  # an unknown or unclosed tag: the HTML would be broken

    def __str__(self) -> str:
        return f"template {self.template}, line {self.line}: {self.message}"


@cache
def spec() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SPEC_FILE.read_text(encoding="utf-8"))
    return data


def blanked(source: str, env: jinja2.Environment) -> str:
    """The template's literal text, every Jinja tag, variable and comment replaced by spaces
    (line breaks kept); an include becomes `<nl-include name="...">`."""
    out: list[str] = []
    line = 1
    tokens = list(env.lex(source))
    for i, (lineno, kind, value) in enumerate(tokens):
        while line < lineno:
            out.append("\n")
            line += 1
        if kind == "data":
            out.append(value)
            line += value.count("\n")
        elif kind == "name" and value == "include" and i + 1 < len(tokens) and tokens[i + 1][1] == "string":
            out.append(f'<{INCLUDE_TAG} name="{tokens[i + 1][2]}" />')
        elif kind in ("variable_begin", "variable_end", "block_begin", "block_end"):
            out.append(" ")
    return "".join(out)


@dataclass
class _Open:
    tag: str
    line: int


@dataclass
class _Walker(HTMLParser):
    """Tracks the open mj- tags; plain HTML inside an ending tag (mj-text) is its content."""

    name: str
    load: Callable[[str], str]
    parent: str | None = None
    problems: list[TemplateProblem] = field(default_factory=list)
    stack: list[_Open] = field(default_factory=list)

    def __post_init__(self) -> None:
        HTMLParser.__init__(self, convert_charrefs=True)

    def _problem(self, message: str, fatal: bool) -> None:
        self.problems.append(TemplateProblem(self.name, self.getpos()[0], message, fatal))

    def _top(self) -> str | None:
        return self.stack[-1].tag if self.stack else self.parent

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, attrs, closes=False)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, attrs, closes=True)

    def _start(self, tag: str, attrs: list[tuple[str, str | None]], closes: bool) -> None:
        if tag == INCLUDE_TAG:
            self._include(dict(attrs).get("name") or "")
            return
        if not _is_mjml(tag):
            return
        tags = spec()["tags"]
        top = self._top()
        if top in tags and tags[top]["ending"]:
            opened = self.stack[-1].line if self.stack else 0
            self._problem(
                f"<{tag}> inside <{top}> (opened at line {opened}; is it closed?), "
                "whose content is HTML: it would be sent as it is",
                True,
            )
            return
        if tag not in tags and not (top == "mj-attributes" or tag in ("mj-all", "mj-class")):
            self._problem(f"unknown MJML tag <{tag}>{_did_you_mean(tag, tags)}", True)
        else:
            self._check_place(tag, top)
            self._check_attributes(tag, top, [a for a, _ in attrs])
        if not closes:
            self.stack.append(_Open(tag, self.getpos()[0]))

    def _check_place(self, tag: str, top: str | None) -> None:
        allowed = spec()["tags"].get(top, {}).get("children") if top else None
        if allowed is not None and ANY_CHILD not in allowed and tag not in allowed:
            self._problem(f"<{tag}> is not allowed inside <{top}> (allowed: {', '.join(allowed)})", False)

    def _check_attributes(self, tag: str, top: str | None, names: list[str]) -> None:
        if top == "mj-attributes" and tag in ("mj-all", "mj-class"):
            return  # defaults for every tag, or a named class: any attribute
        known = {*spec()["tags"][tag]["attributes"], *spec()["global_attributes"]}
        for name in names:
            if name not in known:
                self._problem(f"<{tag}> has no attribute {name!r}{_did_you_mean(name, known)}", False)

    def _include(self, name: str) -> None:
        inner = check_source(name, self.load, self._top())
        self.problems.extend(inner)

    def handle_endtag(self, tag: str) -> None:
        if not _is_mjml(tag):
            return
        top = self.stack[-1] if self.stack else None
        if (
            top is not None
            and top.tag in spec()["tags"]
            and spec()["tags"][top.tag]["ending"]
            and top.tag != tag
        ):
            return  # an mj- tag's end inside HTML content was reported at its start
        if top is None or top.tag != tag:
            opened = f"<{top.tag}> opened at line {top.line} is not closed" if top else "nothing is open"
            self._problem(f"</{tag}> does not match: {opened}", True)
            return
        self.stack.pop()

    def finish(self) -> list[TemplateProblem]:
        self.close()
        for left in self.stack:
            self.problems.append(TemplateProblem(self.name, left.line, f"<{left.tag}> is never closed", True))
        return self.problems


def _is_mjml(tag: str) -> bool:
    return tag == "mjml" or tag.startswith("mj-")


def _did_you_mean(word: str, known: Any) -> str:
    import difflib

    close = difflib.get_close_matches(word, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_source(name: str, load: Callable[[str], str], parent: str | None = None) -> list[TemplateProblem]:
    """Every problem in template `name` (its blanked source from `load`) and its includes."""
    walker = _Walker(name, load, parent)
    walker.feed(load(name))
    return walker.finish()


def check_rendered(name: str, mjml: str) -> list[TemplateProblem]:
    """The safety net after Jinja: an unknown mj- tag that came from a variable."""
    known = spec()["tags"]
    problems = []
    for number, line in enumerate(mjml.splitlines(), 1):
        for tag in re.findall(r"<(mj-[a-z-]+)", line):
            if tag not in known and tag not in ("mj-all", "mj-class"):
                problems.append(
                    TemplateProblem(name, number, f"unknown MJML tag <{tag}> in the rendered MJML", True)
                )
    return problems
