"""Fetching feeds over HTTP(S) (newsletter/sources/fetching.py), against a real server on 127.0.0.1.

The server is http.server in a thread; each path is one behaviour (a 301 chain, a
gzip bomb, a body that never ends, ...). httpx.MockTransport only stands in for
the server where the test is about the request we send.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import shutil
import socket
import ssl
import subprocess
import threading
import tracemalloc
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

import newsletter
from newsletter.core.errors import SourceError
from newsletter.sources import fetching
from newsletter.sources.fetching import Validators, fetch
from newsletter.sources.ingest import read_source
from newsletter.sources.readers import ReadOptions

FEEDS = Path(__file__).parent / "fixtures" / "feeds"
LONDON = ZoneInfo("Europe/London")
NOW = datetime(2025, 7, 20, 12, 0, tzinfo=UTC)
MiB = 2**20

RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>T</title><link>https://example.org/</link>
<item><title>Sleep well</title><link>/sleep</link><pubDate>Sun, 20 Jul 2025 10:00:00 +0000</pubDate>
<description>Rest.</description></item></channel></rss>"""
JSON_FEED = json.dumps(
    {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "J",
        "home_page_url": "https://example.org/",
        "items": [
            {
                "id": "1",
                "url": "/a",
                "title": "Walk more",
                "content_text": "Go.",
                "date_published": "2025-07-20T10:00:00Z",
            }
        ],
    }
).encode()
ETAG, LAST_MODIFIED = '"v1"', "Sun, 20 Jul 2025 10:00:00 GMT"
# 64 MiB of zeros in about 64 KiB of gzip.
BOMB = gzip.compress(bytes(64 * MiB), compresslevel=9)


class Handler(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []  # the headers of each request, in order
    released = threading.Event()  # set when the test is over: slow paths stop waiting

    def do_GET(self) -> None:
        Handler.seen.append(dict(self.headers.items()))
        path = self.path
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client may leave
            if path == "/feed.xml":
                self.feed()
            elif path == "/latin1.xml":
                body = (FEEDS / "latin1-declared.xml").read_bytes()
                self.reply(200, body, "application/rss+xml; charset=ISO-8859-1")
            elif path == "/feed.json":
                self.reply(200, JSON_FEED, "application/feed+json")
            elif path in REDIRECTS:
                code, location = REDIRECTS[path]
                self.send_response(code)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif path == "/gzip":
                self.reply(200, gzip.compress(RSS), "application/rss+xml", {"Content-Encoding": "gzip"})
            elif path == "/bomb":
                self.reply(200, BOMB, "application/rss+xml", {"Content-Encoding": "gzip"})
            elif path == "/forever":
                self.forever()
            elif path == "/unavailable":
                self.send_error(503, "Service Unavailable")
            elif path == "/slow":
                Handler.released.wait(2)
                self.reply(200, RSS, "application/rss+xml")
            elif path == "/trickle":
                self.send_response(200)
                self.end_headers()
                while not Handler.released.wait(0.05):
                    self.wfile.write(b" ")
                    self.wfile.flush()
            else:
                self.send_error(404, "Not Found")

    def feed(self) -> None:
        if self.headers.get("If-None-Match") == ETAG:
            self.send_response(304)
            self.send_header("ETag", ETAG)
            self.end_headers()
            return
        self.reply(200, RSS, "application/rss+xml", {"ETag": ETAG, "Last-Modified": LAST_MODIFIED})

    def forever(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.end_headers()  # no Content-Length: the body ends when the connection does
        chunk = b"<item>" + bytes(64 * 1024)
        while not Handler.released.is_set():
            self.wfile.write(chunk)

    def reply(self, code: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass


REDIRECTS = {
    "/moved": (301, "/moved-again"),
    "/moved-again": (308, "/feed.xml"),
    "/elsewhere": (302, "/feed.xml"),
    "/moved-then-elsewhere": (301, "/elsewhere"),
    "/to-ftp": (302, "ftp://example.org/feed.xml"),
    "/loop": (302, "/loop"),
}


class Server(ThreadingHTTPServer):
    daemon_threads = False  # so server_close() joins the handlers: none outlives its test


@contextlib.contextmanager
def serving(context: ssl.SSLContext | None = None) -> Iterator[str]:
    Handler.released.clear()
    Handler.seen.clear()
    httpd = Server(("127.0.0.1", 0), Handler)
    if context is not None:
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"{'https' if context else 'http'}://127.0.0.1:{httpd.server_address[1]}"
    finally:
        Handler.released.set()
        httpd.shutdown()
        httpd.server_close()


def replying(body: bytes, headers: dict[str, str]) -> httpx.MockTransport:
    """A transport that answers 200 with this body (streamed: a bytes `content` would
    arrive already read)."""
    return httpx.MockTransport(lambda request: httpx.Response(200, headers=headers, content=iter([body])))


@pytest.fixture
def server() -> Iterator[str]:
    with serving() as url:
        yield url


# --- conditional GET ------------------------------------------------------------


def test_200_returns_the_body_and_its_validators(server: str) -> None:
    got = fetch(f"{server}/feed.xml", timeout=5)

    assert got.status == "ok"
    assert got.data == RSS
    assert got.content_type == "application/rss+xml"
    assert got.url == f"{server}/feed.xml"
    assert got.permanent_url is None
    assert got.validators == Validators(ETAG, LAST_MODIFIED)
    assert "If-None-Match" not in Handler.seen[-1]


def test_a_second_request_with_the_validators_is_not_modified(server: str) -> None:
    first = fetch(f"{server}/feed.xml", timeout=5)
    second = fetch(f"{server}/feed.xml", validators=first.validators, timeout=5)

    assert second.status == "not-modified"
    assert second.data == b""
    assert second.validators == Validators(ETAG, LAST_MODIFIED)  # kept what the 304 did not repeat
    assert Handler.seen[-1]["If-None-Match"] == ETAG
    assert Handler.seen[-1]["If-Modified-Since"] == LAST_MODIFIED


# --- redirects ------------------------------------------------------------------


def test_a_chain_of_permanent_redirects_gives_the_final_and_permanent_url(server: str) -> None:
    got = fetch(f"{server}/moved", timeout=5)

    assert got.status == "ok" and got.data == RSS
    assert got.url == f"{server}/feed.xml"
    assert got.permanent_url == f"{server}/feed.xml"


def test_a_temporary_redirect_moves_nothing(server: str) -> None:
    got = fetch(f"{server}/elsewhere", timeout=5)

    assert got.url == f"{server}/feed.xml"
    assert got.permanent_url is None


def test_the_permanent_url_is_where_the_permanent_redirects_end(server: str) -> None:
    got = fetch(f"{server}/moved-then-elsewhere", timeout=5)

    assert got.url == f"{server}/feed.xml"
    assert got.permanent_url == f"{server}/elsewhere"


def test_a_redirect_to_ftp_is_refused(server: str) -> None:
    with pytest.raises(SourceError) as caught:
        fetch(f"{server}/to-ftp", timeout=5)
    assert caught.value.source == f"{server}/to-ftp"
    assert caught.value.reason == "redirected to 'ftp://example.org/feed.xml', not an http(s) URL"


def test_more_than_five_redirects_is_an_error(server: str) -> None:
    with pytest.raises(SourceError, match="more than 5 redirects"):
        fetch(f"{server}/loop", timeout=5)
    assert len(Handler.seen) == 6  # the first request and five redirects


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.org/feed.xml", "feed.xml"])
def test_only_http_and_https_urls(url: str) -> None:
    with pytest.raises(SourceError, match="only http:// and https://"):
        fetch(url)


# --- size and encoding ------------------------------------------------------------


def test_a_body_that_never_ends_is_cut_off_in_flat_memory(server: str) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(SourceError) as caught:
            fetch(f"{server}/forever", timeout=10, max_bytes=MiB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(caught.value) == f"{server}/forever: response larger than 1 MiB; cut off"
    assert peak < 3 * MiB


def test_a_gzip_body_is_decoded(server: str) -> None:
    got = fetch(f"{server}/gzip", timeout=5)

    assert got.data == RSS
    assert Handler.seen[-1]["Accept-Encoding"] == "gzip, deflate"


def test_a_gzip_bomb_is_cut_off_by_its_decoded_size(server: str) -> None:
    assert len(BOMB) < MiB  # small on the wire: only the decoded size is over the cap
    tracemalloc.start()
    try:
        with pytest.raises(SourceError, match=r"response larger than 1 MiB; cut off"):
            fetch(f"{server}/bomb", timeout=10, max_bytes=MiB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * MiB


def test_a_declared_content_length_over_the_cap_is_refused_before_reading(server: str) -> None:
    with pytest.raises(SourceError, match=r"response larger than 100 bytes; cut off"):
        fetch(f"{server}/latin1.xml", timeout=5, max_bytes=100)


@pytest.mark.parametrize(
    "encoded",
    [zlib.compress(RSS), zlib.compress(RSS)[2:-4]],  # zlib-wrapped, as it should be; raw, as some send
    ids=["zlib", "raw"],
)
def test_deflate_is_decoded_wrapped_or_raw(encoded: bytes) -> None:
    transport = replying(encoded, {"Content-Encoding": "deflate"})
    got = fetch("https://example.org/feed", transport=transport)
    assert got.data == RSS


def test_an_unknown_content_encoding_is_an_error() -> None:
    with pytest.raises(SourceError, match="unsupported Content-Encoding 'br'"):
        fetch("https://example.org/feed", transport=replying(b"??", {"Content-Encoding": "br"}))


# --- failures ---------------------------------------------------------------------


def test_503_names_the_status(server: str) -> None:
    with pytest.raises(SourceError) as caught:
        fetch(f"{server}/unavailable", timeout=5)
    assert str(caught.value) == f"{server}/unavailable: HTTP 503 Service Unavailable"


def test_404_names_the_status(server: str) -> None:
    with pytest.raises(SourceError) as caught:
        fetch(f"{server}/missing.xml", timeout=5)
    assert caught.value.reason == "HTTP 404 Not Found"


def test_a_slow_server_times_out(server: str) -> None:
    with pytest.raises(SourceError, match=r"timed out after 0\.3 s"):
        fetch(f"{server}/slow", timeout=0.3)


def test_a_trickle_that_never_ends_times_out(server: str) -> None:
    with pytest.raises(SourceError, match=r"timed out after 0\.5 s \(still reading\)"):
        fetch(f"{server}/trickle", timeout=0.5)


def test_a_refused_connection() -> None:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/feed.xml"
    with pytest.raises(SourceError) as caught:
        fetch(url, timeout=5)
    assert str(caught.value) == f"{url}: connection refused"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_a_self_signed_certificate_is_rejected(tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
        + ["-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with serving(context) as url, pytest.raises(SourceError) as caught:
        fetch(f"{url}/feed.xml", timeout=5)
    assert caught.value.reason.startswith("TLS certificate rejected (")
    assert "\n" not in str(caught.value)


def test_304_to_an_unconditional_request_is_an_error() -> None:
    reply = httpx.Response(304)
    with pytest.raises(SourceError, match="HTTP 304 Not Modified"):
        fetch("https://example.org/feed", transport=httpx.MockTransport(lambda request: reply))


# --- the request ------------------------------------------------------------------


def test_the_request_names_the_tool_asks_for_feeds_and_is_conditional() -> None:
    requests: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(304)

    transport = httpx.MockTransport(record)
    got = fetch("https://example.org/feed", validators=Validators(ETAG, LAST_MODIFIED), transport=transport)
    fetch("https://example.org/feed", validators=Validators(None, LAST_MODIFIED), transport=transport)

    assert got.status == "not-modified"
    headers = requests[0].headers
    assert headers["User-Agent"] == f"newsletter/{newsletter.__version__}"
    assert headers["User-Agent"] == fetching.USER_AGENT
    for media_type in ("application/rss+xml", "application/atom+xml", "application/feed+json", "text/xml"):
        assert media_type in headers["Accept"]
    assert headers["Accept-Encoding"] == "gzip, deflate"
    assert headers["If-None-Match"] == ETAG
    assert headers["If-Modified-Since"] == LAST_MODIFIED
    assert "If-None-Match" not in requests[1].headers


def test_no_validators_no_conditional_headers() -> None:
    requests: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, content=iter([RSS]))

    fetch("https://example.org/feed", transport=httpx.MockTransport(record))
    assert "If-None-Match" not in requests[0].headers
    assert "If-Modified-Since" not in requests[0].headers


# --- through ingest ---------------------------------------------------------------


def test_ingest_reads_a_fetched_feed_with_its_declared_charset(server: str) -> None:
    url = f"{server}/latin1.xml"
    result = read_source(url, ReadOptions(LONDON, NOW))

    assert result.articles[0].title == "Größere Brücken für Fußgänger in Köln"
    assert result.articles[0].source == url
    assert Handler.seen[-1]["User-Agent"] == fetching.USER_AGENT


def test_ingest_recognises_a_fetched_json_feed(server: str) -> None:
    result = read_source(f"{server}/feed.json", ReadOptions(LONDON, NOW))

    assert [a.title for a in result.articles] == ["Walk more"]
    assert result.articles[0].url == "https://example.org/a"


def test_ingest_reports_a_fetch_failure_as_a_source_error(server: str) -> None:
    with pytest.raises(SourceError, match="HTTP 503 Service Unavailable"):
        read_source(f"{server}/unavailable", ReadOptions(LONDON, NOW))
