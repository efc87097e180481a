"""Writers: files appear whole or not at all, and an issue's files as a set.

`atomic_write` is one file: a temp file, fsync, rename. `write_files` is a
set (an issue's .html, .txt and .eml), which renames alone cannot give: every
part goes to a temp file first, then a manifest listing the renames is put in
place, then the renames, then the manifest is removed. The next `write_files`
into the folder completes a leftover manifest's renames (roll forward) and
removes temp files left without one. So, killed at any point, a build leaves
a set that the next write into the folder makes whole: never two builds mixed,
and no temp files that stay.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from functools import cache
from pathlib import Path

from newsletter.core.errors import OutputError

MANIFEST = ".newsletter-renames.json"
# Only temp files of write_files end so: atomic_write's (send, file transport)
# may be in flight in the same folder and are never swept.
SET_SUFFIX = ".set-tmp"
Rename = tuple[Path, Path]  # temp file -> final path, in one folder


@cache
def _umask() -> int:
    """The process's umask, read once without setting it (os.umask would race other
    threads); a file transport publishes one file per message."""
    with suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return 0o022


def readable(fd: int) -> None:
    """mkstemp makes files 0600; what we publish (issues, outboxes) gets the mode a plain
    open() would give, so a web server in front of `issues/` can read it."""
    os.fchmod(fd, 0o666 & ~_umask())


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        readable(fd)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_files(folder: Path, stem: str, parts: dict[str, bytes]) -> dict[str, Path]:
    """Write `stem.<ext>` for each part, as one set; returns the paths by part name.

    Raises OutputError naming the path (disk full, permission denied); the
    files already there are then left as they were."""
    paths = {ext: folder / f"{stem}.{ext}" for ext in parts}
    _make_folder(folder)
    with _locked(folder):
        _recover(folder)
        renames = _write_temps({paths[ext]: data for ext, data in parts.items()})
        _commit(folder, renames)
    return paths


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(str(folder), _cause(e)) from e


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One set writer per folder at a time: a second build into the folder must
    not roll forward, or sweep the temp files of, a write still going on. The
    lock goes with the process, also when it is killed."""
    fd = _open_folder(folder)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as e:
            raise OutputError(str(folder), _cause(e)) from e
        yield
    finally:
        os.close(fd)


def _open_folder(folder: Path) -> int:
    try:
        return os.open(folder, os.O_RDONLY)
    except OSError as e:
        raise OutputError(str(folder), _cause(e)) from e


def _write_temps(files: dict[Path, bytes]) -> list[Rename]:
    """Every part in a temp file beside its final path; on failure none is left."""
    renames: list[Rename] = []
    try:
        for path, data in files.items():
            renames.append((_temp_file(path, data), path))
    except BaseException:  # OutputError, or Ctrl-C between parts
        _remove(temp for temp, _ in renames)
        raise
    return renames


def _temp_file(path: Path, data: bytes) -> Path:
    """`data` in a synced temp file in `path`'s folder, named after `path`."""
    if path.is_dir():  # found now, not at the rename, when half the set is in place
        raise OutputError(str(path), "a folder is in the way")
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=SET_SUFFIX)
        readable(fd)
    except OSError as e:
        raise OutputError(str(path), _cause(e)) from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        Path(name).unlink(missing_ok=True)
        raise OutputError(str(path), _cause(e)) from e
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def _commit(folder: Path, renames: list[Rename]) -> None:
    """The manifest first (durable before any rename), then the renames."""
    manifest = folder / MANIFEST
    entries = [[temp.name, path.name] for temp, path in renames]
    try:
        _put_manifest(manifest, entries)
    except BaseException:
        _remove(temp for temp, _ in renames)
        raise
    _roll_forward(folder, renames)


def _put_manifest(manifest: Path, entries: list[list[str]]) -> None:
    staged = _temp_file(manifest, json.dumps(entries).encode())
    try:
        _rename(staged, manifest)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    _sync_folder(manifest.parent)


def _recover(folder: Path) -> None:
    """What a killed write left: its manifest's renames completed, then any temp
    file of ours without a manifest (the kill came before it) removed."""
    manifest = folder / MANIFEST
    entries = _read_manifest(manifest)
    if entries is not None:
        _roll_forward(folder, [(folder / temp, folder / final) for temp, final in entries])
    _remove(folder.glob(f".*{SET_SUFFIX}"))


def _read_manifest(manifest: Path) -> list[tuple[str, str]] | None:
    try:
        entries = json.loads(manifest.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise OutputError(
            str(manifest), f"unreadable leftover of an interrupted build ({e}); remove it and build again"
        ) from e
    if not _valid_entries(entries):
        raise OutputError(str(manifest), "not a manifest of this program; remove it and build again")
    return [(temp, final) for temp, final in entries]


def _valid_entries(entries: object) -> bool:
    """Pairs of plain file names: a manifest never renames outside its folder."""
    return isinstance(entries, list) and all(
        isinstance(pair, list)
        and len(pair) == 2
        and all(
            isinstance(name, str) and name not in ("", ".", "..") and Path(name).name == name for name in pair
        )
        for pair in entries
    )


def _roll_forward(folder: Path, renames: list[Rename]) -> None:
    """Rename each temp still there (a resumed manifest may be partly done), then
    drop the manifest. A failure leaves the manifest for the next write."""
    for temp, path in renames:
        if temp.exists():
            _rename(temp, path)
    _sync_folder(folder)
    try:
        (folder / MANIFEST).unlink(missing_ok=True)
    except OSError as e:
        raise OutputError(str(folder / MANIFEST), _cause(e)) from e
    _sync_folder(folder)


def _rename(temp: Path, path: Path) -> None:
    try:
        os.replace(temp, path)
    except OSError as e:
        raise OutputError(str(path), _cause(e)) from e


def _sync_folder(folder: Path) -> None:
    """Renames are durable only once the folder itself is synced."""
    fd = _open_folder(folder)
    try:
        os.fsync(fd)
    except OSError as e:
        raise OutputError(str(folder), _cause(e)) from e
    finally:
        os.close(fd)


def _remove(paths: Iterable[Path]) -> None:
    """Best effort: it runs while another error is on its way, or sweeps temp
    files that are harmless if one stays."""
    for path in paths:
        with suppress(OSError):
            path.unlink(missing_ok=True)


def _cause(error: OSError) -> str:
    return error.strerror or str(error)
