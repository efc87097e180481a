"""Subscriber import: the CSV parsed, then written to the ledger."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from newsletter.errors import SourceError
from newsletter.ledger import ImportCounts, Ledger
from newsletter.project import Project
from newsletter.subscribers import ParsedCsv, parse_csv


def import_csv(project: Project, path: Path, now: datetime) -> tuple[ParsedCsv, ImportCounts]:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SourceError(str(path), f"cannot read ({e.strerror})") from e
    parsed = parse_csv(str(path), data)
    return parsed, Ledger(project.store).import_subscribers(parsed.rows, now)
