"""Decoding and cleaning text that comes from outside (a form, a CSV file, a feed) before it
is stored or put into a header: UTF-8 or an error naming the line, one line, no control
characters, a person's name at most NAME_MAX characters. A leaf: imports only errors.py."""

from __future__ import annotations

import re

from newsletter.core.errors import SourceError

# C0 and C1 controls (NUL, CR, LF, tab, ...), DEL, and the Unicode line and paragraph
# separators: none belongs in a header, a name or a title.
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
LONE_SURROGATES = re.compile(r"[\ud800-\udfff]")  # from JSON's \ud800: not encodable as UTF-8
NAME_MAX = 200  # characters of a name: it goes into the To header and the greeting


def plain_line(text: str) -> str:
    """A header-safe single line: no control characters, CR or LF, spaces collapsed."""
    return " ".join(CONTROL_CHARS.sub(" ", text).split())


def storable(text: str) -> str:
    """Text from a request as a database can keep it: NUL (PostgreSQL refuses it) made a
    space, as `plain_line` would, and a lone surrogate (no UTF-8 for it) U+FFFD."""
    return LONE_SURROGATES.sub("\ufffd", text.replace("\x00", " "))


def person_name(raw: str) -> str:
    """A person's name as the list keeps it (CSV import, signup, preferences): one line of
    plain text, at most NAME_MAX characters. Idempotent."""
    return plain_line(storable(raw))[:NAME_MAX].rstrip()


def decode_utf8(source: str, data: bytes) -> str:
    """UTF-8 text (a BOM is fine); anything else is an error naming the line."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        reason = f"not UTF-8 text (byte 0x{data[e.start]:02x}); save the file as UTF-8"
        raise SourceError(source, reason, line) from None
