"""Subscriber import: the CSV parsed, then written to the ledger."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from newsletter.errors import NewsletterError, SourceError
from newsletter.ledger import ImportCounts, Ledger
from newsletter.project import Project
from newsletter.subscribers import ParsedCsv, parse_csv


def import_csv(project: Project, path: Path, now: datetime) -> tuple[ParsedCsv, ImportCounts]:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SourceError(str(path), f"cannot read ({e.strerror})") from e
    parsed = parse_csv(str(path), data)
    parsed.warnings += unknown_categories(project, parsed)
    return parsed, Ledger(project.store).import_subscribers(parsed.rows, now)


def unknown_categories(project: Project, parsed: ParsedCsv) -> list[str]:
    """Categories no schedule sends: such a subscriber would silently get nothing of them."""
    try:
        offered = {c for s in project.schedules() for c in s.categories}
    except NewsletterError:
        return []  # a broken schedule file is reported by the commands that use it
    shown = ", ".join(sorted(offered)) or "none"
    return [
        f"{parsed.where[row.email]}: category {category!r} is in no schedule (offered: {shown})"
        for row in parsed.rows
        for category in row.categories
        if category not in offered
    ]
