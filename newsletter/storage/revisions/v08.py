"""Schema version 8: The outbox of signup's mails (the table is new: create_all made it).

The step itself is `_v8` in newsletter/storage/migrations.py.
"""

from __future__ import annotations

from alembic.operations import Operations

from newsletter.storage import migrations

revision = "v08"
down_revision: str | None = "v07"


def upgrade(op: Operations) -> None:
    migrations.STEPS[8](op)
