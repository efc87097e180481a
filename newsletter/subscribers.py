"""Subscribers CSV: `email,name,categories`, categories separated by `;`.

Parsing is pure: rows come back validated and merged, bad ones as
`file:line: reason`, so one bad row never stops the import.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from email_validator import EmailNotValidError, validate_email

from newsletter.errors import SourceError
from newsletter.readers import decode_utf8
from newsletter.render import plain_line


@dataclass(frozen=True)
class SubscriberRow:
    email: str  # lower-cased: duplicates differing only in case are one subscriber
    name: str = ""
    categories: tuple[str, ...] = ()  # empty: every category of a schedule


@dataclass
class ParsedCsv:
    rows: list[SubscriberRow] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    merged: int = 0


def normalize_email(raw: str) -> str:
    """The address as stored: syntax checked (no DNS), lower-cased. Raises ValueError."""
    try:
        checked = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as e:
        raise ValueError(str(e)) from e
    return checked.normalized.lower()


def parse_csv(source: str, data: bytes) -> ParsedCsv:
    reader = csv.DictReader(io.StringIO(decode_utf8(source, data), newline=""))
    if not reader.fieldnames or "email" not in [f.strip().lower() for f in reader.fieldnames]:
        raise SourceError(source, "expected a header row with the columns email,name,categories", 1)
    parsed, by_email = ParsedCsv(), {}
    for row in reader:
        line = reader.line_num
        fields = {k.strip().lower(): (v or "") for k, v in row.items() if k}
        try:
            subscriber = _subscriber(fields)
        except ValueError as e:
            parsed.errors.append(f"{source}:{line}: {e}")
            continue
        if subscriber.email in by_email:
            parsed.merged += 1
            subscriber = _merge(by_email[subscriber.email], subscriber)
        by_email[subscriber.email] = subscriber
    parsed.rows = list(by_email.values())
    return parsed


def _subscriber(fields: dict[str, str]) -> SubscriberRow:
    email = fields.get("email", "").strip()
    if not email:
        raise ValueError("email is empty")
    try:
        normalized = normalize_email(email)
    except ValueError as e:
        raise ValueError(f"invalid email {email!r}: {e}") from e
    categories = tuple(c.strip() for c in fields.get("categories", "").split(";") if c.strip())
    return SubscriberRow(normalized, plain_line(fields.get("name", "")), tuple(dict.fromkeys(categories)))


def _merge(first: SubscriberRow, second: SubscriberRow) -> SubscriberRow:
    """Same address twice: the first name given, and every category either asked for
    (one row asking for everything means everything)."""
    categories: tuple[str, ...] = ()
    if first.categories and second.categories:
        categories = tuple(dict.fromkeys(first.categories + second.categories))
    return SubscriberRow(first.email, first.name or second.name, categories)
