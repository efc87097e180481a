"""The command-line reference, docs/cli.md, generated from the click commands.

    python scripts/cli_reference.py            # rewrite docs/cli.md (what `make docs` runs)
    python scripts/cli_reference.py --check    # exit 1 if docs/cli.md is out of date
    python scripts/cli_reference.py -          # print it

It walks `newsletter.cli.main` with click's own API (a `click.Context` per
command, `get_params`, `collect_usage_pieces`, `to_info_dict`), so every
command, subcommand, argument and option is listed with its usage, help and
default. The output does not depend on the terminal: nothing is wrapped.
tests/test_docs.py checks that the committed file matches.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterator
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "cli.md"
PROGRAM = "newsletter"

HEADER = """\
# Command-line reference

<!-- Generated from the click commands by scripts/cli_reference.py: run `make docs`
     after changing a command or an option; tests/test_docs.py fails until you do. -->

Every command works on the project in the current directory, or `--project DIR`
(an option of `newsletter` itself, so it goes before the command:
`newsletter --project demo build weekly`). Exit status: 0 success, 1 a user error
(`Error: ...` and a `Hint: ...`), 2 a usage error.
"""


def walk(
    command: click.Command, parent: click.Context | None = None, name: str = PROGRAM
) -> Iterator[tuple[click.Context, click.Command]]:
    """Every command under `command` (itself first), each with its own context, in
    the order `--help` lists them. Hidden commands are left out, as in `--help`."""
    ctx = click.Context(command, info_name=name, parent=parent, **command.context_settings)
    yield ctx, command
    if isinstance(command, click.Group):
        for sub_name in command.list_commands(ctx):
            sub = command.get_command(ctx, sub_name)
            if sub is not None and not sub.hidden:
                yield from walk(sub, ctx, sub_name)


def visible_params(ctx: click.Context, command: click.Command) -> list[click.Parameter]:
    """Arguments and options as `--help` knows them (the help option included)."""
    return [p for p in command.get_params(ctx) if not getattr(p, "hidden", False)]


def anchor(path: str) -> str:
    """The heading's anchor as GitHub and most Markdown renderers make it."""
    return path.lower().replace(" ", "-")


def cell(text: str) -> str:
    """One table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def help_text(command: click.Command) -> str:
    """The command's help as click shows it: dedented, `\\b` markers dropped."""
    text = inspect.cleandoc(command.help or command.short_help or "")
    return "\n".join(line for line in text.splitlines() if line.strip() != "\b").strip()


def default_of(param: click.Parameter) -> str:
    """The default, if any: not for flags that are off, empty variadics or None."""
    default = param.to_info_dict()["default"]
    if isinstance(param, click.Option) and param.is_flag and not param.count and default is False:
        return ""
    if default is None or default in ((), []):
        return ""
    if isinstance(default, (list, tuple)):
        return ", ".join(f"`{v}`" for v in default)
    return f"`{default}`"


def option_names(option: click.Option) -> str:
    names = ", ".join(f"`{o}`" for o in option.opts)
    if option.secondary_opts:
        names += " / " + ", ".join(f"`{o}`" for o in option.secondary_opts)
    return names


def option_value(ctx: click.Context, option: click.Option) -> str:
    """What the option takes (metavar, and a range as click prints it); empty for a flag."""
    if option.is_flag and not option.count:
        return ""
    value = f"`{option.make_metavar(ctx)}`"
    extra = option.get_help_extra(ctx)
    if extra.get("range"):
        value += f" ({extra['range']})"
    if option.multiple:
        value += ", repeatable"
    return value


def argument_row(ctx: click.Context, argument: click.Argument) -> str:
    kind = "yes" if argument.required else "no"
    if argument.nargs == -1:
        kind += ", one or more" if argument.required else ", any number"
    return (
        f"| `{argument.make_metavar(ctx)}` | {cell(str(argument.type.name))} | {kind} "
        f"| {default_of(argument)} |"
    )


def option_row(ctx: click.Context, option: click.Option) -> str:
    return (
        f"| {option_names(option)} | {cell(option_value(ctx, option))} "
        f"| {cell(default_of(option))} | {cell(option.help or '')} |"
    )


def section(ctx: click.Context, command: click.Command) -> list[str]:
    path = ctx.command_path
    usage = " ".join([path, *command.collect_usage_pieces(ctx)])
    lines = [f"## {path}", "", "```text", f"Usage: {usage}", "```", ""]
    if text := help_text(command):
        lines += [text, ""]
    params = visible_params(ctx, command)
    arguments = [p for p in params if isinstance(p, click.Argument)]
    options = [p for p in params if isinstance(p, click.Option)]
    if arguments:
        lines += ["| argument | type | required | default |", "| --- | --- | --- | --- |"]
        lines += [argument_row(ctx, a) for a in arguments]
        lines.append("")
    if options:
        lines += ["| option | value | default | description |", "| --- | --- | --- | --- |"]
        lines += [option_row(ctx, o) for o in options]
        lines.append("")
    if isinstance(command, click.Group):
        lines += ["| command | description |", "| --- | --- |"]
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                lines.append(
                    f"| [`{path} {name}`](#{anchor(f'{path} {name}')}) "
                    f"| {cell(sub.get_short_help_str(limit=200))} |"
                )
        lines.append("")
    return lines


def render(command: click.Command | None = None) -> str:
    """The whole reference, as Markdown."""
    if command is None:
        from newsletter.cli import main

        command = main
    lines = [HEADER]
    for ctx, cmd in walk(command):
        lines += section(ctx, cmd)
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if argv == ["--check"]:
        if DOC.exists() and DOC.read_text(encoding="utf-8") == text:
            return 0
        print(f"{DOC.relative_to(ROOT)} is out of date: run `make docs`", file=sys.stderr)
        return 1
    if argv == ["-"]:
        sys.stdout.write(text)
        return 0
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    DOC.parent.mkdir(exist_ok=True)
    temp = DOC.with_suffix(".md.tmp")
    temp.write_text(text, encoding="utf-8")
    temp.replace(DOC)
    print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
