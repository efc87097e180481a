"""Issue 19: an issue with pictures as readers see it, in Debian's Chromium, with the
pictures shown and with them blocked (many clients block images until asked): nothing
wider than the screen, the alt text in place, the text still readable and in order.
The pictures are answered by the page's own route (a PNG made here): nothing leaves the
machine. Screenshots: tests/artifacts/digest-images-*.png."""

from __future__ import annotations

import struct
import zlib
from dataclasses import replace
from typing import Any

import pytest

from newsletter.digest.render import Renderer, default_templates
from tests.browser import ARGS, ARTIFACTS, CHROMIUM, require_chromium
from tests.test_languages import SUMMARY, Image, _with_image
from tests.test_render import LINKS, SETTINGS, digest

pytestmark = pytest.mark.slow  # a real browser

sync_api = require_chromium()


def png(width: int, height: int) -> bytes:
    """A plain teal PNG of that size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + b"\x2f\x6f\x68" * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


def pictured_issue() -> str:
    d = digest(per_category=3, summary=SUMMARY)
    d = replace(d, sections=tuple(replace(s, articles=tuple(
        _with_image(a, Image(f"https://cdn.example.org/img/{a.id}.png", f"Photo for {a.title}", 1200, 800))
        for a in s.articles)) for s in d.sections))  # fmt: skip
    return Renderer([default_templates()]).render(d, SETTINGS, LINKS).html


@pytest.mark.parametrize("width", [320, 375, 600])
@pytest.mark.parametrize("images", ["shown", "blocked"])
def test_an_issue_with_pictures_reads_well_shown_or_blocked(tmp_path: Any, images: str, width: int):
    page_file = tmp_path / "issue.html"
    page_file.write_text(pictured_issue(), encoding="utf-8")
    picture = png(1200, 800)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            if images == "shown":
                page.route(
                    "https://cdn.example.org/**",
                    lambda route: route.fulfill(body=picture, content_type="image/png"),
                )
            else:
                page.route("https://cdn.example.org/**", lambda route: route.abort())
            page.goto(page_file.as_uri())
            page.wait_for_load_state("load")
            page.screenshot(path=str(ARTIFACTS / f"digest-images-{images}-{width}.png"))
            assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
            boxes = page.evaluate(
                "[...document.images].filter(i => i.src.includes('cdn.example.org'))"
                ".map(i => [i.getBoundingClientRect().width, i.naturalWidth, i.alt])"
            )
            assert boxes and all(alt.startswith("Photo for ") for _, _, alt in boxes)
            assert all(shown <= width for shown, _, _ in boxes)  # never wider than the screen
            if images == "shown":
                assert all(natural == 1200 for _, natural, _ in boxes)
            else:
                assert all(natural == 0 for _, natural, _ in boxes)
            # the words are all there, in order, whatever the pictures do
            text = page.evaluate("document.body.innerText")
            assert text.index("Read more") < text.rindex("Read more")
        finally:
            browser.close()
