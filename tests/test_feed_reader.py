"""The RSS/Atom reader on our own fixtures (tests/fixtures/feeds, see make_fixtures.py).

Each fixture reproduces a quirk of a real-world feed: legacy encodings,
naive or non-English dates, duplicate categories, malformed XML, scripts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import inscriptis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.core.errors import SourceError
from newsletter.core.models import Article
from newsletter.sources.readers import ReadOptions, ReadResult, feed

FEEDS = Path(__file__).parent / "fixtures" / "feeds"
LONDON = ZoneInfo("Europe/London")
NOW = datetime(2025, 7, 20, 12, 0, tzinfo=UTC)


def read_fixture(name: str, zone: ZoneInfo = LONDON) -> ReadResult:
    return feed.read(name, (FEEDS / name).read_bytes(), ReadOptions(zone, NOW))


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def all_text(article: Article) -> str:
    return article.text + "\n" + "\n".join(article.tags)


# --- encodings --------------------------------------------------------------


def test_declared_iso_8859_1_decodes_latin1_bytes() -> None:
    data = (FEEDS / "latin1-declared.xml").read_bytes()
    assert "Größere".encode("latin-1") in data  # the fixture really is Latin-1

    result = read_fixture("latin1-declared.xml")

    assert [a.title for a in result.articles] == [
        "Größere Brücken für Fußgänger in Köln",
        "Bäckerei Müller öffnet am Sonntag",
    ]
    first = result.articles[0]
    assert first.published == utc(2017, 12, 9, 14, 44)  # +0100
    assert [b.text for b in first.body] == [
        "Die Stadt plant breitere Wege über den Rhein.",
        "Anwohner äußern sich überwiegend positiv über die Pläne.",
    ]
    assert first.key == "https://werkstatt.example.de/1712/101.html"  # the guid
    assert result.warnings == []


def test_declared_gb2312_decodes_and_reads_naive_slash_dates_in_site_zone() -> None:
    data = (FEEDS / "gb2312-naive-dates.xml").read_bytes()
    assert "春天的公园".encode("gb2312") in data
    assert b"\r\n" in data

    shanghai = read_fixture("gb2312-naive-dates.xml", ZoneInfo("Asia/Shanghai"))
    london = read_fixture("gb2312-naive-dates.xml", LONDON)

    assert [a.title for a in shanghai.articles] == ["春天的公园，湖边的柳树", "周末的书店"]
    assert shanghai.articles[0].standfirst == "今天去公园散步，湖边的柳树发芽了。"
    # 2020/1/10 14:33:00 is 14:33 local, not feedparser's 2020-11-01T00:00Z
    assert shanghai.articles[0].published == utc(2020, 1, 10, 6, 33)
    assert london.articles[0].published == utc(2020, 1, 10, 14, 33)
    assert shanghai.articles[1].published == utc(2020, 1, 9, 0, 5)
    assert not any(a.undated for a in shanghai.articles)
    assert shanghai.articles[0].url == "http://bbs.example.cn/dispbbs.asp?BoardID=3&ID=1001"


def test_undeclared_cp1252_portuguese_dates_and_channel_category() -> None:
    name = "cp1252-undeclared-portuguese.xml"
    assert (FEEDS / name).read_bytes().startswith(b"<rss>\n")

    result = read_fixture(name)

    first, second = result.articles
    assert first.title == "Simulações mostram “trânsito” mais rápido – na ponte"
    assert first.standfirst == "A prefeitura divulgou as simulações da obra de € 5 milhões."
    assert second.title == "Padaria da praça ganha prêmio de melhor pão"
    # "Seg, 24 Set 2018 19:42:40 -0300": dateutil and feedparser give up, dateparser reads it
    assert first.published == utc(2018, 9, 24, 22, 42, 40)
    assert second.published == utc(2018, 9, 24, 21, 10)
    assert not any(a.undated for a in result.articles)
    assert [a.category for a in result.articles] == ["Notícias", "Notícias"]  # the channel's
    assert first.tags == ()  # the channel's category is not an entry tag
    assert len(result.warnings) == 1
    assert result.warnings[0].startswith(f"{name}: feed is malformed (document declared as utf-8")
    assert result.warnings[0].endswith("; read 2 entries anyway")


# --- malformed and non-feeds -------------------------------------------------


def test_undefined_entity_keeps_entries_with_one_warning() -> None:
    name = "undefined-entity.xml"
    lines = (FEEDS / name).read_text(encoding="utf-8").splitlines()
    line = next(i for i, text in enumerate(lines, 1) if "&uuml;" in text)

    result = read_fixture(name)

    assert len(result.articles) == 2
    assert "Eisen Flügel" in result.articles[0].standfirst
    assert result.articles[0].standfirst.startswith("The studio's adaptation")
    assert result.warnings == [f"{name}:{line}: feed is malformed (undefined entity); read 2 entries anyway"]


def test_html_page_is_not_a_feed() -> None:
    with pytest.raises(SourceError) as caught:
        read_fixture("not-a-feed.html")
    assert caught.value.reason.startswith("not an RSS or Atom feed")
    assert caught.value.source == "not-a-feed.html"


def test_broken_feed_without_entries_names_the_line() -> None:
    with pytest.raises(SourceError) as caught:
        read_fixture("broken-no-entries.xml")
    assert caught.value.reason == "not an RSS or Atom feed: duplicate attribute"
    assert caught.value.line == 6
    assert str(caught.value).startswith("broken-no-entries.xml:6: ")


@pytest.mark.parametrize("data", [b"", b"   \n", b"\x00\xff garbage", b'{"items": []}'])
def test_empty_or_garbage_is_not_a_feed(data: bytes) -> None:
    with pytest.raises(SourceError, match="not an RSS or Atom feed"):
        feed.read("junk.xml", data, ReadOptions(LONDON, NOW))


def test_bytes_naming_a_file_are_data_not_a_path(tmp_path: Path) -> None:
    # feedparser.parse(bytes) would open a file of that name; read() must not.
    path = tmp_path / "feed.xml"
    path.write_bytes((FEEDS / "latin1-declared.xml").read_bytes())
    with pytest.raises(SourceError, match="not an RSS or Atom feed"):  # opened, it would read 2 entries
        feed.read("path.xml", str(path).encode(), ReadOptions(LONDON, NOW))


def test_inscriptis_itself_drops_script_and_style() -> None:
    # feedparser's sanitizer removes them first; this is the second line of defence.
    text = inscriptis.get_text("<p>kept</p><script>var leaked = 1;</script><style>p{}</style><p>too</p>")
    assert "leaked" not in text
    assert "p{}" not in text
    assert text.split() == ["kept", "too"]


def test_valid_feed_without_items_reads_nothing_with_a_warning() -> None:
    data = b'<rss version="2.0"><channel><title>Quiet</title></channel></rss>'
    result = feed.read("quiet.xml", data, ReadOptions(LONDON, NOW))
    assert result.articles == []
    assert result.warnings == ["quiet.xml: feed has no entries"]


# --- categories, text, URLs --------------------------------------------------


def test_atom_duplicate_categories_are_deduped_and_scripts_dropped() -> None:
    result = read_fixture("atom-duplicate-categories.xml")

    widget, planting = result.articles
    assert widget.title == "Edit This Site & Its Widget"
    assert widget.category == "tools"
    assert widget.tags == ("tools", "widgets")
    assert planting.category == "Garden"  # term="" falls back to the label
    assert widget.published == utc(2022, 12, 7, 1, 30)  # +08:00
    assert widget.standfirst == "A tiny widget that lets you restyle this page."
    assert [b.text for b in widget.body] == [
        "A tiny widget that lets you restyle this page.",
        "Paste your CSS into the box and press Apply.",
        'fetch(url + "${API_KEY}")',
    ]
    for article in result.articles:
        for hidden in ("SECRET-TOKEN", "INJECTED", "hotpink", "<script"):
            assert hidden not in all_text(article)


def test_rss_ist_offsets_duplicate_categories_and_relative_links() -> None:
    result = read_fixture("rss-ist-relative-links.xml")

    features, installation = result.articles
    assert features.published == utc(2016, 6, 7, 10, 10)  # 15:40 +0530
    assert installation.published == utc(2016, 6, 6, 3, 30)
    assert features.tags == ("Jekyll", "Features", "Theme")
    assert features.category == "Jekyll"
    assert features.url == "https://yamuna.example.in/blog/theme-features/"
    assert installation.url == "https://yamuna.example.in/posts/installation.html"
    assert features.key == features.url  # no guid: the link identifies it
    # entity-escaped HTML becomes text; the escaped code sample stays visible
    assert features.standfirst == "The features of this theme's layout. Write <b> for bold."
    assert [b.text for b in features.body] == [
        "The features of this theme's layout.",
        "Write <b> for bold.",
    ]


def test_relative_channel_link_resolves_against_the_feed_url() -> None:
    data = (
        b'<rss version="2.0"><channel><title>t</title><link>/</link>'
        b"<item><title>One</title><link>/blog/one/</link>"
        b"<pubDate>Tue, 07 Jun 2016 15:40:00 +0530</pubDate></item></channel></rss>"
    )
    options = ReadOptions(LONDON, NOW)

    from_url = feed.read("https://blog.example.com/feed.xml", data, options)
    from_file = feed.read("feeds/blog.xml", data, options)

    assert from_url.articles[0].url == "https://blog.example.com/blog/one/"
    assert from_file.articles[0].url == ""  # the site's URL pattern decides


def test_relative_link_against_an_absolute_channel_link_not_the_feed_url() -> None:
    data = (
        b'<rss version="2.0"><channel><title>t</title><link>https://www.example.com/blog/</link>'
        b"<item><title>One</title><link>2024/one.html</link></item>"
        b"<item><title>Two</title><link>../about/</link></item></channel></rss>"
    )
    result = feed.read("https://feeds.example.net/x/rss", data, ReadOptions(LONDON, NOW))
    assert [a.url for a in result.articles] == [
        "https://www.example.com/blog/2024/one.html",
        "https://www.example.com/about/",
    ]


def test_xml_base_on_channel_and_item_wins_over_the_channel_link() -> None:
    # feedparser applies xml:base to entry links itself (RSS and Atom alike)
    result = read_fixture("podcast-itunes-xml-base.xml")

    market, music = result.articles
    assert market.url == "https://radio.example.fr/emissions/marche-du-dimanche/"  # channel xml:base
    assert music.url == "https://archives.example.fr/2018/fete-musique.html"  # the item's xml:base
    assert market.key == "rq-2018-0925"


def test_relative_xml_base_then_channel_link_then_the_feeds_self_link() -> None:
    # Read from a file: xml:base "/notes/" and the alternate link "/" are both
    # relative; the rel="self" link says where the feed (so the site) lives.
    result = read_fixture("atom-relative-xml-base.xml")

    crystals, socks = result.articles
    assert crystals.url == "https://lab.example.org/notes/crystals.html"
    assert socks.url == "https://lab.example.org/robots/socks.html"


@pytest.mark.parametrize(
    ("base", "link"),
    [
        (b"", b"javascript:alert(1)"),
        (b"", b"mailto:editor@example.com"),
        (b' xml:base="ftp://files.example.com/"', b"one.txt"),
        (b"", b"data:text/html,hi"),
    ],
)
def test_a_link_that_cannot_be_made_web_is_left_empty(base: bytes, link: bytes) -> None:
    data = (
        b'<rss version="2.0"><channel' + base + b"><title>t</title><link>https://s.example.com/</link>"
        b"<item><title>One</title><link>" + link + b"</link></item></channel></rss>"
    )
    result = feed.read("https://s.example.com/feed.xml", data, ReadOptions(LONDON, NOW))
    assert result.articles[0].url == ""


def test_itunes_category_is_the_fallback_and_entry_tags_come_first() -> None:
    market, music = read_fixture("podcast-itunes-xml-base.xml").articles

    assert (market.category, market.tags) == ("Society & Culture", ())  # top level, not "Documentary"
    assert (music.category, music.tags) == ("Musique", ("Musique",))


def test_atom_feed_category_is_the_fallback_and_every_entry_tag_is_kept() -> None:
    crystals, socks = read_fixture("atom-relative-xml-base.xml").articles

    assert (crystals.category, crystals.tags) == ("science", ())
    assert (socks.category, socks.tags) == ("robots", ("robots", "home"))


def test_channel_category_comes_before_itunes_category() -> None:
    data = (
        b'<rss version="2.0" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"><channel>'
        b'<title>t</title><itunes:category text="Technology"/><category>  Tech\tNews </category>'
        b"<item><title>One</title></item></channel></rss>"
    )
    result = feed.read("t.xml", data, ReadOptions(LONDON, NOW))
    assert result.articles[0].category == "Tech News"


def test_the_sources_default_category_comes_before_the_feeds_own() -> None:
    data = (
        b"<rss version='2.0'><channel><title>t</title><category>Tech</category>"
        b"<item><title>One</title></item><item><title>Two</title><category>Sport</category></item>"
        b"</channel></rss>"
    )
    one, two = feed.read("t.xml", data, ReadOptions(LONDON, NOW, category="News")).articles
    assert (one.category, two.category) == ("News", "Sport")  # the entry's own tag still first


def test_feed_category_markup_stays_text() -> None:
    data = (
        b'<rss version="2.0"><channel><title>t</title>'
        b"<category>&lt;script&gt;alert(1)&lt;/script&gt; &amp;amp; more</category>"
        b"<item><title>One</title></item></channel></rss>"
    )
    result = feed.read("t.xml", data, ReadOptions(LONDON, NOW))
    assert result.articles[0].category == "<script>alert(1)</script> &amp; more"


def test_hugo_feed_without_categories_and_double_escaped_ellipsis() -> None:
    result = read_fixture("hugo-no-categories.xml")

    first = result.articles[0]
    assert first.title == "웹소켓 이전의 양방향 통신"
    assert first.category == ""
    assert first.tags == ()
    assert first.published == utc(2026, 1, 12, 12, 18, 15)  # +0900
    assert first.standfirst == "폴링과 롱 폴링을 정리했습니다…"
    assert "&hellip;" not in first.standfirst
    assert result.articles[1].published == utc(2026, 1, 3, 10, 0)


def test_medium_cdata_feed_drops_script_embeds() -> None:
    result = read_fixture("medium-cdata-script.xml")

    first = result.articles[0]
    assert first.title == "Harbour closes its first funding round"
    assert first.published == utc(2018, 11, 19, 8, 10, 26)  # pubDate GMT, not atom:updated
    assert (first.category, first.tags) == ("bitcoin", ("bitcoin", "funding"))
    assert first.key == "https://medium.example.com/p/417d"
    paragraphs = [b.text for b in first.body]
    assert "Thanks to everyone who believed in us." in paragraphs
    assert "Big news today!" in paragraphs
    for hidden in ("INJECTED", "document.write", "widgets.js", "<script"):
        assert hidden not in all_text(first)


def test_lowercase_pubdate_with_iso_offset() -> None:
    result = read_fixture("lowercase-pubdate.xml")

    first = result.articles[0]
    assert first.title == "Вечернее шоу: «3 сентября»"
    assert first.published == utc(2022, 9, 3, 6, 37, 11)
    assert not first.undated


def test_untitled_empty_and_undated_entries() -> None:
    name = "edge-cases.xml"
    result = read_fixture(name)

    untitled, marked_up = result.articles
    assert untitled.title == "One two three four five six seven eight nine ten…"
    assert marked_up.title == "A bold claim & more"
    assert marked_up.url == ""  # javascript: is not a web link
    assert marked_up.undated
    assert marked_up.published == NOW
    assert result.warnings == [
        f"{name}: skipped an entry with no title and no text (empty-1)",
        f"{name}: entry 'A bold claim & more' has no usable date "
        "('sometime next week'); using first-seen time",
    ]


def test_named_rfc822_zones_are_not_read_as_site_time() -> None:
    data = (
        b'<rss version="2.0"><channel><title>t</title>'
        b"<item><title>East</title><pubDate>Mon, 19 Nov 2018 08:10:26 EST</pubDate></item>"
        b"</channel></rss>"
    )
    result = feed.read("est.xml", data, ReadOptions(LONDON, NOW))
    assert result.articles[0].published == utc(2018, 11, 19, 13, 10, 26)


def test_french_dates_with_an_offset_and_naive_in_the_site_zone() -> None:
    market, music = read_fixture("podcast-itunes-xml-base.xml").articles
    assert market.published == utc(2018, 9, 25, 6, 0)  # "mar., 25 sept. 2018 08:00:00 +0200"
    assert music.published == utc(2018, 6, 21, 19, 30)  # "jeudi 21 juin 2018 20:30", London in BST
    assert not market.undated and not music.undated


def rss_dated(pub_date: str) -> bytes:
    return (
        '<rss version="2.0"><channel><title>t</title><item><title>One</title>'
        f"<pubDate>{pub_date}</pubDate></item></channel></rss>"
    ).encode()


@pytest.mark.parametrize(
    ("pub_date", "expected"),
    [
        ("Mi, 24 Okt 2018 19:42:40 +0200", utc(2018, 10, 24, 17, 42, 40)),  # German
        ("Dienstag, 4. Dezember 2018 10:00:00 MEZ", utc(2018, 12, 4, 9, 0)),
        ("Seg, 24 Set 18 19:42:40 -0300", utc(2018, 9, 24, 22, 42, 40)),  # two-digit year: the past
        ("24 Set 2018", utc(2018, 9, 23, 23, 0)),  # date only: midnight in the site's zone
    ],
)
def test_other_languages_parse(pub_date: str, expected: datetime) -> None:
    article = feed.read("d.xml", rss_dated(pub_date), ReadOptions(LONDON, NOW)).articles[0]
    assert (article.published, article.undated) == (expected, False)


@pytest.mark.parametrize(
    "pub_date",
    [
        "Seg, 32 Set 2018 19:42:40 -0300",  # no 32nd
        "ontem",  # "yesterday": never read against the clock
        "há 2 dias",
        "2 days ago",
        "24 Set",  # no year: not guessed
        "Set 2018",  # no day
    ],
)
def test_unparseable_or_relative_dates_stay_undated_with_a_warning(pub_date: str) -> None:
    result = feed.read("d.xml", rss_dated(pub_date), ReadOptions(LONDON, NOW))
    assert result.articles[0].undated
    assert result.articles[0].published == NOW
    assert result.warnings == [f"d.xml: entry 'One' has no usable date ({pub_date!r}); using first-seen time"]


def test_all_datetimes_are_aware_utc() -> None:
    feeds = [p for p in sorted(FEEDS.glob("*.xml")) if p.name != "broken-no-entries.xml"]
    assert len(feeds) >= 10  # the fixtures are there: the loop below is not vacuous
    for path in feeds:
        articles = read_fixture(path.name).articles
        assert articles, path.name
        for article in articles:
            assert article.published.tzinfo is UTC, path.name


# --- images ----------------------------------------------------------------------

MEDIA = 'xmlns:media="http://search.yahoo.com/mrss/"'
CONTENT = 'xmlns:content="http://purl.org/rss/1.0/modules/content/"'


def rss(item: str, channel: str = "", link: str = "https://s.example.com/blog/") -> bytes:
    """A one-item RSS feed; `item` and `channel` are extra XML for the item and the channel."""
    return (
        f'<rss version="2.0" {MEDIA} {CONTENT}><channel><title>t</title><link>{link}</link>{channel}'
        f"<item><title>One</title>{item}</item></channel></rss>"
    ).encode()


def first(data: bytes, source: str = "https://s.example.com/feed.xml") -> Article:
    return feed.read(source, data, ReadOptions(LONDON, NOW)).articles[0]


ALL_KINDS = (
    '<media:content url="https://cdn.example.com/ep.mp3" type="audio/mpeg"/>'
    '<media:content url="https://cdn.example.com/a.jpg" medium="image"/>'
    '<media:thumbnail url="https://cdn.example.com/thumb.jpg"/>'
    '<enclosure url="https://cdn.example.com/e.png" type="image/png" length="1"/>'
    '<description>&lt;img src="https://cdn.example.com/inline.jpg"&gt;</description>'
)


def test_media_content_of_an_image_type_comes_first_and_audio_is_passed_over() -> None:
    assert first(rss(ALL_KINDS)).image == "https://cdn.example.com/a.jpg"


@pytest.mark.parametrize(
    ("media", "image"),
    [
        ('<media:content url="https://c.example.com/p" type="image/webp"/>', "https://c.example.com/p"),
        ('<media:content url="https://c.example.com/p" type="IMAGE/JPEG"/>', "https://c.example.com/p"),
        ('<media:content url="https://c.example.com/p.JPG?w=600"/>', "https://c.example.com/p.JPG?w=600"),
        ('<media:content url="https://c.example.com/clip.mp4"/>', ""),  # no type, no picture's name
        ('<media:content url="https://c.example.com/p.jpg" medium="video"/>', ""),  # says it is not
        ('<media:group><media:content url="https://c.example.com/g.png" type="image/png"/>'
         "</media:group>", "https://c.example.com/g.png"),
    ],
)  # fmt: skip
def test_which_media_content_is_a_picture(media: str, image: str) -> None:
    assert first(rss(media)).image == image


def test_a_wordpress_authors_gravatar_is_not_the_picture() -> None:
    item = (
        '<media:content url="https://0.gravatar.com/avatar/ab12?s=96&amp;d=identicon" medium="image">'
        '<media:title type="html">jo</media:title></media:content>'
        '<media:content url="https://jo.files.wordpress.com/2024/05/beach.jpg" medium="image"/>'
    )
    assert first(rss(item)).image == "https://jo.files.wordpress.com/2024/05/beach.jpg"
    assert first(rss(item.split('<media:content url="https://jo')[0])).image == ""


def test_media_thumbnail_when_no_media_content_is_a_picture() -> None:
    item = (
        '<media:content url="https://cdn.example.com/talk.mp4" type="video/mp4"/>'
        '<media:thumbnail url="https://cdn.example.com/talk.jpg" width="320"/>'
        '<enclosure url="https://cdn.example.com/e.png" type="image/png" length="1"/>'
    )
    assert first(rss(item)).image == "https://cdn.example.com/talk.jpg"


def test_an_image_enclosure_counts_and_an_audio_one_does_not() -> None:
    audio = '<enclosure url="https://cdn.example.com/ep1.mp3" type="audio/mpeg" length="9"/>'
    picture = '<enclosure url="https://cdn.example.com/cover.jpg" type="image/jpeg" length="9"/>'
    inline = '<description>&lt;p&gt;Show notes &lt;img src="https://cdn.example.com/n.gif"&gt;</description>'

    assert first(rss(audio)).image == ""
    assert first(rss(audio + picture + inline)).image == "https://cdn.example.com/cover.jpg"
    assert first(rss(audio + inline)).image == "https://cdn.example.com/n.gif"


def test_atom_image_enclosure() -> None:
    data = (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title>x</title><entry><title>A</title>'
        b'<link rel="enclosure" href="https://a.example.org/podcast.m4a" type="audio/mp4"/>'
        b'<link rel="enclosure" href="https://a.example.org/art.png" type="image/png"/>'
        b"</entry></feed>"
    )
    assert first(data).image == "https://a.example.org/art.png"


def test_first_img_of_the_content_before_the_summary() -> None:
    item = (
        '<description>&lt;img src="https://s.example.com/summary.jpg"&gt;</description>'
        "<content:encoded><![CDATA[<p>Text</p><p><img alt='' src='https://s.example.com/one.jpg?a=1&amp;b=2'>"
        '<img src="https://s.example.com/two.jpg"></p>]]></content:encoded>'
    )
    article = first(rss(item))
    assert article.image == "https://s.example.com/one.jpg?a=1&b=2"  # the entity decoded
    assert first(rss(item.split("<content:encoded>")[0])).image == "https://s.example.com/summary.jpg"


def test_plain_text_content_has_no_img() -> None:
    data = (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title>x</title><entry><title>A</title>'
        b'<content type="text">Write &lt;img src="https://a.example.org/x.png"&gt; for a picture</content>'
        b"</entry></feed>"
    )
    assert first(data).image == ""


@pytest.mark.parametrize(
    ("item", "image"),
    [
        ('<media:content url="/img/a.jpg" medium="image"/>', "https://s.example.com/img/a.jpg"),
        ('<media:thumbnail url="../img/a.jpg"/>', "https://s.example.com/img/a.jpg"),
        ('<enclosure url="img/a.jpg" type="image/jpeg" length="1"/>', "https://s.example.com/blog/img/a.jpg"),
        ('<description>&lt;img src="img/a.jpg"&gt;</description>', "https://s.example.com/blog/img/a.jpg"),
    ],
)
def test_a_relative_image_resolves_against_the_channel_link(item: str, image: str) -> None:
    from_url = first(rss(item, link="https://s.example.com/blog/"))
    relative_channel = first(rss(item, link="/blog/"), source="https://s.example.com/feed.xml")
    from_file = first(rss(item, link="/blog/"), source="feeds/blog.xml")  # nothing to resolve against

    assert from_url.image == relative_channel.image == image
    assert from_file.image == ""


def test_a_relative_image_resolves_against_xml_base_first() -> None:
    # feedparser applies xml:base to the content's <img>, not to the Media RSS elements: we do.
    data = (
        f'<rss version="2.0" {MEDIA}><channel xml:base="https://media.example.net/site/">'
        "<title>t</title><link>https://s.example.com/</link>"
        '<item><title>One</title><media:thumbnail url="thumbs/1.jpg"/></item>'
        '<item xml:base="https://other.example.org/x/"><title>Two</title>'
        '<media:content url="2.png" type="image/png"/></item>'
        '<item><title>Three</title><description>&lt;img src="/3.gif"&gt;</description></item>'
        "</channel></rss>"
    ).encode()
    one, two, three = feed.read("f.xml", data, ReadOptions(LONDON, NOW)).articles
    assert one.image == "https://media.example.net/site/thumbs/1.jpg"
    assert two.image == "https://other.example.org/x/2.png"
    assert three.image == "https://media.example.net/3.gif"


@pytest.mark.parametrize(
    "bad",
    [
        '<media:content url="javascript:alert(1)" medium="image"/>',
        '<media:thumbnail url="data:image/png;base64,iVBORw0KGgo="/>',
        '<enclosure url="ftp://files.example.com/a.png" type="image/png" length="1"/>',
        '<description>&lt;img src="javascript:alert(1)"&gt;&lt;img src="data:image/gif;base64,R0lG"&gt;'
        "</description>",
        '<media:content url="http://[::1/a.jpg" medium="image"/>',
    ],
)
def test_a_javascript_or_data_image_is_dropped_for_the_next_one(bad: str) -> None:
    assert first(rss(bad)).image == ""
    good = "<content:encoded>&lt;img src='https://s.example.com/ok.png'&gt;</content:encoded>"
    assert first(rss(bad + good)).image == "https://s.example.com/ok.png"


def test_entries_without_a_link_have_no_url_not_the_channels() -> None:
    # urljoin(base, "") is the base: the channel's page is no entry's URL, nor two entries' key.
    data = (
        b'<rss version="2.0"><channel><title>t</title><link>https://s.example.com/</link>'
        b"<item><title>One</title></item><item><title>Two</title></item></channel></rss>"
    )
    one, two = feed.read("f.xml", data, ReadOptions(LONDON, NOW)).articles
    assert (one.url, two.url) == ("", "")
    assert (one.key, two.key) == ("f.xml#One", "f.xml#Two")


# --- authors ---------------------------------------------------------------------

DC = 'xmlns:dc="http://purl.org/dc/elements/1.1/"'


@pytest.mark.parametrize(
    ("element", "author"),
    [
        ("<author>jo@example.org (Jo Bloggs)</author>", "Jo Bloggs"),
        ("<author>Jo Bloggs &lt;jo@example.org&gt;</author>", "Jo Bloggs"),
        ("<author>  Jo\n  Bloggs </author>", "Jo Bloggs"),
        ("<dc:creator>Jo Bloggs</dc:creator>", "Jo Bloggs"),
        ("<dc:creator><![CDATA[<b>Jo</b> Bloggs]]></dc:creator>", "Jo Bloggs"),
        ("<dc:creator>&amp;lt;script&amp;gt;Jo&amp;lt;/script&amp;gt;</dc:creator>", "Jo"),
        ("<dc:creator>Fran&amp;ccedil;ois &amp;amp; Ann</dc:creator>", "François & Ann"),
        ("<dc:creator>@jo on Mastodon</dc:creator>", "@jo on Mastodon"),
    ],
)
def test_rss_author_forms_are_plain_names(element: str, author: str) -> None:
    data = rss(element).replace(b"<rss ", f"<rss {DC} ".encode(), 1)
    assert first(data).author == author


def test_an_entry_with_only_an_address_or_no_author_gets_the_feeds() -> None:
    channel = "<managingEditor>editor@example.org (The Editor)</managingEditor>"
    assert first(rss("<author>jo@example.org</author>", channel)).author == "The Editor"
    assert first(rss("", channel)).author == "The Editor"
    assert first(rss("<author>jo@example.org</author>")).author == ""
    assert first(rss("<author>Jo Bloggs</author>", channel)).author == "Jo Bloggs"


def test_atom_author_names_and_the_feeds_author() -> None:
    data = (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title>x</title>'
        b"<author><name>Feed Person</name><email>f@example.org</email></author>"
        b"<entry><title>A</title><author><name>Ann &lt;i&gt;Lee&lt;/i&gt;</name>"
        b"<email>ann@example.org</email></author></entry>"
        b"<entry><title>B</title><author><email>b@example.org</email></author></entry>"
        b"<entry><title>C</title></entry></feed>"
    )
    a, b, c = feed.read("f.xml", data, ReadOptions(LONDON, NOW)).articles
    assert (a.author, b.author, c.author) == ("Ann Lee", "Feed Person", "Feed Person")


def test_image_and_author_are_cleaned_by_ingest() -> None:
    # Every reader's fields meet ingest.clean: no control character reaches a template.
    from newsletter.sources.ingest import clean

    dirty = Article("T", NOW, "s", image=" https://s.example.com/a.jpg\r\n", author="Jo\x00\tBloggs\x85")
    cleaned, _ = clean(dirty)
    assert (cleaned.image, cleaned.author) == ("https://s.example.com/a.jpg", "Jo Bloggs")


# --- property ------------------------------------------------------------------

FRAGMENTS = st.sampled_from(
    [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<rss version="2.0">',
        "<channel>",
        "<item>",
        "</item>",
        '<feed xmlns="http://www.w3.org/2005/Atom">',
        "<entry>",
        "<title>T &uuml; &amp; &lt;b&gt;</title>",
        "<link>/rel</link>",
        "<link>http://[::1</link>",
        '<link href="javascript:x"/>',
        "<pubDate>Seg, 24 Set 2018 19:42:40 -0300</pubDate>",
        "<pubDate>2020/1/10 14:33:00</pubDate>",
        "<pubDate>99999/99/99</pubDate>",
        "<pubDate>0001-01-01T00:00:00+14:00</pubDate>",
        "<updated>9999-12-31T23:59:59-14:00</updated>",
        '<category term=""/>',
        "<category> </category>",
        "<description><![CDATA[<script>x</script><p>a</p>]]></description>",
        "<content:encoded>&lt;p&gt;b</content:encoded>",
        '<media:content url="http://[::1.jpg"/>',
        '<media:thumbnail url="javascript:x"/>',
        '<enclosure url="//x" type="image/png"/>',
        "<description>&lt;img src=&quot;http://[::1&quot;&gt;&lt;img src&gt;</description>",
        "<author>&lt;b&gt;@ (x@y)</author>",
        "\x00",
        "\u00e9",
    ]
)
FEEDISH = st.lists(FRAGMENTS, max_size=30).map(lambda parts: "".join(parts).encode())


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=400), FEEDISH))
def test_read_returns_a_result_or_raises_source_error(data: bytes) -> None:
    try:
        result = feed.read("any.xml", data, ReadOptions(LONDON, NOW))
    except SourceError:
        return
    assert isinstance(result, ReadResult)
    for article in result.articles:
        assert article.title
        assert article.published.tzinfo is UTC
