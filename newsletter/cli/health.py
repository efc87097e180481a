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
    """The database: its schema revision, upgrades, a backup, a copy to PostgreSQL
    (README: Running it for real, Moving to PostgreSQL)."""


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


@db.command("current")
@click.pass_context
def db_current(ctx: click.Context) -> None:
    """Say the database's schema revision (Alembic's, e.g. v10) and the program's, without
    changing anything."""
    from newsletter.core.transport_url import shown
    from newsletter.project import Project
    from newsletter.storage.migrations import HEAD
    from newsletter.storage.store import stored_revision

    url = Project(project_root(ctx)).database_url  # settings only: the store is not opened
    found = stored_revision(url)
    state = (
        "no database yet (the first command makes it at head)"
        if found is None
        else "head"
        if found == HEAD
        else f"behind head {HEAD}: `newsletter db upgrade` (or any command) upgrades it"
        if found < HEAD
        else f"newer than this program's {HEAD}: upgrade newsletter"
    )
    click.echo(f"{found or '-'} ({state}) {shown(url)}")


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Bring the database's schema up to this program's (every command does this when it
    opens the project; this does only that). A database from before the revisions is
    recognised by its schema version and stamped there first."""
    from newsletter.storage.migrations import HEAD

    before = open_project(ctx).store.upgraded_from
    click.echo(f"upgraded from {before} to {HEAD}" if before else f"already at {HEAD} (head)")


@db.command("copy")
@click.option("--to", "to", required=True, metavar="URL", help="an empty database: postgresql://USER@HOST/DB")
@click.pass_context
def db_copy(ctx: click.Context, to: str) -> None:
    """Copy the project's whole database into the empty database at URL (SQLite to
    PostgreSQL), then check every table's row count and checksum on both sides; a
    difference or an error leaves the target empty. Then point [database] url at it."""
    from newsletter.core.config import check_database_url
    from newsletter.core.errors import ConfigError
    from newsletter.core.transport_url import shown
    from newsletter.storage.copy import copy_database

    try:
        check_database_url(to)
    except ValueError as e:
        hint = "Name the empty PostgreSQL database to copy into."
        raise ConfigError("--to", "", f"expected {e}", hint) from None
    project = open_project(ctx)
    checks = copy_database(project.store, to)
    width = max(len(c.name) for c in checks)
    click.echo(f"copied {shown(project.database_url)} to {shown(to)}")
    click.echo(f"  {'table':<{width}}  {'rows':>9}  checksum (the same on both sides)")
    for c in checks:
        click.echo(f"  {c.name:<{width}}  {c.rows:>9}  {c.checksum}")
    rows = sum(c.rows for c in checks)
    click.echo(f"verified: {len(checks)} tables, {rows} rows, every count and checksum the same")
    click.echo(
        "Next: set [database] url (or NEWSLETTER_DATABASE_URL) to the new database and restart "
        "run, serve and the workers (README: Moving to PostgreSQL)."
    )
