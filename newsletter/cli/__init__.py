"""The command line: a thin click layer over the library.

The only place errors become exit codes: 0 success, 1 a user error (one
line `Error: ...` and a hint), 2 a usage error.

Each command imports what it uses when it runs, so `newsletter --help` (and every
command) starts without loading the library: the project, the database, rendering,
similarity, sending and the web stack load only for the commands
that need them. tests/test_startup.py keeps it so.

`base.py` holds the group and what the commands share; the commands live by what
they work on: `archive.py`, `issues.py`, `editing.py`, `people.py`, `check.py`,
`health.py`.
"""

from newsletter.cli import archive, check, editing, health, issues, people  # noqa: F401 (each registers its commands)
from newsletter.cli.base import main

__all__ = ["main"]
