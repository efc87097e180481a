"""Schema version 3: Sources polled by the project: each article's origin, its picture and byline, and
the undated backlog of a first read (the `sources` table itself is new: create_all).

The step itself is `_v3` in newsletter/storage/migrations.py.
"""

from __future__ import annotations

from alembic.operations import Operations

from newsletter.storage import migrations

revision = "v03"
down_revision: str | None = "v02"


def upgrade(op: Operations) -> None:
    migrations.STEPS[3](op)
