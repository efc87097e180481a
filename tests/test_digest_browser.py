"""Issue 19: the digest as readers see it, in Debian's Chromium: at 320, 375, 600 and 800 px,
light, dark and forced dark; nothing wider than the screen, every text at WCAG AA against
what is behind it (computed styles), and the layout still there with every <style> removed
(clients that strip the head keep only the inlined CSS). Screenshots: tests/artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from newsletter.core.contrast import ratio
from tests.browser import ARGS, ARTIFACTS, CHROMIUM, require_chromium

pytestmark = pytest.mark.slow  # a real browser

sync_api = require_chromium()
GOLDEN = Path(__file__).parent / "golden"
ISSUES = ["weekly.html", "weekly.ar.html", "weekly.ja.html"]  # left-to-right, right-to-left, CJK
WIDTHS = [320, 375, 600, 800]
FORCED_DARK = ["--force-dark-mode", "--enable-features=WebContentsForceDark"]

# Every element that prints text of its own: its colour, the first opaque background behind
# it, and whether it is large (WCAG: 24px, or 18.66px bold, needs only 3:1).
TEXT_COLOURS = """() => {
  const out = [];
  const opaque = (el) => {
    for (; el; el = el.parentElement) {
      const bg = getComputedStyle(el).backgroundColor;
      if (bg && !bg.startsWith('rgba(0, 0, 0, 0)') && bg !== 'transparent') return bg;
    }
    return 'rgb(255, 255, 255)';
  };
  for (const el of document.body.querySelectorAll('*')) {
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own || !el.getClientRects().length) continue;
    const s = getComputedStyle(el);
    if (s.visibility === 'hidden' || s.opacity === '0') continue;
    const size = parseFloat(s.fontSize), bold = parseInt(s.fontWeight) >= 700;
    out.push({text: el.textContent.trim().slice(0, 40), fg: s.color, bg: opaque(el),
              large: size >= 24 || (bold && size >= 18.66)});
  }
  return out;
}"""


@pytest.fixture(scope="module")
def browsers() -> Iterator[dict[str, Any]]:
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        launch = playwright.chromium.launch
        normal = launch(executable_path=str(CHROMIUM), args=ARGS)
        forced = launch(executable_path=str(CHROMIUM), args=[*ARGS, *FORCED_DARK])
        try:
            yield {"light": normal, "dark": normal, "forced": forced}
        finally:
            normal.close()
            forced.close()


def open_issue(browsers: dict[str, Any], name: str, width: int, mode: str) -> Any:
    scheme = "light" if mode == "light" else "dark"
    page = browsers[mode].new_page(viewport={"width": width, "height": 900}, color_scheme=scheme)
    page.goto((GOLDEN / name).as_uri())
    return page


def overflow(page: Any) -> int:
    return int(page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))


@pytest.mark.parametrize("mode", ["light", "dark", "forced"])
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", ISSUES)
def test_issue_fits_and_every_text_is_readable(browsers: dict[str, Any], name: str, width: int, mode: str):
    page = open_issue(browsers, name, width, mode)
    try:
        page.screenshot(path=str(ARTIFACTS / f"digest-{name.removesuffix('.html')}-{width}-{mode}.png"))
        assert overflow(page) <= 0, f"{name} at {width}px ({mode}) scrolls sideways"
        weak = []
        for item in page.evaluate(TEXT_COLOURS):
            needed = 3.0 if item["large"] else 4.5
            found = ratio(item["fg"], item["bg"])
            if found < needed:
                weak.append(f"{item['text']!r}: {item['fg']} on {item['bg']} ({found:.2f})")
        assert not weak, f"{name} at {width}px ({mode}): " + "; ".join(weak[:5])
    finally:
        page.close()


@pytest.mark.parametrize("width", [320, 375, 600])
@pytest.mark.parametrize("name", ISSUES)
def test_layout_survives_without_style_elements(browsers: dict[str, Any], name: str, width: int):
    page = open_issue(browsers, name, width, "light")
    try:
        page.evaluate("document.querySelectorAll('style').forEach(s => s.remove())")
        page.screenshot(path=str(ARTIFACTS / f"digest-{name.removesuffix('.html')}-{width}-nostyle.png"))
        assert overflow(page) <= 0
        # the inlined CSS alone keeps the card and the hierarchy: a white card, a bigger h1 than h3
        sizes = page.evaluate(
            "['h1', 'h3', 'p.m'].map(s => parseFloat(getComputedStyle(document.querySelector(s)).fontSize))"
        )
        assert sizes[0] > sizes[1] > sizes[2]
        card = page.evaluate("getComputedStyle(document.querySelector('.c')).backgroundColor")
        assert card == "rgb(255, 255, 255)"
        hidden = page.evaluate("document.body.firstElementChild.querySelector('div').getClientRects().length")
        assert hidden == 0  # the preheader stays hidden
    finally:
        page.close()


def test_right_to_left_issue_reads_from_the_right(browsers: dict[str, Any]):
    page = open_issue(browsers, "weekly.ar.html", 375, "light")
    try:
        assert page.evaluate("document.documentElement.dir") == "rtl"
        align = page.evaluate("getComputedStyle(document.querySelector('h1').parentElement).textAlign")
        assert align == "right"
        box = page.evaluate("(() => { const r = document.querySelector('h1').getBoundingClientRect(); "
                            "return [r.right, window.innerWidth]; })()")  # fmt: skip
        assert box[1] - box[0] < 40  # the title hugs the right edge
    finally:
        page.close()
