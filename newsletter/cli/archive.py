"""Commands on the archive: init, ingest, articles, sources, fetch, reindex."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from newsletter.core.errors import NewsletterError

if TYPE_CHECKING:
    from newsletter.sources.ingest import IngestReport

from newsletter.cli.base import (
    emit_json,
    main,
    now,
    open_project,
    parse_moment,
)


@main.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False))
@click.option("--name", default=None, help="The newsletter's name.  [default: My Newsletter]")
@click.option(
    "--base-url",
    default=None,
    help="The site's address; article URLs are made from it.  [default: https://example.org]",
)
@click.option("--language", default=None, help="BCP 47: the mails' and pages' language.  [default: en]")
@click.option("--timezone", default=None, help="An IANA time zone.  [default: Europe/London]")
@click.option("--source", default=None, help="A feed URL or a folder of articles, polled once now.")
@click.option("--from", "sender", default=None, help="The From: 'Name <address>'.")
@click.option("--transport", default=None, help="How mail goes out.  [default: file:outbox]")
@click.option("--yes", "-y", is_flag=True, help="Ask nothing: what no option gives takes its default.")
def init(directory: str, yes: bool, **given: str | None) -> None:
    """Start a project: newsletter.toml, a weekly schedule, templates/, a first fetch.

    Asks for what no option gives when run in a terminal (not with --yes)."""
    from newsletter import scaffold
    from newsletter.core.config import SETTINGS_FILE

    root = Path(directory)
    asking = not yes and sys.stdin.isatty() and not (root / SETTINGS_FILE).exists()
    answers: dict[str, str] = {}
    for key in QUESTIONS:  # the From's default is made from the name given
        default = scaffold.Start(**answers).from_ if key == "sender" else getattr(scaffold.Start, key)
        answers[key] = _answer(key, given[key], default, root, asking)
    start = scaffold.Start(**answers)
    created = scaffold.init(root, start.name, start.base_url, start=start)
    for path in created:
        click.echo(f"created {path}")
    if not created:
        click.echo(f"{directory} is already a project; nothing to do")
    if root / SETTINGS_FILE not in created:
        return
    if start.source:
        _first_fetch(root)
    click.echo(next_steps(directory, bool(start.source)))


# init's questions in the order asked: the option, the prompt.
QUESTIONS = {
    "name": ("--name", "The newsletter's name"),
    "base_url": ("--base-url", "Your site's address"),
    "language": ("--language", "Language (BCP 47: en, de, fr, pt-BR ...)"),
    "timezone": ("--timezone", "Time zone (sends and dates)"),
    "source": ("--source", "Feed URL or folder of articles (empty: none yet)"),
    "sender": ("--from", "From: 'Name <address>'"),
    "transport": ("--transport", "Transport (smtp+starttls://HOST, file:DIR)"),
}


def _answer(key: str, given: str | None, default: str, root: Path, asking: bool) -> str:
    """The option's value, or the prompt's answer, or the default, checked (scaffold.check_*):
    a bad option is one `Error: --OPTION: expected ...` line; a bad answer is asked again."""
    from newsletter.core.errors import ConfigError

    flag, question = QUESTIONS[key]
    check = _check(key, root)
    if given is None and asking:
        reasked = lambda v: _reasked(check, v)  # noqa: E731
        return str(click.prompt(question, default=default, show_default=bool(default), value_proc=reasked))
    try:
        return check(default if given is None else given)
    except ValueError as e:
        raise ConfigError(flag, "", f"expected {e}", "See `newsletter init --help`.") from None


def _check(key: str, root: Path) -> Callable[[str], str]:
    from newsletter import scaffold

    if key == "source":
        return lambda value: scaffold.check_source(value, root)
    checks: dict[str, Callable[[str], str]] = {
        "name": scaffold.check_name,
        "base_url": scaffold.check_base_url,
        "language": scaffold.check_language,
        "timezone": scaffold.check_timezone,
        "sender": scaffold.check_sender,
        "transport": scaffold.check_transport,
    }
    return checks[key]


def _reasked(check: Callable[[str], str], value: str) -> str:
    try:
        return check(value)
    except ValueError as e:
        raise click.UsageError(f"expected {e}") from None  # click says so and asks again


def _first_fetch(root: Path) -> None:
    """Poll the new source once, as `fetch` does (one way in: neighbours indexed too). A
    failure is a warning: the project is made, and `newsletter fetch` tries again."""
    from newsletter.project import Project
    from newsletter.sources import polling
    from newsletter.storage import polls

    project = Project(root)
    try:
        settings = project.settings
        results = polling.poll_all(project.store, settings, project.root, settings.sources, now())
    finally:
        project.close()
    for result in results:
        for warning in result.warnings:
            click.echo(f"warning: {warning}", err=True)
        click.echo(f"{result.name}: {result.status}: {result.message}")
        if result.status in (polls.PARTIAL, polls.FAILED):
            click.echo(
                "warning: the project is made; fix [[sources]] in newsletter.toml and run `newsletter fetch`",
                err=True,
            )


def next_steps(directory: str, fetched: bool) -> str:
    """What a newcomer runs next, in order (README: Your first newsletter)."""
    where = "" if directory == "." else f" (in {directory}: cd {directory})"
    first = (
        "newsletter build weekly                  # the first issue: open the .html it prints"
        if fetched
        else "newsletter ingest FEED-URL-OR-FOLDER     # or add [[sources]] and `newsletter fetch`"
    )
    return NEXT_STEPS.format(where=where, first=first)


NEXT_STEPS = """
Next{where}:
  1. {first}
  2. newsletter subscribers import FILE.csv   # or a Mailchimp, Substack, Buttondown, listmonk or Ghost export
  3. newsletter send weekly                   # through [email] transport; then `newsletter run` and `serve`
See README: Your first newsletter."""


@main.command()
@click.argument("sources", nargs=-1, required=True)
@click.option(
    "--category",
    default=None,
    help="Category for sources that name none (before guessing from related entries).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def ingest(ctx: click.Context, sources: tuple[str, ...], category: str | None, as_json: bool) -> None:
    """Read article files, folders, feeds or feed URLs into the archive."""
    project = open_project(ctx)
    report = project.ingest(sources, now(), category)
    show_ingest(report, as_json)
    if report.errors:
        ctx.exit(1)


def show_ingest(report: IngestReport, as_json: bool) -> None:
    counts = report.counts
    if as_json:
        emit_json(
            {
                "sources": report.sources,
                "articles": report.articles,
                "added": counts.added,
                "updated": counts.updated,
                "unchanged": counts.unchanged,
                "warnings": report.warnings,
                "errors": [str(e) for e in report.errors],
            }
        )
        return
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    for error in report.errors:
        click.echo(f"error: {error}", err=True)
    click.echo(
        f"{report.sources} sources, {report.articles} articles: {counts.added} added, "
        f"{counts.updated} updated, {counts.unchanged} unchanged"
        + (f", {len(report.errors)} failed" if report.errors else "")
    )


@main.command()
@click.option("--category", default=None, help="Only this category.")
@click.option("--since", default=None, help="Only articles published at or after this date/time.")
@click.option("--json", "as_json", is_flag=True, help="Print the articles as JSON.")
@click.pass_context
def articles(ctx: click.Context, category: str | None, since: str | None, as_json: bool) -> None:
    """List the archive's articles, newest first."""
    project = open_project(ctx)
    zone = project.settings.site.zone
    since_at = parse_moment(since, zone, "--since") if since else None
    found = project.store.articles(category=category, since=since_at)
    if as_json:
        emit_json(
            [
                {
                    "id": s.id,
                    "title": s.article.title,
                    "category": s.article.category,
                    "url": s.article.url,
                    "published": s.article.published.astimezone(zone).isoformat(),
                    "source": s.article.source,
                }
                for s in found
            ]
        )
        return
    for s in found:
        click.echo(
            f"{s.article.published.astimezone(zone):%Y-%m-%d}  {s.article.category:<28.28}  {s.article.title}"
        )
    click.echo(f"{len(found)} articles", err=True)


@main.command("sources")
@click.option("--json", "as_json", is_flag=True, help="Print the sources as JSON.")
@click.pass_context
def sources_list(ctx: click.Context, as_json: bool) -> None:
    """List the [[sources]] of newsletter.toml: last poll, status, articles stored."""
    from newsletter.storage import polls

    project = open_project(ctx)
    states, counts = polls.states(project.store), polls.article_counts(project.store)
    zone = project.settings.site.zone
    rows = []
    for source in project.settings.sources:
        state = states.get(source.name)
        polled = (
            state.polled_at.astimezone(zone).isoformat(timespec="minutes")
            if state and state.polled_at
            else ""
        )
        rows.append(
            {
                "name": source.name,
                "location": state.location if state else source.location,
                "polled_at": polled,
                "status": state.status if state else polls.NEW,
                "message": state.message if state else "never polled",
                "articles": counts.get(source.name, 0),
            }
        )
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        polled = str(row["polled_at"]).replace("T", " ")[:16] or "never polled"  # local time, minutes
        click.echo(
            f"{row['name']:<20.20}  {polled:<16}  {row['status']:<12}  "
            f"{row['articles']:>6} articles  {row['location']}"
        )
        if row["status"] != polls.NEW:
            click.echo(f"{'':<22}{row['message']}")
    if rows:
        click.echo(f"times in {zone.key}", err=True)
    if not rows:
        click.echo("no [[sources]] in newsletter.toml; see README: Sources", err=True)


@main.command()
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--json", "as_json", is_flag=True, help="Print the outcomes as JSON.")
@click.pass_context
def fetch(ctx: click.Context, names: tuple[str, ...], as_json: bool) -> None:
    """Poll the [[sources]] now (all, or those NAMEd), whenever they were last polled."""
    from newsletter.sources import polling as sources
    from newsletter.storage import polls

    project = open_project(ctx)
    chosen = sources.chosen(project.settings, names)
    results = sources.poll_all(project.store, project.settings, project.root, chosen, now())
    if as_json:
        emit_json(
            [
                {"name": r.name, "status": r.status, "message": r.message, "warnings": r.warnings}
                for r in results
            ]
        )
    else:
        for result in results:
            for warning in result.warnings:
                click.echo(f"warning: {warning}", err=True)
            click.echo(f"{result.name}: {result.status}: {result.message}")
    # A partial poll (some entries or files unreadable) is a failure too: exit 1, naming it.
    if failed := [f"{r.name} {r.status}" for r in results if r.status in (polls.PARTIAL, polls.FAILED)]:
        raise NewsletterError(
            f"{len(failed)} of {len(results)} sources not read in full ({', '.join(failed)}); "
            "what was stored is kept",
            "Fix the source (or its url/path in newsletter.toml) and run `newsletter fetch` again.",
        )


@main.command()
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@click.pass_context
def reindex(ctx: click.Context, quiet: bool, as_json: bool) -> None:
    """Compute every article's related links (neighbours) again, with the [related] settings.

    Needed after changing `neighbours` or `language`, or after an upgrade that changes the
    method; ingest keeps the index up to date otherwise. Works in batches: memory stays flat."""
    from newsletter.storage import neighbours

    project = open_project(ctx)
    if quiet or as_json:
        done = project.reindex()
    else:
        with click.progressbar(length=1, label="reindexing", file=sys.stderr, show_pos=True) as bar:

            def advance(done: int, total: int) -> None:
                bar.length = max(total, 1)
                bar.update(done - bar.pos)

            done = project.reindex(advance)
    indexed, rows = neighbours.counts(project.store)
    if as_json:
        emit_json({"articles": done, "indexed": indexed, "neighbour_rows": rows})
    else:
        click.echo(f"reindexed {done} articles: {rows} neighbour rows")
