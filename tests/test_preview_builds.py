"""Issue 23: one build per preview view. The page and its frames share one build, kept
by (schedule, moment, variant, the workspace's fingerprint, revision) in a bounded LRU;
an edited template, a new article or another revision builds afresh."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from newsletter import scaffold
from newsletter.project import Project
from newsletter.web.builds import KEEP
from newsletter.web.views import issue_page, issue_parts
from newsletter.web.workspace import Workspace
from tests.conftest import NOW, write_article

AT = scaffold.DEMO_AT - timedelta(hours=1)  # inside the demo's issue of 23 November


def workspace(project: Project) -> Workspace:
    return Workspace(project.root, lambda: AT)


def test_the_page_and_its_frames_share_one_build(demo_project: Project):
    space = workspace(demo_project)
    page = issue_page(space, "weekly", None)
    desktop, parts = issue_parts(space, "weekly", page.at.isoformat())
    mobile, again = issue_parts(space, "weekly", page.at.isoformat())
    assert page.build is desktop is mobile and parts is again
    assert len(space.builds) == 1
    assert parts["html"] == page.build.issue.html.encode()  # type: ignore[union-attr]


def test_a_variant_or_another_moment_is_its_own_build(demo_project: Project):
    space = workspace(demo_project)
    whole = issue_page(space, "weekly", None).build
    earlier = issue_page(space, "weekly", (AT - timedelta(days=7)).isoformat()).build
    assert whole is not earlier and len(space.builds) == 2


def test_an_edited_template_builds_afresh(demo_project: Project):
    space = workspace(demo_project)
    before = issue_page(space, "weekly", None).build
    template = demo_project.root / "templates" / "digest.txt.j2"
    template.write_text(template.read_text(encoding="utf-8") + "\nEdited footer\n", encoding="utf-8")
    stat = template.stat()
    os.utime(template, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    after = issue_page(space, "weekly", None).build
    assert after is not before and after is not None and after.issue is not None
    assert "Edited footer" in after.issue.text


def test_a_new_article_builds_afresh(demo_project: Project, tmp_path: Path):
    space = workspace(demo_project)
    before = issue_page(space, "weekly", None).build
    path = write_article(tmp_path, "new.txt", "A fresh look at naps", "2026-11-22T09:00:00+00:00")
    demo_project.ingest([str(path)], NOW, "Sleep & recovery")
    after = issue_page(space, "weekly", None).build
    assert after is not before and after is not None
    assert "A fresh look at naps" in [a.title for a in after.digest.articles]


def test_another_revision_builds_afresh(demo_project: Project):
    space = workspace(demo_project)
    first = issue_page(space, "weekly", None, revision="1").build
    assert issue_page(space, "weekly", None, revision="1").build is first
    assert issue_page(space, "weekly", None, revision="2").build is not first


def test_the_kept_builds_are_bounded(demo_project: Project):
    space = workspace(demo_project)
    for minutes in range(KEEP + 4):
        issue_page(space, "weekly", (AT - timedelta(minutes=minutes)).isoformat())
    assert len(space.builds) == KEEP
