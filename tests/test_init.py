"""`newsletter init` as a guided start (README: Your first newsletter): the answers as
options (scripts) or prompts (a terminal), each checked before anything is written, a
first fetch of the source through the one way in, and the next commands. The whole
walk-through is tests/test_walkthrough.py."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.core.config import load_settings
from newsletter.project import Project
from newsletter.storage import neighbours
from tests.conftest import write_article


def test_the_answers_given_as_options_are_written_and_the_folder_is_read_once(tmp_path: Path) -> None:
    posts = tmp_path / "posts"
    write_article(posts, "a.txt", "Rain walks", "November 18, 2026")
    write_article(posts, "b.txt", "Rain maps", "November 19, 2026")
    root = tmp_path / "p"
    result = CliRunner().invoke(
        main,
        [
            *("init", str(root), "--yes", "--name", "Field Notes", "--base-url", "https://field-notes.eu/"),
            *("--language", "pt-BR", "--timezone", "America/New_York", "--source", str(posts)),
            *("--from", "Ann <ann@field-notes.eu>", "--transport", "smtp+starttls://ann@smtp.field-notes.eu"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "posts: ok: 2 added, 0 updated, 0 unchanged" in result.output
    assert "1. newsletter build weekly" in result.output
    settings = load_settings(root, {})
    assert settings.site.base_url == "https://field-notes.eu"  # the slash would double in links
    assert settings.public_url == "https://field-notes.eu/newsletter"
    assert settings.site.timezone == "America/New_York" and settings.site.language == "pt-BR"
    assert settings.email.from_ == "Ann <ann@field-notes.eu>"
    assert settings.email.transport == "smtp+starttls://ann@smtp.field-notes.eu"
    assert [s.path for s in settings.sources] == [str(posts)]
    assert 'timezone = "America/New_York"' in (root / "schedules" / "weekly.toml").read_text()
    project = Project(root, environ={})
    try:  # stored through the one way in: the related links are indexed too
        assert len(project.store.articles()) == 2
        assert neighbours.counts(project.store)[0] == 2
    finally:
        project.close()


def test_a_source_inside_the_project_is_written_relative_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    write_article(tmp_path / "p" / "content", "a.txt", "Rain walks", "November 18, 2026")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["init", "p", "--yes", "--source", "p/content"])
    assert result.exit_code == 0, result.output
    assert [s.path for s in load_settings(tmp_path / "p", {}).sources] == ["content"]


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--timezone", "Berlin", "an IANA time zone such as 'Europe/London', got 'Berlin'"),
        ("--language", "German", "a BCP 47 language tag of one of en, de"),
        ("--base-url", "field-notes.eu", "the site's address starting with https://"),
        ("--from", "news at field-notes.eu", "'Name <address@example.org>', got"),
        ("--transport", "smtp://ann:secret@smtp.field-notes.eu", "no password in the URL"),
        ("--source", "no/such/folder", "a feed URL (http:// or https://) or an existing file or folder"),
        ("--name", "Two\nlines", "a name of one line"),
    ],
)
def test_a_bad_answer_is_one_line_naming_the_option_and_nothing_is_written(
    tmp_path: Path, option: str, value: str, expected: str
) -> None:
    result = CliRunner().invoke(main, ["init", str(tmp_path / "p"), "--yes", option, value])
    assert result.exit_code == 1
    first = result.output.splitlines()[0]
    assert first.startswith(f"Error: {option}: expected ") and expected in first, result.output
    assert "secret" not in result.output
    assert not (tmp_path / "p").exists()


def in_a_terminal(args: list[str], typed: str, cwd: Path) -> str:
    """Runs `newsletter ARGS` with a terminal for stdin and stdout (a pty), typing ahead."""
    primary, secondary = pty.openpty()
    env = {**os.environ, "COLUMNS": "200"}
    process = subprocess.Popen(
        [sys.executable, "-m", "newsletter.cli", *args],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        cwd=cwd,
        env=env,
    )
    os.close(secondary)
    os.write(primary, typed.encode())
    output = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # EIO: the command ended and closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(primary)
    assert process.wait(timeout=60) == 0, output.decode()
    return output.decode().replace("\r\n", "\n")


def test_in_a_terminal_init_asks_for_each_answer_and_again_after_a_bad_one(tmp_path: Path) -> None:
    typed = "Field Notes\nftp://x\nhttps://field-notes.eu\nde\nBerlin\nEurope/Berlin\n\n\n\n"
    output = in_a_terminal(["init", "p"], typed, tmp_path)
    assert "The newsletter's name [My Newsletter]:" in output
    assert "Error: expected the site's address starting with https://" in output
    assert "Error: expected an IANA time zone such as 'Europe/London', got 'Berlin'" in output
    assert "From: 'Name <address>' [Field Notes <digest@example.org>]:" in output  # from the name
    settings = load_settings(tmp_path / "p", {})
    assert (settings.site.name, settings.site.base_url) == ("Field Notes", "https://field-notes.eu")
    assert settings.site.timezone == "Europe/Berlin" and settings.email.transport == "file:outbox"
    assert settings.site.language == "de"
    assert settings.sources == []


def test_yes_asks_nothing_even_in_a_terminal(tmp_path: Path) -> None:
    output = in_a_terminal(["init", "p", "--yes", "--name", "Field Notes"], "", tmp_path)
    assert "[My Newsletter]" not in output and "created p/newsletter.toml" in output
    settings = load_settings(tmp_path / "p", {})
    assert settings.site.name == "Field Notes" and settings.site.timezone == "Europe/London"
    assert settings.site.language == "en"
