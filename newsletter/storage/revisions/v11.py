"""Schema version 11: editors' overrides of an issue, versioned (`issue_overrides`),
and on each issue the version it went out with.

The step itself is `_v11` in newsletter/storage/migrations.py.
"""

from __future__ import annotations

from alembic.operations import Operations

from newsletter.storage import migrations

revision = "v11"
down_revision: str | None = "v10"


def upgrade(op: Operations) -> None:
    migrations.STEPS[11](op)
