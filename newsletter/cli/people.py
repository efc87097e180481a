"""Commands on people and their mail: subscribers, serve, bounces, dkim."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import click

from newsletter.core.errors import NewsletterError

if TYPE_CHECKING:
    from newsletter.project import Project

from newsletter.cli.base import (
    checked_transport,
    echo_err,
    emit_json,
    main,
    now,
    open_project,
    project_root,
)


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
@click.option(
    "--format",
    "forced",
    type=click.Choice(["csv", "mailchimp", "substack", "buttondown", "listmonk", "ghost"]),
    default=None,
    help="Whose export the file is (default: told by its header row); csv = email,name,categories.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def subscribers_import(
    ctx: click.Context,
    csv_file: str,
    double_opt_in: bool,
    transport: str | None,
    forced: str | None,
    as_json: bool,
) -> None:
    """Import `email,name,categories` rows (categories separated by ';', empty = all), or a
    Mailchimp, Substack, Buttondown, listmonk or Ghost export as it comes: their tags become
    categories, and whoever unsubscribed or bounced there is kept unsubscribed or bounced."""
    from newsletter.audience import files as audience

    project = open_project(ctx)
    if double_opt_in:
        invite(ctx, project, Path(csv_file), transport, as_json, forced)
        return
    parsed, counts = audience.import_csv(project, Path(csv_file), now(), forced)
    if as_json:
        emit_json(
            {
                **asdict(counts),
                "merged": parsed.merged,
                "format": parsed.format,
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
            + (
                f", {counts.kept_off} kept unsubscribed or bounced as the export says"
                if counts.kept_off
                else ""
            )
            + (f" (read as a {parsed.format} export)" if parsed.format != "csv" else "")
            + (f", {counts.kept_choices} kept the categories they chose" if counts.kept_choices else "")
            + (f", {len(parsed.errors)} rows rejected" if parsed.errors else "")
        )
        click.echo(IMPORT_OPT_IN)
    if parsed.errors:
        ctx.exit(1)


def invite(
    ctx: click.Context, project: Project, path: Path, transport: str | None, as_json: bool, forced: str | None
) -> None:
    """`subscribers import --double-opt-in`: pending rows and confirmation mails."""
    from newsletter.audience import files as audience
    from newsletter.audience.dispatch import Dispatch
    from newsletter.delivery.transports import Courier

    # The secret, the transport and the DKIM key are checked before anything is recorded.
    courier = Courier.for_url(project.transport_url(transport), project.environ)
    dispatch = Dispatch(project, courier)
    parsed, done = audience.invite_csv(project, path, now(), dispatch, forced)
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
    (IMAP); any other mail (an auto-reply, one that cannot be read) is reported once (exit 1)
    and put aside (Maildir: .Unhandled; IMAP: flagged NewsletterUnhandled) for a person."""
    from newsletter.delivery.bounces import read_mailbox
    from newsletter.delivery.mailbox import UNHANDLED

    summary = read_mailbox(open_project(ctx), mailbox, now())
    if as_json:
        emit_json(summary.as_json())
    else:
        for left in summary.left:
            click.echo(f"put aside: {left}", err=True)
        for line in summary.suppressed:
            click.echo(f"suppressed {line}")
        click.echo(summary.line())
    if summary.left:
        raise NewsletterError(
            f"{len(summary.left)} mails in {summary.mailbox} could not be acted on; put aside in {UNHANDLED}",
            "Read them there: delete what is not for the newsletter; move one back to read it again. "
            "The next run does not report them again.",
        )


def refuse_placeholder_key(domain: str) -> None:
    """A key for `init`'s example.org signs mail nobody receives, and its DNS record can
    never be published: say so, unless NEWSLETTER_ALLOW_PLACEHOLDERS=1 (as `send` does)."""
    import os

    from newsletter.delivery.send import ALLOW_PLACEHOLDERS, allowed_placeholders, placeholder_domain

    if placeholder_domain(domain) and not allowed_placeholders(dict(os.environ)):
        raise NewsletterError(
            f"{domain} is a placeholder domain (as `init` writes [email] from): "
            "a key for it signs mail nobody receives, and its DNS record cannot be published",
            f"Set [email] from to your own address, or pass --domain YOUR-DOMAIN "
            f"({ALLOW_PLACEHOLDERS}=1 for a test).",
        )


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
    refuse_placeholder_key(domain)
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
