"""`newsletter check`: the quality gate on a built or sent email."""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.cli.base import emit_json, main
from newsletter.core.errors import NewsletterError


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too.")
@click.option("--online", is_flag=True, help="Also check every link with a HEAD request.")
@click.option(
    "--sent/--built",
    default=None,
    help="Hold the message to the bulk-sender rules (default: when it has a DKIM-Signature).",
)
def check(file: str, as_json: bool, strict: bool, online: bool, sent: bool | None) -> None:
    """Check FILE.eml or FILE.html before it goes out: size, clients, links, images,
    structure, contrast, spam score, headers."""
    from newsletter.digest.check import check_letter, read_letter

    letter = read_letter(file, Path(file).read_bytes(), sent)
    report = check_letter(letter, online=online)
    if as_json:
        emit_json(report.as_json())
    else:
        for finding in report.findings:
            click.echo(str(finding))
        click.echo(f"{file}: {len(report.of('error'))} errors, {len(report.of('warning'))} warnings")
    if not report.passed(strict):
        raise NewsletterError(
            f"{file} did not pass the check" + (" (--strict: warnings count)" if strict else ""),
            "Fix what is reported above, build again and check again.",
        )
