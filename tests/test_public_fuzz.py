"""No request makes a public endpoint answer 500 or log a traceback: every route of the
`serve` app, with random methods, paths, query strings, headers and bodies (forms, JSON
nested past any recursion limit, bytes that are not UTF-8, NUL in every field), and valid
tokens mixed in so the requests reach the store. Over the real app (Starlette's
TestClient) on a SQLite file and, smaller, on a private PostgreSQL (which refuses NUL)."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.exceptions import StarletteDeprecationWarning

from newsletter.audience.dispatch import for_serve
from newsletter.core.models import SubscriberRow
from newsletter.core.tokens import Purposes, Tokens
from newsletter.delivery.transports import Courier, MemoryTransport
from newsletter.project import Project
from newsletter.storage.consents import Consents
from newsletter.storage.records import Choices, Consent
from newsletter.storage.roster import Roster
from newsletter.web.public import create_app
from tests.conftest import NOW
from tests.postgres import needs_postgres, postgresql  # noqa: F401 (the fixture)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

KEY = "test-secret-key-0123456789"
PATHS = [
    "/",
    "/healthz",
    "/subscribe",
    "/confirm",
    "/preferences",
    "/unsubscribe",
    "/issues",
    "/issues/",
    "/issues/feed.atom",
    "/issues/weekly/feed.atom",
    "/issues/weekly-2024-01-01.html",
    "/newsletter/subscribe",
    "/static/x.css",
]
FORMS = [("POST", p) for p in ("/subscribe", "/confirm", "/preferences", "/unsubscribe")]
FORMS += [("GET", p) for p in ("/subscribe", "/confirm", "/preferences", "/unsubscribe")]
METHODS = ["GET", "POST", "POST", "POST", "HEAD", "PUT", "DELETE", "OPTIONS"]
CONTENT_TYPES = [
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=utf-16",
    "application/json",
    "application/json; charset=latin-1",
    "multipart/form-data",  # no boundary
    "multipart/form-data; boundary=xyz",
    "text/plain",
    "application/octet-stream",
    "",
]
NASTY = [
    "\x00",
    "a\x00b",
    "Ann\r\nBcc: x@example.org",
    "\u2028",
    "\ud800",  # a lone surrogate: no UTF-8 for it
    "é" * 300,
    "x" * 5000,
    "<script>alert(1)</script>",
    "ann@example.org",
    "ann@example.org\x00",
]
NAMES = [
    "email",
    "name",
    "token",
    "form_token",
    "categories",
    "schedules",
    "action",
    "paused",
    "website",
    "form",
]


SHAPES: list[Callable[[list[str]], dict[str, list[str]]]] = [
    lambda t: {"email": ["ann@example.org"], "form_token": [t[3]], "categories": ["Sleep & recovery"]},
    lambda t: {"email": ["new@example.org"], "name": list(NASTY), "form_token": [t[3]]},
    lambda t: {"token": [t[2]], "form_token": [t[4]]},
    lambda t: {"token": [t[1]], "form_token": [t[5]], "categories": ["x"], "schedules": ["weekly"]},
    lambda t: {"token": [t[1]], "form_token": [t[5]], "action": ["unsubscribe"]},
    lambda t: {"token": [t[0]]},
]
ROOMY = {"NEWSLETTER_SIGNUP_IP_LIMIT": "100000", "NEWSLETTER_SIGNUP_ADDRESS_LIMIT": "1000"}


def deep(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth if depth % 2 else "[" * depth + "]" * depth


@st.composite
def fields(draw: st.DrawFn, tokens: list[str]) -> dict[str, list[str]]:
    value = st.one_of(st.text(max_size=40), st.sampled_from(NASTY), st.sampled_from(tokens))
    names = st.one_of(st.sampled_from(NAMES), st.text(max_size=10))
    return draw(st.dictionaries(names, st.lists(value, min_size=1, max_size=3), max_size=8))


@st.composite
def bodies(draw: st.DrawFn, tokens: list[str]) -> tuple[str, bytes]:
    """(content type, body)."""
    found = draw(fields(tokens))
    kind = draw(st.sampled_from(["form", "json", "json-deep", "json-odd", "bytes"]))
    if draw(st.booleans()):  # shaped like one of our forms, valid tokens and all
        found = {**draw(st.sampled_from(SHAPES))(tokens), **found}
    if kind == "form":
        text = urlencode([(k, v) for k, vs in found.items() for v in vs], errors="surrogatepass")
        return draw(st.sampled_from(CONTENT_TYPES[:2])), text.encode("ascii")
    if kind == "json":
        data = {k: v if len(v) > 1 else v[0] for k, v in found.items()}
        return "application/json", json.dumps(data).encode()
    if kind == "json-deep":
        nested = deep(draw(st.sampled_from([2, 3, 200, 999, 1001, 2001, 7999])))
        return "application/json", draw(st.sampled_from([nested, "[" * 15_000, '{"a":' * 3000])).encode()
    if kind == "json-odd":
        odd = draw(st.sampled_from(['{"token": "\\ud800"}', '{"name": "\\u0000"}', "[]", "1e999999", '"x"']))
        return "application/json", odd.encode()
    return draw(st.sampled_from(CONTENT_TYPES)), draw(st.binary(max_size=3000))


@st.composite
def requests(draw: st.DrawFn, tokens: list[str]) -> dict[str, Any]:
    method, path = draw(st.sampled_from(FORMS)) if draw(st.integers(0, 3)) else (None, None)
    method = method or draw(st.sampled_from(METHODS))
    path = path or draw(st.one_of(st.sampled_from(PATHS), st.text(max_size=30).map(lambda t: "/" + quote(t))))
    raw_query = st.lists(
        st.tuples(st.sampled_from(["token", "at", "x"]), st.one_of(st.text(), st.sampled_from(tokens)))
    )
    query = draw(raw_query).copy()
    query_text = urlencode(query, errors="surrogatepass") if query else ""
    if draw(st.booleans()):
        query_text += "&" + draw(st.binary(max_size=200)).hex()  # and percent-escapes of anything
        query_text += "".join(f"%{b:02X}" for b in draw(st.binary(max_size=60)))
    content_type, body = draw(bodies(tokens))
    headers = {
        "content-type": content_type,
        "host": draw(st.sampled_from(["example.org", "evil.test", "x" * 300])),
    }
    if draw(st.booleans()):
        headers["accept"] = "application/json"
    if draw(st.integers(0, 4)) == 0:
        headers["content-length"] = str(draw(st.sampled_from([0, 1, len(body) + 5, 10**12])))
    return {"method": method, "url": f"{path}?{query_text}", "headers": headers, "content": body}


def valid_tokens(project: Project) -> list[str]:
    """Tokens of every kind for a subscriber and a pending signup, so requests get past
    the token checks and into the store."""
    Roster(project.store).import_subscribers([SubscriberRow("ann@example.org", "Ann")], NOW)
    [ann] = Roster(project.store).subscribers()
    signup = Consents(project.store).signup(
        "ben@example.org", Choices("Ben"), Consent("subscribe", "Yes"), True, NOW
    )
    assert signup.consent_id is not None
    purposes, confirm = Purposes(KEY), Purposes(KEY).make_confirm(signup.consent_id, NOW)
    return [
        Tokens(KEY).make(ann.id),
        purposes.make_preferences(ann.id),
        confirm,
        purposes.make_form("subscribe", "", NOW - timedelta(minutes=1)),
        purposes.make_form("confirm", confirm, NOW),
        purposes.make_form("preferences", purposes.make_preferences(ann.id), NOW),
    ]


@pytest.fixture
def served(project_dir: Path, caplog: pytest.LogCaptureFixture) -> Callable[[dict[str, str], int], None]:
    def fuzz(environ: dict[str, str], examples: int) -> None:
        project = Project(project_dir, environ=environ)
        tokens = valid_tokens(project)
        project.close()
        outbox = MemoryTransport()
        environ = {**environ, **ROOMY, "NEWSLETTER_SECRET_KEY": KEY}
        app = create_app(
            project_dir,
            environ,
            clock=lambda: NOW,
            courier_for=lambda url, env: Courier(lambda: outbox),
            dispatch_for=for_serve,  # the signups recorded after each answer, as `serve` does
        )
        with TestClient(app, base_url="https://example.org", raise_server_exceptions=False) as client:

            @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
            @given(requests(tokens))
            def no_500(request: dict[str, Any]) -> None:
                caplog.clear()
                with caplog.at_level(logging.INFO):
                    answer = client.request(**request)
                assert answer.status_code != 500, (request, answer.text[:300])
                crashes = [r for r in caplog.records if r.levelno >= logging.ERROR and r.exc_info]
                assert not crashes, (request, crashes[0].getMessage())

            no_500()

    return fuzz


def test_no_public_endpoint_answers_500_on_sqlite(served: Callable[[dict[str, str], int], None]):
    served({}, 300)


@needs_postgres
def test_no_public_endpoint_answers_500_on_postgresql(
    served: Callable[[dict[str, str], int], None],
    postgresql: Callable[[], str],  # noqa: F811
):
    served({"NEWSLETTER_DATABASE_URL": postgresql()}, 120)


def test_deep_json_is_a_400(project_dir: Path):
    app = create_app(project_dir, {"NEWSLETTER_SECRET_KEY": KEY}, clock=lambda: NOW)
    with TestClient(app, raise_server_exceptions=False) as client:
        for path in ("/subscribe", "/confirm", "/preferences"):
            answer = client.post(path, content=b"[" * 15000, headers={"content-type": "application/json"})
            assert answer.status_code == 400, path


@needs_postgres
def test_a_name_with_nul_and_line_breaks_is_stored_clean_on_postgresql(
    project_dir: Path,
    postgresql: Callable[[], str],  # noqa: F811
):
    environ = {"NEWSLETTER_DATABASE_URL": postgresql(), "NEWSLETTER_SECRET_KEY": KEY}
    app = create_app(
        project_dir,
        environ,
        clock=lambda: NOW,
        courier_for=lambda url, env: Courier(lambda: MemoryTransport()),
        dispatch_for=for_serve,  # the signups are recorded after the answer
    )
    form = Purposes(KEY).make_form("subscribe", "", NOW - timedelta(minutes=1))
    data = {"name": "Ann\x00\r\nBcc: x@example.org", "form_token": form}
    with TestClient(app, raise_server_exceptions=False) as client:
        answers = [
            client.post("/subscribe", data={**data, "email": "form@example.org"}),
            client.post("/subscribe", json={**data, "email": "json@example.org"}),
        ]
        assert [a.status_code for a in answers] == [200, 202]
    project = Project(project_dir, environ=environ)
    stored = [
        (p.name, c["name"])
        for p in Roster(project.store).subscribers()
        for c in Consents(project.store).consents_of(p.id)
    ]
    project.close()
    assert stored == [("Ann Bcc: x@example.org", "Ann Bcc: x@example.org")] * 2
