"""Schema version 9: Article pictures' sizes (the `image_sizes` table is new: create_all made it).

The step itself is `_v9` in newsletter/storage/migrations.py.
"""

from __future__ import annotations

from alembic.operations import Operations

from newsletter.storage import migrations

revision = "v09"
down_revision: str | None = "v08"


def upgrade(op: Operations) -> None:
    migrations.STEPS[9](op)
