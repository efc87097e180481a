"""What the store remembers of each source's polls: where it is read, its validators,
when it was last polled and how that went. One row per `[[sources]]` name.

A failed poll updates the status and message only: the validators and the location of
the last good poll stay, so the next poll is still conditional, and nothing stored is
lost. A source gone from newsletter.toml keeps its row and its articles.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

import sqlalchemy as sa

from newsletter.storage.schema import articles, sources
from newsletter.storage.store import Store

NEW, OK, NOT_MODIFIED, PARTIAL, FAILED = "new", "ok", "not-modified", "partial", "failed"


@dataclass(frozen=True)
class PollState:
    """A source's row. `configured` is its url or path in newsletter.toml when `location`
    was set: a permanent redirect moves `location`, an edit of the file resets it."""

    name: str
    configured: str
    location: str
    etag: str | None = None
    last_modified: str | None = None
    polled_at: datetime | None = None
    succeeded_at: datetime | None = None
    status: str = NEW
    message: str = ""

    @property
    def first_read(self) -> bool:
        """No poll has read it yet: an undated entry now is backlog, not news."""
        return self.succeeded_at is None


def states(store: Store) -> dict[str, PollState]:
    with store.engine.connect() as conn:
        return {row.name: PollState(**row._mapping) for row in conn.execute(sa.select(sources))}


def save(store: Store, state: PollState) -> None:
    """Insert or replace the row, in one transaction."""
    values = asdict(state)
    with store.engine.begin() as conn:
        updated = conn.execute(sources.update().where(sources.c.name == state.name).values(values))
        if updated.rowcount == 0:
            conn.execute(sources.insert().values(values))


def article_counts(store: Store) -> dict[str, int]:
    """Stored articles per source name (the `origin` index answers it)."""
    query = sa.select(articles.c.origin, sa.func.count()).group_by(articles.c.origin)
    with store.engine.connect() as conn:
        return {origin: count for origin, count in conn.execute(query) if origin}


def categories_of(store: Store) -> dict[str, set[str]]:
    """The categories each source's stored articles are filed under."""
    query = sa.select(articles.c.origin, articles.c.category).where(articles.c.origin != "").distinct()
    found: dict[str, set[str]] = {}
    with store.engine.connect() as conn:
        for origin, category in conn.execute(query):
            found.setdefault(origin, set()).add(category)
    return found
