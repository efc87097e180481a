"""Schema version 7: When a reader chose their own categories and schedules, so a re-import keeps them.

The step itself is `_v7` in newsletter/storage/migrations.py.
"""

from __future__ import annotations

from alembic.operations import Operations

from newsletter.storage import migrations

revision = "v07"
down_revision: str | None = "v06"


def upgrade(op: Operations) -> None:
    migrations.STEPS[7](op)
