"""Schema version 5: Readers choose their schedules in the preference centre ([] = all, as before).

The step itself is `_v5` in newsletter/storage/migrations.py.
"""

from __future__ import annotations

from alembic.operations import Operations

from newsletter.storage import migrations

revision = "v05"
down_revision: str | None = "v04"


def upgrade(op: Operations) -> None:
    migrations.STEPS[5](op)
