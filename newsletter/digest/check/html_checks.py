"""Checks on the HTML part: size, links, images, structure, the preheader, contrast.

lxml parses the HTML (as premailer does); cssutils reads the inline styles."""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from newsletter.digest.check import Finding, Letter, Level

if TYPE_CHECKING:
    from lxml.html import HtmlElement

KB = 1024
GMAIL_CLIP = 102 * KB  # Gmail shows "[Message clipped]" past this many bytes of HTML
NEAR_CLIP = 90 * KB
GMAIL_STYLE = 16 * KB  # Gmail drops a <head> whose <style> is larger
PLACEHOLDER_HOSTS = re.compile(r"(^|\.)example(\.(org|com|net))?$")
PLACEHOLDER_TEXT = ("1 Example Street",)  # what `newsletter init` writes as the postal address
BODY_TEXT_PX = 18.66  # WCAG "large text" starts at 18.66px bold or 24px: 3:1 above, 4.5:1 below
IMAGE_AREA_PER_CHAR = 400  # px² of image per character of text above which a mail is "mostly image"
PREHEADER_ROOM = 90  # characters an inbox may show; a shorter preheader lets body text leak in


RELATED_LINE = "r"  # the class of a card's related-links line in the default template


def check_html(letter: Letter) -> list[Finding]:
    import lxml.html

    if not letter.html.strip():
        return [Finding("structure", "error", "no HTML part")]
    doc = lxml.html.document_fromstring(letter.html)
    found = [*_size(letter.html, doc), *_links(doc, letter.sent), *_images(doc), *_structure(doc)]
    found += _preheader(doc, letter)
    found += _contrast(doc)
    return found


def _size(html: str, doc: HtmlElement) -> Iterator[Finding]:
    size = len(html.encode("utf-8"))
    if size > GMAIL_CLIP:
        yield Finding("size", "error", f"HTML is {size / KB:.1f} KB: Gmail clips messages over 102 KB")
    elif size > NEAR_CLIP:
        yield Finding("size", "warning", f"HTML is {size / KB:.1f} KB, close to Gmail's 102 KB clip")
    style = sum(len((s.text or "").encode("utf-8")) for s in doc.iter("style"))
    if style > GMAIL_STYLE:
        yield Finding("size", "error", f"<style> is {style / KB:.1f} KB: Gmail ignores it over 16 KB")


def _links(doc: HtmlElement, sent: bool) -> Iterator[Finding]:
    ids = {e.get("id") for e in doc.iter() if e.get("id")}
    seen: Counter[str] = Counter()
    for a in doc.iter("a"):
        href = (a.get("href") or "").strip()
        label = " ".join(a.text_content().split())[:40]
        yield from _link(href, label, ids, sent)
        if urlsplit(href).scheme in ("http", "https"):
            seen[href] += 1
    yield from _placeholders(doc, seen, sent)
    yield from _related_twice(doc)


def _related_twice(doc: HtmlElement) -> Iterator[Finding]:
    """An article offered as related on more than one card (the default template's related
    lines are `class="r"`). A site's own picks may repeat by design (each card shows its
    own), so this is a note for the editor, not a fault; a card's title and its "Read
    more" pointing to one article are not counted."""
    related: Counter[str] = Counter()
    for line in doc.find_class(RELATED_LINE):
        related.update({(a.get("href") or "").strip() for a in line.iter("a")} - {""})
    for href, times in related.items():
        if times > 1:
            yield Finding("links", "note", f"{href} is offered as related on {times} cards of one issue")


def _link(href: str, label: str, ids: set[str | None], sent: bool) -> Iterator[Finding]:
    parts = urlsplit(href)
    where = f"link {label!r} ({href or 'empty'})"
    if not href or href == "#":
        yield Finding("links", "error", f"{where}: no target")
    elif href.startswith("#"):
        if href[1:] not in ids:
            yield Finding("links", "error", f"{where}: no element with id {href[1:]!r} in this email")
    elif parts.scheme == "mailto":
        return
    elif parts.scheme not in ("http", "https") or not parts.hostname:
        yield Finding("links", "error", f"{where}: not an absolute http(s) or mailto link")
    elif _local_host(parts.hostname):
        yield Finding("links", "error", f"{where}: a local or IP-address host readers cannot reach")


def _placeholders(doc: HtmlElement, hrefs: Counter[str], sent: bool) -> Iterator[Finding]:
    """What `newsletter init` writes for a new project: a note in a built issue (the demo
    keeps them on purpose, and `send` refuses them over SMTP), an error in a sent one."""
    level: Level = "error" if sent else "note"
    hosts = sorted({h for h in (urlsplit(u).hostname or "" for u in hrefs) if PLACEHOLDER_HOSTS.search(h)})
    if hosts:
        yield Finding("placeholders", level, f"links to example domains: {', '.join(hosts)}")
    text = _body(doc).text_content()
    for value in PLACEHOLDER_TEXT:
        if value in text:
            yield Finding("placeholders", level, f"{value!r} (the placeholder postal address)")


def _local_host(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _images(doc: HtmlElement) -> Iterator[Finding]:
    area = 0
    for img in doc.iter("img"):
        src = img.get("src") or ""
        if img.get("alt") is None:
            yield Finding("images", "error", f"image {src[:60]!r} has no alt text")
        if not img.get("width"):
            yield Finding("images", "warning", f"image {src[:60]!r} has no width attribute (Outlook)")
        if not src.startswith("https://"):
            yield Finding("images", "error", f"image {src[:60]!r} is not served over https")
        width, height = _pixels(img.get("width")), _pixels(img.get("height"))
        area += width * (height or width)
    text = len(" ".join(_body(doc).text_content().split()))
    if area and area > IMAGE_AREA_PER_CHAR * max(text, 1):
        yield Finding(
            "images", "warning", f"mostly image: {area} px² of images for {text} characters of text"
        )


def _pixels(value: str | None) -> int:
    digits = re.match(r"\s*(\d+)", value or "")
    return int(digits.group(1)) if digits else 0


def _body(doc: HtmlElement) -> HtmlElement:
    return doc.find("body") if doc.find("body") is not None else doc


def _structure(doc: HtmlElement) -> Iterator[Finding]:
    if not doc.get("lang"):
        yield Finding("structure", "error", "<html> has no lang attribute (screen readers pick the voice)")
    title = doc.find(".//title")
    if title is None or not (title.text or "").strip():
        yield Finding("structure", "warning", "no <title>")
    layout = [t for t in doc.iter("table") if t.get("role") != "presentation" and t.find(".//th") is None]
    if layout:
        yield Finding("structure", "warning", f'{len(layout)} layout tables without role="presentation"')


def _preheader(doc: HtmlElement, letter: Letter) -> Iterator[Finding]:
    hidden = next((e for e in _body(doc).iter() if _is_hidden(e)), None)
    shown = (
        (hidden.text_content() if hidden is not None else "")
        if letter.preheader is None
        else letter.preheader
    )
    words = " ".join(re.sub(r"[\u034f\u200c\u00a0\u200b]", " ", shown).split())
    if not words:
        yield Finding("preheader", "warning", "no preheader: the inbox shows the first text of the body")
        return
    if letter.subject and words.casefold() in letter.subject.casefold():
        yield Finding("preheader", "warning", "the preheader repeats the subject")
    if hidden is not None and len(hidden.text_content()) < PREHEADER_ROOM:
        yield Finding(
            "preheader", "warning", "the preheader is short and unpadded: body text follows it in the inbox"
        )


def _is_hidden(element: HtmlElement) -> bool:
    style = (element.get("style") or "").replace(" ", "").lower()
    return "display:none" in style


def _contrast(doc: HtmlElement) -> Iterator[Finding]:
    from newsletter.digest.check.contrast import low_contrast

    for element, ratio, needed in low_contrast(_body(doc)):
        text = " ".join((element.text or "").split())[:40]
        yield Finding(
            "contrast", "error", f"text {text!r} has contrast {ratio:.2f}:1, needs {needed}:1 (WCAG AA)"
        )


def check_online(html: str) -> list[Finding]:
    """HEAD each distinct http(s) link (only with --online)."""
    import urllib.request

    import lxml.html

    found = []
    hrefs = {a.get("href") for a in lxml.html.document_fromstring(html).iter("a")}
    for href in sorted(h for h in hrefs if h and h.startswith(("http://", "https://"))):
        try:
            with urllib.request.urlopen(urllib.request.Request(href, method="HEAD"), timeout=10) as answer:
                status = answer.status
        except Exception as e:  # any failure to reach the link is what is reported
            found.append(Finding("online", "error", f"{href}: {e}"))
            continue
        if status >= 400:
            found.append(Finding("online", "error", f"{href}: HTTP {status}"))
    return found
