"""JSON Feed 1.1: read as a feed is, never mistaken for a text page; bad input named."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from newsletter.errors import SourceError
from newsletter.ingest import read_source
from newsletter.readers import ReadOptions, jsonfeed
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
