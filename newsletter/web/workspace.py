"""The preview's hold on one project directory.

A `Project` reads newsletter.toml once, so the workspace reopens it when that
file changes; schedules are re-read by every call and templates by Jinja's
auto-reload, so those edits need nothing here. `version()` fingerprints
everything an issue is made from (settings, schedules, templates, the
archive, the issue ledger, the editors' overrides): open pages poll it to know when to refresh.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from newsletter.core.config import SCHEDULES_DIR, SETTINGS_FILE
from newsletter.core.errors import NewsletterError
from newsletter.digest.render import default_templates
from newsletter.project import Project
from newsletter.storage.issues import Issues
from newsletter.storage.overrides import IssueOverrides
from newsletter.web.builds import Builds

Clock = Callable[[], datetime]
# (path, mtime_ns, size, inode): an edit, an atomic rename-over or a new file all change it.
FileStamp = tuple[str, int, int, int]


class Workspace:
    """The project behind the preview, one request at a time.

    A lock serialises access because a Project's caches (Jinja's compiled
    templates, the similarity index, the settings) are not made for
    concurrent use; a build takes milliseconds, so nobody waits long.
    """

    def __init__(self, root: Path, clock: Clock) -> None:
        self.root = root.resolve()
        self.clock = clock
        self._lock = threading.RLock()
        self._project: Project | None = None
        self._settings_stamp: tuple[FileStamp, ...] | None = None
        self._files_stamp: tuple[FileStamp, ...] | None = None
        self.builds = Builds()  # one build per view (page and frames); used under the lock

    def folders(self) -> list[Path]:
        """Where the inputs of an issue live (besides the database)."""
        return [self.root / SCHEDULES_DIR, self.root / "templates", default_templates()]

    @contextmanager
    def project(self) -> Iterator[Project]:
        """The project as the files are now; raises NewsletterError if newsletter.toml is broken."""
        with self._lock:
            yield self._current()

    def version(self) -> str:
        """A short fingerprint that changes whenever a rebuild could show something new."""
        with self._lock:
            parts: list[object] = [self._stamp_files()]
            try:
                store = self._current().store
                parts += [store.revision, [(i.id, i.status, i.subject) for i in Issues(store).issues()]]
                parts.append(IssueOverrides(store).last_saved())  # an editor's save, here or by `edit`
            except NewsletterError as e:
                parts.append(str(e))  # a broken project is a state too: fixing it changes the version
        return hashlib.blake2b(repr(parts).encode(), digest_size=8).hexdigest()

    def language(self) -> str:
        """The site's language ([site] language): the desk's dates and words; English while
        newsletter.toml is broken (the error says so in English too)."""
        with self._lock:
            try:
                return self._current().settings.site.language
            except NewsletterError:
                return "en"

    def close(self) -> None:
        with self._lock:
            if self._project is not None:
                self._project.close()
                self._project = None
            self.builds = Builds()  # a reopened project builds afresh

    def _current(self) -> Project:
        settings = stamps([self.root / SETTINGS_FILE])
        if self._project is None or settings != self._settings_stamp:
            self.close()
            self._project = Project(self.root)  # raises on a broken file; retried next request
            self._settings_stamp = settings
        files = self._stamp_files()
        if files != self._files_stamp:
            # Auto-reload notices an edited template, not a new one that shadows a
            # default (a partial copied into the project): drop every compiled one.
            for env in (self._project.renderer.markup, self._project.renderer.plain):
                if env.cache is not None:
                    env.cache.clear()
            self._files_stamp = files
        return self._project

    def _stamp_files(self) -> tuple[FileStamp, ...]:
        return stamps([self.root / SETTINGS_FILE, *self.folders()])


def stamps(paths: list[Path]) -> tuple[FileStamp, ...]:
    """Stat every file under `paths` (files or folders), skipping editor droppings."""
    found: list[FileStamp] = []
    for path in paths:
        if path.is_dir():
            for folder, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not _scratch(d))
                found += [_stamp(Path(folder) / f) for f in sorted(files) if not _scratch(f)]
        else:
            found.append(_stamp(path))
    return tuple(found)


def _scratch(name: str) -> bool:
    """Swap files, backups and caches: saving in vim or emacs must not refresh twice."""
    return name.startswith((".", "#")) or name.endswith(("~", ".swp", ".tmp")) or name == "__pycache__"


def _stamp(path: Path) -> FileStamp:
    try:
        st = path.stat()
    except OSError:
        return (str(path), 0, -1, 0)
    return (str(path), st.st_mtime_ns, st.st_size, st.st_ino)
