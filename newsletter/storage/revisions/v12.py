"""Schema version 12: variants' encoded bodies stored once per issue
(`variant_bodies`) and the shared send rate (`send_rates`).

The step itself is `_v12` in newsletter/storage/migrations.py.
"""

from __future__ import annotations

from alembic.operations import Operations

from newsletter.storage import migrations

revision = "v12"
down_revision: str | None = "v11"


def upgrade(op: Operations) -> None:
    migrations.STEPS[12](op)
