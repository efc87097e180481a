"""The preview's light/dark switch for the email frames.

A page cannot make a framed document's `prefers-color-scheme` match what it wants (the
media feature follows the reader's system), so the frame's route rewrites the email's
own `<style>` blocks instead: with `?scheme=dark` every `(prefers-color-scheme: dark)`
condition is made always true and every `(prefers-color-scheme: light)` one never true
(and the reverse for `light`). The rules inside stay exactly as the template wrote them,
so the frame shows what a client in that mode applies; nothing else of the email changes.
"""

from __future__ import annotations

import re

SCHEMES = ("light", "dark")
STYLE = re.compile(r"(<style\b[^>]*>)(.*?)(</style\s*>)", re.IGNORECASE | re.DOTALL)
CONDITION = re.compile(r"\(\s*prefers-color-scheme\s*:\s*(light|dark)\s*\)", re.IGNORECASE)
ALWAYS = "(min-width: 0px)"
NEVER = "(max-width: -1px)"  # a negative width: no viewport matches (an invalid one: "not all")


def scheme_of(value: str | None) -> str | None:
    """`?scheme=`: "light" or "dark"; anything else is the reader's own setting (None)."""
    return value if value in SCHEMES else None


def forced(html: str, scheme: str) -> str:
    """The email with its colour-scheme media conditions decided for `scheme`."""

    def decide(condition: re.Match[str]) -> str:
        return ALWAYS if condition.group(1).lower() == scheme else NEVER

    def style(block: re.Match[str]) -> str:
        return block.group(1) + CONDITION.sub(decide, block.group(2)) + block.group(3)

    return STYLE.sub(style, html)


def has_dark_styles(html: str) -> bool:
    """Whether the email says how it looks in dark mode (else each client recolours it)."""
    return any(CONDITION.search(block.group(2)) for block in STYLE.finditer(html))
