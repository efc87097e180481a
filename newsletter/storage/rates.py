"""`--rate` over every worker together: a token bucket one message deep, kept in the store.

One row per transport holds the wall-clock moment of its next free slot. A message takes a
slot in one statement (an UPDATE that moves the row on by one interval and returns it), so
workers in other processes or on other machines pointed at the same database share the
rate; each then sleeps until its own slot. Machines' clocks must agree (NTP), as leases do.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import sqlalchemy as sa

from newsletter.storage.schema import send_rates

if TYPE_CHECKING:
    from newsletter.storage.store import Store


class SharedRate:
    """At most `rate` messages a second through `key` (a transport), over every worker."""

    def __init__(self, store: Store, key: str, rate: float) -> None:
        self.engine, self.key, self.interval = store.engine, key[:255], 1.0 / rate

    def wait(self) -> None:
        slot = self.take(time.time())
        time.sleep(max(0.0, slot - time.time()))

    def take(self, now: float) -> float:
        """The next free slot (not before `now`), taken: the row moves on by one interval."""
        later = sa.case((send_rates.c.next_slot > now, send_rates.c.next_slot), else_=now) + self.interval
        moved = (
            send_rates.update()
            .where(send_rates.c.key == self.key)
            .values(next_slot=later)
            .returning(send_rates.c.next_slot)
        )
        with self.engine.begin() as conn:
            taken = conn.scalar(moved)
        if taken is not None:
            return float(taken) - self.interval
        try:
            with self.engine.begin() as conn:
                conn.execute(send_rates.insert().values(key=self.key, next_slot=now + self.interval))
        except sa.exc.IntegrityError:  # another worker made the row first: take from it
            return self.take(now)
        return now
