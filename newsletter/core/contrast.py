"""WCAG 2 contrast: relative luminance and the ratio of two `#rrggbb` colours.

The one computation, used by the theme's check (core/theme.py), the quality check
(digest/check/contrast.py) and the tests
(light, dark and browser-computed colours alike)."""

from __future__ import annotations

import re

HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
AA_TEXT = 4.5  # WCAG 2.1 AA for body text


def channels(colour: str) -> tuple[int, int, int]:
    """`#2f6f68` -> (47, 111, 104); also `rgb(47, 111, 104)` as a browser reports it."""
    if HEX.match(colour):
        return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)
    numbers = re.findall(r"\d+(?:\.\d+)?", colour)
    if not colour.startswith("rgb") or len(numbers) < 3:
        raise ValueError(f"a #rrggbb colour, got {colour!r}")
    r, g, b = (round(float(n)) for n in numbers[:3])
    return r, g, b


Rgb = tuple[int, int, int]


def luminance(colour: str) -> float:
    """WCAG relative luminance (sRGB linearised, Rec. 709 weights)."""
    return rgb_luminance(channels(colour))


def rgb_luminance(rgb: Rgb) -> float:
    def linear(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(v) for v in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def ratio(foreground: str, background: str) -> float:
    """From 1 (the same) to 21 (black on white)."""
    return rgb_ratio(channels(foreground), channels(background))


def rgb_ratio(a: Rgb, b: Rgb) -> float:
    """The same, of two colours as channels (the quality check reads them from styles)."""
    lighter, darker = sorted((rgb_luminance(a), rgb_luminance(b)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)
