"""Which of several `run` daemons on one PostgreSQL database records the periods.

The active daemon holds a PostgreSQL session-level advisory lock on a connection of its
own for as long as it lives; the others stand by: at each fire time they try to take it,
and while another holds it they leave the period to it (they still deliver what is
queued, through the retry job). A daemon that dies, even by SIGKILL, closes its
connection, the server drops the lock, and the next standby to wake takes it and the
next fire time. The issue's unique key (schedule, period end) stays the guarantee
underneath: two daemons that both record a period still record one issue.

On SQLite there is one host and one file: every daemon is active, and the unique key
alone keeps each period to one issue.
"""

from __future__ import annotations

import threading

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from newsletter.storage.store import Store

# pg_try_advisory_lock's key for "records the schedules' periods": any fixed bigint
# (this one spells "nwslschd"); other advisory locks of the project (limits.py) use
# the two-int form, a different key space.
SCHEDULER_KEY = 0x6E77736C73636864


class SchedulerLock:
    """This daemon's claim to record the periods; `held()` at each fire time."""

    def __init__(self, store: Store) -> None:
        self.engine: Engine = store.engine
        self.shared = self.engine.dialect.name == "postgresql"
        self._conn: Connection | None = None
        self._held = False
        self._guard = threading.Lock()  # jobs of several schedules may fire together

    @property
    def was_held(self) -> bool:
        """Whether it was held at the last look (no database round trip)."""
        return self._held

    def held(self) -> bool:
        """True if this daemon holds the lock, taking it if it is free (always on SQLite).
        A connection that broke (the server restarted) loses it: taken again if free."""
        if not self.shared:
            return True
        with self._guard:
            try:
                if self._conn is None:
                    self._conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                if self._held:
                    self._conn.execute(sa.text("SELECT 1"))  # still our session, so still ours
                else:
                    taken = self._conn.scalar(sa.select(sa.func.pg_try_advisory_lock(SCHEDULER_KEY)))
                    self._held = bool(taken)
            except sa.exc.DBAPIError:
                self._drop()
            return self._held

    def release(self) -> None:
        """Closing the session gives the lock up (a stopped daemon's standby takes over)."""
        with self._guard:
            self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.invalidate()  # never back into the pool holding the lock
                self._conn.close()
            except sa.exc.DBAPIError:
                pass
        self._conn, self._held = None, False
