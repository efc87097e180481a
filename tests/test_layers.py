"""The database stays in storage/: no module above it touches a store's engine or imports
SQLAlchemy (ARCHITECTURE.md, "Layers"). Above storage/ a module passes the `Store` and
calls storage's functions, which open their own transactions (`limits.serialised(store)`
is signup's); the one database error callers settle, a unique key taken by a parallel
writer, is `storage.dberrors.IntegrityError`, and a transaction they hold is typed
`storage.store.Connection`.

Import Linter sees only imports within the package, so this walks the syntax: every
`.engine` attribute and every `sqlalchemy` import, in functions too."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "newsletter"


def outside_storage(package: Path) -> Iterator[Path]:
    for path in sorted(package.rglob("*.py")):
        if path.relative_to(package).parts[0] != "storage":
            yield path


def database_uses(path: Path, package: Path) -> list[str]:
    """`file:line: what` for each use of the engine or of SQLAlchemy in `path`."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Attribute) and node.attr == "engine":
            found.append((node.lineno, ".engine (pass the Store; storage opens the transaction)"))
        if isinstance(node, ast.Import | ast.ImportFrom):
            for name in _imported(node):
                if name == "sqlalchemy" or name.startswith("sqlalchemy."):
                    found.append((node.lineno, f"imports {name} (only storage/ uses SQLAlchemy)"))
    where = path.relative_to(package.parent).as_posix()
    return [f"{where}:{line}: {what}" for line, what in sorted(found)]


def _imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    """The modules an import statement names (absolute ones: a relative import is ours)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    return [node.module] if node.level == 0 and node.module else []


def test_nothing_above_storage_touches_the_engine_or_sqlalchemy() -> None:
    found = [use for path in outside_storage(PACKAGE) for use in database_uses(path, PACKAGE)]
    assert found == []


def test_the_scan_finds_an_engine_and_an_import_where_they_are(tmp_path: Path) -> None:
    """The scan itself: a use in a function, named with its file and line."""
    package = tmp_path / "newsletter"
    (package / "storage").mkdir(parents=True)
    (package / "storage" / "store.py").write_text("import sqlalchemy as sa\nengine = sa.create_engine\n")
    (package / "audience").mkdir()
    face = package / "audience" / "files.py"
    face.write_text(
        '"""store.engine in prose is fine."""\n\n'
        "def f(store):\n    from sqlalchemy import exc\n\n    return store.engine.begin()\n"
    )
    found = [use for path in outside_storage(package) for use in database_uses(path, package)]
    assert found == [
        "newsletter/audience/files.py:4: imports sqlalchemy (only storage/ uses SQLAlchemy)",
        "newsletter/audience/files.py:6: .engine (pass the Store; storage opens the transaction)",
    ]
