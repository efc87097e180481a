"""Schema version 10: Editors' approvals of issues (the `approvals` table is new: create_all made it).

The step itself is `_v10` in newsletter/storage/migrations.py.
"""

from __future__ import annotations

from alembic.operations import Operations

from newsletter.storage import migrations

revision = "v10"
down_revision: str | None = "v09"


def upgrade(op: Operations) -> None:
    migrations.STEPS[10](op)
