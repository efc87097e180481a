"""Schema migrations: an existing project's database is brought up to date when opened.

`metadata.create_all` makes missing tables; the steps here add what it cannot (new
columns of existing tables), one function per schema version, through Alembic's
operations so the DDL stays portable to PostgreSQL. Each step runs in the caller's
transaction: a failed upgrade leaves the database as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsletter.storage.schema import UTCDateTime, similar_terms

if TYPE_CHECKING:
    from alembic.operations import Operations


def _v2(op: Operations) -> None:
    """Queue lifetime and claims that carry their own lease (sending that survives faults)."""
    add = op.add_column
    add("issues", sa.Column("queued_at", UTCDateTime, nullable=True))
    add("deliveries", sa.Column("lease_until", UTCDateTime, nullable=True))
    add("deliveries", sa.Column("claimed_by", sa.String(255), nullable=True))


def _v3(op: Operations) -> None:
    """Sources polled by the project: each article's origin, its picture and byline, and
    the undated backlog of a first read (the `sources` table itself is new: create_all)."""
    add = op.add_column
    add("articles", sa.Column("backlog", sa.Boolean, nullable=False, server_default=sa.false()))
    add("articles", sa.Column("origin", sa.String(64), nullable=False, server_default=""))
    add("articles", sa.Column("image", sa.Text, nullable=False, server_default=""))
    add("articles", sa.Column("author", sa.Text, nullable=False, server_default=""))
    op.create_index("ix_articles_origin", "articles", ["origin"])


def _v4(op: Operations) -> None:
    """Message-IDs kept on the delivery row, so a retry sends the same one. Rows claimed
    before the upgrade get theirs at their next claim (none was stored to keep)."""
    op.add_column("deliveries", sa.Column("message_id", sa.String(320), nullable=True))


def _v5(op: Operations) -> None:
    """Readers choose their schedules in the preference centre ([] = all, as before). The
    consent, rate-limit and notice tables are new (create_all); so are the statuses
    `pending` and `paused`, which need no DDL."""
    op.add_column("subscribers", sa.Column("schedules", sa.Text, nullable=False, server_default="[]"))
    op.create_index("ix_articles_url", "articles", ["url"])  # ingest's unique-URL check at 1M
    # A source's categories from the index alone: before each send, at any archive size.
    op.drop_index("ix_articles_origin", "articles")
    op.create_index("ix_articles_origin_category", "articles", ["origin", "category"])


def _v6(op: Operations) -> None:
    """The inverted index as one row per term (its newest postings packed) instead of a
    row per posting: the old tables go and the new ones start empty. The stored index's
    method changes with it, so the next command says to run `newsletter reindex`; the
    neighbour rows already stored stay in use until then."""
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    if inspector.has_table("similar_postings"):
        op.drop_table("similar_postings")
    if "postings" not in {c["name"] for c in inspector.get_columns("similar_terms")}:
        op.drop_table("similar_terms")
        similar_terms.create(bind)


def _v7(op: Operations) -> None:
    """When a reader chose their own categories and schedules, so a re-import keeps them.
    Readers who chose before the upgrade are not known: the next import may still set theirs."""
    op.add_column("subscribers", sa.Column("chosen_at", UTCDateTime, nullable=True))


def _v8(op: Operations) -> None:
    """The outbox of signup's mails (the table is new: create_all made it). Nothing else
    changes: mails a version before this one failed to send are not queued again."""


def _v9(op: Operations) -> None:
    """Article pictures' sizes (the `image_sizes` table is new: create_all made it). Articles
    stored before keep their image URL; its size is learned at their next ingest."""


def _v10(op: Operations) -> None:
    """Editors' approvals of issues (the `approvals` table is new: create_all made it).
    Schedules are "auto" unless their file says otherwise, so no issue waits after the upgrade."""


def _v11(op: Operations) -> None:
    """Editors' overrides of an issue, versioned (the `issue_overrides` table is new:
    create_all made it), and on each issue the version it was built or sent with."""
    op.add_column("issues", sa.Column("overrides_version", sa.Integer, nullable=True))


def _v12(op: Operations) -> None:
    """Variants' encoded bodies and the shared send rate (`variant_bodies` and `send_rates`
    are new: create_all made them). Variants stored before are encoded at their next use
    and stored then."""


STEPS: dict[int, Callable[[Operations], None]] = {
    2: _v2,
    3: _v3,
    4: _v4,
    5: _v5,
    6: _v6,
    7: _v7,
    8: _v8,
    9: _v9,
    10: _v10,
    11: _v11,
    12: _v12,
}


def upgrade(conn: Connection, version: int, target: int) -> None:
    """Run every step after `version` up to `target`, in order."""
    if version >= target:
        return
    from alembic.migration import MigrationContext  # only when a database needs upgrading
    from alembic.operations import Operations

    op = Operations(MigrationContext.configure(conn))
    for step in range(version + 1, target + 1):
        STEPS[step](op)
