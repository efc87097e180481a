"""Moving in (issue 24): `subscribers import` reads the subscriber exports of Mailchimp,
Substack, Buttondown, listmonk and Ghost as they come, and whoever unsubscribed or bounced
there is kept unsubscribed or bounced, never mailed. Fixtures: tests/fixtures/imports/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from newsletter.audience.subscribers import parse_csv
from tests.conftest import FIXTURES, SECRET_KEY, CliRunnerForProject, SMTPServer

IMPORTS = FIXTURES / "imports"


def imported(cli: CliRunnerForProject, *names: str, forced: str = "") -> list[dict[str, object]]:
    for name in names:
        args = ["subscribers", "import", str(IMPORTS / name), "--json"] + (
            ["--format", forced] if forced else []
        )
        result = cli(*args)
        assert result.exit_code == 0, result.stderr
    listed = cli("subscribers", "list", "--json")
    return [{k: p[k] for k in ("email", "name", "categories", "status")} for p in json.loads(listed.stdout)]


def test_mailchimps_three_files_subscribed_unsubscribed_and_cleaned(cli: CliRunnerForProject):
    people = imported(cli, "mailchimp_subscribed.csv", "mailchimp_unsubscribed.csv", "mailchimp_cleaned.csv")
    assert people == [
        {
            "email": "ann@example.org",
            "name": "Ann Lee",
            "categories": ["Sleep & recovery", "Nutrition"],
            "status": "active",
        },
        {"email": "bob@example.org", "name": "Bob", "categories": [], "status": "active"},
        {"email": "cat@example.org", "name": "Cat", "categories": [], "status": "unsubscribed"},
        {"email": "dan@example.org", "name": "Dan", "categories": [], "status": "bounced"},
    ]


def test_substack(cli: CliRunnerForProject):
    assert [(p["email"], p["status"]) for p in imported(cli, "substack.csv")] == [
        ("ann@example.org", "active"),
        ("bob@example.org", "active"),
        ("cat@example.org", "unsubscribed"),  # email_disabled
    ]


def test_buttondown(cli: CliRunnerForProject):
    result = cli("subscribers", "import", str(IMPORTS / "buttondown.csv"))
    assert result.exit_code == 0, result.stderr
    assert "eve@example.org: never confirmed at Buttondown; left out" in result.stderr
    assert "2 kept unsubscribed or bounced as the export says (read as a buttondown export)" in result.stdout
    people = imported(cli)
    assert [(p["email"], p["status"], p["categories"]) for p in people] == [
        ("ann@example.org", "active", ["Sleep & recovery", "Nutrition"]),
        ("bob@example.org", "active", []),
        ("cat@example.org", "unsubscribed", []),
        ("dan@example.org", "bounced", []),  # undeliverable
    ]


def test_listmonk(cli: CliRunnerForProject):
    assert [(p["email"], p["name"], p["status"]) for p in imported(cli, "listmonk.csv")] == [
        ("ann@example.org", "Ann Lee", "active"),
        ("bob@example.org", "Bob", "active"),
        ("cat@example.org", "Cat", "unsubscribed"),  # blocklisted
    ]


def test_ghost(cli: CliRunnerForProject):
    people = imported(cli, "ghost.csv")
    assert [(p["email"], p["status"], p["categories"]) for p in people] == [
        ("ann@example.org", "active", ["Sleep & recovery", "Nutrition"]),
        ("bob@example.org", "active", []),
        ("cat@example.org", "unsubscribed", []),  # subscribed_to_emails false
    ]


def test_an_export_unsubscribes_someone_active_here_and_never_revives_the_suppressed(
    cli: CliRunnerForProject,
):
    (cli.root / "ours.csv").write_text("email,name,categories\ncat@example.org,Cat,\ndan@example.org,Dan,\n")
    assert cli("subscribers", "import", str(cli.root / "ours.csv")).exit_code == 0
    people = {p["email"]: p["status"] for p in imported(cli, "mailchimp_unsubscribed.csv")}
    assert people == {"cat@example.org": "unsubscribed", "dan@example.org": "active"}
    # and our own format over it later does not bring Cat back
    assert cli("subscribers", "import", str(cli.root / "ours.csv")).exit_code == 0
    assert {p["email"]: p["status"] for p in imported(cli)}["cat@example.org"] == "unsubscribed"


def test_the_format_can_be_forced_and_a_wrong_one_is_named(cli: CliRunnerForProject, tmp_path: Path):
    renamed = tmp_path / "members.csv"
    shutil.copy(IMPORTS / "ghost.csv", renamed)
    assert len(imported(cli, str(renamed), forced="ghost")) == 3
    result = cli("subscribers", "import", str(IMPORTS / "substack.csv"), "--format", "mailchimp")
    assert result.exit_code == 1
    assert (
        "substack.csv:1: expected a header row with the columns of a mailchimp export (email address"
        in result.stderr
    )


def test_double_opt_in_never_asks_those_who_left(
    cli: CliRunnerForProject, smtp_server: SMTPServer, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET_KEY)
    args = (
        "subscribers",
        "import",
        str(IMPORTS / "ghost.csv"),
        "--double-opt-in",
        "--transport",
        smtp_server.url,
    )
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    asked = {r for m in smtp_server.handler.messages for r in m.recipients}
    assert asked == {"ann@example.org", "bob@example.org"}
    assert {p["email"]: p["status"] for p in imported(cli)}["cat@example.org"] == "unsubscribed"


def test_parsing_is_pure_and_says_whose_export_it_was():
    parsed = parse_csv("listmonk.csv", (IMPORTS / "listmonk.csv").read_bytes())
    assert parsed.format == "listmonk" and parsed.errors == []
    assert [r.status for r in parsed.rows] == ["active", "active", "unsubscribed"]
