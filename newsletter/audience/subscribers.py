"""Subscribers CSV: `email,name,categories`, categories separated by `;`.

Parsing is pure: rows come back validated and merged, bad ones as
`file:line: reason`, so one bad row never stops the import.

Each physical line is parsed on its own: a name never legitimately spans
lines, and a stray quote must cost one row (reported), not silently swallow
the rows after it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field

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


def parse_csv(source: str, data: bytes) -> ParsedCsv:
    lines = _physical_lines(decode_utf8(source, data))
    header = _header(source, lines[0])
    parsed = ParsedCsv()
    by_email: dict[str, SubscriberRow] = {}
    for number, line in enumerate(lines[1:], start=2):
        if line.strip():
            _add_line(f"{source}:{number}", header, line, parsed, by_email)
    parsed.rows = list(by_email.values())
    return parsed


def _add_line(
    where: str, header: list[str], line: str, parsed: ParsedCsv, by_email: dict[str, SubscriberRow]
) -> None:
    """One data line: a subscriber added or merged, or an error naming the line."""
    try:
        fields = dict(zip(header, _fields(line), strict=False))
        subscriber = _subscriber(fields, where, parsed.warnings)
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


def _header(source: str, line: str) -> list[str]:
    try:
        names = [name.strip().lower() for name in _fields(line)]
    except ValueError:
        names = []
    if "email" not in names:
        raise SourceError(source, "expected a header row with the columns email,name,categories", 1)
    return names


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


def _subscriber(fields: dict[str, str], where: str, warnings: list[str]) -> SubscriberRow:
    email = fields.get("email", "").strip()
    if not email:
        raise ValueError("email is empty")
    try:
        normalized = normalize_email(email)
    except ValueError as e:
        raise ValueError(f"invalid email {email!r}: {e}") from e
    categories = tuple(c for c in map(plain_line, fields.get("categories", "").split(";")) if c)
    return SubscriberRow(
        normalized, _name(fields.get("name", ""), where, warnings), tuple(dict.fromkeys(categories))
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
    (one row asking for everything means everything)."""
    categories: tuple[str, ...] = ()
    if first.categories and second.categories:
        categories = tuple(dict.fromkeys(first.categories + second.categories))
    return SubscriberRow(first.email, first.name or second.name, categories)
