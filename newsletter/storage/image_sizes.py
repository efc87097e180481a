"""The sizes of article pictures, learned at ingest and read by a build: the
`image_sizes` table. A row of 0 x 0 says the picture was looked at and its size is
not known, so it is not fetched again before `RECHECK` has passed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

import sqlalchemy as sa

from newsletter.storage.schema import image_sizes
from newsletter.storage.store import Store

RECHECK = timedelta(days=7)  # an unknown size is asked again after this
CHUNK = 500  # URLs per query


def known(store: Store, urls: Iterable[str], now: datetime | None = None) -> dict[str, tuple[int, int]]:
    """The stored size of each of `urls` that has one; with `now`, an unknown (0 x 0)
    one older than `RECHECK` is left out, so the caller looks again."""
    wanted = sorted(set(urls))
    found: dict[str, tuple[int, int]] = {}
    cols = (image_sizes.c.url, image_sizes.c.width, image_sizes.c.height, image_sizes.c.checked_at)
    with store.engine.connect() as conn:
        for start in range(0, len(wanted), CHUNK):
            query = sa.select(*cols).where(image_sizes.c.url.in_(wanted[start : start + CHUNK]))
            for row in conn.execute(query):
                stale = now is not None and row.width == 0 and row.checked_at + RECHECK < now
                if not stale:
                    found[row.url] = (row.width, row.height)
    return found


def record(store: Store, sizes: Mapping[str, tuple[int, int]], now: datetime) -> None:
    """Store (or replace) the sizes, in one transaction."""
    if not sizes:
        return
    with store.engine.begin() as conn:
        conn.execute(image_sizes.delete().where(image_sizes.c.url.in_(list(sizes))))
        rows = [{"url": u, "width": w, "height": h, "checked_at": now} for u, (w, h) in sizes.items()]
        conn.execute(image_sizes.insert(), rows)
