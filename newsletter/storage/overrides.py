"""Editors' overrides: the one owner of the `issue_overrides` rows. Each save of an issue's
overrides is a new version (1, 2, ...) with who saved it and when, never rewritten; a build
and a send use the latest, and the issue row records which one it went out with.

A save withdraws the issue's approval in the same transaction (what was approved is not
what would go out any more), and is refused once the issue went out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsletter.core.errors import NewsletterError
from newsletter.digest.overrides import Overrides
from newsletter.storage.issues import GONE_OUT
from newsletter.storage.schema import approvals, issue_overrides, issues

if TYPE_CHECKING:
    from newsletter.storage.store import Store


class IssueGoneOutError(NewsletterError):
    """Overrides of an issue that is being sent or was sent: they would change nothing."""


@dataclass(frozen=True)
class Saved:
    """One stored version of an issue's overrides."""

    version: int
    editor: str
    saved_at: datetime
    overrides: Overrides


@dataclass(frozen=True)
class SaveResult:
    saved: Saved
    withdrawn: bool  # an approval of the issue was taken back


class IssueOverrides:
    """The override versions of one store."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine

    def last_saved(self) -> int:
        """Grows with every save of any issue's overrides: the preview's pages refresh on it."""
        with self.engine.connect() as conn:
            return int(conn.scalar(sa.select(sa.func.max(issue_overrides.c.id))) or 0)

    def latest(self, schedule: str, end: datetime) -> Saved | None:
        with self.engine.connect() as conn:
            row = conn.execute(_versions(schedule, end).limit(1)).first()
        return None if row is None else _saved(row)

    def history(self, schedule: str, end: datetime) -> list[Saved]:
        """Every version, newest first."""
        with self.engine.connect() as conn:
            return [_saved(row) for row in conn.execute(_versions(schedule, end))]

    def save(
        self, schedule: str, end: datetime, overrides: Overrides, editor: str, now: datetime
    ) -> SaveResult:
        """A new version; two editors saving at once both get theirs, one after the other."""
        try:
            return self._save(schedule, end, overrides, editor, now)
        except sa.exc.IntegrityError:  # the other took this version number: take the next
            return self._save(schedule, end, overrides, editor, now)

    def _save(
        self, schedule: str, end: datetime, overrides: Overrides, editor: str, now: datetime
    ) -> SaveResult:
        with self.engine.begin() as conn:
            issue = conn.execute(
                sa.select(issues.c.id, issues.c.status).where(
                    issues.c.schedule == schedule, issues.c.period_end == end
                )
            ).first()
            if issue is not None and issue.status in GONE_OUT:
                raise IssueGoneOutError(
                    f"{schedule}: the issue going out at {end.isoformat()} is {issue.status}; "
                    "overrides change nothing now",
                    "Edit the next issue: pass --at with a moment in its period.",
                )
            last = conn.scalar(sa.select(sa.func.max(issue_overrides.c.version)).where(*_of(schedule, end)))
            version = int(last or 0) + 1
            conn.execute(
                issue_overrides.insert().values(
                    schedule=schedule,
                    period_end=end,
                    version=version,
                    editor=editor,
                    saved_at=now,
                    state=overrides.as_json(),
                )
            )
            withdrawn = issue is not None and _withdraw(conn, issue.id)
        return SaveResult(Saved(version, editor, now, overrides), withdrawn)


def _withdraw(conn: Connection, issue_id: int) -> bool:
    return conn.execute(approvals.delete().where(approvals.c.issue_id == issue_id)).rowcount > 0


def _of(schedule: str, end: datetime) -> tuple[Any, ...]:
    return (issue_overrides.c.schedule == schedule, issue_overrides.c.period_end == end)


def _versions(schedule: str, end: datetime) -> sa.Select[Any]:
    return sa.select(issue_overrides).where(*_of(schedule, end)).order_by(issue_overrides.c.version.desc())


def _saved(row: Any) -> Saved:
    return Saved(row.version, row.editor, row.saved_at, Overrides.from_json(row.state))
