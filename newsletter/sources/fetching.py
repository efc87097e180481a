"""Feeds over HTTP(S), politely and within bounds: the one network call of ingest.

`fetch` sends a User-Agent naming the tool, asks for feed types, makes the
request conditional when the caller has validators (ETag, Last-Modified) from
the last fetch, follows at most `MAX_REDIRECTS` redirects and only to http(s),
and gives up after `timeout` seconds in all (connecting, waiting, reading) or
`max_bytes` of decoded body, whichever comes first. The body is streamed and
decoded here, chunk by bounded chunk (httpx's own decoders inflate a whole
network read at once: a 64 KiB gzip bomb is 64 MiB), so memory stays flat
whatever the server sends. Every failure is one `SourceError` naming the URL.

httpx loads with the first fetch, not with the module.
"""

from __future__ import annotations

import http
import socket
import ssl
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from newsletter import __version__
from newsletter.core.errors import SourceError
from newsletter.sources.readers import WEB_SCHEMES, is_web

if TYPE_CHECKING:
    import httpx

PROJECT_URL = ""  # the project's home page, for the User-Agent; none published yet
USER_AGENT = f"newsletter/{__version__}" + (f" (+{PROJECT_URL})" if PROJECT_URL else "")
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, "
    "application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, */*;q=0.1"
)
ACCEPT_ENCODING = "gzip, deflate"  # the ones `_decoded` inflates
MAX_BYTES = 20 * 2**20
MAX_REDIRECTS = 5

REDIRECTS = {301, 302, 303, 307, 308}
PERMANENT_REDIRECTS = {301, 308}
CHUNK = 64 * 1024  # the most one inflate step may produce


@dataclass(frozen=True)
class Validators:
    """What the server said identifies this version of the feed: sent back next time."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class Fetched:
    """A fetch's outcome. `url` is where the feed was found (after redirects);
    `permanent_url` is set when 301/308 redirects moved it: store that one instead.
    "not-modified" (a 304 to a conditional request) has no data."""

    status: Literal["ok", "not-modified"]
    url: str
    permanent_url: str | None
    data: bytes
    content_type: str | None
    validators: Validators


def fetch(
    url: str,
    *,
    validators: Validators | None = None,
    timeout: float = 20.0,
    max_bytes: int = MAX_BYTES,
    transport: httpx.BaseTransport | None = None,
) -> Fetched:
    """GET a feed. Raises SourceError(url, reason) on any failure."""
    if not is_web(url):
        raise SourceError(url, "only http:// and https:// feed URLs can be fetched")
    import httpx

    deadline = time.monotonic() + timeout
    headers = {"User-Agent": USER_AGENT, "Accept": ACCEPT, "Accept-Encoding": ACCEPT_ENCODING}
    if validators and validators.etag:
        headers["If-None-Match"] = validators.etag
    if validators and validators.last_modified:
        headers["If-Modified-Since"] = validators.last_modified
    try:
        with httpx.Client(headers=headers, timeout=timeout, transport=transport) as client:
            return _follow(client, url, validators, timeout, max_bytes, deadline)
    except httpx.TimeoutException as exc:
        what = "connecting" if isinstance(exc, httpx.ConnectTimeout) else "waiting for the server"
        raise SourceError(url, f"timed out after {timeout:g} s ({what})") from None
    except httpx.HTTPError as exc:
        raise SourceError(url, _problem(exc)) from exc
    except httpx.InvalidURL as exc:
        raise SourceError(url, f"not a valid URL ({exc})") from None


def first_bytes(
    url: str, limit: int, *, timeout: float = 5.0, transport: httpx.BaseTransport | None = None
) -> bytes:
    """The first `limit` bytes of a file (a picture's header: its size), asked for with a
    Range and cut there whatever the server sends; redirects as for feeds. The same
    User-Agent and bounds as `fetch`; every failure one `SourceError` naming the URL."""
    if not is_web(url):
        raise SourceError(url, "only http:// and https:// URLs can be fetched")
    import httpx

    headers = {
        "User-Agent": USER_AGENT,
        "Accept": "image/*",
        "Accept-Encoding": "identity",  # the bytes of the file itself, never inflated
        "Range": f"bytes=0-{limit - 1}",
    }
    try:
        client = httpx.Client(headers=headers, timeout=timeout, transport=transport, follow_redirects=True)
        client.max_redirects = MAX_REDIRECTS
        with client:
            return _first(client, url, limit, time.monotonic() + timeout, timeout)
    except httpx.TimeoutException:
        raise SourceError(url, f"timed out after {timeout:g} s") from None
    except httpx.TooManyRedirects:
        raise SourceError(url, f"more than {MAX_REDIRECTS} redirects") from None
    except httpx.HTTPError as exc:
        raise SourceError(url, _problem(exc)) from exc
    except httpx.InvalidURL as exc:
        raise SourceError(url, f"not a valid URL ({exc})") from None


def _first(client: httpx.Client, url: str, limit: int, deadline: float, timeout: float) -> bytes:
    with client.stream("GET", url) as response:
        if not 200 <= response.status_code < 300:
            raise SourceError(url, f"HTTP {response.status_code} {_reason(response)}")
        data = b""
        for chunk in response.iter_raw():
            data += chunk
            if len(data) >= limit:
                return data[:limit]
            if time.monotonic() > deadline:
                raise SourceError(url, f"timed out after {timeout:g} s (still reading)")
        return data


def _follow(
    client: httpx.Client,
    url: str,
    validators: Validators | None,
    timeout: float,
    max_bytes: int,
    deadline: float,
) -> Fetched:
    import httpx

    target, permanent, moved = httpx.URL(url), True, None
    for _ in range(MAX_REDIRECTS + 1):
        with client.stream("GET", target) as response:
            code = response.status_code
            if code not in REDIRECTS:
                return _outcome(url, response, validators, moved, timeout, max_bytes, deadline)
            target = _location(url, response)
        permanent = permanent and code in PERMANENT_REDIRECTS
        if permanent:
            moved = str(target)
    raise SourceError(url, f"more than {MAX_REDIRECTS} redirects")


def _location(url: str, response: httpx.Response) -> httpx.URL:
    import httpx

    where = response.headers.get("Location")
    status = f"HTTP {response.status_code} {_reason(response)}"
    if not where:
        raise SourceError(url, f"{status} without a Location to go to")
    try:
        target = response.url.join(where)
    except httpx.InvalidURL:
        raise SourceError(url, f"{status} to {where!r}, not a valid URL") from None
    if target.scheme not in WEB_SCHEMES or not target.host:
        raise SourceError(url, f"redirected to {where!r}, not an http(s) URL")
    return target


def _outcome(
    url: str,
    response: httpx.Response,
    sent: Validators | None,
    moved: str | None,
    timeout: float,
    max_bytes: int,
    deadline: float,
) -> Fetched:
    code, final = response.status_code, str(response.url)
    got = Validators(response.headers.get("ETag"), response.headers.get("Last-Modified"))
    if code == 304 and sent and (sent.etag or sent.last_modified):
        kept = Validators(got.etag or sent.etag, got.last_modified or sent.last_modified)
        return Fetched("not-modified", final, moved, b"", response.headers.get("Content-Type"), kept)
    if not 200 <= code < 300:
        raise SourceError(url, f"HTTP {code} {_reason(response)}")
    data = _body(url, response, timeout, max_bytes, deadline)
    return Fetched("ok", final, moved, data, response.headers.get("Content-Type"), got)


def _reason(response: httpx.Response) -> str:
    if response.reason_phrase:
        return response.reason_phrase
    try:
        return http.HTTPStatus(response.status_code).phrase
    except ValueError:
        return ""


def _body(url: str, response: httpx.Response, timeout: float, max_bytes: int, deadline: float) -> bytes:
    too_large = SourceError(url, f"response larger than {_size(max_bytes)}; cut off")
    encodings = [e.strip().lower() for e in response.headers.get("Content-Encoding", "").split(",")]
    encodings = [e for e in encodings if e and e != "identity"]
    length = response.headers.get("Content-Length", "")
    if not encodings and length.isdigit() and int(length) > max_bytes:
        raise too_large
    parts: list[bytes] = []
    size = 0
    for chunk in _decoded(url, _raw(url, response, timeout, max_bytes, deadline), encodings):
        size += len(chunk)
        if size > max_bytes:
            raise too_large
        parts.append(chunk)
    return b"".join(parts)


def _raw(
    url: str, response: httpx.Response, timeout: float, max_bytes: int, deadline: float
) -> Iterator[bytes]:
    """The body as sent, within the deadline; a compressed body larger than the cap
    is too large as well (what it inflates to is checked after decoding)."""
    size = 0
    for chunk in response.iter_raw():
        size += len(chunk)
        if size > max_bytes:
            raise SourceError(url, f"response larger than {_size(max_bytes)}; cut off")
        if time.monotonic() > deadline:  # a trickle that never trips the read timeout
            raise SourceError(url, f"timed out after {timeout:g} s (still reading)")
        yield chunk


def _decoded(url: str, chunks: Iterable[bytes], encodings: list[str]) -> Iterator[bytes]:
    """Undo the Content-Encodings, last applied first, `CHUNK` bytes at most at a time."""
    for encoding in reversed(encodings):
        if encoding not in ("gzip", "x-gzip", "deflate"):
            raise SourceError(url, f"unsupported Content-Encoding {encoding!r}")
        chunks = _inflate(url, chunks, encoding)
    return iter(chunks)


def _inflate(url: str, chunks: Iterable[bytes], encoding: str) -> Iterator[bytes]:
    # "deflate" should be zlib-wrapped; some servers send it raw, as browsers accept.
    wbits = zlib.MAX_WBITS | 16 if encoding != "deflate" else zlib.MAX_WBITS
    inflater, started = zlib.decompressobj(wbits), False
    try:
        for chunk in chunks:
            pending = chunk
            while pending and not inflater.eof:
                try:
                    out = inflater.decompress(pending, CHUNK)
                except zlib.error:
                    if encoding != "deflate" or started:
                        raise
                    inflater, started = zlib.decompressobj(-zlib.MAX_WBITS), True
                    continue
                started = True
                pending = inflater.unconsumed_tail
                if out:
                    yield out
            # After the end of the stream: trailing bytes are ignored, never kept.
    except zlib.error as exc:
        raise SourceError(url, f"cannot decode the {encoding} body ({exc})") from None


def _size(count: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale and count % scale == 0:
            return f"{count // scale} {unit}"
    return f"{count} bytes"


def _problem(exc: Exception) -> str:
    """What went wrong, in words: the most telling cause in the exception's chain."""
    import httpx

    causes = list(_chain(exc))
    for cause in causes:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate rejected ({cause.verify_message or cause.reason})"
        if isinstance(cause, socket.gaierror):
            return f"cannot resolve the host name ({cause.strerror or cause})"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ssl.SSLError):
            return f"TLS failed ({cause.reason or cause})"
    text = str(exc) or type(exc).__name__
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return f"TLS certificate rejected ({text})"
    if isinstance(exc, httpx.ConnectError):
        if "Connection refused" in text:
            return "connection refused"
        if "Name or service not known" in text or "nodename nor servname" in text:
            return f"cannot resolve the host name ({text})"
        return f"cannot connect ({text})"
    if isinstance(exc, httpx.UnsupportedProtocol):
        return f"not an http(s) URL ({text})"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.DecodingError):
        return f"bad HTTP response ({text})"
    return f"cannot fetch ({text})"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__
