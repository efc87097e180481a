"""Client support from caniemail's data (MIT; `make caniemail` fetches the npm package).

Every CSS property, at-rule, media feature, HTML element and attribute the email uses is
looked up; what MJML itself emits for a minimal document is the baseline (MJML handles
those with its own fallbacks) and is not reported. Beyond it, per client family: an error
where a main client has no support, a warning where the support is partial."""

from __future__ import annotations

import json
import logging
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from newsletter.core.resources import PACKAGE
from newsletter.digest.check import Finding

CANIEMAIL_VERSION = "2.0.2"
DATA = PACKAGE.parent / ".cache" / "caniemail" / "caniemail.json"
# The clients judged: family -> platforms, as caniemail names them.
CLIENTS = {
    "gmail": ("desktop-webmail", "ios", "android"),
    "outlook": ("windows", "macos", "outlook-com"),
    "apple-mail": ("macos", "ios"),
    "yahoo": ("desktop-webmail", "ios", "android"),
}
# A minimal document: a title and a preview (MJML hides the preview with its own styles).
MINIMAL = (
    "<mjml><mj-head><mj-title>t</mj-title><mj-preview>p</mj-preview></mj-head><mj-body>"
    '<mj-section background-color="#fff"><mj-column><mj-text>x</mj-text></mj-column></mj-section>'
    "</mj-body></mjml>"
)
# What a client without it simply leaves out, the content still whole and in order: square
# corners, no tracking, no capitals, a thumbnail above its text instead of beside it
# (float), the client's own line breaking (overflow-wrap, white-space), normal weight
# (font-weight), an isolating element read as plain inline text (bdi). Reported as notes,
# not as faults. Our choice, not caniemail's data: a feature whose absence hides or
# garbles content (position, display:none for real content, background images with
# text on them) never goes on this list.
DEGRADES_GRACEFULLY = frozenset(
    {
        "css-border-radius",
        "css-letter-spacing",
        "css-text-transform",
        "css-float",
        "css-overflow-wrap",
        "css-white-space",
        "css-font-weight",
        "html-bdi",
    }
)
HEADINGS = {f"h{n}" for n in range(1, 7)}


def data_path() -> Path:
    return DATA


@cache
def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return {f["slug"]: f for f in data["data"]}


def check_clients(html: str) -> list[Finding]:
    path = data_path()
    if not html.strip():
        return []
    if not path.is_file():
        return [Finding("clients", "skipped", f"no caniemail data at {path}: run `make caniemail`")]
    features = _load(path)
    used = uses(html) - baseline()
    found = []
    for slug in sorted(used & features.keys()):
        found += _judge(features[slug])
    return found


@cache
def baseline() -> frozenset[str]:
    import mjml

    from newsletter.digest.render import inline_css

    return frozenset(uses(inline_css(mjml.mjml2html(MINIMAL, fonts={}))))


def _judge(feature: dict[str, Any]) -> list[Finding]:
    lacking, partial = [], []
    for family, platforms in CLIENTS.items():
        for platform in platforms:
            support = _latest(feature["stats"].get(family, {}).get(platform, {}))
            name = f"{family} {platform}"
            if support.startswith("n"):
                lacking.append(name)
            elif support.startswith("a"):
                partial.append(name)
    title = f"{feature['title']} ({feature['slug']})"
    graceful = feature["slug"] in DEGRADES_GRACEFULLY or feature["slug"].startswith("css-at-media-")
    if graceful and (lacking or partial):
        return [Finding("clients", "note", f"{title}: left out in {', '.join(lacking + partial)}")]
    if lacking:
        return [Finding("clients", "error", f"{title}: not supported in {', '.join(lacking)}")]
    if partial:
        return [Finding("clients", "warning", f"{title}: partly supported in {', '.join(partial)}")]
    return []


def _latest(versions: dict[str, str]) -> str:
    return list(versions.values())[-1] if versions else "u"  # caniemail lists them oldest first


def uses(html: str) -> set[str]:
    """caniemail slugs for what `html` uses."""
    import lxml.html

    doc = lxml.html.document_fromstring(html)
    slugs: set[str] = set()
    for element in doc.iter():
        if not isinstance(element.tag, str):
            continue
        slugs |= _element(element.tag)
        slugs |= {f"html-{name}" for name in element.attrib if name != "style"}
        slugs |= {f"css-{name}" for name in _properties(element.get("style") or "")}
    for style in doc.iter("style"):
        slugs |= _stylesheet(style.text or "")
    return slugs


def _element(tag: str) -> set[str]:
    if tag in HEADINGS:
        return {"html-h1-h6"}
    if tag in ("ul", "ol", "li"):
        return {"html-lists"}
    return {f"html-{tag}"}


@lru_cache(maxsize=4096)  # an issue repeats a few dozen inline styles on hundreds of elements
def _properties(style: str) -> frozenset[str]:
    import cssutils

    cssutils.log.setLevel(logging.CRITICAL)
    return frozenset(p.name for p in cssutils.parseStyle(style))


@lru_cache(maxsize=64)  # a template's style blocks are the same text at every build
def _stylesheet(text: str) -> frozenset[str]:
    import cssutils

    cssutils.log.setLevel(logging.CRITICAL)
    slugs: set[str] = set()
    for rule in cssutils.parseString(text, validate=False):
        if rule.type == rule.MEDIA_RULE:
            slugs.add("css-at-media")
            media = rule.media.mediaText
            slugs |= {
                f"css-at-media-{f}"
                for f in ("prefers-color-scheme", "prefers-reduced-motion", "hover", "orientation")
                if f in media
            }
            # what is inside a media query is an enhancement: a client that lacks the query skips it
        elif rule.type == rule.STYLE_RULE:
            slugs |= {f"css-{p.name}" for p in rule.style}
        elif rule.type == rule.FONT_FACE_RULE:
            slugs.add("css-at-font-face")
        elif rule.type == rule.IMPORT_RULE:
            slugs.add("css-at-import")
    return frozenset(slugs)
