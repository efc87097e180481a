"""The Markdown reader: YAML or TOML front matter, Jekyll and Hugo conventions
(fixtures in tests/fixtures/markdown)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.core.errors import SourceError
from newsletter.core.models import Block
from newsletter.project import Project
from newsletter.sources.readers import ReadOptions, ReadResult, markdown, markdown_body
from tests.conftest import NOW as INGEST_NOW

MARKDOWN = Path(__file__).parent / "fixtures" / "markdown"
LONDON = ZoneInfo("Europe/London")
NOW = datetime(2025, 7, 25, 9, 0, tzinfo=UTC)
OPTIONS = ReadOptions(LONDON, NOW)
SITE = ReadOptions(LONDON, NOW, base_url="https://example.org")


def read_fixture(name: str, options: ReadOptions = OPTIONS) -> ReadResult:
    return markdown.read(name, (MARKDOWN / name).read_bytes(), options)


def read_text(text: str, options: ReadOptions = OPTIONS, name: str = "post.md") -> ReadResult:
    return markdown.read(name, text.encode("utf-8"), options)


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
    # None only for a draft, which says so.
    assert len(result.articles) == 1 or result.warnings[-1].endswith("; skipped")


# --- Jekyll and Hugo -------------------------------------------------------------


def test_jekyll_post_date_from_file_name_categories_and_liquid() -> None:
    name = "2025-07-14-evening-light.md"
    result = read_fixture(name, SITE)

    assert result.warnings == []
    [article] = result.articles
    assert article.title == "Dim the Lights Two Hours Before Bed"
    assert article.published == datetime(2025, 7, 13, 23, 0, tzinfo=UTC)  # midnight BST
    assert article.category == "Sleep"
    assert article.tags == ("Sleep", "Light", "evening")  # "sleep" and "light" again: dropped
    assert article.standfirst == "Bright screens late in the evening push back the body clock."
    assert article.url == "https://example.org/sleep/evening-light/"
    assert article.key == article.url
    assert article.body == (
        Block("paragraph", "Bright light in the evening tells the body it is still day."),
        Block("subheading", "What to do"),
        Block("paragraph", "Swap the ceiling light for a low lamp after dinner. See the checklist."),
        # {% highlight %} on lines of their own: one code paragraph, blank line and all
        Block("paragraph", 'dim_at = "21:00" lights_out = "23:00"'),
    )


def test_hugo_post_toml_front_matter_and_shortcodes() -> None:
    result = read_fixture("hugo-morning-stretch.md", SITE)

    assert result.warnings == []
    [article] = result.articles
    assert article.title == "A Five-Minute Morning Stretch"
    assert article.published == datetime(2025, 7, 22, 6, 15, tzinfo=UTC)
    assert article.category == "Movement"
    assert article.tags == ("Movement", "stretching", "mornings")
    assert article.standfirst == "Five minutes of stretching before breakfast loosens the back for the day."
    assert article.url == "https://example.org/movement/morning-stretch/"
    assert [b.text for b in article.body] == [
        "Start on the floor, before the coffee.",
        "Stop if anything hurts.",  # a paired {{% note %}}: its text kept
        "The routine",
        "1. cat stretch, 60 s 2. hip opener, 60 s each side",  # {{< highlight >}} pair: one block
        "Read more in the stretching guide.",
    ]


@pytest.mark.parametrize(
    ("name", "warning"),
    [
        ("hugo-draft.md", "hugo-draft.md: draft; skipped"),  # TOML, dated 2031
        ("2025-07-10-unpublished.md", "2025-07-10-unpublished.md: draft (published: false); skipped"),
    ],
)
def test_draft_fixtures_are_skipped_with_a_warning(name: str, warning: str) -> None:
    result = read_fixture(name)
    assert result.articles == []
    assert result.warnings == [warning]


@pytest.mark.parametrize(
    "front",
    [
        "title: T\ndate: 2025-07-19\ndraft: true",
        "title: T\ndate: 2025-07-19\ndraft: 'yes'",
        "title: T\ndate: 2025-07-19\npublished: false",
        "title: T\ndate: 2025-07-19\npublished: 'False'",
        "title: T\ndate: 2031-01-05\ndraft: true",  # future-dated and a draft
        "title: ''\ndate: someday\ndraft: true",  # a draft is not checked further
    ],
)
def test_drafts_are_skipped_whatever_the_form(front: str) -> None:
    result = read_text(post(front))
    assert result.articles == []
    [warning] = result.warnings
    assert warning in ("post.md: draft; skipped", "post.md: draft (published: false); skipped")


@pytest.mark.parametrize("front", ["draft: false", "published: true", "draft: 'no'", "published: 2025-07-19"])
def test_published_posts_are_kept(front: str) -> None:
    result = read_text(post(f"title: T\ndate: 2025-07-19\n{front}"))
    assert len(result.articles) == 1
    assert result.warnings == []


def test_future_dated_post_without_draft_is_kept() -> None:
    # The as-of build rules hide it until its date; the reader keeps it.
    [article] = read_text(post("title: T\ndate: 2031-01-05\ndraft: false")).articles
    assert article.published == datetime(2031, 1, 5, 0, 0, tzinfo=UTC)


def test_unreadable_draft_flag_is_an_error() -> None:
    with pytest.raises(SourceError) as caught:
        read_text(post("title: T\ndate: 2025-07-19\ndraft: maybe"))
    assert caught.value.reason == "front matter: draft: expected true or false, got 'maybe'"
    assert caught.value.line == 4


@pytest.mark.parametrize(
    ("front", "category", "tags"),
    [
        ("categories: [Sleep, Mood]", "Sleep", ("Sleep", "Mood")),
        ("categories: sleep mood", "sleep", ("sleep", "mood")),  # Jekyll: split on spaces
        ("categories: Sleep & mood, Habits", "Sleep & mood", ("Sleep & mood", "Habits")),
        ("categories: Sleep\ntags: [sleep, Naps, naps]", "Sleep", ("Sleep", "Naps")),
        ("category: Health\ncategories: [Sleep]\ntags: rest", "Health", ("Sleep", "rest")),
        ("category: Health", "Health", ()),
        ("tags: [2025, rest]", "", ("2025", "rest")),
        ("categories: []", "", ()),
    ],
)
def test_categories_and_tags(front: str, category: str, tags: tuple[str, ...]) -> None:
    [article] = read_text(post(f"title: T\ndate: 2025-07-19\n{front}")).articles
    assert article.category == category
    assert article.tags == tags


def test_categories_must_be_a_list_or_text() -> None:
    with pytest.raises(SourceError) as caught:
        read_text(post("title: T\ndate: 2025-07-19\ncategories: {a: 1}"))
    assert caught.value.reason.startswith("front matter: categories: expected a list")
    assert caught.value.line == 4


@pytest.mark.parametrize(
    ("name", "front", "expected"),
    [
        ("2025-07-19-slug.md", "", datetime(2025, 7, 18, 23, 0, tzinfo=UTC)),
        ("_posts/2025-1-5-slug.markdown", "", datetime(2025, 1, 5, 0, 0, tzinfo=UTC)),
        ("2025-07-19-slug.md", "date: 2025-07-20 08:30", datetime(2025, 7, 20, 7, 30, tzinfo=UTC)),
    ],
)
def test_date_from_jekyll_file_name(name: str, front: str, expected: datetime) -> None:
    [article] = read_text(post(f"title: T\n{front}"), name=name).articles
    assert article.published == expected


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("post.md", "front matter: date: expected a date such as 2025-07-19"),
        ("2025-02-30-slug.md", "the file name's '2025-02-30' is no date"),
    ],
)
def test_no_date_in_front_matter_or_file_name(name: str, reason: str) -> None:
    with pytest.raises(SourceError) as caught:
        read_text(post("title: T"), name=name)
    assert reason in caught.value.reason
    assert "2025-07-19-slug.md" in caught.value.reason or "file name's" in caught.value.reason


@pytest.mark.parametrize(
    ("front", "standfirst"),
    [
        ("summary: S\ndescription: D\nexcerpt: E", "S"),
        ("description: D\nexcerpt: E", "D"),
        ("excerpt: E", "E"),
        ("summary: ''\nexcerpt: 'An *excerpt* {{ page.x }}'", "An excerpt"),
        ("", ""),
    ],
)
def test_standfirst_prefers_summary_then_description_then_excerpt(front: str, standfirst: str) -> None:
    [article] = read_text(post(f"title: T\ndate: 2025-07-19\n{front}")).articles
    assert article.standfirst == standfirst


@pytest.mark.parametrize(
    ("front", "url", "warning"),
    [
        ("url: https://other.example/a", "https://other.example/a", None),
        ("permalink: /blog/x/", "https://example.org/blog/x/", None),
        ("permalink: blog/two words/", "https://example.org/blog/two%20words/", None),
        ("url: /a/\npermalink: /b/", "https://example.org/a/", None),
        ("permalink: /blog/:title/", "", "post.md:4: permalink '/blog/:title/' has Jekyll placeholders"),
        ("url: javascript:alert(1)", "", "post.md:4: url 'javascript:alert(1)' is not an absolute"),
        ("permalink: //evil.example/x", "", "post.md:4: permalink '//evil.example/x' is not an absolute"),
    ],
)
def test_permalink_and_url(front: str, url: str, warning: str | None) -> None:
    result = read_text(post(f"title: T\ndate: 2025-07-19\n{front}"), SITE)
    [article] = result.articles
    assert article.url == url
    assert article.key == (url or "post.md")
    if warning is None:
        assert result.warnings == []
    else:
        [shown] = result.warnings
        assert shown.startswith(warning) and shown.endswith("; using the site's pattern")


def test_relative_url_without_base_url_falls_back_to_the_pattern() -> None:
    result = read_text(post("title: T\ndate: 2025-07-19\npermalink: /blog/x/"))
    assert result.articles[0].url == ""
    assert result.warnings == [
        "post.md:4: permalink '/blog/x/' is not an absolute http(s) URL; using the site's pattern"
    ]


# --- image, author, slug ---------------------------------------------------------


@pytest.mark.parametrize(
    ("front", "image"),
    [
        ("image: https://cdn.example.org/a.jpg", "https://cdn.example.org/a.jpg"),
        ("image: /img/a.jpg", "https://example.org/img/a.jpg"),
        ("image: img/two words.jpg", "https://example.org/img/two%20words.jpg"),
        ("cover: /img/c.jpg", "https://example.org/img/c.jpg"),
        ("featured_image: /img/f.jpg", "https://example.org/img/f.jpg"),
        ("images: [/img/first.jpg, /img/second.jpg]", "https://example.org/img/first.jpg"),
        ("cover: /img/c.jpg\nimage: /img/a.jpg\nimages: [/img/i.jpg]", "https://example.org/img/a.jpg"),
        ("featured_image: /img/f.jpg\ncover: /img/c.jpg", "https://example.org/img/c.jpg"),
        ("cover:\n  image: /img/papermod.jpg\n  alt: A cat", "https://example.org/img/papermod.jpg"),
        ("image:\n  path: /img/seo.png\n  width: 1200", "https://example.org/img/seo.png"),
        ("images:\n  - src: /img/listed.png", "https://example.org/img/listed.png"),
        ("image: ''\ncover: /img/c.jpg", "https://example.org/img/c.jpg"),  # empty: no image key
        ("image: 42", ""),  # not text: no image, not an error
        ("images: []", ""),
        ("", ""),
    ],
)
def test_image_keys(front: str, image: str) -> None:
    result = read_text(post(f"title: T\ndate: 2025-07-19\n{front}"), SITE)
    assert result.articles[0].image == image
    assert result.warnings == []


@pytest.mark.parametrize(
    ("front", "warning"),
    [
        (
            "image: javascript:alert(1)",
            "post.md:4: image 'javascript:alert(1)' is not an absolute http(s) URL",
        ),
        (
            "image: 'data:image/png;base64,iVBORw0KGgo='",
            "post.md:4: image 'data:image/png;base64,iVBORw0KGgo='",
        ),
        ("cover: //evil.example/x.png", "post.md:4: cover '//evil.example/x.png' is not an absolute"),
        ("images: ['ftp://f.example.org/a.png']", "post.md:4: images 'ftp://f.example.org/a.png' is not"),
    ],
)
def test_an_image_that_is_no_web_url_is_dropped_with_a_warning(front: str, warning: str) -> None:
    result = read_text(post(f"title: T\ndate: 2025-07-19\n{front}"), SITE)
    assert result.articles[0].image == ""
    [shown] = result.warnings
    assert shown.startswith(warning) and shown.endswith("; no image from it")

    fallback = read_text(post(f"title: T\ndate: 2025-07-19\n{front}\nfeatured_image: /ok.png"), SITE)
    assert fallback.articles[0].image == "https://example.org/ok.png"


def test_a_relative_image_without_base_url_is_dropped_with_a_warning() -> None:
    result = read_text(post("title: T\ndate: 2025-07-19\nimage: /img/a.jpg"))
    assert result.articles[0].image == ""
    assert result.warnings == [
        "post.md:4: image '/img/a.jpg' is not an absolute http(s) URL; no image from it"
    ]


def test_toml_images_list() -> None:
    text = '+++\ntitle = "T"\ndate = 2025-07-19\nimages = ["/img/hugo.png"]\n+++\nBody.\n'
    assert read_text(text, SITE).articles[0].image == "https://example.org/img/hugo.png"


@pytest.mark.parametrize(
    ("front", "author"),
    [
        ("author: Jo Bloggs", "Jo Bloggs"),
        ("author: '  Jo\n  Bloggs  '", "Jo Bloggs"),
        ("authors: [Ann Lee, Bo]", "Ann Lee"),
        ("author:\n  name: Jo Bloggs\n  email: jo@example.org", "Jo Bloggs"),
        ("authors:\n  - name: Ann Lee\n  - name: Bo", "Ann Lee"),
        ("author: [Ann Lee, Bo]", "Ann Lee"),
        ("author: Jo Bloggs <jo@example.org>", "Jo Bloggs"),
        ("author: jo@example.org (Jo Bloggs)", "Jo Bloggs"),
        ("author: <b>Jo</b> &amp; Ann", "Jo & Ann"),
        ("author: ''\nauthors: [Ann]", "Ann"),
        ("author: 7", ""),
        ("author: {email: jo@example.org}", ""),
        ("", ""),
    ],
)
def test_author_forms(front: str, author: str) -> None:
    result = read_text(post(f"title: T\ndate: 2025-07-19\n{front}"))
    assert result.articles[0].author == author
    assert result.warnings == []


def test_slug_is_kept_and_a_url_still_wins() -> None:
    [slugged] = read_text(post("title: A Long Title\ndate: 2025-07-19\nslug: short")).articles
    [both] = read_text(post("title: T\ndate: 2025-07-19\nslug: short\nurl: /blog/x/"), SITE).articles
    assert (slugged.slug, slugged.url, slugged.key) == ("short", "", "post.md")
    assert (both.slug, both.url) == ("short", "https://example.org/blog/x/")


def test_slug_must_be_one_line_of_text() -> None:
    with pytest.raises(SourceError, match=r"slug: expected a single line of text") as caught:
        read_text(post("title: T\ndate: 2025-07-19\nslug: [a, b]"))
    assert caught.value.line == 4


def write_post(folder: Path, name: str, front: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"---\n{front}\ndate: 2025-07-19\n---\n\nSome text.\n", encoding="utf-8")
    return path


def test_ingest_uses_the_slug_and_a_slug_collision_gets_a_suffix(project: Project, tmp_path: Path) -> None:
    posts = tmp_path / "posts"
    write_post(posts, "a.md", "title: Why Sleep Matters So Much\nslug: sleep\nimage: /img/a.jpg\nauthor: Jo")
    write_post(posts, "b.md", "title: Another Title Entirely\nslug: sleep")
    write_post(posts, "c.md", "title: Sleep")  # the title's slug: taken already
    write_post(posts, "d.md", "title: Linked\nslug: linked-slug\nurl: https://example.org/own/")
    report = project.ingest([str(posts)], INGEST_NOW, "Sleep")
    assert report.errors == []
    stored = {Path(s.article.source).name: s.article for s in project.store.articles()}
    assert {name: a.url for name, a in stored.items()} == {
        "a.md": "https://example.org/sleep/sleep",
        "b.md": "https://example.org/sleep/sleep-2",
        "c.md": "https://example.org/sleep/sleep-3",
        "d.md": "https://example.org/own/",
    }
    assert (stored["a.md"].image, stored["a.md"].author) == ("https://example.org/img/a.jpg", "Jo")
    again = project.ingest([str(posts)], INGEST_NOW, "Sleep")
    assert (again.counts.added, again.counts.updated, again.counts.unchanged) == (0, 0, 4)


@pytest.mark.parametrize(
    ("body", "texts"),
    [
        ("A {{< youtube abc >}} B", ["A B"]),
        ('{{< figure src="x.jpg"\n  caption="multi-line" >}}\n\nAfter.', ["After."]),
        ("{{% aside %}}\nKept **inside**.\n{{% /aside %}}", ["Kept inside."]),
        ('[guide]({{< relref "g.md" >}}) and {{</* escaped */>}}', ["guide and"]),
        ("A {{ site.title }} B {%- include x.html -%} C {% raw %}D{% endraw %}", ["A B C D"]),
        ("Kept.\n{% comment %}\nSecret.\n\nMore secret.\n{% endcomment %}\nAlso.", ["Kept.", "Also."]),
        ("Kept.\n{% comment %}\nNever closed.", ["Kept.", "Never closed."]),
        ("{{< highlight go >}}\na := 1\n\nb := 2\n{{< /highlight >}}", ["a := 1 b := 2"]),
        ("{{< highlight go >}}\nx\n\ny", ["x", "y"]),  # never closed: no code fence
        ("{{<{{< x >}} >}} nested", ["nested"]),
        ("Text <!--more--> on\n\n<!-- a\nnote -->\n\nEnd", ["Text on", "End"]),
        ("Set {{ and }} braces", ["Set braces"]),
        ("A lone {{< brace", ["A lone {{< brace"]),  # no closing: left as text
    ],
)
def test_shortcodes_and_liquid_tags_are_removed(body: str, texts: list[str]) -> None:
    [article] = read_text(post("title: T\ndate: 2025-07-19", body)).articles
    assert [b.text for b in article.body] == texts


def test_html_in_the_body_stays_text() -> None:
    body = '<p onclick="x()">Hi <script>alert(1)</script> <a href="javascript:y">there</a></p>'
    [article] = read_text(post("title: T\ndate: 2025-07-19", body)).articles
    assert [b.text for b in article.body] == ["Hi alert(1) there"]
    assert all("<" not in b.text and ">" not in b.text for b in article.body)


def test_toml_front_matter_keys_and_dates() -> None:
    text = (
        '+++\ntitle = "T"\ndate = 2025-07-19\ntags = ["a", "b"]\n'
        '[params]\nsummary = "not top level"\n+++\nBody.\n'
    )
    [article] = read_text(text).articles
    assert article.published == datetime(2025, 7, 18, 23, 0, tzinfo=UTC)
    assert article.tags == ("a", "b")
    assert article.standfirst == ""
    assert [b.text for b in article.body] == ["Body."]


@pytest.mark.parametrize(
    ("text", "reason", "line"),
    [
        (
            '+++\n\ntitle = "T"\ndate = oops\n+++\n',
            "front matter: date: expected valid TOML (Invalid value)",
            4,
        ),
        ('\n+++\ntitle = "T\n+++\n', "front matter: title: expected valid TOML (Illegal character", 3),
        ('+++\ntitle = "T"\nsummary = """open\n+++\n', "front matter: summary: expected valid TOML", 3),
        ('+++\ntitle = "T"\ndate = 2025-07-19\n', "front matter: expected a closing `+++` line", 1),
        ('+++\ntitle = "T"\n+++\n', "front matter: date: expected a date", None),
        ('+++\ntitle = "T"\ndate = 08:30:00\n+++\n', "front matter: date: expected", 3),
        ('+++\ntitle = "T"\ndate = 2025-07-19\ndraft = 1\n+++\n', "front matter: draft: expected true", 4),
    ],
)
def test_toml_front_matter_errors(text: str, reason: str, line: int | None) -> None:
    with pytest.raises(SourceError) as caught:
        read_text(text)
    assert caught.value.reason.startswith(reason)
    assert caught.value.line == line


TEMPLATE_PIECES = st.sampled_from(
    ["{{<", ">}}", "{{%", "%}}", "{%", "%}", "{{", "}}", "{", "}", "<", ">", "%", "/", "-", " x ", "\n"]
    + ["highlight", "/highlight", "endhighlight", "comment", "endcomment", "*/", "/*"]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(TEMPLATE_PIECES, max_size=8).map("".join))
def test_no_template_tag_survives(text: str) -> None:
    assert markdown_body._TEMPLATE_TAG.search(markdown_body.strip_templates(text)) is None
