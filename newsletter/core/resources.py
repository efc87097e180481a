"""Files the package ships: templates, schedules and the demo's articles.

A wheel carries them inside the package (the build backend copies them in);
a source checkout keeps the one copy at the top of the repository.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent  # newsletter/, above core/


def bundled(name: str) -> Path:
    """`templates`, `schedules` or `examples`, wherever this install keeps them."""
    inside = PACKAGE / name
    return inside if inside.is_dir() else PACKAGE.parent / name
