"""Subscribers CSV: `email,name,categories`, categories separated by `;`, or another
tool's export as it comes (formats.py: Mailchimp, Substack, Buttondown, listmonk, Ghost),
told apart by its header row.

Parsing is pure: rows come back validated and merged, bad ones as
`file:line: reason`, so one bad row never stops the import.

Each physical line is parsed on its own: a name never legitimately spans
lines, and a stray quote must cost one row (reported), not silently swallow
the rows after it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field

from newsletter.audience.formats import FORMATS, NAMES, Format, Reading
from newsletter.core.addresses import normalize_email
from newsletter.core.errors import SourceError
from newsletter.core.models import SubscriberRow
from newsletter.core.text import CONTROL_CHARS, NAME_MAX, decode_utf8, person_name, plain_line


@dataclass
class ParsedCsv:
    rows: list[SubscriberRow] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    merged: int = 0
    where: dict[str, str] = field(default_factory=dict)  # email -> "file:line" of its first row
    format: str = "csv"  # whose export it was (formats.NAMES)


def parse_csv(source: str, data: bytes, forced: str | None = None) -> ParsedCsv:
    """`forced`: a format name, when the header row should not decide."""
    lines = _physical_lines(decode_utf8(source, data))
    header, shape = _header(source, lines[0], forced)
    parsed = ParsedCsv(format=shape.name)
    by_email: dict[str, SubscriberRow] = {}
    for number, line in enumerate(lines[1:], start=2):
        if line.strip():
            _add_line(f"{source}:{number}", header, line, shape, parsed, by_email)
    parsed.rows = list(by_email.values())
    return parsed


def _add_line(
    where: str,
    header: list[str],
    line: str,
    shape: Format,
    parsed: ParsedCsv,
    by_email: dict[str, SubscriberRow],
) -> None:
    """One data line: a subscriber added or merged, or an error naming the line."""
    try:
        reading = shape.read(dict(zip(header, _fields(line), strict=False)))
        if reading.skip:
            parsed.warnings.append(f"{where}: {reading.email.strip()}: {reading.skip}")
            return
        subscriber = _subscriber(reading, where, parsed.warnings)
    except ValueError as e:
        parsed.errors.append(f"{where}: {e}")
        return
    parsed.where.setdefault(subscriber.email, where)
    if subscriber.email in by_email:
        parsed.merged += 1
        subscriber = _merge(by_email[subscriber.email], subscriber)
    by_email[subscriber.email] = subscriber


def _physical_lines(text: str) -> list[str]:
    """Lines ended by LF or CRLF; a lone CR stays inside its line (and is cleaned
    out of the name) so that it cannot start a row of its own."""
    return [line.removesuffix("\r") for line in text.split("\n")]


def _header(source: str, line: str, forced: str | None) -> tuple[list[str], Format]:
    from newsletter.audience.formats import detect

    try:
        names = [name.strip().lower() for name in _fields(line)]
    except ValueError:
        names = []
    shape = FORMATS[forced] if forced else detect(names)
    if shape is None or not set(shape.emails) & set(names):
        raise SourceError(
            source,
            f"expected a header row with the columns {_expected(shape)}, or a Mailchimp, Substack, "
            f"Buttondown, listmonk or Ghost export as it comes (--format {'|'.join(NAMES)} names one)",
            1,
        )
    return names, shape


def _expected(shape: Format | None) -> str:
    if shape is None or shape.name == "csv":
        return "email,name,categories"
    return f"of a {shape.name} export ({' or '.join(shape.emails)} at least)"


def _fields(line: str) -> list[str]:
    """One line as CSV fields; strict, so a quote left open is an error, not a
    field that runs on into the next row."""
    try:
        return next(csv.reader([line], strict=True))
    except csv.Error as e:
        if "unexpected end of data" in str(e):
            raise ValueError(
                'unbalanced quote (a field opened with " is not closed on this line; a row never spans lines)'
            ) from e
        raise ValueError(f"not a CSV row ({e})") from e


def _subscriber(reading: Reading, where: str, warnings: list[str]) -> SubscriberRow:
    email = reading.email.strip()
    if not email:
        raise ValueError("email is empty")
    try:
        normalized = normalize_email(email)
    except ValueError as e:
        raise ValueError(f"invalid email {email!r}: {e}") from e
    categories = tuple(c for c in map(plain_line, reading.categories) if c)
    return SubscriberRow(
        normalized, _name(reading.name, where, warnings), tuple(dict.fromkeys(categories)), reading.status
    )


def _name(raw: str, where: str, warnings: list[str]) -> str:
    """`text.person_name`, with a warning for what the cleaning changed."""
    if CONTROL_CHARS.search(raw):
        warnings.append(f"{where}: name had line breaks or control characters; cleaned")
    long = len(plain_line(raw))
    if long > NAME_MAX:
        warnings.append(f"{where}: name of {long:,} characters cut to {NAME_MAX}")
    return person_name(raw)


def _merge(first: SubscriberRow, second: SubscriberRow) -> SubscriberRow:
    """Same address twice: the first name given, and every category either asked for
    (one row asking for everything means everything); unsubscribed or bounced in either
    row wins (a Mailchimp export lists an address in both files when it left)."""
    categories: tuple[str, ...] = ()
    if first.categories and second.categories:
        categories = tuple(dict.fromkeys(first.categories + second.categories))
    status = first.status if first.status != "active" else second.status
    return SubscriberRow(first.email, first.name or second.name, categories, status)
