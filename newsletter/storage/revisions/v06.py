"""Schema version 6: The inverted index as one row per term (its newest postings packed) instead of a
row per posting: the old tables go and the new ones start empty.

The step itself is `_v6` in newsletter/storage/migrations.py.
"""

from __future__ import annotations

from alembic.operations import Operations

from newsletter.storage import migrations

revision = "v06"
down_revision: str | None = "v05"


def upgrade(op: Operations) -> None:
    migrations.STEPS[6](op)
