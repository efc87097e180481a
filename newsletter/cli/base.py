"""The command group and what every command shares: the error-to-exit-code rule,
the project, the moment, JSON output."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import click

from newsletter import __version__
from newsletter.core import clock
from newsletter.core.errors import NewsletterError

if TYPE_CHECKING:
    from newsletter.project import Project


class Group(click.Group):
    """Turns NewsletterError into `Error: ...` plus a hint, and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NewsletterError as e:
            click.echo(f"Error: {e}", err=True)
            if e.hint:
                click.echo(f"Hint: {e.hint}", err=True)
            ctx.exit(1)


def now() -> datetime:
    return clock.utc_now()


def parse_moment(value: str | None, zone: ZoneInfo, param: str = "--at") -> datetime:
    """`--at` and `--since`: see clock.parse_moment; a bad one is a usage error naming the option."""
    try:
        return clock.parse_moment(value, zone, now())
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint=param) from None


def checked_transport(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """--transport checked as `[email] transport` is when the settings load (one reading of
    the URL, transport_url.parse): a bad one is a config error, exit 1, before anything runs."""
    from newsletter.core import transport_url
    from newsletter.core.errors import ConfigError

    if value is None:
        return None
    try:
        transport_url.parse(value)
    except ValueError as e:
        raise ConfigError("--transport", "", f"expected {e}", transport_url.HINT) from None
    return value


def echo_err(message: str) -> None:
    click.echo(message, err=True)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def project_root(ctx: click.Context) -> Path:
    from newsletter.project import find_root

    warn_environment(ctx)
    return find_root(ctx.obj.get("project"))


def warn_environment(ctx: click.Context) -> None:
    """A misspelt NEWSLETTER_ variable would be ignored without a word: say so, once."""
    import os

    from newsletter.core.config import environment_warnings

    root = ctx.find_root()
    if not root.obj.get("environment_checked"):
        root.obj["environment_checked"] = True
        for warning in environment_warnings(os.environ):
            echo_err(f"Warning: {warning}")


def open_project(ctx: click.Context) -> Project:
    from newsletter.project import Project

    project = Project(project_root(ctx))
    ctx.call_on_close(project.close)
    return project


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--project",
    type=click.Path(file_okay=False),
    default=None,
    help="Project directory (default: the current directory).",
)
@click.version_option(__version__)
@click.pass_context
def main(ctx: click.Context, project: str | None) -> None:
    """Build email digests of a site's articles: ingest, build, preview, send."""
    ctx.ensure_object(dict)
    ctx.obj["project"] = project
