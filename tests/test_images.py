"""Article pictures (issue 19): which of a source's images is one (digest/images.py), its
size from the file's first bytes, learned at ingest over a real server on 127.0.0.1
(sources/pictures.py, sources/fetching.py), and what a build hands the templates."""

from __future__ import annotations

import contextlib
import struct
import threading
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from newsletter.core.errors import SourceError
from newsletter.core.models import Article
from newsletter.digest import images
from newsletter.project import Project, build_json
from newsletter.sources import fetching, ingest, pictures
from newsletter.sources.readers import ReadOptions, feed
from newsletter.storage import image_sizes

IMAGES = Path(__file__).parent / "fixtures" / "images"
READ = ReadOptions(ZoneInfo("UTC"), datetime(2025, 11, 6, tzinfo=UTC))
NOW = datetime(2025, 11, 5, 12, 0, tzinfo=UTC)


def png(width: int, height: int) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + header
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))


def gif(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\x00\x00\x00;"


def jpeg(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof + b"\xff\xd9"


def webp_vp8x(width: int, height: int) -> bytes:
    body = b"\x00\x00\x00\x00" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", 4 + 8 + len(body)) + b"WEBPVP8X" + struct.pack("<I", len(body)) + body


def read(name: str) -> list[Article]:
    return list(feed.read(name, (IMAGES / name).read_bytes(), READ).articles)


# --- the rules -----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://medium.com/_/stat?event=post.clientViewed&referrerSource=full_rss&postId=abc",
        "https://ir-jp.amazon-adsystem.com/e/ir?t=jo-22&l=am2&o=9&a=X",
        "https://ad.doubleclick.net/ddm/ad/x.jpg",
        "https://example.org/static/filetype/jpg.gif",
        "https://example.org/icons/rss.png",
        "https://example.org/favicon.ico",
        "https://stats.example.org/pixel.gif",
        "https://example.org/track",
        "ftp://example.org/a.jpg",
    ],
)
def test_trackers_beacons_and_icons_are_no_picture(url: str) -> None:
    assert images.refusal(url)


def test_a_picture_declared_tiny_is_none_and_a_real_one_passes() -> None:
    assert images.refusal("https://example.org/a.jpg", 1, 1)
    assert images.refusal("https://example.org/a.jpg", 640, 48)
    assert images.refusal("https://example.org/tracks/cover.jpg", 640, 480) == ""
    assert images.refusal("https://example.org/a.jpg") == ""


@given(st.integers(1, 20000), st.integers(1, 20000))
def test_the_display_size_fits_the_column_keeps_the_ratio_and_never_enlarges(w: int, h: int) -> None:
    shown_w, shown_h = images.fitted(w, h)
    assert shown_w <= images.COLUMN_WIDTH and shown_w <= w and shown_h <= h
    assert abs(shown_h - h * shown_w / w) <= 1


@given(st.text(max_size=40))
def test_only_an_https_url_of_a_known_size_reaches_a_template(path: str) -> None:
    url = images.https(f"http://example.org/{path}")
    assert url.startswith("https://") and url.isascii()
    assert images.picture(url, "alt", None) is None
    assert images.picture(url.replace("https:", "http:", 1), "alt", (800, 600)) is None
    assert images.picture(url, "alt", (0, 0)) is None


def test_the_largest_suitable_candidate_is_chosen() -> None:
    offered = [
        ("https://e.org/t.jpg", 320, 240),
        ("https://e.org/c.jpg", 1600, 900),
        ("https://e.org/i.png", 48, 48),
    ]
    assert images.choose(offered) == ("https://e.org/c.jpg", 1600, 900)
    assert images.choose([("https://e.org/a.jpg", 0, 0), ("https://e.org/b.jpg", 0, 0)]) == (
        "https://e.org/a.jpg",
        0,
        0,
    )


sizes = st.integers(0, 5000)
paths = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789/-_.", max_size=30)


@given(
    st.lists(st.tuples(paths, sizes, sizes), max_size=6),
    st.sampled_from(["cdn.example.org", "ir-jp.amazon-adsystem.com"]),
)
def test_the_chosen_picture_is_never_refused_and_never_declared_tiny(offered, host: str) -> None:
    chosen = images.choose((f"https://{host}/{path}", w, h) for path, w, h in offered)
    if chosen is not None:
        assert images.refusal(*chosen) == "" and "adsystem" not in chosen[0]
        assert all(side == 0 or side >= images.MIN_SIDE for side in chosen[1:])


# --- sizes from header bytes ---------------------------------------------------


@pytest.mark.parametrize("make", [png, gif, jpeg, webp_vp8x])
@given(w=st.integers(1, 16383), h=st.integers(1, 16383))
def test_the_size_is_read_from_each_format_s_header(make, w: int, h: int) -> None:
    assert images.sniff_size(make(w, h)) == (w, h)


@given(st.binary(max_size=200))
def test_any_bytes_give_a_size_or_none_and_never_raise(data: bytes) -> None:
    size = images.sniff_size(data)
    assert size is None or (size[0] > 0 and size[1] > 0)


def test_truncated_headers_give_none() -> None:
    for whole in (png(10, 10), jpeg(10, 10), gif(10, 10), webp_vp8x(10, 10)):
        assert images.sniff_size(whole[:9]) is None
    assert images.sniff_size(b"<svg xmlns='http://www.w3.org/2000/svg'/>") is None


# --- readers on real feed shapes ----------------------------------------------


def test_medium_s_tracking_pixel_amazon_s_beacon_and_a_filetype_icon_are_never_the_picture() -> None:
    only_pixel, pixel_then_photo, ads_and_icon = read("medium-tracking-pixel.xml")
    assert only_pixel.image == ""
    assert pixel_then_photo.image == "https://cdn-images-1.medium.com/max/1024/1*pier.jpeg"
    assert ads_and_icon.image == ""


def test_hugo_s_largest_media_content_is_taken_with_its_declared_size() -> None:
    moss, lichen, none = read("hugo-media-content.xml")
    assert (moss.image, moss.image_width, moss.image_height) == (
        "https://notes.example.org/posts/moss/cover.jpg",
        1600,
        900,
    )
    assert lichen.image == "http://notes.example.org/posts/lichen/cover.png"
    assert none.image == ""


def test_a_podcast_episode_s_itunes_image_is_its_picture() -> None:
    (episode,) = read("podcast-itunes-image.xml")
    assert episode.image == "https://garden.example.com/episodes/12-art.jpg"


def test_a_gb2312_feed_s_picture_url_and_alt_survive_and_the_url_is_ascii() -> None:
    (article,) = read("gb2312-image.xml")
    assert article.image == "https://img.example.cn/图片/花园.jpg"
    shown = images.picture(images.https(article.image), article.title, (1200, 800))
    assert shown is not None and shown.alt == "春天的花园"
    assert shown.url == "https://img.example.cn/%E5%9B%BE%E7%89%87/%E8%8A%B1%E5%9B%AD.jpg"
    assert (shown.width, shown.height, shown.src_width) == (552, 368, 1200)


# --- the size over HTTP, once, at ingest ----------------------------------------


class PictureHandler(BaseHTTPRequestHandler):
    """`/big.png`: a PNG padded to 1 MiB; `/missing.png`: 404. Counts the requests."""

    requests: list[str] = []

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        if "cover.png" in self.path or self.path == "/big.png":
            body = png(1024, 512) + b"\x00" * (2**20)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # it read what it needed
                self.wfile.write(body)
            return
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def picture_server() -> Iterator[str]:
    PictureHandler.requests = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), PictureHandler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_only_the_first_bytes_are_read_and_give_the_size(picture_server: str) -> None:
    data = fetching.first_bytes(f"{picture_server}/big.png", images.HEADER_BYTES, timeout=5)
    assert len(data) == images.HEADER_BYTES
    assert images.sniff_size(data) == (1024, 512)
    with pytest.raises(SourceError, match="404"):
        fetching.first_bytes(f"{picture_server}/missing.png", 100, timeout=5)


def local(server: str) -> pictures.FirstBytes:
    """The https URL asked for, served by the test server (which speaks plain http)."""
    return lambda url: pictures.first_bytes(url.replace("https://notes.example.org", server))


def test_a_build_hands_templates_https_pictures_of_known_size_only(
    project: Project, picture_server: str
) -> None:
    (project.root / "schedules" / "notes.toml").write_text(
        'title = "Notes"\ncron = "0 8 * * mon"\ntimezone = "UTC"\ncategories = ["Notes"]\n'
    )
    source = str(IMAGES / "hugo-media-content.xml")
    settings = project.settings
    ingest.ingest(
        project.store, [source], settings.site, settings.related, NOW, "Notes", fetch=local(picture_server)
    )
    built = build_json(project.build("notes", NOW, NOW, record=False))
    cards = {a["title"]: a["image"] for s in built["sections"] for a in s["articles"]}
    assert cards["Moss on the north side"] == {
        "url": "https://notes.example.org/posts/moss/cover.jpg",
        "alt": "Moss on the north side",
        "width": 552,
        "height": 310,
        "src_width": 1600,
        "src_height": 900,
    }  # declared by the feed: never fetched
    assert cards["Lichen"]["url"] == "https://notes.example.org/posts/lichen/cover.png"  # served over https
    assert (cards["Lichen"]["width"], cards["Lichen"]["height"]) == (552, 276)
    assert PictureHandler.requests == ["/posts/lichen/cover.png"]
    issue = project.build("notes", NOW, NOW, record=False).issue
    assert issue is not None and 'src="https://notes.example.org/posts/moss/cover.jpg"' in issue.html

    ingest.ingest(
        project.store, [source], settings.site, settings.related, NOW, "Notes", fetch=local(picture_server)
    )
    assert PictureHandler.requests == ["/posts/lichen/cover.png"]  # the size is kept: asked once


def test_an_http_picture_whose_host_has_no_https_is_dropped_and_a_build_never_fetches(
    project: Project,
) -> None:
    article = Article("Lichen", NOW, "s", image="http://notes.example.org/posts/lichen/cover.png", key="k")
    (settled,) = pictures.settle(project.store, [article], NOW, fetch=None)
    assert settled.image == ""
    (unreachable,) = pictures.settle(project.store, [article], NOW, fetch=_refused)
    assert unreachable.image == ""
    assert image_sizes.known(project.store, ["https://notes.example.org/posts/lichen/cover.png"]) == {
        "https://notes.example.org/posts/lichen/cover.png": (0, 0)
    }


def _refused(url: str) -> bytes:
    raise SourceError(url, "connection refused")


def test_a_picture_adds_its_url_and_a_few_hundred_bytes_to_the_html(
    project: Project, picture_server: str
) -> None:
    (project.root / "schedules" / "notes.toml").write_text(
        'title = "Notes"\ncron = "0 8 * * mon"\ntimezone = "UTC"\ncategories = ["Notes"]\n'
    )
    settings = project.settings
    source = str(IMAGES / "hugo-media-content.xml")
    ingest.ingest(
        project.store, [source], settings.site, settings.related, NOW, "Notes", fetch=local(picture_server)
    )
    shown = project.build("notes", NOW, NOW, record=False).issue
    urls = [
        "https://notes.example.org/posts/moss/cover.jpg",
        "https://notes.example.org/posts/lichen/cover.png",
    ]
    image_sizes.record(project.store, dict.fromkeys(urls, (0, 0)), NOW)  # sizes unknown: no picture
    plain = project.build("notes", NOW, NOW, record=False).issue
    assert shown is not None and plain is not None
    assert "<img" in shown.html and "<img" not in plain.html
    assert 0 < shown.html_size - plain.html_size < 2 * 600  # the URL, alt and size: never the bytes


def test_every_reader_s_picture_passes_the_same_rules_at_ingest(project: Project) -> None:
    folder = project.root / "posts"
    folder.mkdir()
    for name, image in (
        ("icon", "https://example.org/icons/rss.png"),
        ("cover", "https://example.org/c.jpg"),
    ):
        (folder / f"2026-11-02-{name}.md").write_text(
            f'---\ntitle: "{name}"\nimage: "{image}"\n---\n\nText.\n'
        )
    settings = project.settings
    ingest.ingest(project.store, [str(folder)], settings.site, settings.related, NOW, "Notes", fetch=None)
    stored = {s.article.title: s.article.image for s in project.store.articles()}
    assert stored == {"icon": "", "cover": "https://example.org/c.jpg"}
