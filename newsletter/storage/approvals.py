"""Approvals: the one owner of the `approvals` rows. An issue of an `approval = "required"`
schedule goes out only once an editor approved it; the row says when, and who.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

from newsletter.storage.schema import approvals

if TYPE_CHECKING:
    from newsletter.storage.store import Store


@dataclass(frozen=True)
class Approval:
    issue_id: int
    approved_at: datetime
    editor: str


class Approvals:
    """The approval rows of one store."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine

    def approve(self, issue_id: int, editor: str, now: datetime) -> Approval:
        """Approve the issue; approving it again keeps the first approval."""
        with self.engine.begin() as conn:
            found = self._read(conn, issue_id)
            if found is not None:
                return found
            conn.execute(approvals.insert().values(issue_id=issue_id, approved_at=now, editor=editor))
        return Approval(issue_id, now, editor)

    def approval(self, issue_id: int) -> Approval | None:
        with self.engine.connect() as conn:
            return self._read(conn, issue_id)

    @staticmethod
    def _read(conn: sa.engine.Connection, issue_id: int) -> Approval | None:
        row = conn.execute(sa.select(approvals).where(approvals.c.issue_id == issue_id)).first()
        return None if row is None else Approval(row.issue_id, row.approved_at, row.editor)
