"""The command line: a thin click layer over the library.

The only place errors become exit codes: 0 success, 1 a user error (one
line `Error: ...` and a hint), 2 a usage error.

Each command imports what it uses when it runs, so `newsletter --help` (and every
command) starts without loading the library: the project, the database, rendering,
similarity, sending and the web stack load only for the commands
that need them. tests/test_startup.py keeps it so.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import click

from newsletter import __version__
from newsletter.core import clock
from newsletter.core.errors import NewsletterError

if TYPE_CHECKING:
    from newsletter.delivery.send import SendSummary
    from newsletter.project import Build, Project
    from newsletter.sources.ingest import IngestReport


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


@main.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False))
@click.option("--name", default="My Newsletter", show_default=True, help="The newsletter's name.")
@click.option(
    "--base-url",
    default="https://example.org",
    show_default=True,
    help="The site's address; article URLs are made from it.",
)
def init(directory: str, name: str, base_url: str) -> None:
    """Scaffold a project: newsletter.toml, schedules/ and templates/."""
    from newsletter import scaffold

    created = scaffold.init(Path(directory), name, base_url)
    for path in created:
        click.echo(f"created {path}")
    if not created:
        click.echo(f"{directory} is already a project; nothing to do")


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
@click.argument("schedule")
@click.option(
    "--at",
    "at",
    default=None,
    help="Build as of this moment (ISO 8601; default now; without an offset, in the schedule's time zone).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder for SCHEDULE-YYYY-MM-DD.{html,txt,eml} (default: PROJECT/issues).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the issue as JSON.")
@click.pass_context
def build(ctx: click.Context, schedule: str, at: str | None, out: str | None, as_json: bool) -> None:
    """Build a schedule's issue as of a moment and write its files."""
    project = open_project(ctx)
    zone = project.schedule(schedule).zone
    folder = Path(out) if out else project.root / "issues"
    result = project.build(schedule, parse_moment(at, zone), now(), folder)
    show_build(result, as_json)


def show_build(result: Build, as_json: bool) -> None:
    from newsletter.project import build_json

    if as_json:
        emit_json(build_json(result))
        return
    data = build_json(result)
    for warning in data["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    if result.skipped:
        click.echo(
            f"{result.schedule.name}: nothing new from {data['period']['start']} to "
            f"{data['period']['end']}; skipped (skip_if_empty)"
        )
        return
    assert result.issue is not None
    click.echo(
        f"{result.schedule.name}: {len(result.digest.articles)} articles, "
        f"{result.issue.html_size / 1024:.1f} KB HTML; subject: {result.issue.subject}"
    )
    for path in result.files.values():
        click.echo(f"  {path}")


@main.command()
@click.argument("directory", default="demo", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the built issues as JSON.")
def demo(directory: str, as_json: bool) -> None:
    """Make a demo project from the sample articles and build its issues."""
    from newsletter import scaffold
    from newsletter.audience import files as audience
    from newsletter.project import Project, build_json

    root = Path(directory)
    scaffold.init_demo(root)
    project = Project(root)
    try:
        report = project.ingest([str(scaffold.demo_articles())], now())
        audience.import_csv(project, scaffold.demo_subscribers(), now())
        if not as_json:
            show_ingest(report, as_json=False)
        builds = [
            project.build(s.name, scaffold.DEMO_AT, now(), project.root / "issues")
            for s in project.schedules()
        ]
    finally:
        project.close()
    if as_json:
        emit_json([build_json(b) for b in builds])
        return
    for result in builds:
        show_build(result, as_json=False)
    click.echo(
        f"\nOpen {project.root / 'issues'} in a browser. Next: "
        f"`newsletter --project {directory} preview`, or send to {directory}/outbox with "
        f"NEWSLETTER_SECRET_KEY=... newsletter --project {directory} send weekly "
        f"--at {scaffold.DEMO_AT.isoformat()}"
    )


@main.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; keep it on loopback unless you mean to share drafts.",
)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.pass_context
def preview(ctx: click.Context, host: str, port: int) -> None:
    """Serve the editor preview: any schedule's issue as of any date, desktop and mobile."""
    from newsletter.web.preview import serve  # the web stack loads only when asked for

    serve(project_root(ctx), host, port)


@main.group()
def subscribers() -> None:
    """Manage subscribers: import a CSV, list, remove, export or forget one."""


# An import is single opt-in unless --double-opt-in asks each new address to confirm.
IMPORT_OPT_IN = (
    "single opt-in: imported addresses are active at once (the list must already have consented; "
    "--double-opt-in asks each new address to confirm by mail)"
)


@subscribers.command("import")
@click.argument("csv_file", metavar="FILE.csv", type=click.Path(dir_okay=False))
@click.option(
    "--double-opt-in",
    is_flag=True,
    help="Ask each new address to confirm by mail (the signup form's confirmation) "
    "instead of adding it active: for a list whose consent you cannot show.",
)
@click.option(
    "--transport",
    default=None,
    callback=checked_transport,
    help="With --double-opt-in: override [email] transport.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def subscribers_import(
    ctx: click.Context, csv_file: str, double_opt_in: bool, transport: str | None, as_json: bool
) -> None:
    """Import `email,name,categories` rows (categories separated by ';', empty = all)."""
    from newsletter.audience import files as audience

    project = open_project(ctx)
    if double_opt_in:
        invite(ctx, project, Path(csv_file), transport, as_json)
        return
    parsed, counts = audience.import_csv(project, Path(csv_file), now())
    if as_json:
        emit_json(
            {
                **asdict(counts),
                "merged": parsed.merged,
                "errors": parsed.errors,
                "warnings": parsed.warnings,
                "opt_in": "single",
            }
        )
    else:
        for warning in parsed.warnings:
            click.echo(f"warning: {warning}", err=True)
        for error in parsed.errors:
            click.echo(f"error: {error}", err=True)
        click.echo(
            f"{counts.added} added, {counts.updated} updated, {counts.unchanged} unchanged, "
            f"{counts.suppressed} left unsubscribed, {parsed.merged} duplicates merged"
            + (f", {counts.kept_choices} kept the categories they chose" if counts.kept_choices else "")
            + (f", {len(parsed.errors)} rows rejected" if parsed.errors else "")
        )
        click.echo(IMPORT_OPT_IN)
    if parsed.errors:
        ctx.exit(1)


def invite(ctx: click.Context, project: Project, path: Path, transport: str | None, as_json: bool) -> None:
    """`subscribers import --double-opt-in`: pending rows and confirmation mails."""
    from newsletter.audience import files as audience
    from newsletter.audience.dispatch import Dispatch
    from newsletter.delivery.transports import Courier

    # The secret, the transport and the DKIM key are checked before anything is recorded.
    courier = Courier.for_url(project.transport_url(transport), project.environ)
    dispatch = Dispatch(project, courier)
    parsed, done = audience.invite_csv(project, path, now(), dispatch)
    problems = [*parsed.errors, *done.unsent]
    if as_json:
        emit_json({**asdict(done), "errors": parsed.errors, "warnings": parsed.warnings, "opt_in": "double"})
    else:
        for warning in parsed.warnings:
            click.echo(f"warning: {warning}", err=True)
        for problem in problems:
            click.echo(f"error: {problem}", err=True)
        click.echo(
            f"double opt-in: {done.invited} asked to confirm by mail, {done.listed} already on the list"
            + (f", {len(problems)} failed" if problems else "")
        )
    if problems:
        ctx.exit(1)


@subscribers.command("list")
@click.option(
    "--status",
    type=click.Choice(["pending", "active", "paused", "unsubscribed", "bounced", "complained", "removed"]),
    default=None,
    help="Only subscribers with this status.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the subscribers as JSON.")
@click.pass_context
def subscribers_list(ctx: click.Context, status: str | None, as_json: bool) -> None:
    """List subscribers with their categories and status."""
    from newsletter.storage.roster import Roster

    people = Roster(open_project(ctx).store).subscribers(status)
    if as_json:
        emit_json(
            [
                {"email": p.email, "name": p.name, "categories": list(p.categories), "status": p.status}
                for p in people
            ]
        )
        return
    for p in people:
        click.echo(f"{p.email:<36} {p.status:<13} {'; '.join(p.categories) or '(all)'}  {p.name}")
    click.echo(f"{len(people)} subscribers", err=True)


@subscribers.command("remove")
@click.argument("email")
@click.pass_context
def subscribers_remove(ctx: click.Context, email: str) -> None:
    """Take an address off the list (unsubscribes and bounces stay suppressed)."""
    from newsletter.storage.roster import Roster

    if not Roster(open_project(ctx).store).remove(email, now()):
        raise NewsletterError(f"no active subscriber {email!r}", "See `newsletter subscribers list`.")
    click.echo(f"removed {email}")


@subscribers.command("export")
@click.option(
    "--json", "as_json", is_flag=True, help="JSON: one object per person, their rows by table (default)."
)
@click.option(
    "--csv", "as_csv", is_flag=True, help="CSV: subscriber,table,row,column,value, one line per value."
)
@click.option("--email", default=None, help="Only this person (a data subject's access request).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write to FILE (readable by you only) instead of standard output.",
)
@click.pass_context
def subscribers_export(
    ctx: click.Context, as_json: bool, as_csv: bool, email: str | None, out: str | None
) -> None:
    """Everything stored about each person: the subscriber row, deliveries with dates and
    statuses, bounce reports, consent records and any other row that names them."""
    from newsletter.audience import files as audience
    from newsletter.storage.rights import DataRights

    if as_json and as_csv:
        raise click.UsageError("choose one of --json and --csv")
    people = DataRights(open_project(ctx).store).export_people(email)
    if email is not None and not people:
        raise NewsletterError(f"no subscriber {email!r}", "See `newsletter subscribers list`.")
    data = audience.export_csv(people) if as_csv else audience.export_json(people)
    if out is None:
        click.echo(data.decode(), nl=False)
    else:
        audience.write_private(Path(out), data)
        echo_err(f"{len(people)} people written to {out}")


@subscribers.command("forget")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def subscribers_forget(ctx: click.Context, email: str, yes: bool) -> None:
    """Erase an address and its name from every table (right to erasure); keep only a keyed
    hash so it is never imported, signed up or mailed again, and the delivery counts."""
    from newsletter.storage.rights import DataRights

    rights = DataRights(open_project(ctx).store)
    if not yes:
        click.confirm(f"Erase {email} for good? This cannot be undone", abort=True, err=True)
    done = rights.forget(email, now())
    if done.subscriber or done.rows:
        click.echo(f"forgot {email}: {done.rows} rows erased or anonymised; the address stays suppressed")
    elif done.already:
        click.echo(f"{email} was already forgotten; it stays suppressed")
    else:
        click.echo(f"nothing stored about {email}; suppressed it so it is never added")
    if done.left:
        click.echo(
            f"Error: could not empty {done.left}: another process kept reading the database, and "
            "old copies of its pages may still hold the address",
            err=True,
        )
        click.echo("Hint: run it again once `serve`, `run` or `preview` is idle (or stopped)", err=True)
        ctx.exit(1)


@main.command()
@click.argument("schedule")
@click.option(
    "--at",
    "at",
    default=None,
    help="Send the issue due after this moment (ISO 8601; "
    "default now): the period ending at the next send time.",
)
@click.option(
    "--transport",
    default=None,
    callback=checked_transport,
    help="smtp://host:port, smtp+starttls://, smtps:// or file:DIR (default: [email] transport).",
)
@click.option("--dry-run", is_flag=True, help="Show who would get what; record and send nothing.")
@click.option(
    "--rate",
    type=click.FloatRange(min=0.1),
    default=None,
    help="At most this many messages per second (all connections together).",
)
@click.option(
    "--connections",
    type=click.IntRange(1, 32),
    default=1,
    show_default=True,
    help="Parallel SMTP connections.",
)
@click.option(
    "--retry-unknown",
    is_flag=True,
    help="Send again the messages whose outcome is "
    "unknown (connection lost after the whole message went out).",
)
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Queue again the deliveries that expired after "
    "server-wide failures (the relay refused or was unreachable for the queue lifetime).",
)
@click.option(
    "--allow-placeholders",
    is_flag=True,
    envvar="NEWSLETTER_ALLOW_PLACEHOLDERS",
    help="Send over SMTP even with the From or postal address `init` wrote as a placeholder "
    "(for a test; also NEWSLETTER_ALLOW_PLACEHOLDERS=1).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def send(
    ctx: click.Context,
    schedule: str,
    at: str | None,
    transport: str | None,
    dry_run: bool,
    rate: float | None,
    connections: int,
    retry_unknown: bool,
    retry_failed: bool,
    allow_placeholders: bool,
    as_json: bool,
) -> None:
    """Send a schedule's issue to its subscribers; run again to resume."""
    from newsletter.delivery import send as sending

    project = open_project(ctx)
    zone = project.schedule(schedule).zone
    if not allow_placeholders:
        sending.check_placeholders(project.settings, project.transport_url(transport))
    options = sending.SendOptions(
        connections=connections,
        rate=rate,
        dry_run=dry_run,
        retry_unknown=retry_unknown,
        retry_failed=retry_failed,
    )
    stop = threading.Event()
    with sending.stop_on_signals(stop), progress_bar(enabled=not as_json and sys.stderr.isatty()) as progress:
        summary = sending.send_schedule(
            project,
            schedule,
            parse_moment(at, zone),
            transport,
            options,
            progress=progress,
            stop=stop,
            notify=echo_err,
        )
    show_send(summary, as_json)
    if summary.outcome in SEND_FAILURES:
        raise NewsletterError(summary.message or f"send {summary.outcome}", SEND_FAILURES[summary.outcome])


# Outcomes that exit 1, with what to do. "queued" exits 0: retries are on their way.
SEND_FAILURES = {
    "paused": "Check the SMTP server and the transport URL, then run send again: nobody was marked "
    "failed or bounced because of the pause.",
    "expired": "Once the relay works again: newsletter send SCHEDULE --at ... --retry-failed.",
    "failed": "See `newsletter subscribers list` and the relay's replies above.",
}


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr; the sender's threads report to it under a lock."""
    if not enabled:
        yield None
        return
    lock = threading.Lock()
    with click.progressbar(
        length=1, label="sending", file=sys.stderr, show_pos=True, show_percent=True, show_eta=True
    ) as bar:

        def advance(count: int, total: int) -> None:
            with lock:
                bar.length = max(total, 1)
                bar.update(count)

        yield advance


def show_send(summary: SendSummary, as_json: bool) -> None:
    if as_json:
        emit_json(summary.as_json())
        return
    counts = summary.counts
    click.echo(
        f"{summary.schedule} {summary.period_end:%Y-%m-%d}: {summary.outcome}"
        + (f" ({summary.message})" if summary.message else "")
    )
    if counts:
        shown = ", ".join(
            f"{counts.get(k, 0)} {k}"
            for k in ("sent", "failed", "unknown", "skipped", "suppressed", "pending", "expired", "variants")
            if k in counts
        )
        click.echo(f"  {shown}; {summary.sent_now} sent in {summary.seconds:.1f} s")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--embed", is_flag=True, help="Print an HTML snippet of the signup form for your site, and exit."
)
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, embed: bool) -> None:
    """Serve the public pages: signup and confirmation, preferences, unsubscribe, and issues."""
    from newsletter.audience.dispatch import for_serve
    from newsletter.delivery.transports import Courier
    from newsletter.web.public import serve as serve_public

    # The web app queues its signup mails; these send them (it imports no transport itself).
    root = project_root(ctx)
    serve_public(root, host, port, courier_for=Courier.for_url, embed=embed, dispatch_for=for_serve)


@main.command()
@click.option(
    "--once",
    is_flag=True,
    help="Catch up and send what is due now, then exit "
    "(for cron or systemd timers) instead of running as a daemon.",
)
@click.option(
    "--grace",
    default="6h",
    show_default=True,
    help="How late a missed send may still go out (e.g. 90m, 6h, 1d).",
)
@click.option("--transport", default=None, callback=checked_transport, help="Override [email] transport.")
@click.pass_context
def run(ctx: click.Context, once: bool, grace: str, transport: str | None) -> None:
    """The scheduler daemon: sends each schedule's issue at its cron time, once per period."""
    from newsletter.scheduler import parse_grace, run_daemon

    run_daemon(project_root(ctx), once=once, grace=parse_grace(grace), transport=transport)


@main.command()
@click.option(
    "--mailbox",
    default=None,
    help="A Maildir folder or imaps://USER@HOST/FOLDER (default: [bounces] mailbox); "
    "the IMAP password in NEWSLETTER_BOUNCES_PASSWORD.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.pass_context
def bounces(ctx: click.Context, mailbox: str | None, as_json: bool) -> None:
    """Read the bounce mailbox: bounces, complaints and mailto: unsubscribes suppress addresses.

    Hard bounces (5.x.x) and complaints suppress at once, soft bounces (4.x.x) after
    [bounces] soft_limit in a row. Mails acted on are moved (Maildir: .Processed) or flagged
    (IMAP); a mail that cannot be read is left in place and reported (exit 1)."""
    from newsletter.delivery.bounces import read_mailbox

    summary = read_mailbox(open_project(ctx), mailbox, now())
    if as_json:
        emit_json(summary.as_json())
    else:
        for left in summary.left:
            click.echo(f"left in place: {left}", err=True)
        for line in summary.suppressed:
            click.echo(f"suppressed {line}")
        click.echo(summary.line())
    if summary.left:
        raise NewsletterError(
            f"{len(summary.left)} mails in {summary.mailbox} were left in place",
            "Read them: move or delete what is not for the newsletter, then run `newsletter bounces` again.",
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


@main.group()
def dkim() -> None:
    """DKIM signing: a key pair and the DNS record to publish (README: DKIM)."""


@dkim.command("keygen")
@click.option(
    "--selector",
    default="newsletter",
    show_default=True,
    help="The selector: the public key is published at SELECTOR._domainkey.DOMAIN "
    "(use a new one for each new key, e.g. nl2027).",
)
@click.option(
    "--algorithm",
    type=click.Choice(["rsa-sha256", "ed25519-sha256"]),
    default="rsa-sha256",
    show_default=True,
    help="RSA-2048, which every receiver checks, or Ed25519 (RFC 8463), which Gmail and others do not yet.",
)
@click.option(
    "--domain",
    default=None,
    help="The signing domain, d= (default: [dkim] domain, else the domain of [email] from).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Where to write the private key, mode 0600, never over an existing file "
    "(default: ~/.config/newsletter/dkim/DOMAIN.SELECTOR.pem; not inside a git work tree).",
)
@click.pass_context
def dkim_keygen(
    ctx: click.Context, selector: str, algorithm: str, domain: str | None, out: str | None
) -> None:
    """Write a new private key and print the DNS TXT record and newsletter.toml lines for it."""
    import os

    from newsletter.core import config
    from newsletter.core.addresses import parse_mailbox
    from newsletter.delivery import signing

    root = project_root(ctx)
    if domain is None:
        settings = config.load_settings(root) if (root / config.SETTINGS_FILE).is_file() else None
        if settings is None:
            raise click.UsageError("not in a project: pass --domain (the From address's domain)")
        domain = settings.dkim.domain or parse_mailbox(settings.email.from_)[1].rsplit("@", 1)[1]
    domain = domain.strip().lower().rstrip(".")
    if not config.DKIM_DOMAIN.match(domain):
        raise click.BadParameter(
            f"{domain!r} is not a domain name such as example.org", param_hint="--domain"
        )
    if not config.DKIM_SELECTOR.match(selector):
        raise click.BadParameter(f"{selector!r}: letters, digits and '-' only", param_hint="--selector")
    path = (
        (Path(out) if out else signing.default_key_path(selector, domain, os.environ)).expanduser().absolute()
    )
    if (tree := signing.git_work_tree(path.parent.resolve())) is not None:
        raise NewsletterError(
            f"{path} is inside the git work tree {tree}: a private key there could be committed",
            "Write it outside any repository with --out (the default is ~/.config/newsletter/dkim/).",
        )
    warnings = signing.place_warnings(path, root)
    pair = signing.generate(algorithm)
    signing.write_key(path, pair.private_pem)
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(
        f"wrote the private key to {path} (mode 0600: keep it secret, out of git and backups you share)"
    )
    click.echo(f"\nPublish this DNS TXT record at {selector}._domainkey.{domain}:\n")
    click.echo(f"  {signing.dns_record(selector, domain, pair)}")
    click.echo(f"\n(A DNS provider's web form takes the value alone: {signing.txt_value(pair)})")
    click.echo("\nThen add to newsletter.toml:\n")
    click.echo(
        f'  [dkim]\n  domain = "{domain}"\n  selector = "{selector}"\n'
        f'  algorithm = "{algorithm}"\n  key_file = "{path}"'
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
