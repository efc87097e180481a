from __future__ import annotations

import json
import re
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from tests.conftest import CliRunnerForProject, write_article

README = Path(__file__).parent.parent / "README.md"
WEEK = "2026-11-23T08:00"  # Monday: the issue covering 16-23 November


def ingest_week(folder: Path) -> None:
    write_article(
        folder,
        "a.txt",
        "Sleep one",
        "November 17, 2026",
        "Sleep standfirst one.",
        related=[("Sleep & recovery", "Sleep standfirst old.", "November 3, 2026")],
    )
    write_article(
        folder,
        "b.txt",
        "Sleep two",
        "November 20, 2026",
        "Sleep standfirst two.",
        related=[("Sleep & recovery", "Sleep standfirst one.", "November 17, 2026")],
    )
    write_article(
        folder,
        "old.txt",
        "Sleep old",
        "November 3, 2026",
        "Sleep standfirst old.",
        related=[("Sleep & recovery", "Sleep standfirst two.", "November 20, 2026")],
    )


def test_init_scaffolds_once(tmp_path: Path):
    runner = CliRunner()
    first = runner.invoke(main, ["init", str(tmp_path / "p")])
    assert first.exit_code == 0
    assert "newsletter.toml" in first.output
    assert (tmp_path / "p/schedules/weekly.toml").exists()
    assert (tmp_path / "p/templates/digest.mjml.j2").exists()
    # issue 24: init said nothing of what comes next
    assert "\nNext (in " in first.output and "newsletter ingest FEED-URL-OR-FOLDER" in first.output
    again = runner.invoke(main, ["init", str(tmp_path / "p")])
    assert again.exit_code == 0
    assert "nothing to do" in again.output and "Next:" not in again.output


def test_ingest_reports_bad_file_and_keeps_the_rest(cli: CliRunnerForProject, tmp_path: Path):
    src = tmp_path / "src"
    ingest_week(src)
    (src / "bad.txt").write_text("Title\nStandfirst\nNo date line here\n")
    result = cli("ingest", str(src), "--category", "Sleep & recovery")
    assert result.exit_code == 1
    assert re.search(r"bad\.txt:2: expected a line 'Published <date>'", result.stderr)
    assert "3 added" in result.stdout
    again = cli("ingest", str(src / "a.txt"), "--category", "Sleep & recovery", "--json")
    assert json.loads(again.stdout)["unchanged"] == 1


def test_ingest_missing_file_is_a_user_error(cli: CliRunnerForProject):
    result = cli("ingest", "nope.txt")
    assert result.exit_code == 1
    assert "nope.txt: no such file" in result.stderr


def test_category_from_related_entries_or_uncategorized(cli: CliRunnerForProject, tmp_path: Path):
    write_article(
        tmp_path,
        "r.txt",
        "Has related",
        "2026-11-17",
        related=[
            ("Nutrition", "x.", "2026-11-01"),
            ("Nutrition", "y.", "2026-11-02"),
            ("Sleep", "z.", "2026-11-03"),
        ],
    )
    write_article(tmp_path, "u.txt", "Lonely", "2026-11-17")
    result = cli("ingest", str(tmp_path / "r.txt"), str(tmp_path / "u.txt"))
    assert "no category named" in result.stderr
    listed = {a["title"]: a["category"] for a in json.loads(cli("articles", "--json").stdout)}
    assert listed == {"Has related": "Nutrition", "Lonely": "Uncategorized"}


def test_articles_filters(cli: CliRunnerForProject, tmp_path: Path):
    ingest_week(tmp_path)
    cli("ingest", str(tmp_path), "--category", "Sleep & recovery")
    recent = json.loads(cli("articles", "--since", "2026-11-10", "--json").stdout)
    assert [a["title"] for a in recent] == ["Sleep two", "Sleep one"]
    assert recent[0]["published"] == "2026-11-20T00:00:00+00:00"
    assert json.loads(cli("articles", "--category", "Other", "--json").stdout) == []


def test_build_json_shape_and_files(cli: CliRunnerForProject, tmp_path: Path):
    ingest_week(tmp_path / "src")
    cli("ingest", str(tmp_path / "src"), "--category", "Sleep & recovery")
    result = cli("build", "sleep", "--at", WEEK, "--out", str(tmp_path / "out"), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"schedule", "period", "skipped", "subject", "preheader", "sections", "files", "size"} <= set(data)
    assert data["period"] == {"start": "2026-11-16T08:00:00+00:00", "end": "2026-11-23T08:00:00+00:00"}
    assert data["skipped"] is False
    articles = data["sections"][0]["articles"]
    assert [a["title"] for a in articles] == ["Sleep two", "Sleep one"]
    assert set(articles[0]) >= {"title", "url", "published", "summary", "related"}
    assert articles[1]["related"][0] == {
        "title": "Sleep old",
        "url": "https://example.org/sleep-recovery/sleep-old",
    }
    assert all(r["url"].startswith("https://") and r["title"] for a in articles for r in a["related"])
    for key, suffix in (("html", ".html"), ("text", ".txt"), ("eml", ".eml")):
        assert data["files"][key].endswith(f"sleep-2026-11-23{suffix}")
        assert Path(data["files"][key]).exists()
    assert data["size"]["html"] == Path(data["files"]["html"]).stat().st_size


def test_build_as_of_a_past_moment_is_faithful(cli: CliRunnerForProject, tmp_path: Path):
    ingest_week(tmp_path / "src")
    cli("ingest", str(tmp_path / "src"), "--category", "Sleep & recovery")
    data = json.loads(
        cli("build", "sleep", "--at", "2026-11-18T12:00+00:00", "--json", "--out", str(tmp_path / "o")).stdout
    )
    titles = [a["title"] for s in data["sections"] for a in s["articles"]]
    related = [r["title"] for s in data["sections"] for a in s["articles"] for r in a["related"]]
    assert titles == ["Sleep one"]
    assert "Sleep two" not in related  # published after the moment
    assert data["period"]["end"] == "2026-11-23T08:00:00+00:00"


def test_empty_period_is_skipped_without_files(cli: CliRunnerForProject, tmp_path: Path):
    result = cli("build", "weekly", "--at", WEEK, "--out", str(tmp_path / "out"), "--json")
    assert json.loads(result.stdout)["skipped"] is True
    assert not (tmp_path / "out").exists()


def test_eml_is_multipart_alternative_text_then_html(cli: CliRunnerForProject, tmp_path: Path):
    ingest_week(tmp_path / "src")
    cli("ingest", str(tmp_path / "src"), "--category", "Sleep & recovery")
    data = json.loads(cli("build", "sleep", "--at", WEEK, "--json", "--out", str(tmp_path / "o")).stdout)
    message = message_from_bytes(Path(data["files"]["eml"]).read_bytes(), policy=policy.default)
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    for header in ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version"):
        assert message[header], header
    assert message["Subject"] == data["subject"]
    assert all(p.get_content_charset() == "utf-8" for p in message.iter_parts())


def test_bad_schedule_names_file_and_key(cli: CliRunnerForProject):
    (cli.root / "schedules/broken.toml").write_text('title = "B"\ncron = "0 8 * *"\ncategories = ["A"]\n')
    result = cli("build", "broken")
    assert result.exit_code == 1
    assert "broken.toml: cron: expected a crontab expression" in result.stderr
    (cli.root / "schedules/typo.toml").write_text('title = "T"\ncron = "0 8 * * mon"\ncategory = ["A"]\n')
    result = cli("build", "typo")
    assert "typo.toml: categories: missing" in result.stderr
    assert result.stderr.count("Error:") == 1
    assert "Hint:" in result.stderr


def test_unknown_schedule_and_bad_moment(cli: CliRunnerForProject):
    unknown = cli("build", "nope")
    assert unknown.exit_code == 1
    assert "no schedule named 'nope'" in unknown.stderr
    assert cli("build", "../weekly").exit_code == 1
    bad = cli("build", "weekly", "--at", "next tuesday")
    assert bad.exit_code == 2
    assert "ISO 8601" in bad.stderr


def test_broken_template_names_template_and_line(cli: CliRunnerForProject, tmp_path: Path):
    ingest_week(tmp_path / "src")
    cli("ingest", str(tmp_path / "src"), "--category", "Sleep & recovery")
    (cli.root / "templates/digest.txt.j2").write_text("line one\n{% for x in %}\n")
    result = cli("build", "sleep", "--at", WEEK)
    assert result.exit_code == 1
    assert "template digest.txt.j2:2:" in result.stderr


def test_missing_project_is_a_user_error(tmp_path: Path):
    result = CliRunner().invoke(main, ["--project", str(tmp_path), "articles"])
    assert result.exit_code == 1
    assert "newsletter.toml: file not found" in result.stderr


def test_database_url_from_environment(cli: CliRunnerForProject, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", f"sqlite:///{tmp_path / 'other.db'}")
    write_article(tmp_path / "s", "a.txt", "Env", "2026-11-17")
    cli("ingest", str(tmp_path / "s"), "--category", "X")
    assert (tmp_path / "other.db").exists()
    assert not (cli.root / "newsletter.db").exists()


def test_demo_builds_issues_and_prints_paths(tmp_path: Path):
    result = CliRunner().invoke(main, ["demo", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    paths = re.findall(r"^\s+(\S+\.(?:html|txt|eml))$", result.stdout, re.M)
    assert len(paths) >= 6
    assert all(Path(p).exists() for p in paths)


def commands(group=main, prefix=""):
    for name, command in group.commands.items():
        yield f"{prefix}{name}", command
        if hasattr(command, "commands"):
            yield from commands(command, f"{prefix}{name} ")


@pytest.mark.parametrize(("name", "command"), list(commands()))
def test_every_command_has_help_and_is_documented(name: str, command):
    result = CliRunner().invoke(main, [*name.split(), "--help"])
    assert result.exit_code == 0
    assert command.help
    assert f"newsletter {name}" in README.read_text()


def test_init_quotes_a_name_with_commas_and_quotes(tmp_path: Path) -> None:
    from newsletter.core.config import load_settings

    result = CliRunner().invoke(main, ["init", str(tmp_path / "p"), "--name", 'Health, Mind & "Body"'])
    assert result.exit_code == 0, result.output
    settings = load_settings(tmp_path / "p", {})
    assert settings.site.name == 'Health, Mind & "Body"'
    assert settings.email.from_.endswith("<digest@example.org>")


def test_init_writes_one_neutral_weekly_for_every_category(tmp_path: Path) -> None:
    root = tmp_path / "p"
    assert CliRunner().invoke(main, ["init", str(root), "--name", "Field Notes"]).exit_code == 0
    assert [p.name for p in (root / "schedules").iterdir()] == ["weekly.toml"]
    write_article(tmp_path / "src", "a.txt", "Rain walks", "November 18, 2026")
    write_article(tmp_path / "src", "b.txt", "Old maps", "November 19, 2026")
    cli = CliRunnerForProject(root)
    assert cli("ingest", str(tmp_path / "src" / "a.txt"), "--category", "Outdoors").exit_code == 0
    assert cli("ingest", str(tmp_path / "src" / "b.txt"), "--category", "History").exit_code == 0
    built = cli("build", "weekly", "--at", "2026-11-23T08:00", "--json")
    data = json.loads(built.stdout)
    assert data["subject"].startswith("Field Notes: ")
    assert [s["category"] for s in data["sections"]] == ["History", "Outdoors"]  # "*": all of them
    assert data["warnings"] == []


def test_a_schedule_category_with_no_articles_is_a_warning(cli: CliRunnerForProject, tmp_path: Path) -> None:
    ingest_week(tmp_path / "src")
    assert cli("ingest", str(tmp_path / "src")).exit_code == 0
    schedule = cli.root / "schedules" / "sleep.toml"
    schedule.write_text(schedule.read_text().replace('"Sleep & recovery"', '"Sleep and recovery"'))
    built = cli("build", "sleep", "--at", "2026-11-23T08:00")
    assert built.exit_code == 0
    assert "category 'Sleep and recovery' has no articles in the archive (known: " in built.stderr


def test_import_warns_of_a_category_no_schedule_sends(cli: CliRunnerForProject, tmp_path: Path) -> None:
    csv = tmp_path / "people.csv"
    csv.write_text(
        "email,name,categories\nann@example.org,Ann,Sleep & recovery\nbob@example.org,Bob,Knitting\n"
    )
    result = cli("subscribers", "import", str(csv))
    assert result.exit_code == 0
    assert f"warning: {csv}:3: category 'Knitting' is in no schedule (offered: " in result.stderr
    assert "ann@example.org" not in result.stderr
