"""Schema migrations: an existing project's database is brought up to date when opened.

`metadata.create_all` makes missing tables; the steps here add what it cannot (new
columns of existing tables), one function per schema version, through Alembic's
operations so the DDL stays portable to PostgreSQL. Each step is an Alembic revision
(newsletter/storage/revisions/vNN.py calls STEPS[N]), recorded in the `alembic_version`
table; a database from before Alembic is stamped at its `meta` schema_version first.
Every step runs in the caller's transaction: a failed upgrade leaves the database as it was.

A new schema version N (CONTRIBUTING.md: "A schema change"): `_vN` and its STEPS entry
here, a copy of the last revision file named vNN.py with its two ids moved on, and
SCHEMA_VERSION = N in schema.py. tests/test_revisions.py checks the three agree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsletter.storage.schema import SCHEMA_VERSION, UTCDateTime, meta, similar_terms

if TYPE_CHECKING:
    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

REVISIONS = Path(__file__).parent / "revisions"  # Alembic's script directory: one file a version
# Alembic's own table (made by Alembic; named here to read it without importing Alembic).
alembic_version = sa.Table("alembic_version", sa.MetaData(), sa.Column("version_num", sa.String(32)))


def revision_id(version: int) -> str:
    """The Alembic revision of a schema version: "v02" for 2 (ids sort as the versions do)."""
    return f"v{version:02d}"


HEAD = revision_id(SCHEMA_VERSION)


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


def current(conn: Connection) -> str | None:
    """The database's Alembic revision; None before Alembic (or for a new database)."""
    if not sa.inspect(conn).has_table(alembic_version.name):
        return None
    found = conn.scalar(sa.select(alembic_version.c.version_num))
    return str(found) if found is not None else None


def stored(conn: Connection) -> str | None:
    """The database's revision as it is: Alembic's, else its `meta` schema_version's (from
    before Alembic); None for an empty database."""
    if (found := current(conn)) is not None:
        return found
    if not sa.inspect(conn).has_table(meta.name):
        return None
    version = conn.scalar(sa.select(meta.c.value).where(meta.c.key == "schema_version"))
    return revision_id(int(version)) if version is not None else None


def known(revision: str) -> bool:
    """A revision this program has (False: a newer program's)."""
    return revision in {s.revision for s in _scripts().walk_revisions()}


def stamp(conn: Connection, revision: str = HEAD) -> None:
    """Record `revision` as the database's without running anything (a new database made
    at head by create_all, or one from before Alembic at its schema_version)."""
    _context(conn).stamp(_scripts(), revision)


def upgrade(conn: Connection, start: str) -> list[str]:
    """Run every revision after `start` up to head, in order (the database is stamped at
    `start` first if it has no revision yet); the revisions run."""
    from alembic.operations import Operations

    script = _scripts()
    if current(conn) is None:
        stamp(conn, start)
    ran: list[str] = []

    def steps(heads: Iterable[str], _: Any) -> Any:
        # What `alembic upgrade head` runs (alembic.command.upgrade passes the heads as given).
        revs = script._upgrade_revs("head", heads)  # type: ignore[arg-type]
        ran.extend(str(step.revision.revision) for step in revs)
        return revs

    context = _context(conn, steps)
    context.run_migrations(op=Operations(context))
    return ran


def _scripts() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(REVISIONS), version_locations=[str(REVISIONS)])


def _context(conn: Connection, steps: Callable[[Iterable[str], Any], Any] | None = None) -> MigrationContext:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn, opts={"fn": steps} if steps else {})
