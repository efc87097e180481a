"""One build per preview view: the page and its frames (desktop, mobile, the downloads)
ask for the same issue within a second, and a build is most of a view's time.

Kept by what a build is made from: the schedule, the moment, the variant, the
workspace's fingerprint (settings, schedules and templates by mtime, the archive's
revision, the issue ledger: `Workspace.version`) and a `revision` for whatever else
changes a build (editorial overrides pass theirs). Least recently used first out.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from newsletter.project import Build
from newsletter.web.desk import AudiencePlan

KEEP = 16  # views of a few schedules, variants and moments; each a few hundred KB


@dataclass(frozen=True)
class BuildKey:
    schedule: str
    at: datetime
    variant: str
    version: str  # Workspace.version(): files by mtime, archive revision, issue ledger
    revision: str = ""  # what else changes a build (an issue's editorial overrides)


@dataclass
class Shown:
    """A build as the preview shows it: the audience as `send` plans it, the build of the
    variant, and its files (.html, .txt, .eml) once a frame or the inbox row asks."""

    plan: AudiencePlan
    build: Build
    parts: dict[str, bytes] | None = None


class Builds:
    """A bounded LRU of builds; callers hold the workspace's lock, so no lock of its own."""

    def __init__(self, keep: int = KEEP) -> None:
        self.keep = keep
        self._kept: OrderedDict[BuildKey, Shown] = OrderedDict()

    def get(self, key: BuildKey, make: Callable[[], Shown]) -> Shown:
        """The kept build for `key`, or `make()`'s (kept unless it raises)."""
        if key in self._kept:
            self._kept.move_to_end(key)
            return self._kept[key]
        made = self._kept[key] = make()
        while len(self._kept) > self.keep:
            self._kept.popitem(last=False)
        return made

    def __len__(self) -> int:
        return len(self._kept)
