"""JSON Feed 1.1: read as a feed is, never mistaken for a text page; bad input named."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from newsletter.core.errors import SourceError
from newsletter.core.models import Article
from newsletter.sources.ingest import read_source
from newsletter.sources.readers import ReadOptions, jsonfeed
from tests.conftest import FIXTURES, CliRunnerForProject

OPTIONS = ReadOptions(ZoneInfo("Europe/London"), datetime(2026, 11, 26, 12, tzinfo=UTC))
FEED = FIXTURES / "feeds" / "jsonfeed-1.1.json"


def test_items_become_articles_with_ids_links_dates_and_tags() -> None:
    result = jsonfeed.read(str(FEED), FEED.read_bytes(), OPTIONS)
    rain, note, undated = result.articles
    assert rain.key == "https://notes.example.org/blog/2026/11/rain"
    assert rain.url == "https://notes.example.org/blog/2026/11/rain"  # relative to home_page_url
    assert rain.title == "Walking in the <rain>"  # text, escaped where it is shown
    assert rain.published == datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
    assert rain.tags == ("Outdoors", "walking")
    assert rain.category == "Outdoors"
    assert [b.text for b in rain.body] == ["First paragraph about rain.", "Second paragraph."]
    assert rain.standfirst == "Why a wet walk beats none."
    assert note.key == "42"
    assert note.title.startswith("A note with no title")
    assert note.published == datetime(2026, 11, 21, 10, tzinfo=UTC)
    assert undated.undated
    assert any("item 4 is not an object" in w for w in result.warnings)
    assert any("'No date here' has no usable date" in w for w in result.warnings)


def test_a_json_feed_is_recognised_whatever_its_file_name(tmp_path: Path) -> None:
    renamed = tmp_path / "feed"
    renamed.write_bytes(FEED.read_bytes())
    result = read_source(str(renamed), OPTIONS)
    assert len(result.articles) == 3


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"version": "https://jsonfeed.org/version/1.1",\n "items": [,]}', ":2: not valid JSON"),
        (b'{"version": "1.1", "items": []}', "expected a JSON Feed"),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": {}}', 'expected "items"'),
    ],
)
def test_bad_json_feeds_are_one_error_naming_the_file(tmp_path: Path, data: bytes, reason: str) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(data)
    with pytest.raises(SourceError) as caught:
        read_source(str(path), OPTIONS)
    assert reason in str(caught.value)
    assert str(path) in str(caught.value)


def test_ingest_stores_json_feed_items_once(cli: CliRunnerForProject) -> None:
    first = cli("ingest", str(FEED), "--category", "Outdoors")
    assert first.exit_code == 0, first.output
    assert "3 added" in first.output
    again = cli("ingest", str(FEED), "--category", "Outdoors")
    assert "3 unchanged" in again.output


# --- images and authors ----------------------------------------------------------


def json_feed(*items: dict[str, object], **feed: object) -> bytes:
    document = {"version": "https://jsonfeed.org/version/1.1", "title": "t", **feed, "items": list(items)}
    return json.dumps(document).encode()


def read_items(
    *items: dict[str, object], source: str = "feed.json", feed: Mapping[str, object] | None = None
) -> list[Article]:
    return jsonfeed.read(source, json_feed(*items, **(feed or {})), OPTIONS).articles


def test_the_fixture_names_no_image_and_no_author() -> None:
    rain = jsonfeed.read(str(FEED), FEED.read_bytes(), OPTIONS).articles[0]
    assert (rain.image, rain.author) == ("", "")


def test_image_else_banner_image_resolved_against_home_page_url() -> None:
    home = {"home_page_url": "https://notes.example.org/blog/"}
    both, banner, relative, rooted = read_items(
        {"id": "1", "title": "A", "image": "https://cdn.example.org/a.jpg", "banner_image": "b.jpg"},
        {"id": "2", "title": "B", "banner_image": "https://cdn.example.org/wide.jpg"},
        {"id": "3", "title": "C", "image": "img/c.png"},
        {"id": "4", "title": "D", "image": "/img/d.png"},
        feed=home,
    )
    assert both.image == "https://cdn.example.org/a.jpg"
    assert banner.image == "https://cdn.example.org/wide.jpg"
    assert relative.image == "https://notes.example.org/blog/img/c.png"
    assert rooted.image == "https://notes.example.org/img/d.png"


def test_a_relative_image_resolves_against_the_feed_url_without_a_home_page() -> None:
    [item] = read_items(
        {"id": "1", "title": "A", "image": "a.jpg"}, source="https://x.example.com/f/feed.json"
    )
    assert item.image == "https://x.example.com/f/a.jpg"
    [local] = read_items({"id": "1", "title": "A", "image": "a.jpg"})  # a file: nothing to resolve against
    assert local.image == ""


@pytest.mark.parametrize(
    "bad",
    [
        "javascript:alert(1)",
        "data:image/png;base64,iVBORw0KGgo=",
        "ftp://f.example.org/a.png",
        "http://[::1",
        7,
        ["a"],
    ],
)
def test_an_image_that_is_no_web_url_is_dropped_for_the_banner(bad: object) -> None:
    home = {"home_page_url": "https://notes.example.org/"}
    [alone, with_banner] = read_items(
        {"id": "1", "title": "A", "image": bad},
        {"id": "2", "title": "B", "image": bad, "banner_image": "https://notes.example.org/b.jpg"},
        feed=home,
    )
    assert alone.image == ""
    assert with_banner.image == "https://notes.example.org/b.jpg"


def test_authors_of_1_1_then_author_of_1_0_then_the_feeds() -> None:
    new, old, both, nameless, none = read_items(
        {
            "id": "1",
            "title": "A",
            "authors": [{"name": "Ann Lee", "url": "https://ann.example"}, {"name": "Bo"}],
        },
        {"id": "2", "title": "B", "author": {"name": "Old Style"}},
        {"id": "3", "title": "C", "authors": [{"name": "New"}], "author": {"name": "Old"}},
        {"id": "4", "title": "D", "authors": [{"avatar": "https://x/a.png"}], "author": {"name": "Kept"}},
        {"id": "5", "title": "E"},
        feed={"authors": [{"name": "Feed Editor"}]},
    )
    assert [a.author for a in (new, old, both, nameless, none)] == [
        "Ann Lee", "Old Style", "New", "Kept", "Feed Editor",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("feed", "author"),
    [
        ({"author": {"name": "Feed 1.0"}}, "Feed 1.0"),
        ({"authors": "Ann"}, ""),  # not a list of objects
        ({"authors": [{"name": None}, {"name": " Second\n"}]}, "Second"),
        ({}, ""),
    ],
)
def test_feed_level_author_forms(feed: dict[str, object], author: str) -> None:
    [item] = read_items({"id": "1", "title": "A", "authors": ["not an object"]}, feed=feed)
    assert item.author == author


def test_author_names_are_plain_text() -> None:
    marked, mailed = read_items(
        {"id": "1", "title": "A", "authors": [{"name": "<b>Ann</b> &amp; <script>x</script>Bo"}]},
        {"id": "2", "title": "B", "authors": [{"name": "Jo Bloggs <jo@example.org>"}]},
    )
    assert marked.author == "Ann & xBo"
    assert mailed.author == "Jo Bloggs"


def test_an_item_without_a_url_has_none_not_the_home_page() -> None:
    [item] = read_items({"id": "1", "title": "A"}, feed={"home_page_url": "https://notes.example.org/"})
    assert item.url == ""
