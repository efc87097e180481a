"""Subscriber import: the CSV parsed, then written to the ledger."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from newsletter.audience.subscribers import ParsedCsv, parse_csv
from newsletter.core.errors import NewsletterError, OutputError, SourceError
from newsletter.project import Project
from newsletter.storage import outbox
from newsletter.storage.records import ACTIVE, ImportCounts
from newsletter.storage.roster import Roster

if TYPE_CHECKING:
    from newsletter.audience.dispatch import Dispatch


def import_csv(
    project: Project, path: Path, now: datetime, forced: str | None = None
) -> tuple[ParsedCsv, ImportCounts]:
    """Single opt-in: the rows are active at once (the list already consented); those
    another tool's export says left are kept unsubscribed or bounced."""
    parsed = _parsed(project, path, forced)
    return parsed, Roster(project.store).import_subscribers(parsed.rows, now)


@dataclass
class Invitations:
    """A double opt-in import: who was asked to confirm, who was already on the list, and
    the confirmation mails that did not go out (those rows stay pending: import again)."""

    invited: int = 0
    listed: int = 0
    unsent: list[str] = field(default_factory=list)


def invite_csv(
    project: Project, path: Path, now: datetime, dispatch: Dispatch, forced: str | None = None
) -> tuple[ParsedCsv, Invitations]:
    """`subscribers import --double-opt-in`: each new row is pending, with a consent record
    naming the file, and gets the signup form's confirmation mail, queued in the outbox with
    the row and sent as every notice is (dispatch.py); nobody gets an issue before
    confirming. Addresses already on the list are left as they are."""
    from newsletter.storage.consents import Consents
    from newsletter.storage.records import IMPORT_FORM, Choices, Consent

    parsed = _parsed(project, path, forced)
    consents, done = Consents(project.store), Invitations()
    consent = Consent(f"{IMPORT_FORM}{path.name}", project.settings.signup.consent_text)
    queued: dict[int, str] = {}  # outbox row -> the address it asks
    gone = [row for row in parsed.rows if row.status != ACTIVE]  # never asked: kept as they left
    done.listed += Roster(project.store).import_subscribers(gone, now).kept_off
    for row in (row for row in parsed.rows if row.status == ACTIVE):
        notice = consents.invite(row.email, Choices(row.name, row.categories), consent, dispatch.domain, now)
        if notice is None:
            done.listed += 1
            continue
        queued[notice] = row.email
    dispatch.drain()
    for notice, (status, error) in dispatch.outbox.outcomes(list(queued)).items():
        if status == outbox.SENT:
            done.invited += 1
        else:
            where = parsed.where[queued[notice]]
            done.unsent.append(f"{where}: confirmation not sent yet ({error}); `newsletter run` retries it")
    return parsed, done


def _parsed(project: Project, path: Path, forced: str | None) -> ParsedCsv:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SourceError(str(path), f"cannot read ({e.strerror})") from e
    parsed = parse_csv(str(path), data, forced)
    parsed.warnings += unknown_categories(project, parsed)
    return parsed


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


# -- data rights: `subscribers export` ----------------------------------------

CSV_HEADER = ("subscriber", "table", "row", "column", "value")


def export_json(people: Sequence[dict[str, Any]]) -> bytes:
    return (json.dumps(people, indent=2, ensure_ascii=False, default=str) + "\n").encode()


def export_csv(people: Sequence[dict[str, Any]]) -> bytes:
    """One line per stored value: whose (their address), which table, which of its rows
    (0, 1, ...), which column, the value. Any table fits in the five columns."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for person in people:
        email = person["subscriber"]["email"]
        for table, found in person.items():
            for n, row in enumerate([found] if isinstance(found, dict) else found):
                for column, value in row.items():
                    writer.writerow((email, table, n, column, "" if value is None else value))
    return out.getvalue().encode()


def write_private(path: Path, data: bytes) -> None:
    """Write a file only its owner can read (it holds personal data), whole or not at all."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except OSError as e:
        temp.unlink(missing_ok=True)
        raise OutputError(str(path), e.strerror or str(e)) from e
