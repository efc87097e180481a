"""Shared fixtures: real project folders with a real SQLite file, no mocks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from newsletter import scaffold
from newsletter.cli import main
from newsletter.project import Project

FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

PARAGRAPH = ("Researchers followed several hundred adults for a year and found that small, "
             "repeatable habits changed how people felt far more than occasional big efforts did. "
             "The effect held across ages and was strongest for people who started with the "
             "least sleep, which suggests that modest changes matter most where they are needed.")


def write_article(folder: Path, name: str, title: str, published: str, standfirst: str = "",
                  body: Sequence[str] = (PARAGRAPH, PARAGRAPH),
                  related: Sequence[tuple[str, str, str]] = ()) -> Path:
    """An article in the text format: title, standfirst, Published, body, Related."""
    lines = [title, standfirst or f"A standfirst about {title.lower()}.", f"Published {published}",
             *body]
    if related:
        lines.append("Related Articles")
        for category, summary, date in related:
            lines += [category, summary, "-", date]
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    scaffold.init(root, name="Mind & Body", base_url="https://example.org")
    return root


@pytest.fixture
def project(project_dir: Path) -> Iterator[Project]:
    opened = Project(project_dir, environ={})
    yield opened
    opened.close()


@pytest.fixture
def demo_project(project: Project) -> Project:
    """The demo's sample articles in a fresh project."""
    project.ingest([str(scaffold.demo_articles())], NOW)
    return project


@pytest.fixture
def cli(project_dir: Path) -> CliRunnerForProject:
    return CliRunnerForProject(project_dir)


class CliRunnerForProject:
    """Runs `newsletter --project DIR ...` in-process, stdout and stderr apart."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runner = CliRunner()

    def __call__(self, *args: str) -> Result:
        return self.runner.invoke(main, ["--project", str(self.root), *args], catch_exceptions=False)
