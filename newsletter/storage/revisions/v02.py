"""Schema version 2: Queue lifetime and claims that carry their own lease (sending that survives
faults).

The step itself is `_v2` in newsletter/storage/migrations.py.
"""

from __future__ import annotations

from alembic.operations import Operations

from newsletter.storage import migrations

revision = "v02"
down_revision: str | None = "v01"


def upgrade(op: Operations) -> None:
    migrations.STEPS[2](op)
