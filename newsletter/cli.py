"""The command line: a thin click layer over the library.

The only place errors become exit codes: 0 success, 1 a user error (one
line `Error: ...` and a hint), 2 a usage error.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click

from newsletter import scaffold
from newsletter.errors import NewsletterError
from newsletter.ingest import IngestReport
from newsletter.project import Build, Project, build_json, find_root


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
    return datetime.now(UTC)


def parse_moment(value: str | None, zone: ZoneInfo, param: str = "--at") -> datetime:
    """ISO 8601 with or without an offset; without one it is in `zone`; a date is midnight."""
    if value is None:
        return now()
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"expected ISO 8601 such as 2026-11-23T08:00 or "
                                 f"2026-11-23T08:00+00:00, got {value!r}", param_hint=param) from None
    if len(value) == 10:
        moment = datetime.combine(moment.date(), time(0, 0))
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def open_project(ctx: click.Context) -> Project:
    project = Project(find_root(ctx.obj.get("project")))
    ctx.call_on_close(project.close)
    return project


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--project", type=click.Path(file_okay=False), default=None,
              help="Project directory (default: the current directory).")
@click.version_option(package_name="newsletter")
@click.pass_context
def main(ctx: click.Context, project: str | None) -> None:
    """Build email digests of a site's articles: ingest, build, preview, send."""
    ctx.ensure_object(dict)
    ctx.obj["project"] = project


@main.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False))
@click.option("--name", default="My Newsletter", show_default=True, help="The newsletter's name.")
@click.option("--base-url", default="https://example.org", show_default=True,
              help="The site's address; article URLs are made from it.")
def init(directory: str, name: str, base_url: str) -> None:
    """Scaffold a project: newsletter.toml, schedules/ and templates/."""
    created = scaffold.init(Path(directory), name, base_url)
    for path in created:
        click.echo(f"created {path}")
    if not created:
        click.echo(f"{directory} is already a project; nothing to do")


@main.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("--category", default=None,
              help="Category for sources that name none (before guessing from related entries).")
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
        emit_json({"sources": report.sources, "articles": report.articles, "added": counts.added,
                   "updated": counts.updated, "unchanged": counts.unchanged,
                   "warnings": report.warnings, "errors": [str(e) for e in report.errors]})
        return
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    for error in report.errors:
        click.echo(f"error: {error}", err=True)
    click.echo(f"{report.sources} sources, {report.articles} articles: {counts.added} added, "
               f"{counts.updated} updated, {counts.unchanged} unchanged"
               + (f", {len(report.errors)} failed" if report.errors else ""))


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
        emit_json([{"id": s.id, "title": s.article.title, "category": s.article.category,
                    "url": s.article.url, "published": s.article.published.astimezone(zone).isoformat(),
                    "source": s.article.source} for s in found])
        return
    for s in found:
        click.echo(f"{s.article.published.astimezone(zone):%Y-%m-%d}  {s.article.category:<28.28}  "
                   f"{s.article.title}")
    click.echo(f"{len(found)} articles", err=True)


@main.command()
@click.argument("schedule")
@click.option("--at", "at", default=None, help="Build as of this moment (ISO 8601; default now; "
              "without an offset, in the schedule's time zone).")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder for SCHEDULE-YYYY-MM-DD.{html,txt,eml} (default: PROJECT/issues).")
@click.option("--json", "as_json", is_flag=True, help="Print the issue as JSON.")
@click.pass_context
def build(ctx: click.Context, schedule: str, at: str | None, out: str | None, as_json: bool) -> None:
    """Build a schedule's issue as of a moment and write its files."""
    project = open_project(ctx)
    zone = ZoneInfo(project.schedule(schedule).timezone)
    folder = Path(out) if out else project.root / "issues"
    result = project.build(schedule, parse_moment(at, zone), now(), folder)
    show_build(result, as_json)


def show_build(result: Build, as_json: bool) -> None:
    if as_json:
        emit_json(build_json(result))
        return
    data = build_json(result)
    if result.skipped:
        click.echo(f"{result.schedule.name}: nothing new from {data['period']['start']} to "
                   f"{data['period']['end']}; skipped (skip_if_empty)")
        return
    assert result.issue is not None
    for warning in result.issue.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"{result.schedule.name}: {len(result.digest.articles)} articles, "
               f"{result.issue.html_size / 1024:.1f} KB HTML; subject: {result.issue.subject}")
    for path in result.files.values():
        click.echo(f"  {path}")


@main.command()
@click.argument("directory", default="demo", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the built issues as JSON.")
def demo(directory: str, as_json: bool) -> None:
    """Make a demo project from the sample articles and build its issues."""
    root = Path(directory)
    scaffold.init(root, name="Mind & Body", base_url="https://mindandbody.example.org")
    project = Project(root)
    try:
        report = project.ingest([str(scaffold.demo_articles())], now())
        if not as_json:
            show_ingest(report, as_json=False)
        builds = [project.build(s.name, scaffold.DEMO_AT, now(), project.root / "issues")
                  for s in project.schedules()]
    finally:
        project.close()
    if as_json:
        emit_json([build_json(b) for b in builds])
        return
    for result in builds:
        show_build(result, as_json=False)
    click.echo(f"\nOpen {project.root / 'issues'} in a browser, or run "
               f"`newsletter --project {directory} build weekly --json`.")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; keep it on loopback unless you mean to share drafts.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.pass_context
def preview(ctx: click.Context, host: str, port: int) -> None:
    """Serve the editor preview: any schedule's issue as of any date, desktop and mobile."""
    from newsletter.web.preview import serve  # the web stack loads only when asked for

    serve(find_root(ctx.obj.get("project")), host, port)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
