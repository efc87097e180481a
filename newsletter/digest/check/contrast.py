"""WCAG 2 contrast of every piece of text against the background it sits on, from the
inlined styles (premailer has put them on the elements): colour and font inherited from
the ancestors, the background from the nearest ancestor that paints one."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING

from newsletter.core.contrast import Rgb
from newsletter.core.contrast import rgb_ratio as ratio

if TYPE_CHECKING:
    from lxml.html import HtmlElement

NAMED: dict[str, Rgb] = {"white": (255, 255, 255), "black": (0, 0, 0)}
LARGE_PX, LARGE_BOLD_PX = 24.0, 18.66


@dataclass(frozen=True)
class Inherited:
    color: Rgb = (0, 0, 0)
    background: Rgb = (255, 255, 255)
    size: float = 16.0
    bold: bool = False


@lru_cache(maxsize=1024)  # a few theme colours, asked for on every element
def parse_color(value: str) -> Rgb | None:
    value = value.strip().lower().replace("!important", "").strip()
    if value in NAMED:
        return NAMED[value]
    hexa = re.fullmatch(r"#([0-9a-f]{3}|[0-9a-f]{6})", value)
    if hexa:
        digits = hexa.group(1)
        if len(digits) == 3:
            digits = "".join(c * 2 for c in digits)
        return (int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16))
    rgb = re.fullmatch(r"rgba?\((\d+),\s*(\d+),\s*(\d+)(,\s*1(\.0*)?)?\)", value)
    return (int(rgb.group(1)), int(rgb.group(2)), int(rgb.group(3))) if rgb else None


def _style(element: HtmlElement) -> dict[str, str]:
    return dict(_declarations(element.get("style") or ""))


@lru_cache(maxsize=4096)  # an issue repeats a few dozen inline styles on hundreds of elements
def _declarations(style: str) -> tuple[tuple[str, str], ...]:
    import cssutils

    cssutils.log.setLevel(logging.CRITICAL)
    return tuple((p.name, p.value) for p in cssutils.parseStyle(style))


def _inherit(element: HtmlElement, outer: Inherited) -> Inherited | None:
    """What `element` passes to its text and children; None when it is not shown."""
    style = _style(element)
    if style.get("display", "").startswith("none") or element.tag in ("style", "script", "head", "title"):
        return None
    state = outer
    color = parse_color(style.get("color", "") or element.get("color") or "")
    back = (
        style.get("background-color") or style.get("background", "").split(" ")[0] or element.get("bgcolor")
    )
    painted = parse_color(back or "")
    size = re.match(r"([\d.]+)px", style.get("font-size", ""))
    bold = style.get("font-weight", "") in ("bold", "700", "800", "900") or element.tag in ("b", "strong")
    if color:
        state = replace(state, color=color)
    if painted:
        state = replace(state, background=painted)
    if size:
        state = replace(state, size=float(size.group(1)))
    if bold or element.tag in ("h1", "h2", "h3"):
        state = replace(state, bold=True)
    return state


def low_contrast(
    root: HtmlElement, outer: Inherited | None = None
) -> Iterator[tuple[HtmlElement, float, float]]:
    """Each element with its own text whose contrast is under WCAG AA: 4.5:1 for body
    text, 3:1 for large text (24px, or 18.66px bold)."""
    if not isinstance(root.tag, str):
        return  # a comment
    state = _inherit(root, outer or Inherited())
    if state is None:
        return
    if (root.text or "").strip():
        large = state.size >= LARGE_PX or (state.bold and state.size >= LARGE_BOLD_PX)
        needed = 3.0 if large else 4.5
        found = ratio(state.color, state.background)
        if found < needed:
            yield root, found, needed
    for child in root:
        yield from low_contrast(child, state)
