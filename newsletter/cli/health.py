"""Running it for real: `newsletter status` (how the newsletter is doing, and what needs
a person: exit 1) and `newsletter db backup`."""

from __future__ import annotations

import click

from newsletter.cli.base import emit_json, main, now, open_project, project_root
from newsletter.core.errors import NewsletterError


@main.command()
@click.option(
    "--grace",
    default="6h",
    show_default=True,
    help="As `run --grace`: a send time passed longer ago than this and not sent is missed.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_context
def status(ctx: click.Context, grace: str, as_json: bool) -> None:
    """Per schedule the last issue, the next send, a missed period (and the command that
    sends it) and unfinished sends; per source its last poll; the bounce mailbox; the list.
    Exit 1 when something needs a person (for a monitoring check)."""
    from newsletter.delivery.status import gather
    from newsletter.delivery.status_report import as_json as status_json
    from newsletter.delivery.status_report import lines, needs
    from newsletter.scheduler import parse_grace

    found = gather(open_project(ctx), now(), parse_grace(grace))
    if as_json:
        emit_json(status_json(found))
    else:
        for line in lines(found):
            click.echo(line)
    if todo := needs(found):
        raise NewsletterError(f"{len(todo)} things need a person (see above)", "")


@main.group()
def db() -> None:
    """The database: a backup of it (README: Running it for real)."""


@db.command("backup")
@click.argument("file", type=click.Path(dir_okay=False))
@click.pass_context
def db_backup(ctx: click.Context, file: str) -> None:
    """Copy the SQLite database to FILE while it is in use (never over a file), checked by
    opening the copy. PostgreSQL: use pg_dump."""
    from pathlib import Path

    from newsletter.project import Project
    from newsletter.storage.backup import backup

    project = Project(project_root(ctx))  # settings only: the store is not opened
    url = project.database_url
    target = Path(file).expanduser().absolute()
    version = backup(url, target)
    click.echo(f"wrote {target} (schema version {version}, integrity ok, mode 0600)")
