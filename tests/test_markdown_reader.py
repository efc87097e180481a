"""The Markdown + YAML front matter reader (fixtures in tests/fixtures/markdown)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.errors import SourceError
from newsletter.models import Block
from newsletter.readers import ReadOptions, ReadResult, markdown

MARKDOWN = Path(__file__).parent / "fixtures" / "markdown"
LONDON = ZoneInfo("Europe/London")
NOW = datetime(2025, 7, 25, 9, 0, tzinfo=UTC)
OPTIONS = ReadOptions(LONDON, NOW)


def read_fixture(name: str) -> ReadResult:
    return markdown.read(name, (MARKDOWN / name).read_bytes(), OPTIONS)


def read_text(text: str) -> ReadResult:
    return markdown.read("post.md", text.encode("utf-8"), OPTIONS)


def post(front: str, body: str = "Body.") -> str:
    return f"---\n{front}\n---\n{body}\n"


def test_full_article() -> None:
    result = read_fixture("sleep-and-mood.md")

    assert result.warnings == []
    [article] = result.articles
    assert article.title == "Why a Regular Bedtime Lifts Your Mood"
    assert article.published == datetime(2025, 7, 18, 23, 0, tzinfo=UTC)  # midnight BST
    assert article.category == "Sleep & mood"
    assert article.standfirst == (
        "A steady bedtime does more for mood than an extra hour at the weekend, say three small studies."
    )
    assert article.url == "https://example.org/sleep-and-mood/regular-bedtime"
    assert article.key == article.url
    assert article.tags == ("sleep", "mood", "habits")
    assert article.source == "sleep-and-mood.md"
    assert not article.undated


def test_body_paragraphs_subheadings_and_markup() -> None:
    [article] = read_fixture("sleep-and-mood.md").articles

    assert article.body == (
        Block(
            "paragraph",
            "Most of us treat sleep as a bank account: short in the week, paid back on "
            "Saturday. The studies say otherwise.",
        ),
        Block("subheading", "What the studies found"),
        Block(
            "paragraph",
            "People with a regular bedtime reported better mood. "
            "The effect held after counting total hours of sleep.",
        ),
        Block("paragraph", "Regularity mattered more than length."),
        Block("subheading", "How to start"),
        Block("paragraph", "Pick a time you can keep on most nights, even at weekends."),
        # fenced code: its "#" comment is no heading and its blank line no break
        Block(
            "paragraph",
            '# not a heading: a comment in code bedtime = "22:30" wake_time = "06:30"',
        ),
        Block(
            "paragraph",
            "See https://example.org/sleep-guide and the snake_case_name in the notes.",
        ),
    )


def test_naive_string_date_comma_tags_and_relative_url() -> None:
    name = "walking-breaks.md"
    result = read_fixture(name)

    [article] = result.articles
    assert article.published == datetime(2025, 7, 21, 7, 30, tzinfo=UTC)  # 08:30 BST
    assert article.tags == ("walking", "work")
    assert article.category == ""
    assert article.url == ""
    assert article.key == name
    assert result.warnings == [
        f"{name}:5: url '/mind-body/short-walks' is not an absolute http(s) URL; using the site's pattern"
    ]
    assert [b.text for b in article.body] == [
        "Sitting still for hours wears on mood as much as on backs.",
        "Try two short walks each afternoon.",
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-01-15", datetime(2025, 1, 15, 0, 0, tzinfo=UTC)),  # YAML date, GMT
        ("2025-07-19", datetime(2025, 7, 18, 23, 0, tzinfo=UTC)),  # YAML date, BST
        ("2025-07-19 08:30:00", datetime(2025, 7, 19, 7, 30, tzinfo=UTC)),  # naive
        ("2025-07-19T08:30:00+02:00", datetime(2025, 7, 19, 6, 30, tzinfo=UTC)),
        ("2025-07-19T08:30:00Z", datetime(2025, 7, 19, 8, 30, tzinfo=UTC)),
        ('"July 19, 2025"', datetime(2025, 7, 18, 23, 0, tzinfo=UTC)),
        ('"19 Jul 2025 10:00 -0400"', datetime(2025, 7, 19, 14, 0, tzinfo=UTC)),
    ],
)
def test_date_forms(value: str, expected: datetime) -> None:
    [article] = read_text(post(f"title: T\ndate: {value}")).articles
    assert article.published == expected
    assert article.published.tzinfo is UTC


def test_leading_blank_lines_and_bom_are_allowed() -> None:
    data = b"\xef\xbb\xbf\n\n" + post("title: T\ndate: 2025-07-19").encode()
    [article] = markdown.read("bom.md", data, OPTIONS).articles
    assert article.title == "T"


@pytest.mark.parametrize(
    ("text", "reason", "line"),
    [
        (post("date: 2025-07-19"), "front matter: title: expected the article's title", None),
        (post("title: ''\ndate: 2025-07-19"), "front matter: title: expected", 2),
        (post("title: T"), "front matter: date: expected a date such as 2025-07-19", None),
        (post("title: T\ndate: someday"), "front matter: date: expected a date", 3),
        (post("title: T\ndate: 2025"), "got 2025", 3),
        (post("title: T\ndate: 'July 2025'"), "got 'July 2025'", 3),
        (post("title: [a, b]\ndate: 2025-07-19"), "front matter: title: expected a single", 2),
        (post("title: T\ndate: 2025-07-19\ntags: {a: 1}"), "front matter: tags: expected a list", 4),
        (post("title: T\ndate: 2025-07-19\ncategory: [a]"), "front matter: category:", 4),
        (post('title: "unclosed\ndate: 2025-07-19'), "front matter: title: expected valid YAML", 2),
        (post("title: a: b\ndate: 2025-07-19"), "front matter: title: expected valid YAML", 2),
        (post("title: T\ndate: 2025-02-30"), "front matter: expected valid values", 1),
        (post("title: T\ndate: 0001-01-01T00:00:00+14:00"), "front matter: date: expected", 3),
        ("Just text, no front matter.\n", "front matter: expected a `---` block", 1),
        ("---\ntitle: T\ndate: 2025-07-19\n", "front matter: expected a closing `---`", 1),
    ],
)
def test_front_matter_errors(text: str, reason: str, line: int | None) -> None:
    with pytest.raises(SourceError) as caught:
        read_text(text)
    assert caught.value.reason.startswith(reason) or reason in caught.value.reason
    assert caught.value.line == line
    assert caught.value.source == "post.md"


def test_broken_yaml_fixture_names_key_and_line() -> None:
    with pytest.raises(SourceError) as caught:
        read_fixture("broken-front-matter.md")
    assert str(caught.value) == (
        "broken-front-matter.md:4: front matter: tags: expected valid YAML (did not find expected ',' or ']')"
    )


def test_undecodable_utf8_names_the_line() -> None:
    data = post("title: T\ndate: 2025-07-19", "Caf\xe9 au lait").encode("latin-1")
    with pytest.raises(SourceError) as caught:
        markdown.read("latin1.md", data, OPTIONS)
    assert caught.value.line == 5
    assert caught.value.reason == "not UTF-8 text (byte 0xe9); save the file as UTF-8"


def test_inline_markup_is_stripped() -> None:
    body = (
        "A **bold** and *italic* and __strong__ and _soft_ word, ~~gone~~ too.\n\n"
        "![a chart](chart.png) shows [the trend][ref] and <b>tags</b>; 2 * 3 * 4 stays.\n\n"
        "[ref]: https://example.org/trend\n\n"
        "1. first step\n2. second step\n\n"
        "# Heading with C# ##\n\n"
        "#hashtag is not a heading"
    )
    [article] = read_text(post("title: T\ndate: 2025-07-19", body)).articles
    assert [b.text for b in article.body] == [
        "A bold and italic and strong and soft word, gone too.",
        "a chart shows the trend and tags; 2 * 3 * 4 stays.",
        "first step second step",
        "Heading with C#",
        "#hashtag is not a heading",
    ]
    assert article.body[3].kind == "subheading"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300), st.booleans())
def test_read_returns_a_result_or_raises_source_error(text: str, with_header: bool) -> None:
    source = post("title: T\ndate: 2025-07-19", text) if with_header else text
    try:
        result = markdown.read("any.md", source.encode("utf-8", "surrogatepass"), OPTIONS)
    except SourceError:
        return
    assert isinstance(result, ReadResult)
    assert len(result.articles) == 1
