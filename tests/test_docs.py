"""The checked docs: docs/cli.md is what scripts/cli_reference.py makes from the click
commands now, and names every command, argument and option; ARCHITECTURE.md names
only modules that exist, and every module of the package."""

from __future__ import annotations

import difflib
import importlib.util
import re
from pathlib import Path
from types import ModuleType

import click
import pytest

from newsletter import cli

ROOT = Path(__file__).resolve().parents[1]
CLI_DOC = ROOT / "docs" / "cli.md"
ARCHITECTURE = ROOT / "ARCHITECTURE.md"
STALE = "docs/cli.md is out of date: run `make docs` and commit the result"


def load_reference() -> ModuleType:
    path = ROOT / "scripts" / "cli_reference.py"
    spec = importlib.util.spec_from_file_location("cli_reference", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reference = load_reference()


def commands(
    command: click.Command, path: str = "newsletter", parent: click.Context | None = None
) -> list[tuple[str, click.Context, click.Command]]:
    """Every visible command by its full path; walked here, not with the generator's
    walk, so a command the generator skips is still caught."""
    ctx = click.Context(command, info_name=path.rsplit(" ", 1)[-1], parent=parent, **command.context_settings)
    found = [(path, ctx, command)]
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            if not sub.hidden:
                found += commands(sub, f"{path} {name}", ctx)
    return found


def sections(doc: str) -> dict[str, str]:
    """The doc's `## newsletter ...` sections by heading."""
    parts = re.split(r"^## (.+)$", doc, flags=re.MULTILINE)
    return {heading.strip(): body for heading, body in zip(parts[1::2], parts[2::2], strict=True)}


def undocumented(doc: str, root: click.Command) -> list[str]:
    """Commands without a section, and arguments and options missing from theirs."""
    found = sections(doc)
    missing = []
    for path, ctx, command in commands(root):
        if path not in found:
            missing.append(f"command {path}")
            continue
        for param in command.get_params(ctx):
            if getattr(param, "hidden", False):
                continue
            if isinstance(param, click.Option):
                names = [*param.opts, *param.secondary_opts]
            else:
                names = [param.make_metavar(ctx)]
            missing += [f"{path}: {name}" for name in names if f"`{name}`" not in found[path]]
    return missing


def stale_diff(doc: str, fresh: str) -> str:
    lines = difflib.unified_diff(
        doc.splitlines(), fresh.splitlines(), "docs/cli.md", "generated", lineterm="", n=1
    )
    return "\n".join(list(lines)[:40])


@pytest.fixture(scope="module")
def doc() -> str:
    assert CLI_DOC.is_file(), "docs/cli.md is missing: run `make docs`"
    return CLI_DOC.read_text(encoding="utf-8")


def test_cli_reference_is_up_to_date(doc: str) -> None:
    fresh = reference.render()
    assert doc == fresh, f"{STALE}\n{stale_diff(doc, fresh)}"


def test_every_command_and_option_is_documented(doc: str) -> None:
    missing = undocumented(doc, cli.main)
    assert not missing, f"{STALE}; not in it: {', '.join(missing)}"


def test_the_reference_lists_the_known_commands(doc: str) -> None:
    """A smoke test of the walk itself: subcommands of groups are reached."""
    paths = [path for path, _, _ in commands(cli.main)]
    assert {"newsletter send", "newsletter subscribers import", "newsletter run"} <= set(paths)
    assert list(sections(doc)) == sorted(paths, key=lambda p: p.split(" "))


def test_check_mode_agrees() -> None:
    assert reference.main(["--check"]) == 0


def test_a_new_option_fails_both_checks(doc: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests above notice an option added without `make docs`."""
    monkeypatch.setattr(
        cli.main.commands["send"],
        "params",
        [*cli.main.commands["send"].params, click.Option(["--throwaway"], help="Not documented.")],
    )
    assert reference.render() != doc
    assert undocumented(doc, cli.main) == ["newsletter send: --throwaway"]
    assert reference.main(["--check"]) == 1


def test_a_new_subcommand_fails_both_checks(doc: str, monkeypatch: pytest.MonkeyPatch) -> None:
    throwaway = click.Command("throwaway", help="Not documented.", callback=lambda: None)
    group = cli.main.commands["subscribers"]
    assert isinstance(group, click.Group)
    monkeypatch.setitem(group.commands, "throwaway", throwaway)
    assert reference.render() != doc
    assert undocumented(doc, cli.main) == ["command newsletter subscribers throwaway"]


def test_a_changed_help_or_default_fails_the_up_to_date_check(
    doc: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    grace = next(p for p in cli.main.commands["run"].params if p.name == "grace")
    monkeypatch.setattr(grace, "default", "12h")
    assert reference.render() != doc
    assert undocumented(doc, cli.main) == []  # every name is still there: only (a) catches this


# -- ARCHITECTURE.md --------------------------------------------------------


def package_modules() -> set[str]:
    package = ROOT / "newsletter"
    return {
        str(p.relative_to(ROOT))
        for p in package.rglob("*.py")
        if p.name != "__init__.py" and "__pycache__" not in p.parts and "revisions" not in p.parts
    } | {"newsletter/storage/revisions/v01.py"}  # the revision files: one row, named by the first


def test_architecture_names_only_real_modules() -> None:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    named = set(re.findall(r"newsletter/[\w/]+\.py", text))
    gone = sorted(p for p in named if not (ROOT / p).is_file())
    assert not gone, f"ARCHITECTURE.md names modules that do not exist: {', '.join(gone)}"


def test_architecture_maps_every_module() -> None:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    named = set(re.findall(r"newsletter/[\w/]+\.py", text))
    unmapped = sorted(package_modules() - named)
    assert not unmapped, (
        "add these to the module map in ARCHITECTURE.md (which room, what rule): " + ", ".join(unmapped)
    )
