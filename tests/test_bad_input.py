"""Bad input gets one line naming where it came from and what was expected, a hint, and
exit 1: transport URLs (file, environment, --transport), database URLs, misspelt
NEWSLETTER_ variables, --category spelt differently from the archive, a port in use.
No traceback anywhere, and never a password on the screen."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st

import newsletter
from newsletter.cli import main
from newsletter.core import config, transport_url
from tests.conftest import write_article

SECRET = {"NEWSLETTER_SECRET_KEY": "a-test-secret-of-enough-length"}


def run(root: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, ["--project", str(root), *args], env=env, catch_exceptions=False)


def one_error(result: Result, *, code: int = 1) -> str:
    """The `Error:` line, after checking it is the whole story: that line, a hint, the code."""
    lines = [line for line in result.stderr.splitlines() if not line.startswith("Warning: ")]
    assert result.exit_code == code, result.output
    assert len(lines) == 2 and lines[0].startswith("Error: ") and lines[1].startswith("Hint: "), lines
    assert "Traceback" not in result.output
    return lines[0]


def set_key(root: Path, old: str, new: str) -> None:
    toml = root / "newsletter.toml"
    text = toml.read_text(encoding="utf-8")
    assert old in text
    toml.write_text(text.replace(old, new), encoding="utf-8")


# -- transport URLs ---------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("send", "weekly"),
        ("run", "--once"),
        ("subscribers", "import", "people.csv", "--double-opt-in"),
    ],
)
def test_a_bad_transport_option_is_one_error_naming_the_option(project_dir: Path, args: tuple[str, ...]):
    result = run(project_dir, *args, "--transport", "smtp://127.0.0.1:99999", env=SECRET)
    line = one_error(result)
    assert line == (
        "Error: --transport: expected a port number from 1 to 65535 after the host, "
        "got 'smtp://127.0.0.1:99999'"
    )
    assert "smtp+starttls://" in result.stderr.splitlines()[-1]  # the hint: the forms


def test_a_bad_transport_in_the_file_fails_build_too(project_dir: Path):
    set_key(project_dir, 'transport = "file:outbox"', 'transport = "smtp://localhost:25x"')
    line = one_error(run(project_dir, "build", "weekly"))
    assert line == (
        f"Error: {project_dir / 'newsletter.toml'}: email.transport: expected a port number "
        "from 1 to 65535 after the host, got 'smtp://localhost:25x'"
    )
    assert not (project_dir / "issues").exists()


def test_a_bad_transport_in_the_environment_names_the_variable(project_dir: Path):
    env = {"NEWSLETTER_EMAIL_TRANSPORT": "smtp://relay.example.org?max_mesages=5"}
    result = run(project_dir, "build", "weekly", env=env)
    assert one_error(result) == (
        "Error: NEWSLETTER_EMAIL_TRANSPORT: expected only the options ?timeout= and ?max_messages=; "
        "unknown: max_mesages, got 'smtp://relay.example.org?max_mesages=5'"
    )
    assert "Hint: Fix or unset NEWSLETTER_EMAIL_TRANSPORT" in result.stderr


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smpt://localhost", "smtp://HOST[:PORT], smtp+starttls://HOST[:PORT]"),
        ("smtp://", "a host after smtp://"),
        ("smtps://mail.example.org:0", "a port number from 1 to 65535"),
        ("smtp://localhost?timeout=soon", "?timeout= a number of seconds"),
        ("smtp://localhost?timeout=-1", "?timeout= a number of seconds"),
        ("smtp://localhost?max_messages=many", "?max_messages= a whole number"),
        ("file:", "a folder after file:"),
        ("file:outbox?max_messages=2", "only the options ?timeout=;"),
        ("smtp://ann@mail.example.org", "smtp+starttls:// or smtps:// to log in"),
        ("smtps://ann:hunter2@mail.example.org", "no password in the URL (set NEWSLETTER_SMTP_PASSWORD)"),
    ],
)
def test_transport_urls_are_checked_part_by_part(url: str, expected: str):
    with pytest.raises(ValueError, match=re.escape(expected)) as caught:
        transport_url.parse(url)
    assert "hunter2" not in str(caught.value)


def test_good_transport_urls_keep_their_meaning():
    smtp = transport_url.parse("smtp+starttls://ann@mail.example.org?timeout=5&max_messages=0")
    assert (smtp.host, smtp.port, smtp.security, smtp.username) == (
        "mail.example.org",
        587,
        "starttls",
        "ann",
    )
    assert (smtp.timeout, smtp.max_messages) == (5.0, 0)
    assert transport_url.parse("smtp://[::1]:2525").port == 2525
    assert transport_url.parse("file:/var/outbox").folder == "/var/outbox"
    assert transport_url.parse("memory:").scheme == "memory"


@given(st.text(max_size=60))
def test_any_text_is_a_transport_or_a_value_error_without_the_password(text: str):
    url = f"smtp://ann:{text}@host" if text and not set(text) & set("@/?#") else text
    try:
        transport_url.parse(url)
    except ValueError as e:
        if url.startswith("smtp://ann:") and len(text) > 3:
            assert f":{text}@" not in str(e)


# -- database URLs ----------------------------------------------------------------


@pytest.mark.parametrize("url", ["mysql://root:hunter2@db.example.org/news", "oracle://db/x", "news.db"])
def test_an_unsupported_database_url_names_the_supported_ones(project_dir: Path, url: str):
    result = run(project_dir, "articles", env={"NEWSLETTER_DATABASE_URL": url})
    line = one_error(result)
    assert line.startswith("Error: NEWSLETTER_DATABASE_URL: expected a sqlite:///PATH or postgresql://")
    assert "hunter2" not in result.output and "MySQLdb" not in result.output
    if "hunter2" in url:
        assert "'mysql://root:***@db.example.org/news'" in line  # the whole URL, its password hidden


def test_an_unsupported_database_url_in_the_file_names_the_key(project_dir: Path):
    toml = project_dir / "newsletter.toml"  # whichever database the suite's backend wrote
    toml.write_text(re.sub(r'(?m)^url = "[^"]*"', 'url = "mysql://root@db/news"', toml.read_text()))
    line = one_error(run(project_dir, "articles"))
    assert line.startswith(f"Error: {project_dir / 'newsletter.toml'}: database.url: expected a sqlite:///")


# -- NEWSLETTER_ variables ----------------------------------------------------------


def test_a_misspelt_variable_is_a_warning_naming_the_closest(project_dir: Path):
    env = {"NEWSLETTER_DATABSE_URL": "sqlite:///elsewhere.db", **SECRET, "NEWSLETTER_SMTP_PASSWORD": "x"}
    result = run(project_dir, "articles", env=env)
    assert result.exit_code == 0
    assert result.stderr.splitlines()[0] == (
        "Warning: NEWSLETTER_DATABSE_URL is not a setting; did you mean NEWSLETTER_DATABASE_URL?"
    )
    assert result.stderr.count("Warning:") == 1  # once, and not for the secrets


def test_variables_that_are_not_settings_never_warn():
    legitimate = {name: "1" for name in config.OTHER_VARIABLES}
    assert config.environment_warnings({**legitimate, "NEWSLETTER_WEB_PUBLIC_URL": "x"}) == []


def test_every_variable_the_code_reads_is_a_setting_or_listed():
    """A new NEWSLETTER_ variable in the code must join config.OTHER_VARIABLES, or every
    user who sets it would be told it is not a setting."""
    package = Path(newsletter.__file__).parent
    used = {
        name
        for path in [*package.rglob("*.py"), Path(__file__).parent / "test_golden.py"]
        for name in re.findall(r"\bNEWSLETTER_[A-Z][A-Z0-9_]*[A-Z0-9]\b", path.read_text(encoding="utf-8"))
    }
    assert config.environment_warnings(dict.fromkeys(used, "1")) == []


# -- --category ---------------------------------------------------------------------


@pytest.fixture
def archived(project_dir: Path, tmp_path: Path) -> Path:
    write_article(tmp_path / "first", "a.txt", "Breathing slowly", "November 18, 2026")
    assert (
        run(project_dir, "ingest", str(tmp_path / "first"), "--category", "Anxiety & stress").exit_code == 0
    )
    return project_dir


def test_category_is_matched_ignoring_case_and_spacing(archived: Path, tmp_path: Path):
    write_article(tmp_path / "next", "b.txt", "Worry less", "November 19, 2026")
    result = run(archived, "ingest", str(tmp_path / "next"), "--category", "Anxiety  & Stress", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["warnings"] == []
    listed = json.loads(run(archived, "articles", "--json").stdout)
    assert {a["category"] for a in listed} == {"Anxiety & stress"}


def test_a_new_category_is_kept_with_a_note(archived: Path, tmp_path: Path):
    write_article(tmp_path / "next", "b.txt", "Eat well", "November 19, 2026")
    result = run(archived, "ingest", str(tmp_path / "next"), "--category", "Nutrition")
    assert result.exit_code == 0
    assert (
        "warning: --category 'Nutrition' is a new category (the archive has: Anxiety & stress)"
        in result.stderr
    )
    listed = json.loads(run(archived, "articles", "--json").stdout)
    assert {a["category"] for a in listed} == {"Anxiety & stress", "Nutrition"}


# -- a port in use ------------------------------------------------------------------


@pytest.fixture
def occupied() -> Iterator[int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield int(taken.getsockname()[1])


@pytest.mark.parametrize("command", ["serve", "preview"])
def test_a_port_in_use_is_one_error_before_uvicorn_starts(project_dir: Path, occupied: int, command: str):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "newsletter.cli",
            "--project",
            str(project_dir),
            command,
            "--port",
            str(occupied),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **SECRET},
    )
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == f"Error: port {occupied} on 127.0.0.1 is in use"
    assert lines[1].startswith("Hint: ") and "--port" in lines[1] and len(lines) == 2
    assert "startup" not in result.stderr and "Errno" not in result.stderr and result.stdout == ""
