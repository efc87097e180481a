from __future__ import annotations

import re
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.core.errors import SourceError
from newsletter.sources.readers import ReadOptions
from newsletter.sources.readers.text import read
from tests.conftest import FIXTURES

OPTIONS = ReadOptions(ZoneInfo("Europe/London"), datetime(2026, 11, 26, tzinfo=UTC))


def read_fixture(name: str):
    path = FIXTURES / "articles" / name
    return read(str(path), path.read_bytes(), OPTIONS)


def test_reads_title_standfirst_date_body_and_related():
    result = read_fixture("routines.txt")
    article = result.articles[0]
    assert article.title == "How shared routines help couples rebuild trust after a difficult year."
    assert article.standfirst.startswith("Small, predictable rituals give partners")
    assert article.published.astimezone(ZoneInfo("Europe/London")).date() == date(2025, 7, 19)
    assert len(article.related) == 20
    assert article.related[-1].published == date(2025, 7, 21)  # last group, no newline after it
    assert result.warnings == []


def test_drops_share_bar_and_advertisements_and_marks_subheadings():
    body = read_fixture("routines.txt").articles[0].body
    texts = [b.text for b in body]
    assert "ADVERTISEMENT" not in texts
    assert not any("Facebook X Reddit" in t for t in texts)
    assert [b.kind for b in body] == ["paragraph", "paragraph", "subheading", "paragraph", "paragraph"]


@pytest.mark.parametrize("written", ["July 19, 2025", "Jul 19, 2025", "19 July 2025", "2025-07-19"])
def test_date_formats(written: str):
    data = f"Title\nStandfirst.\nPublished {written}\nBody".encode()
    article = read("a.txt", data, OPTIONS).articles[0]
    assert article.published == datetime(2025, 7, 18, 23, 0, tzinfo=UTC)  # midnight in London (BST)


def test_no_standfirst_when_published_is_line_two():
    article = read("a.txt", b"Title\nPublished 2025-07-19\nBody text", OPTIONS).articles[0]
    assert article.standfirst == ""


@pytest.mark.parametrize(
    ("data", "line", "words"),
    [
        (b"", 1, "title"),
        (b"Title\nStandfirst\nBody without a date", 2, "Published"),
        (b"Title\nStandfirst\nPublished someday", 3, "unreadable date"),
        (b"Title\n\xff\xfe broken\nPublished 2025-07-19", 2, "not UTF-8"),
    ],
)
def test_errors_name_the_line(data: bytes, line: int, words: str):
    with pytest.raises(SourceError) as caught:
        read("bad.txt", data, OPTIONS)
    assert caught.value.line == line
    assert words in str(caught.value)
    assert str(caught.value).startswith(f"bad.txt:{line}: ")


def test_broken_related_group_is_a_warning():
    data = b"T\nS\nPublished 2025-07-19\nBody\nRelated Articles\nCat\nSummary\n-\nJuly 1, 2025\nOnly a line"
    result = read("r.txt", data, OPTIONS)
    assert len(result.articles[0].related) == 1
    assert result.warnings
    assert result.warnings[0].startswith("r.txt:10:")


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_never_crashes_on_arbitrary_text(text: str):
    try:
        result = read("any.txt", text.encode("utf-8", "surrogatepass"), OPTIONS)
    except SourceError:
        return
    assert len(result.articles) == 1


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "Title",
                "Published July 19, 2025",
                "ADVERTISEMENT",
                "Related Articles",
                "-",
                "July 1, 2025",
                "Category",
                "",
                "A summary line.",
                "x" * 200,
            ]
        ),
        max_size=30,
    )
)
def test_never_crashes_on_shuffled_structure(lines: list[str]):
    """Any arrangement of the format's own lines is one article or one SourceError naming
    a line of the file; never another exception, a lost title, or a dropped line in the body."""
    try:
        result = read("any.txt", "\n".join(lines).encode(), OPTIONS)
    except SourceError as error:
        assert error.line is not None
        assert 1 <= error.line <= len(lines) + 1  # a line of the file, or where one was expected
        assert str(error).startswith(f"any.txt:{error.line}: ")
        return
    [article] = result.articles
    assert article.title == lines[0]
    texts = [block.text for block in article.body]
    assert "" not in texts
    assert "ADVERTISEMENT" not in texts
    assert "Related Articles" not in texts
    for ref in article.related:
        assert ref.category
        assert ref.summary
    for warning in result.warnings:
        found = re.match(r"any\.txt:(\d+): related entry skipped", warning)
        assert found is not None, warning
        assert lines[int(found[1]) - 1].strip(), warning  # a group starts on a line with text
