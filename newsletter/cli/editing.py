"""`edit`: an editor's overrides of an issue without the browser (issue 20)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from newsletter.cli.base import main, now, open_project, parse_moment
from newsletter.core.errors import NewsletterError

if TYPE_CHECKING:
    from newsletter.delivery.editing import EditedIssue

INTRO_LINES = 3  # lines of the intro `--show` prints


@main.command()
@click.argument("schedule")
@click.option(
    "--at",
    default=None,
    help="Edit the issue due after this moment (ISO 8601; default now): the one going out at the "
    "next send time.",
)
@click.option("--intro", "intro_file", default=None, metavar="FILE|-", help="The intro above the lead, "
              "Markdown, from FILE (- for standard input); an empty file removes it.")  # fmt: skip
@click.option(
    "--subject", default=None, help="The subject instead of the schedule's; '' for the schedule's again."
)
@click.option(
    "--pin",
    default=None,
    metavar="ARTICLE",
    help="Pin this article as the lead (URL, slug or id); '' to unpin.",
)
@click.option("--exclude", multiple=True, metavar="ARTICLE", help="Leave this article out (repeatable).")
@click.option(
    "--include", multiple=True, metavar="ARTICLE", help="Take an excluded article back in (repeatable)."
)
@click.option("--order", multiple=True, metavar="ARTICLE", help="Put these articles first in their "
              "sections, in this order (repeatable; replaces the order saved before).")  # fmt: skip
@click.option("--reset", is_flag=True, help="Start from no overrides: only the options given now remain.")
@click.option("--editor", default=None, help="Who edits, for the version history (default: your login name).")
@click.option("--show", is_flag=True, help="Print the overrides, the articles and the history (the default "
              "when nothing is changed).")  # fmt: skip
@click.pass_context
def edit(
    ctx: click.Context,
    schedule: str,
    at: str | None,
    intro_file: str | None,
    subject: str | None,
    pin: str | None,
    exclude: tuple[str, ...],
    include: tuple[str, ...],
    order: tuple[str, ...],
    reset: bool,
    editor: str | None,
    show: bool,
) -> None:
    """Set an issue's intro, subject, lead, left-out articles and order: a new version that
    build, send and run use (saving withdraws an approval)."""
    import getpass

    from newsletter.core.text import plain_line
    from newsletter.delivery import editing

    project = open_project(ctx)
    chosen = project.schedule(schedule)
    moment = parse_moment(at, chosen.zone)
    change = editing.Change(
        intro=read_intro(intro_file) if intro_file is not None else None,
        subject=subject,
        pin=pin,
        exclude=exclude,
        include=include,
        order=order or None,
        reset=reset,
    )
    if change != editing.Change():
        from newsletter.delivery.approval import approve_command

        end = editing.send_time(chosen, moment)
        who = plain_line(editor if editor is not None else getpass.getuser())[:100] or "unknown"
        result = editing.edit(project, chosen, moment, change, who, now())
        if result is None:
            click.echo(
                f"{schedule}: nothing changed; no new version of the {editing.local(chosen, end)} issue."
            )
            if show:
                show_issue(editing.edited_issue(project, chosen, moment))
            return
        click.echo(
            f"{schedule}: overrides version {result.saved.version} of the "
            f"{editing.local(chosen, end)} issue saved by {who}; "
            "build, send and run use it."
        )
        if result.withdrawn:
            click.echo(
                "warning: its approval is withdrawn (what was approved is not what goes out now); "
                f"approve it again: {approve_command(schedule, end)}",
                err=True,
            )
        if not show:
            return
    show_issue(editing.edited_issue(project, chosen, moment))


def read_intro(name: str) -> str:
    """--intro FILE or - (standard input), as UTF-8."""
    try:
        data = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
        return data.decode("utf-8")
    except OSError as e:
        raise NewsletterError(
            f"--intro {name}: {e.strerror}", "Give a Markdown file, or - for standard input."
        ) from e
    except UnicodeDecodeError as e:
        raise NewsletterError(
            f"--intro {name}: not UTF-8 (byte {e.start})", "Save the intro as UTF-8."
        ) from e


def show_issue(issue: EditedIssue) -> None:
    from newsletter.delivery.editing import local, slug
    from newsletter.digest.overrides import changes

    current = issue.current
    latest = issue.history[0] if issue.history else None
    made = f"overrides version {latest.version} by {latest.editor}" if latest else "no overrides"
    click.echo(f"{issue.schedule.name}: the {local(issue.schedule, issue.end)} issue ({made})")
    click.echo(f"subject: {current.subject or '(the schedule’s)'}")
    lines = [line for line in current.intro.splitlines() if line.strip()]
    click.echo(
        "intro: "
        + (" / ".join(lines[:INTRO_LINES]) + (" ..." if len(lines) > INTRO_LINES else "") or "(none)")
    )
    shown = {a.id for a in issue.edited.articles}
    lead = issue.edited.lead
    for section in issue.edited.sections:
        click.echo(f"  {section.category}")
        for a in section.articles:
            mark = "lead" if a is lead else "    "
            click.echo(f"    {mark} #{a.id} {slug(a)}  {a.title}")
    for a in issue.picked.articles:
        if a.id not in shown:
            click.echo(f"    left out #{a.id} {slug(a)}  {a.title}")
    for n, saved in enumerate(issue.history):
        before = issue.history[n + 1].overrides if n + 1 < len(issue.history) else None
        what = ", ".join(changes(before, saved.overrides)) or "nothing"
        when = saved.saved_at.isoformat(timespec="seconds")
        click.echo(f"version {saved.version}: {saved.editor} at {when}: {what}")
