"""Article identity: the feed's id/guid, the canonical link, else the file's path from
its source folder. Two articles never merge; the same one read twice is unchanged."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from newsletter.project import Project
from newsletter.sources.ingest import article_url, complete, expand, file_key, read_source
from newsletter.sources.readers import ReadOptions
from newsletter.storage.schema import meta
from tests.conftest import NOW, CliRunnerForProject, write_article

LONG = (
    "How a decade of careful research on sleep, light and shift work changed what doctors "
    "tell night nurses"
)  # 90+ characters: the slug is cut at 80


def counts(project: Project, *sources: str | Path) -> tuple[int, int, int]:
    report = project.ingest([str(s) for s in sources], NOW, "Sleep")
    assert report.errors == []
    return report.counts.added, report.counts.updated, report.counts.unchanged


def urls(project: Project) -> list[str]:
    return sorted(s.article.url for s in project.store.articles())


def write_markdown(folder: Path, name: str, title: str, body: str = "Some text.", url: str = "") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = f"url: {url}\n" if url else ""
    path.write_text(f"---\ntitle: {title}\ndate: 2025-07-19\n{extra}---\n\n{body}\n", encoding="utf-8")
    return path


def write_feed(path: Path, guid: str, body: str) -> Path:
    path.write_text(
        f"""<?xml version="1.0"?>
<rss version="2.0"><channel><title>Site</title><link>https://example.org/</link>
<item><title>Morning light</title><guid isPermaLink="false">{guid}</guid>
<link>https://example.org/morning-light</link><pubDate>Sat, 19 Jul 2025 08:00:00 GMT</pubDate>
<category>Sleep</category><description>{body}</description></item>
</channel></rss>""",
        encoding="utf-8",
    )
    return path


def test_two_pages_with_the_same_title_are_two_articles(project: Project, tmp_path: Path) -> None:
    write_article(tmp_path / "src", "a.txt", "Why sleep matters", "July 19, 2025", "First page.")
    write_article(tmp_path / "src", "b.txt", "Why sleep matters", "July 19, 2025", "Second page.")
    assert counts(project, tmp_path / "src") == (2, 0, 0)
    assert urls(project) == [
        "https://example.org/sleep/why-sleep-matters",
        "https://example.org/sleep/why-sleep-matters-2",
    ]
    assert counts(project, tmp_path / "src") == (0, 0, 2)  # each keeps its URL
    assert len(set(urls(project))) == 2


def test_long_titles_alike_for_90_characters_get_distinct_urls(project: Project, tmp_path: Path) -> None:
    assert LONG[:90] == (LONG + " in winter")[:90]
    write_article(tmp_path / "src", "a.txt", LONG + " in winter", "July 19, 2025")
    write_article(tmp_path / "src", "b.txt", LONG + " in summer", "July 19, 2025")
    assert counts(project, tmp_path / "src") == (2, 0, 0)
    first, second = urls(project)
    assert first != second and second == first + "-2"
    assert counts(project, tmp_path / "src") == (0, 0, 2)


def test_a_url_suffix_is_stable_across_separate_ingests(project: Project, tmp_path: Path) -> None:
    a = write_article(tmp_path, "a.txt", "Why sleep matters", "July 19, 2025", "First page.")
    b = write_article(tmp_path, "b.txt", "Why sleep matters", "July 19, 2025", "Second page.")
    assert counts(project, b) == (1, 0, 0)
    assert counts(project, a) == (1, 0, 0)  # b holds the plain slug: a gets -2
    assert counts(project, a, b) == (0, 0, 2)
    by_source = {Path(s.article.source).name: s.article.url for s in project.store.articles()}
    assert by_source == {
        "b.txt": "https://example.org/sleep/why-sleep-matters",
        "a.txt": "https://example.org/sleep/why-sleep-matters-2",
    }


def test_a_title_that_is_a_suffixed_slug_does_not_collide(project: Project, tmp_path: Path) -> None:
    write_article(tmp_path / "src", "a.txt", "Sleep", "July 19, 2025", "One.")
    write_article(tmp_path / "src", "b.txt", "Sleep", "July 19, 2025", "Two.")
    write_article(tmp_path / "src", "c.txt", "Sleep 2", "July 19, 2025", "Three.")
    assert counts(project, tmp_path / "src") == (3, 0, 0)
    assert len(set(urls(project))) == 3
    assert counts(project, tmp_path / "src") == (0, 0, 3)


def test_relative_then_absolute_path_is_unchanged(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_article(tmp_path / "src", "a.txt", "Why sleep matters", "July 19, 2025")
    monkeypatch.chdir(tmp_path)
    assert counts(project, "src/a.txt") == (1, 0, 0)
    assert counts(project, path.resolve()) == (0, 0, 1)
    assert counts(project, "src") == (0, 0, 1)  # the folder holding it: the same key
    assert [s.article.key for s in project.store.articles()] == ["file:src/a.txt"]


def test_an_edited_file_is_updated(project: Project, tmp_path: Path) -> None:
    path = write_article(tmp_path, "a.txt", "Why sleep matters", "July 19, 2025", "First version.")
    assert counts(project, path) == (1, 0, 0)
    write_article(tmp_path, "a.txt", "Why rest matters", "July 19, 2025", "Second version.")
    assert counts(project, path) == (0, 1, 0)
    (stored,) = project.store.articles()
    assert stored.article.url == "https://example.org/sleep/why-rest-matters"


def test_markdown_folder_from_another_working_directory_is_unchanged(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    posts = tmp_path / "site" / "posts"
    write_markdown(posts, "2025/a.md", "Morning light")
    write_markdown(posts, "2026/a.md", "Morning light")  # same name and title, another folder
    write_markdown(posts, "canonical.md", "Evening light", url="https://example.org/evening")
    monkeypatch.chdir(tmp_path / "site")
    assert counts(project, "posts") == (3, 0, 0)
    monkeypatch.chdir(posts / "2025")
    assert counts(project, "../../posts") == (0, 0, 3)
    assert counts(project, posts) == (0, 0, 3)
    assert sorted(s.article.key for s in project.store.articles()) == [
        "file:posts/2025/a.md",
        "file:posts/2026/a.md",
        "https://example.org/evening",  # the canonical link comes before the path
    ]


def test_two_index_files_given_alone_stay_apart(project: Project, tmp_path: Path) -> None:
    a = write_markdown(tmp_path / "sleep", "index.md", "About", body="Sleep.")
    b = write_markdown(tmp_path / "light", "index.md", "About", body="Light.")
    assert counts(project, a) == (1, 0, 0)
    assert counts(project, b) == (1, 0, 0)
    assert counts(project, tmp_path / "sleep") == (0, 0, 1)  # folder or file: the same key
    assert sorted(s.article.key for s in project.store.articles()) == [
        "file:light/index.md",
        "file:sleep/index.md",
    ]


def test_feed_guid_is_the_identity(project: Project, tmp_path: Path) -> None:
    feed = tmp_path / "feed.xml"
    assert counts(project, write_feed(feed, "post-1", "First text.")) == (1, 0, 0)
    assert counts(project, write_feed(feed, "post-1", "New text.")) == (0, 1, 0)
    assert counts(project, write_feed(feed, "post-2", "New text.")) == (1, 0, 0)
    assert sorted(s.article.key for s in project.store.articles()) == ["post-1", "post-2"]


def test_cli_reports_two_added_for_same_titled_pages(cli: CliRunnerForProject, tmp_path: Path) -> None:
    write_article(tmp_path / "src", "a.txt", "Why sleep matters", "July 19, 2025", "First page.")
    write_article(tmp_path / "src", "b.txt", "Why sleep matters", "July 19, 2025", "Second page.")
    result = cli("ingest", str(tmp_path / "src"), "--category", "Sleep", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) | {"warnings": []} == {
        "sources": 2,
        "articles": 2,
        "added": 2,
        "updated": 0,
        "unchanged": 0,
        "warnings": [],
        "errors": [],
    }
    again = cli("ingest", str(tmp_path / "src" / "b.txt"), "--category", "Sleep")
    assert "0 added, 0 updated, 1 unchanged" in again.stdout


def store_the_old_way(project: Project, *sources: str) -> None:
    """Rows as the previous rule keyed them: a text page by its generated URL, a
    Markdown file without a URL by the path as typed."""
    site = project.settings.site
    options = ReadOptions(site.zone, NOW)
    batch = []
    for source, _ in expand(sources):
        for article in read_source(source, options).articles:
            done, _ = complete(replace(article, key=""), site, "Sleep")
            old_key = source if source.endswith(".md") else done.url
            batch.append(replace(done, key=old_key))
    project.store.upsert(batch, NOW)
    with project.store.engine.begin() as conn:  # a database made before file keys has no such row
        conn.execute(meta.delete().where(meta.c.key == "legacy_keys"))


def test_old_key_database_is_rekeyed_not_duplicated(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_article(tmp_path / "src", "a.txt", "Why sleep matters", "July 19, 2025", "First page.")
    write_article(tmp_path / "src", "b.txt", "Light at night", "July 19, 2025")
    write_markdown(tmp_path / "src", "c.md", "Morning light")
    store_the_old_way(project, "src")
    before = {s.id: s.article.url for s in project.store.articles()}
    assert len(before) == 3
    assert counts(project, tmp_path / "src") == (0, 0, 3)
    after = {s.id: s.article for s in project.store.articles()}
    assert {i: a.url for i, a in after.items()} == before  # same rows, same URLs
    assert sorted(a.key for a in after.values()) == ["file:src/a.txt", "file:src/b.txt", "file:src/c.md"]
    write_article(tmp_path / "src", "a.txt", "Why sleep matters", "July 19, 2025", "Edited page.")
    assert counts(project, "src") == (0, 1, 2)


def test_old_key_rows_are_found_by_content_from_another_directory(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_article(tmp_path / "src", "a.txt", "Why sleep matters", "July 19, 2025")
    write_markdown(tmp_path / "src", "c.md", "Morning light")
    store_the_old_way(project, "src/a.txt", "src/c.md")
    monkeypatch.chdir(tmp_path / "src")  # the stored relative paths point elsewhere now
    assert counts(project, ".") == (0, 0, 2)
    assert len(project.store.articles()) == 2


def test_old_merged_row_is_taken_by_one_page_the_other_is_added(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_article(tmp_path / "src", "a.txt", "Why sleep matters", "July 19, 2025", "First page.")
    write_article(tmp_path / "src", "b.txt", "Why sleep matters", "July 19, 2025", "Second page.")
    store_the_old_way(project, "src")  # the old rule merged them: one row, b's text
    assert len(project.store.articles()) == 1
    assert counts(project, "src") == (1, 0, 1)
    stored = {Path(s.article.source).name: s.article.url for s in project.store.articles()}
    assert stored == {
        "b.txt": "https://example.org/sleep/why-sleep-matters",  # the old row, its URL kept
        "a.txt": "https://example.org/sleep/why-sleep-matters-2",
    }


def test_file_key_and_suffixed_url(project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_article(tmp_path / "posts" / "2025", "a.txt", "Sleep", "July 19, 2025")
    assert file_key(str(path), str(tmp_path / "posts")) == "file:posts/2025/a.txt"
    assert file_key(str(path), str(path)) == "file:2025/a.txt"
    monkeypatch.chdir(tmp_path / "posts")
    assert [file_key(p, r) for p, r in expand(["."])] == ["file:posts/2025/a.txt"]
    site = project.settings.site
    article = read_source(str(path), ReadOptions(site.zone, NOW)).articles[0]
    assert article_url(site, "Sleep", article, 3) == "https://example.org/sleep/sleep-3"
