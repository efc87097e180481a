"""One error tree. Every error says what is wrong and how to fix it.

Only `cli.py` turns these into exit codes; everything else raises them.
"""

from __future__ import annotations


class NewsletterError(Exception):
    """Base of every error the user can fix. `hint` says how."""

    hint: str = ""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        if hint:
            self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(NewsletterError):
    """newsletter.toml or a schedule file is missing or invalid."""

    def __init__(self, path: str, key: str, expected: str, hint: str = "") -> None:
        where = f"{path}: {key}" if key else path
        super().__init__(f"{where}: {expected}", hint or "Fix the file and run the command again.")
        self.path, self.key, self.expected = path, key, expected


class SourceError(NewsletterError):
    """An article source could not be read. Reported as `path:line: reason`."""

    def __init__(self, source: str, reason: str, line: int | None = None) -> None:
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {reason}", "Fix or remove this source; the others were read.")
        self.source, self.reason, self.line = source, reason, line


class TemplateError(NewsletterError):
    """A Jinja or MJML template failed; names the template and the line."""

    def __init__(self, template: str, reason: str, line: int | None = None) -> None:
        where = f"{template}:{line}" if line else template
        super().__init__(f"template {where}: {reason}", "Fix the template and build again.")
        self.template, self.reason, self.line = template, reason, line


class UnknownScheduleError(NewsletterError):
    """No schedule file of that name."""

    def __init__(self, name: str, known: list[str]) -> None:
        listed = ", ".join(known) or "none"
        super().__init__(
            f"no schedule named {name!r} (known: {listed})",
            "Schedules are the schedules/NAME.toml files of the project.",
        )
        self.name = name


class StoreError(NewsletterError):
    """The database cannot be opened, read or written (disk full, read-only, locked,
    ...; see `dberrors`), or is of an unknown schema version. When the database
    itself failed, `database` names it (a file path, or the URL without its
    password) and `cause` says how in one word (disk-full, read-only, locked, ...)."""

    hint = "Check [database] url in newsletter.toml or NEWSLETTER_DATABASE_URL."

    def __init__(self, message: str, hint: str = "", database: str = "", cause: str = "") -> None:
        super().__init__(message, hint)
        self.database, self.cause = database, cause


class ProjectError(NewsletterError):
    """The directory is not a newsletter project."""

    hint = "Run `newsletter init DIR` first, or pass --project DIR."


class OutputError(NewsletterError):
    """A file could not be written (disk full, permission denied); names the path.

    Temp files are removed first, so what was there stays whole (a rename failing
    mid-set, rarer still, is completed by the next write into the folder)."""

    def __init__(self, path: str, cause: str) -> None:
        super().__init__(
            f"cannot write {path}: {cause}",
            "Free some space or fix the folder's permissions, then run the command again.",
        )
        self.path, self.cause = path, cause
