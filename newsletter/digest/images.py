"""An article's picture: which of a source's images a reader would agree is one, its
size read from the file's first bytes, and the size it is shown at in the email.

Pure: the readers offer candidates, ingest measures the chosen one over the network
(sources/pictures.py) and the store keeps the size; a build only reads it back.
"""

from __future__ import annotations

import re
import struct
import urllib.parse
from collections.abc import Iterable

from newsletter.core.models import Picture

# The email's column is 600 px; the card's padding leaves this much for a picture.
COLUMN_WIDTH = 552
# Smaller than this on either side, by the source's word or the file's, is an icon or a
# beacon, not the article's picture.
MIN_SIDE = 100
# How much of an image file is read to learn its size: every format's header is far inside.
HEADER_BYTES = 64 * 1024
MAX_URL = 2048  # the image_sizes table's key

# Hosts that serve ads and beacons, not pictures (matched as a part of the host name).
TRACKER_HOSTS = ("adsystem", "doubleclick", "googlesyndication", "google-analytics", "scorecardresearch")
# Paths of beacons and counters: Medium's `/_/stat`, `/pixel`, `/beacon`, `/track...`.
TRACKER_PATH = re.compile(r"/_/stat|/(pixel|beacon|track\w*|1x1|spacer)(\.gif|\.png)?$", re.IGNORECASE)
# File-type and other icons: `/filetype/jpg.gif`, `/icons/rss.gif`.
ICON_PATH = re.compile(r"/(filetypes?|icons?|emoji|smilies)/[^/]*\.(gif|png|svg|ico)$", re.IGNORECASE)


def refusal(url: str, width: int = 0, height: int = 0) -> str:
    """Why `url` is no article picture ("" when it may be one); `width` and `height` are
    what the source declares (0: it does not say)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "not a URL"
    host, path = (parts.hostname or "").lower(), parts.path
    if len(url) > MAX_URL:
        return "a URL too long"
    if parts.scheme.lower() not in ("http", "https") or not host:
        return "not a web URL"
    if any(word in host for word in TRACKER_HOSTS):
        return "an ad or tracking host"
    if TRACKER_PATH.search(path):
        return "a tracking pixel"
    if ICON_PATH.search(path) or path.lower().endswith((".ico", ".svg")):
        return "an icon"
    if (0 < width < MIN_SIDE) or (0 < height < MIN_SIDE):
        return f"too small ({width}x{height})"
    return ""


def choose(candidates: Iterable[tuple[str, int, int]]) -> tuple[str, int, int] | None:
    """The largest suitable candidate (url, width, height) by declared area; among equals
    (or sizes not declared) the first."""
    best: tuple[str, int, int] | None = None
    for url, width, height in candidates:
        if refusal(url, width, height):
            continue
        if best is None or width * height > best[1] * best[2]:
            best = (url, width, height)
    return best


def https(url: str) -> str:
    """The https form of an http(s) URL (the caller checks the host serves it), with
    anything not ASCII (an IRI's path: `/图片/花园.jpg`) or a space percent-encoded."""
    url = "https" + url[4:] if url[:5].lower() == "http:" else url
    return urllib.parse.quote(url, safe=URL_SAFE)


# What `quote` leaves alone: every character with a meaning in a URL, and `%` (already encoded).
URL_SAFE = ":/?#[]@!$&'()*+,;=%~-._"


def fitted(width: int, height: int, column: int = COLUMN_WIDTH) -> tuple[int, int]:
    """The display size: no wider than the column, never enlarged, the ratio kept."""
    if width <= column:
        return width, height
    return column, max(1, round(height * column / width))


def picture(url: str, alt: str, size: tuple[int, int] | None, column: int = COLUMN_WIDTH) -> Picture | None:
    """What a template gets, or None: only https, only a known size that is not tiny."""
    if size is None or not url.lower().startswith("https://") or refusal(url, *size):
        return None
    width, height = size
    if width <= 0 or height <= 0:
        return None
    shown = fitted(width, height, column)
    return Picture(url, alt, shown[0], shown[1], width, height)


# --- sizes from the first bytes of the file -----------------------------------


def sniff_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, GIF, JPEG or WebP header; None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR" and len(data) >= 24:
        return _positive(*struct.unpack(">II", data[16:24]))
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return _positive(*struct.unpack("<HH", data[6:10]))
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_size(data)
    return None


def _positive(width: int, height: int) -> tuple[int, int] | None:
    return (width, height) if width > 0 and height > 0 else None


# Start-of-frame markers carry the size (not DHT 0xC4, JPG 0xC8, DAC 0xCC).
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Walk the segments to the first start-of-frame."""
    at = 2
    while at + 9 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            at += 2
            continue
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        if marker in _SOF:
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return _positive(width, height)
        if length < 2:
            return None
        at += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    kind, body = data[12:16], data[20:]
    if kind == b"VP8 " and len(body) >= 10 and body[3:6] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", body[6:10])
        return _positive(width & 0x3FFF, height & 0x3FFF)
    if kind == b"VP8L" and len(body) >= 5 and body[0] == 0x2F:
        bits = int.from_bytes(body[1:5], "little")
        return _positive((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if kind == b"VP8X" and len(body) >= 10:
        width = int.from_bytes(body[4:7], "little") + 1
        return _positive(width, int.from_bytes(body[7:10], "little") + 1)
    return None
