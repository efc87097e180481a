"""Schema version 4: Message-IDs kept on the delivery row, so a retry sends the same one.

The step itself is `_v4` in newsletter/storage/migrations.py.
"""

from __future__ import annotations

from alembic.operations import Operations

from newsletter.storage import migrations

revision = "v04"
down_revision: str | None = "v03"


def upgrade(op: Operations) -> None:
    migrations.STEPS[4](op)
