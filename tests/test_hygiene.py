"""Bad input meets a clear error or a warning, never a traceback or silence;
`build` writes its files as a set. Real files, real SQLite, real processes."""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.audience.subscribers import parse_csv
from newsletter.core.errors import OutputError
from newsletter.core.output import write_files
from newsletter.core.text import CONTROL_CHARS, NAME_MAX
from newsletter.project import Project
from tests.conftest import PARAGRAPH, CliRunnerForProject, write_article

WEEK = "2026-11-23T08:00"  # Monday: the sleep issue covers 16-23 November
SLEEP = "Sleep & recovery"
ROOT = Path(__file__).parent.parent


def assert_one_error(result: object, *fragments: str) -> None:
    """Exit 1, one `Error:` line holding every fragment, and no traceback."""
    stderr = result.stderr  # type: ignore[attr-defined]
    assert result.exit_code == 1, stderr  # type: ignore[attr-defined]
    assert stderr.count("Error:") == 1, stderr
    assert "Traceback" not in stderr, stderr
    line = next(line for line in stderr.splitlines() if line.startswith("Error:"))
    for fragment in fragments:
        assert fragment in line, (fragment, line)


def set_setting(root: Path, old: str, new: str) -> None:
    path = root / "newsletter.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


# -- 1. control characters in article text -----------------------------------


def test_nul_in_a_title_is_cleaned_at_ingest_and_the_issue_builds(
    cli: CliRunnerForProject, project: Project, tmp_path: Path
):
    write_article(
        tmp_path,
        "nul.txt",
        "Sleep\x00 well\x07 tonight",
        "November 20, 2026",
        "A standfirst\x00 with a NUL.",
        body=[PARAGRAPH + "\x00\x1b", "Short\x0b line"],
    )
    ingested = cli("ingest", str(tmp_path / "nul.txt"), "--category", SLEEP)
    assert ingested.exit_code == 0, ingested.stderr
    assert "nul.txt: control characters removed from 'Sleep well tonight'" in ingested.stderr
    [stored] = project.store.articles()
    texts = [stored.article.title, stored.article.standfirst, *(b.text for b in stored.article.body)]
    assert stored.article.title == "Sleep well tonight"
    assert not any(re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", text) for text in texts)
    built = cli("build", "sleep", "--at", WEEK, "--json", "--out", str(tmp_path / "out"))
    assert built.exit_code == 0, built.stderr
    assert "Sleep well tonight" in Path(json.loads(built.stdout)["files"]["html"]).read_text()


# -- 2. a huge body -----------------------------------------------------------


def test_huge_body_is_cut_on_a_block_boundary_with_a_warning(
    cli: CliRunnerForProject, project: Project, tmp_path: Path
):
    body = [PARAGRAPH] * 1000  # 1000 blocks of 389 characters: 389,000 in all
    path = write_article(tmp_path, "huge.txt", "A very long read", "November 20, 2026", body=body)
    result = cli("ingest", str(path), "--category", SLEEP)
    assert result.exit_code == 0, result.stderr
    total = len(PARAGRAPH) * 1000
    assert (
        f"warning: {path}: body of {total:,} characters cut to 200,000 ([site] max_body_chars)"
        in result.stderr
    )
    [stored] = project.store.articles()
    assert len(stored.article.body) == 200_000 // len(PARAGRAPH)  # whole blocks only
    assert {b.text for b in stored.article.body} == {PARAGRAPH}


def test_body_cap_is_a_setting_with_an_environment_override(
    cli: CliRunnerForProject, project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("NEWSLETTER_SITE_MAX_BODY_CHARS", "5000")
    one_line = " ".join(["word"] * 3000)  # one block of 14,999 characters: cut on a word
    path = write_article(tmp_path, "line.txt", "One long line", "November 20, 2026", body=[one_line])
    result = cli("ingest", str(path), "--category", SLEEP)
    assert "body of 14,999 characters cut to 5,000 ([site] max_body_chars)" in result.stderr
    [stored] = project.store.articles()
    [block] = stored.article.body
    assert len(block.text) <= 5000
    assert block.text.endswith("word")
    assert one_line.startswith(block.text)
    monkeypatch.setenv("NEWSLETTER_SITE_MAX_BODY_CHARS", "10")
    result = cli("articles")  # the variable is named, and the key it overrides in the hint
    assert_one_error(result, "NEWSLETTER_SITE_MAX_BODY_CHARS: ", "greater than or equal to 1000")
    assert "overrides site.max_body_chars" in result.stderr


# -- 3. article_url placeholders ----------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (
            "{base_url}/{nope}",
            "expected only the placeholders {base_url} {category} {slug} {year} {month} "
            "{day}; unknown: {nope}, got '{base_url}/{nope}'",
        ),
        ("{base_url", "expected a URL pattern with balanced braces (expected '}' before end of string"),
    ],
)
def test_bad_article_url_is_a_config_error_when_settings_load(
    cli: CliRunnerForProject, tmp_path: Path, pattern: str, expected: str
):
    set_setting(cli.root, 'article_url = "{base_url}/{category}/{slug}"', f'article_url = "{pattern}"')
    write_article(tmp_path, "a.txt", "Any title", "November 20, 2026")
    result = cli("ingest", str(tmp_path / "a.txt"), "--category", SLEEP)
    assert_one_error(result, "newsletter.toml: site.article_url:", expected)


# -- 4. the From address ------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("Mind & Body", "expected 'Name <address@example.org>', got 'Mind & Body'"),
        ("Mind & Body <digest@localhost>", "It should have a period"),
        ("A <a@example.org>, B <b@example.org>", "one address and nothing after it"),
    ],
)
def test_bad_from_fails_commands_that_do_not_send(cli: CliRunnerForProject, address: str, reason: str):
    set_setting(cli.root, 'from = "Mind & Body <digest@example.org>"', f'from = "{address}"')
    for command in (("articles",), ("build", "sleep", "--at", WEEK)):
        assert_one_error(cli(*command), "newsletter.toml: email.from: expected", reason)


# -- 5. the subscribers CSV ---------------------------------------------------


def test_csv_names_are_cleaned_and_an_unbalanced_quote_costs_one_row(
    cli: CliRunnerForProject, tmp_path: Path
):
    rows = [
        "email,name,categories",
        'ann@example.org,"Ann\rBcc: x@example.org",',
        "bob@example.org,Bob\x00By,",
        f"cat@example.org,{'c' * 10_000},",
        'dan@example.org,"Dan,Sleep',
        "eve@example.org,Eve,",
    ]
    path = tmp_path / "people.csv"
    path.write_bytes("\r\n".join(rows).encode())
    result = cli("subscribers", "import", str(path))
    assert result.exit_code == 1
    assert f"warning: {path}:2: name had line breaks or control characters; cleaned" in result.stderr
    assert f"warning: {path}:3: name had line breaks or control characters; cleaned" in result.stderr
    assert f"warning: {path}:4: name of 10,000 characters cut to 200" in result.stderr
    assert f"error: {path}:5: unbalanced quote" in result.stderr
    assert "Traceback" not in result.stderr
    people = {p["email"]: p["name"] for p in json.loads(cli("subscribers", "list", "--json").stdout)}
    assert people == {
        "ann@example.org": "Ann Bcc: x@example.org",
        "bob@example.org": "Bob By",
        "cat@example.org": "c" * 200,
        "eve@example.org": "Eve",
    }
    again = json.loads(cli("subscribers", "import", str(path), "--json").stdout)
    assert len(again["warnings"]) == 3
    assert len(again["errors"]) == 1


emails = st.integers(0, 10**6).map(lambda n: f"user{n}@example.org")
any_name = st.text(st.characters(codec="utf-8", exclude_characters="\n"), max_size=400)
bad_lines = st.one_of(
    emails.map(lambda e: f'{e},"an open quote'),
    st.text(st.characters(codec="utf-8", exclude_characters='\n"@'), max_size=40),
    st.just('"'),
    st.just(",,"),
    emails.map(lambda e: f'"{e}"x,y'),
)


def csv_line(email: str, name: str) -> str:
    return f'{email},"{name.replace(chr(34), chr(34) * 2)}",'


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.lists(bad_lines, max_size=3), emails, any_name), max_size=8))
def test_parse_csv_never_loses_a_valid_row_after_a_bad_one(groups: list[tuple[list[str], str, str]]):
    lines = ["email,name,categories"]
    for bad, email, name in groups:
        lines += [*bad, csv_line(email, name)]
    parsed = parse_csv("p.csv", "\n".join(lines).encode())
    assert {email for _, email, _ in groups} <= {row.email for row in parsed.rows}
    for row in parsed.rows:
        assert not CONTROL_CHARS.search(row.name)
        assert len(row.name) <= NAME_MAX


# -- 6. build writes its files as a set ---------------------------------------

# The child writes one set and pauses just before its Nth rename or unlink (0:
# the manifest's rename, 1-3: the parts', 4: the manifest's removal), so the
# parent can SIGKILL it there. The hook is the child's own: production code
# has none.
CHILD = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from newsletter.core.output import write_files

    folder, tag, pause_at = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    steps = [0]

    def paused(real):
        def call(*args, **kwargs):
            if steps[0] == pause_at:
                print("paused", flush=True)
                time.sleep(60)
            steps[0] += 1
            return real(*args, **kwargs)
        return call

    os.replace, os.unlink = paused(os.replace), paused(os.unlink)
    write_files(folder, "weekly-2026-11-23", {ext: f"{tag} {ext}".encode() for ext in ("html", "txt", "eml")})
""")
EXTS = ("html", "txt", "eml")


def contents(folder: Path, stem: str = "weekly-2026-11-23") -> dict[str, str]:
    return {ext: (folder / f"{stem}.{ext}").read_text() for ext in EXTS}


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def kill_while_writing(folder: Path, tag: str, pause_at: int) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(folder), tag, str(pause_at)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "paused\n"
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL


@pytest.mark.parametrize("pause_at", [0, 1, 2, 3, 4])
def test_killed_between_renames_the_next_write_rolls_forward(tmp_path: Path, pause_at: int):
    folder = tmp_path / "issues"
    write_files(folder, "weekly-2026-11-23", {ext: f"old {ext}".encode() for ext in EXTS})
    kill_while_writing(folder, "new", pause_at)
    assert leftovers(folder)  # temp files (and from step 1 on a manifest) were left behind
    if pause_at == 2:  # the defect: new HTML beside the old text and .eml
        assert contents(folder) == {"html": "new html", "txt": "old txt", "eml": "old eml"}
    write_files(folder, "sleep-2026-11-23", {ext: b"sleep" for ext in EXTS})  # another issue, same folder
    tag = "old" if pause_at == 0 else "new"  # before the manifest: as if never begun
    assert contents(folder) == {ext: f"{tag} {ext}" for ext in EXTS}
    assert leftovers(folder) == []
    write_files(folder, "weekly-2026-11-23", {ext: f"third {ext}".encode() for ext in EXTS})
    assert contents(folder) == {ext: f"third {ext}" for ext in EXTS}
    assert leftovers(folder) == []


def test_unwritable_output_is_one_error_naming_the_path(cli: CliRunnerForProject, tmp_path: Path):
    write_article(tmp_path / "src", "a.txt", "Sleep one", "November 20, 2026")
    cli("ingest", str(tmp_path / "src"), "--category", SLEEP)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = cli("build", "sleep", "--at", WEEK, "--out", str(blocker / "issues"))
    assert_one_error(result, f"cannot write {blocker / 'issues'}: Not a directory")


def test_a_full_disk_leaves_the_previous_set_whole(tmp_path: Path):
    folder = tmp_path / "issues"
    write_files(folder, "weekly-2026-11-23", {ext: f"old {ext}".encode() for ext in EXTS})
    script = textwrap.dedent("""
        import sys
        from pathlib import Path
        from newsletter.core.errors import OutputError
        from newsletter.core.output import write_files
        try:
            write_files(Path(sys.argv[1]), "weekly-2026-11-23",
                        {"html": b"h" * 100_000, "txt": b"t", "eml": b"e"})
        except OutputError as e:
            print(e)
    """)

    def small_files() -> None:  # files may grow to 50 kB: the write of 100 kB fails (EFBIG)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))

    done = subprocess.run(
        [sys.executable, "-c", script, str(folder)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        preexec_fn=small_files,
        timeout=60,
    )
    assert done.stdout.strip() == f"cannot write {folder / 'weekly-2026-11-23.html'}: File too large"
    assert contents(folder) == {ext: f"old {ext}" for ext in EXTS}
    assert leftovers(folder) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_a_read_only_folder_is_permission_denied(tmp_path: Path):
    folder = tmp_path / "issues"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(OutputError, match=r"cannot write .*weekly\.html: Permission denied"):
            write_files(folder, "weekly", {"html": b"x"})
    finally:
        folder.chmod(0o700)


def test_published_files_are_readable_by_a_web_server(tmp_path: Path):
    """mkstemp's 0600 would hide issues from nginx in front of issues/: the umask rules."""
    old = os.umask(0o022)
    try:
        paths = write_files(tmp_path / "issues", "weekly-2026-11-23", {"html": b"<p>hi</p>", "txt": b"hi"})
    finally:
        os.umask(old)
    assert {oct(p.stat().st_mode & 0o777) for p in paths.values()} == {"0o644"}
