"""Start-up: a command loads only what it uses.

Each command runs in a fresh interpreter, which then reports every module it
imported. `--help` loads none of the library's heavy dependencies; listing the
archive needs the settings and the database, not similarity (scikit-learn,
SciPy, NumPy), rendering, feeds or the web stack. No timings: what is imported
is what makes start-up slow, and it does not vary from machine to machine.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import newsletter
from newsletter.project import Project
from tests.conftest import NOW, write_article

# Runs the command as `newsletter ARGS...` would, then writes sys.modules to a file.
PROBE = """
import json, sys
from newsletter.cli import main
try:
    code = main(sys.argv[2:], prog_name="newsletter", standalone_mode=False)
finally:
    with open(sys.argv[1], "w", encoding="utf-8") as f:
        json.dump(sorted(sys.modules), f)
sys.exit(code or 0)
"""

SIMILARITY = {"sklearn", "scipy", "numpy", "stop_words"}
# What no command that only reads settings and the archive needs.
UNUSED_BY_ARTICLES = SIMILARITY | {
    "premailer",
    "mjml",
    "lxml",
    "cssutils",
    "jinja2",  # rendering
    "feedparser",
    "dateparser",
    "regex",
    "inscriptis",
    "frontmatter",
    "yaml",
    "pysbd",
    "dateutil",  # reading, summaries
    "apscheduler",  # schedules
    "alembic",  # migrations
    "starlette",
    "uvicorn",
    "watchfiles",
    "aiosmtpd",
    "itsdangerous",  # web, sending
    "dkim",
    "cryptography",
    "nacl",  # DKIM signing
    "httpx",
    "httpcore",  # fetching feeds
    "flufl",  # bounces (flufl.bounce)
}
# `--help` loads the command line and nothing of the library behind it.
UNUSED_BY_HELP = UNUSED_BY_ARTICLES | {"sqlalchemy", "pydantic", "email_validator"}


def imported_by(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run `newsletter ARGS...` in its own interpreter: the result, and every module it imported."""
    report = tmp_path / "modules.json"
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(report), *args], capture_output=True, text=True, timeout=120
    )
    return result, set(json.loads(report.read_text(encoding="utf-8")))


def packages(modules: set[str]) -> set[str]:
    return {name.partition(".")[0] for name in modules}


def test_help_loads_no_library(tmp_path: Path) -> None:
    result, modules = imported_by(tmp_path, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage: " in result.stdout
    assert packages(modules) & SIMILARITY == set()
    assert packages(modules) & UNUSED_BY_HELP == set()
    assert "newsletter.project" not in modules


def test_listing_articles_loads_no_similarity_rendering_or_readers(tmp_path: Path, project_dir: Path) -> None:
    write_article(project_dir / "articles", "sleep.txt", "Sleep Better", "November 24, 2026")
    project = Project(project_dir, environ={})
    try:
        project.ingest([str(project_dir / "articles")], NOW, "health")
    finally:
        project.close()
    result, modules = imported_by(tmp_path, "--project", str(project_dir), "articles")
    assert result.returncode == 0, result.stderr
    assert "Sleep Better" in result.stdout
    assert packages(modules) & SIMILARITY == set()
    assert packages(modules) & UNUSED_BY_ARTICLES == set()


def test_version_is_the_package_version(tmp_path: Path) -> None:
    result, modules = imported_by(tmp_path, "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"newsletter, version {newsletter.__version__}"
    assert newsletter.__version__ == importlib.metadata.version("newsletter")  # pyproject's
    assert packages(modules) & UNUSED_BY_HELP == set()
