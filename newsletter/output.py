"""Writers: files appear whole or not at all (a temp file, then a rename)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_files(folder: Path, stem: str, parts: dict[str, bytes]) -> dict[str, Path]:
    """Write `stem.<ext>` for each part; returns the paths by part name."""
    written = {}
    for ext, data in parts.items():
        path = folder / f"{stem}.{ext}"
        atomic_write(path, data)
        written[ext] = path
    return written
