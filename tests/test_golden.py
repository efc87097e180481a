"""Golden files for what people read: the demo issue's HTML, text and .eml.

Volatile fields (Date, Message-ID, MIME boundaries) are blanked. After an
intended change to the output, `make golden` rewrites the files; review the
diff before committing it.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from newsletter import scaffold
from newsletter.project import Project

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("NEWSLETTER_UPDATE_GOLDEN") == "1"
BUILT_AT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
VOLATILE = [
    (re.compile(rb"^(Date|Message-ID): .*$", re.M), rb"\1: <blanked>"),
    (re.compile(rb'boundary="[^"]+"'), rb'boundary="<blanked>"'),
    (re.compile(rb"^--=_newsletter_[0-9a-f]+(--)?\r$", re.M), rb"--<boundary>\1\r"),
]


def blank(data: bytes) -> bytes:
    for pattern, replacement in VOLATILE:
        data = pattern.sub(replacement, data)
    return data


@pytest.fixture(scope="module")
def demo_parts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("golden") / "demo"
    scaffold.init_demo(root)
    project = Project(root, environ={})
    try:
        project.ingest([str(scaffold.demo_articles())], BUILT_AT)
        parts = {}
        for name in ("weekly", "sleep"):
            build = project.build(name, scaffold.DEMO_AT, BUILT_AT, out=root / "issues")
            for ext, path in build.files.items():
                parts[f"{name}.{ext}"] = blank(path.read_bytes())
        return parts
    finally:
        project.close()


@pytest.mark.parametrize("name", ["weekly.html", "weekly.txt", "weekly.eml", "sleep.html", "sleep.txt"])
def test_demo_issue_matches_golden(demo_parts: dict[str, bytes], name: str):
    path = GOLDEN / name
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_bytes(demo_parts[name])
    assert path.exists(), f"{path} is missing: run `make golden`"
    assert demo_parts[name] == path.read_bytes(), (
        f"{name} differs from its golden file: "
        "if the change is intended, run `make golden` and review the diff"
    )


LANGUAGES = ("de", "ar", "ja")  # issue 19: one left-to-right, one right-to-left, one CJK


@pytest.fixture(scope="module")
def language_parts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The demo's weekly issue with `[site] language` set: every word the template
    prints, the dates and the direction follow it (the articles stay as written)."""
    parts = {}
    for language in LANGUAGES:
        root = tmp_path_factory.mktemp(f"golden-{language}") / "demo"
        scaffold.init_demo(root)
        toml = root / "newsletter.toml"
        # init writes `language = "en"` under [site]: the one line changed
        toml.write_text(re.sub(r"(?m)^language = .*$", f'language = "{language}"', toml.read_text(), count=1))
        project = Project(root, environ={})
        try:
            project.ingest([str(scaffold.demo_articles())], BUILT_AT)
            build = project.build("weekly", scaffold.DEMO_AT, BUILT_AT, out=root / "issues")
            for ext, path in build.files.items():
                parts[f"weekly.{language}.{ext}"] = blank(path.read_bytes())
        finally:
            project.close()
    return parts


@pytest.mark.parametrize(
    "name", [f"weekly.{lang}.{ext}" for lang in LANGUAGES for ext in ("html", "txt", "eml")]
)
def test_issue_in_each_language_matches_golden(language_parts: dict[str, bytes], name: str):
    path = GOLDEN / name
    if UPDATE:
        path.write_bytes(language_parts[name])
    assert path.exists(), f"{path} is missing: run `make golden`"
    assert language_parts[name] == path.read_bytes(), f"{name} differs: run `make golden`, review the diff"
