"""`[theme]` in newsletter.toml: the brand of the mails and the public pages, without
editing MJML. Colours are `#rrggbb`; the defaults are the teal look of the default
templates, with a footer grey that passes WCAG AA on the page colour.

`contrast_warnings` names every text/background pair under 4.5:1 (a `build` warning):
a theme is the owner's choice, so a weak pair warns rather than refuses."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, field_validator

from newsletter.core.contrast import AA_TEXT, HEX, ratio

SYSTEM_FONTS = "-apple-system,BlinkMacSystemFont,'Segoe UI',Roboto,Helvetica,Arial,sans-serif"
COLOUR_KEYS = (
    "accent", "link", "background", "page", "text", "heading", "muted", "button_text",
)  # fmt: skip
FONT_STACK = re.compile(r"^[A-Za-z0-9 ,'\"_-]{1,300}$")


def _check_colour(value: str) -> str:
    if not HEX.match(value):
        raise ValueError("a colour written #rrggbb, such as '#2f6f68'")
    return value.lower()


class ThemeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    logo_url: str = ""  # https only: an http image is blocked or warned about by most clients
    logo_alt: str = ""  # default: the site's name
    logo_width: int = 0  # display width in pixels (at most 552); 0: 160
    font: str = SYSTEM_FONTS
    accent: str = "#2f6f68"  # the top rule, section headings, the button
    link: str = "#2f6f68"
    background: str = "#ffffff"  # behind the text (the card)
    page: str = "#f3f4f6"  # around the card, behind the footer
    text: str = "#374151"
    heading: str = "#111827"
    muted: str = "#4b5563"  # dates, labels, the footer (#6b7280 before: 4.4:1 on the page)
    button_text: str = "#ffffff"
    dark_accent: str = "#7fc1b8"
    dark_link: str = "#7fc1b8"
    dark_background: str = "#1c1f22"
    dark_page: str = "#111315"
    dark_text: str = "#d4d8dc"
    dark_heading: str = "#f3f4f6"
    dark_muted: str = "#a3aab1"

    _colours = field_validator(*COLOUR_KEYS, *(f"dark_{k}" for k in COLOUR_KEYS[:7]))(_check_colour)

    @field_validator("logo_url")
    @classmethod
    def _logo(cls, value: str) -> str:
        if value and not re.match(r"^https://[^\s\"'<>]+$", value):
            raise ValueError("an https:// URL of the logo image")
        return value

    @field_validator("logo_width")
    @classmethod
    def _width(cls, value: int) -> int:
        if not 0 <= value <= 552:
            raise ValueError("a width in pixels from 1 to 552 (0: the default, 160)")
        return value

    @field_validator("font")
    @classmethod
    def _font(cls, value: str) -> str:
        if not FONT_STACK.match(value):
            raise ValueError("a CSS font stack such as \"Georgia,'Times New Roman',serif\" (no ; { } < >)")
        return value


def text_pairs(theme: ThemeSettings) -> list[tuple[str, str, str, str]]:
    """(foreground key, its colour, background key, its colour) for every text the
    templates print on a background, light and dark."""
    pairs = []
    for prefix in ("", "dark_"):
        card, page = f"{prefix}background", f"{prefix}page"
        for fg in ("text", "heading", "muted", "link", "accent"):
            pairs.append((f"{prefix}{fg}", card))
        pairs += [(f"{prefix}muted", page), (f"{prefix}link", page)]
    pairs.append(("button_text", "accent"))
    values = theme.model_dump()
    return [(fg, values[fg], bg, values[bg]) for fg, bg in pairs]


def contrast_warnings(theme: ThemeSettings) -> list[str]:
    """One line per pair under WCAG AA's 4.5:1, naming the keys and the ratio."""
    return [
        f"[theme] {fg} {fg_colour} on {bg} {bg_colour} has contrast {ratio(fg_colour, bg_colour):.2f}:1, "
        f"under WCAG AA's {AA_TEXT}:1: hard to read for many"
        for fg, fg_colour, bg, bg_colour in text_pairs(theme)
        if ratio(fg_colour, bg_colour) < AA_TEXT
    ]
