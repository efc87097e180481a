"""Schema version 1: the tables `metadata.create_all` made before version 2. The base every
database from before Alembic is stamped from; nothing to run."""

from __future__ import annotations

from alembic.operations import Operations

revision = "v01"
down_revision: str | None = None


def upgrade(op: Operations) -> None:
    """Nothing to run."""
