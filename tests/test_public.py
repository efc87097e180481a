"""The public app (`newsletter serve`): unsubscribe and issues in the browser,
over a real SQLite file, through Starlette's TestClient; and end to end with
the real SMTP server: the List-Unsubscribe URL of a received message, POSTed,
keeps the next send away from that subscriber."""

from __future__ import annotations

import html as htmllib
import logging
import re
import warnings
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from starlette.exceptions import StarletteDeprecationWarning

from newsletter import scaffold
from newsletter.core.errors import ConfigError
from newsletter.core.models import SubscriberRow
from newsletter.core.tokens import Tokens
from newsletter.delivery.send import SendOptions, send_schedule
from newsletter.project import Project
from newsletter.storage.roster import Roster
from newsletter.web.public import RedactTokens, create_app, mask
from tests.conftest import NOW, CliRunnerForProject, SMTPServer, write_article

with warnings.catch_warnings():  # Starlette 1.x would rather its test client ran on httpx2,
    warnings.simplefilter("ignore", StarletteDeprecationWarning)  # and httpx is what we pin.
    from starlette.testclient import TestClient

KEY = "test-secret-key-0123456789"
ENV = {"NEWSLETTER_SECRET_KEY": KEY}
ONE_CLICK = {"List-Unsubscribe": "One-Click"}
FAST = SendOptions(retry_base=0.05, retry_cap=0.2)


@pytest.fixture
def people(project: Project) -> dict[str, int]:
    """Three subscribers in the project's store: email -> id."""
    Roster(project.store).import_subscribers(
        [
            SubscriberRow("ann@example.org", "Ann"),
            SubscriberRow("bob@example.org", "Bob"),
            SubscriberRow("cat@example.org", "Cat"),
        ],
        NOW,
    )
    return {s.email: s.id for s in Roster(project.store).subscribers()}


@pytest.fixture
def client(project_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(project_dir, ENV, clock=lambda: NOW)) as test_client:
        yield test_client


def token(subscriber_id: int, key: str = KEY) -> str:
    return Tokens(key).make(subscriber_id)


def status_of(project: Project, subscriber_id: int) -> str:
    found = Roster(project.store).subscriber(subscriber_id)
    assert found is not None
    return found.status


def statuses(project: Project) -> dict[str, str]:
    return {s.email: s.status for s in Roster(project.store).subscribers()}


def flip(text: str, index: int) -> str:
    changed = "A" if text[index] != "A" else "B"
    return text[:index] + changed + text[index + 1 :]


# -- the confirm page ----------------------------------------------------------


def test_confirm_page_changes_nothing(client: TestClient, project: Project, people: dict[str, int]):
    ann = token(people["ann@example.org"])
    for _ in range(3):  # link scanners may fetch it many times
        page = client.get("/unsubscribe", params={"token": ann})
        assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    text = page.text
    assert "a***@example.org" in text
    assert "ann@example.org" not in text
    assert "Mind &amp; Body" in text  # the site's name, escaped once
    assert '<form method="post" action="unsubscribe">' in text
    assert f'name="token" value="{ann}"' in text
    assert '<button type="submit">Unsubscribe</button>' in text
    assert '<html lang="en" dir="ltr">' in text  # issue 19: the site's language and direction
    assert client.head("/unsubscribe", params={"token": ann}).status_code == 200
    assert statuses(project) == dict.fromkeys(people, "active")


def test_confirm_page_of_someone_already_unsubscribed(
    client: TestClient, project: Project, people: dict[str, int]
):
    Roster(project.store).suppress(people["bob@example.org"], "unsubscribed", NOW)
    page = client.get("/unsubscribe", params={"token": token(people["bob@example.org"])})
    assert page.status_code == 200
    assert "already unsubscribed" in page.text
    assert "<form" not in page.text


def test_the_confirm_pages_own_form_unsubscribes(
    client: TestClient, project: Project, people: dict[str, int]
):
    page = client.get("/unsubscribe", params={"token": token(people["ann@example.org"])})
    field = re.search(r'name="token" value="([^"]+)"', page.text)
    assert field is not None
    # The form posts to "unsubscribe" relative to the page, the token in its field only.
    done = client.post("/unsubscribe", data={"token": htmllib.unescape(field.group(1))})
    assert done.status_code == 200
    assert "You are unsubscribed" in done.text
    assert status_of(project, people["ann@example.org"]) == "unsubscribed"
    assert status_of(project, people["bob@example.org"]) == "active"


# -- one-click -------------------------------------------------------------------


def test_one_click_post_unsubscribes_and_is_idempotent(
    client: TestClient, project: Project, people: dict[str, int]
):
    url = f"/unsubscribe?token={token(people['ann@example.org'])}"
    first = client.post(url, data=ONE_CLICK)
    assert first.status_code == 200
    assert "You are unsubscribed" in first.text
    assert "a***@example.org" in first.text
    assert statuses(project) == {
        "ann@example.org": "unsubscribed",
        "bob@example.org": "active",
        "cat@example.org": "active",
    }
    second = client.post(url, data=ONE_CLICK)
    assert second.status_code == 200
    assert "already unsubscribed" in second.text
    assert statuses(project)["ann@example.org"] == "unsubscribed"


def test_one_click_as_multipart(client: TestClient, project: Project, people: dict[str, int]):
    url = f"/unsubscribe?token={token(people['bob@example.org'])}"
    response = client.post(url, files={"List-Unsubscribe": (None, "One-Click")})
    assert response.status_code == 200
    assert status_of(project, people["bob@example.org"]) == "unsubscribed"


def test_a_bounced_address_stays_bounced(client: TestClient, project: Project, people: dict[str, int]):
    Roster(project.store).suppress(people["cat@example.org"], "bounced", NOW)
    response = client.post(f"/unsubscribe?token={token(people['cat@example.org'])}", data=ONE_CLICK)
    assert response.status_code == 200
    assert status_of(project, people["cat@example.org"]) == "bounced"


def test_a_removed_subscriber_who_unsubscribes_is_suppressed_for_good(
    client: TestClient, project: Project, people: dict[str, int]
):
    Roster(project.store).remove("ann@example.org", NOW)
    response = client.post(f"/unsubscribe?token={token(people['ann@example.org'])}", data=ONE_CLICK)
    assert response.status_code == 200
    assert status_of(project, people["ann@example.org"]) == "unsubscribed"


# -- bad tokens --------------------------------------------------------------------


@pytest.mark.parametrize("where", ["payload", "signature"])
def test_tampered_token_is_rejected_and_changes_nothing(
    client: TestClient, project: Project, people: dict[str, int], where: str
):
    good = token(people["ann@example.org"])
    dot = good.index(".")
    bad = flip(good, 0 if where == "payload" else dot + 5)
    assert bad != good
    page = client.get("/unsubscribe", params={"token": bad})
    assert page.status_code == 400
    assert "This unsubscribe link is not valid" in page.text
    assert client.post("/unsubscribe", params={"token": bad}, data=ONE_CLICK).status_code == 400
    assert client.post("/unsubscribe", data={"token": bad}).status_code == 400
    assert statuses(project) == dict.fromkeys(people, "active")


def test_token_signed_with_another_key_is_rejected(
    client: TestClient, project: Project, people: dict[str, int]
):
    forged = token(people["ann@example.org"], key="another-secret-key-9876543210")
    assert client.get("/unsubscribe", params={"token": forged}).status_code == 400
    assert client.post("/unsubscribe", params={"token": forged}, data=ONE_CLICK).status_code == 400
    assert statuses(project) == dict.fromkeys(people, "active")


@pytest.mark.parametrize("value", ["", "not-a-token", "x" * 5000, "MQ", "MQ.", "Ii4uIg.abc"])
def test_garbage_tokens_are_400(client: TestClient, people: dict[str, int], value: str):
    assert client.get("/unsubscribe", params={"token": value}).status_code == 400
    assert client.post("/unsubscribe", params={"token": value}, data=ONE_CLICK).status_code == 400


def test_missing_token_is_400_with_a_way_forward(
    client: TestClient, project: Project, people: dict[str, int]
):
    page = client.get("/unsubscribe")
    assert page.status_code == 400
    assert "This unsubscribe link is not valid" in page.text
    assert "bottom of an email" in page.text
    assert client.post("/unsubscribe", data=ONE_CLICK).status_code == 400
    assert statuses(project) == dict.fromkeys(people, "active")


def test_token_is_read_from_query_or_form_only(client: TestClient, project: Project, people: dict[str, int]):
    ann = token(people["ann@example.org"])
    assert (
        client.post(
            "/unsubscribe", headers={"x-token": ann, "cookie": f"token={ann}"}, data=ONE_CLICK
        ).status_code
        == 400
    )
    assert client.post("/unsubscribe", json={"token": ann}).status_code == 400
    assert statuses(project) == dict.fromkeys(people, "active")


def test_query_and_form_tokens_that_disagree_are_400(
    client: TestClient, project: Project, people: dict[str, int]
):
    response = client.post(
        "/unsubscribe",
        params={"token": token(people["ann@example.org"])},
        data={"token": token(people["bob@example.org"])},
    )
    assert response.status_code == 400
    assert statuses(project) == dict.fromkeys(people, "active")


def test_valid_token_of_an_unknown_subscriber_is_404(
    client: TestClient, project: Project, people: dict[str, int]
):
    ghost = token(10_000)
    assert client.get("/unsubscribe", params={"token": ghost}).status_code == 404
    assert client.post("/unsubscribe", params={"token": ghost}, data=ONE_CLICK).status_code == 404
    assert statuses(project) == dict.fromkeys(people, "active")


def test_an_oversized_body_is_refused(client: TestClient, project: Project, people: dict[str, int]):
    response = client.post(
        f"/unsubscribe?token={token(people['ann@example.org'])}",
        content=b"x" * 100_000,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413
    assert status_of(project, people["ann@example.org"]) == "active"


def test_other_methods_are_405(client: TestClient, people: dict[str, int]):
    response = client.put(f"/unsubscribe?token={token(people['ann@example.org'])}")
    assert response.status_code == 405
    assert "GET" in response.headers["allow"]
    assert "POST" in response.headers["allow"]


# -- headers, issues, the rest -----------------------------------------------------------


def test_security_headers_on_every_page(client: TestClient, people: dict[str, int]):
    ann = token(people["ann@example.org"])
    for response in (
        client.get("/"),
        client.get("/healthz"),
        client.get(f"/unsubscribe?token={ann}"),
        client.get("/unsubscribe?token=bad"),
        client.get("/no/such/page"),
    ):
        csp = response.headers["content-security-policy"]
        for directive in (
            "default-src 'none'",
            "style-src 'unsafe-inline'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ):
            assert directive in csp
        assert "script-src" not in csp  # default-src 'none' covers scripts
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["cache-control"] == "no-store"


def test_index_health_and_not_found(client: TestClient):
    index = client.get("/")
    assert index.status_code == 200
    assert "Mind &amp; Body" in index.text
    health = client.get("/healthz")
    assert health.status_code == 200
    assert health.text == "ok"
    missing = client.get("/preview")  # nothing of the editors' preview is here
    assert missing.status_code == 404
    assert "Page not found" in missing.text


def test_issues_route_serves_a_built_issue(demo_project: Project, client: TestClient):
    built = demo_project.build("weekly", scaffold.DEMO_AT, NOW, out=demo_project.root / "issues")
    path = built.files["html"]
    assert path.name == "weekly-2026-11-23.html"
    response = client.get("/issues/weekly-2026-11-23.html")
    assert response.status_code == 200
    assert response.content == path.read_bytes()
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src 'none'" in response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize(
    "url",
    [
        "/issues/..%2F..%2Fnewsletter.toml",
        "/issues/..%2Fnewsletter.toml",
        "/issues/..%2F..%2Fnewsletter.toml.html",
        "/issues/x.html",
        "/issues/weekly-2026-11-23.txt",
        "/issues/weekly-2026-11-23.eml",
        "/issues/weekly-2026-11-30.html",  # well-formed, not there
        "/issues/.weekly-2026-11-23.html",
        "/issues/weekly-2026-11-23.html.html",
        "/issues/%2e%2e/newsletter.toml",
        "/issues/weekly-2026-11-23/feed.atom.html",
        "/issues/feed.atom.html",
    ],
)
def test_issues_route_refuses_anything_else(demo_project: Project, client: TestClient, url: str):
    demo_project.build("weekly", scaffold.DEMO_AT, NOW, out=demo_project.root / "issues")
    (demo_project.root / "issues" / "weekly-2026-11-23.html.html").write_text("x")  # a stray file
    (demo_project.root / "issues" / ".weekly-2026-11-23.html").write_text("x")
    response = client.get(url)
    assert response.status_code == 404
    assert "[site]" not in response.text


def test_public_url_path_prefix_is_served_too(client: TestClient, project: Project, people: dict[str, int]):
    """A proxy that passes /newsletter/... on unchanged reaches the same routes."""
    url = f"/newsletter/unsubscribe?token={token(people['ann@example.org'])}"
    assert client.get(url).status_code == 200
    assert client.get("/newsletter/healthz").text == "ok"
    assert client.get("/newsletterx/healthz").status_code == 404


# -- configuration --------------------------------------------------------------------


@pytest.mark.parametrize("environ", [{}, {"NEWSLETTER_SECRET_KEY": "short"}])
def test_app_refuses_to_start_without_a_secret(project_dir: Path, environ: dict[str, str]):
    with pytest.raises(ConfigError, match="NEWSLETTER_SECRET_KEY"):
        create_app(project_dir, environ)


def test_serve_without_a_secret_fails_before_binding(
    cli: CliRunnerForProject, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("NEWSLETTER_SECRET_KEY", raising=False)
    result = cli("serve", "--port", "0")
    assert result.exit_code == 1
    assert "NEWSLETTER_SECRET_KEY" in result.stderr
    assert "Hint:" in result.stderr


def test_mask_and_log_redaction():
    assert mask("ann@example.org") == "a***@example.org"
    assert mask("a@example.org") == "a***@example.org"
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s" %d',
        ("127.0.0.1:5", "POST", "/unsubscribe?token=MQ.abc&x=1", 200),
        None,
    )
    RedactTokens().filter(record)
    assert "MQ.abc" not in record.getMessage()
    assert "token=[redacted]&x=1" in record.getMessage()


# -- end to end ----------------------------------------------------------------------


def test_unsubscribe_end_to_end(demo_project: Project, smtp_server: SMTPServer, tmp_path: Path):
    """Take the List-Unsubscribe URL from a received message, POST it, and the
    next send skips that subscriber."""
    sender = Project(demo_project.root, environ=ENV)
    try:
        Roster(sender.store).import_subscribers(
            [
                SubscriberRow("ann@example.org", "Ann"),
                SubscriberRow("bob@example.org", "Bob"),
                SubscriberRow("cat@example.org", "Cat"),
            ],
            NOW,
        )
        first = send_schedule(sender, "weekly", scaffold.DEMO_AT, smtp_server.url, FAST)
        assert first.outcome == "sent"
        assert first.counts["sent"] == 3

        [received] = smtp_server.handler.received_by("bob@example.org")
        message = message_from_bytes(received.data, policy=policy.default)
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        [url] = re.findall(r"<(https://[^>]+)>", message["List-Unsubscribe"])
        html_part = message.get_body(("html",))
        assert html_part is not None
        html = html_part.get_content()
        link = re.search(r'<a href="([^"]+)"[^>]*>Unsubscribe</a>', html)
        assert link is not None
        token_in_body = parse_qs(urlsplit(htmllib.unescape(link.group(1))).query)["token"]
        assert token_in_body == parse_qs(urlsplit(url).query)["token"]
        browser = re.search(r'<a href="([^"]+)"[^>]*>View in your browser</a>', html)
        assert browser is not None

        with TestClient(create_app(demo_project.root, ENV)) as client:
            parts = urlsplit(url)  # https://example.org/newsletter/unsubscribe?token=...
            scanned = client.get(f"{parts.path}?{parts.query}")  # a link scanner: changes nothing
            assert scanned.status_code == 200
            assert Roster(sender.store).subscribers(status="unsubscribed") == []
            done = client.post(
                f"{parts.path}?{parts.query}",
                data=ONE_CLICK,
                headers={"content-type": "application/x-www-form-urlencoded"},
            )
            assert done.status_code == 200
            assert "You are unsubscribed" in done.text
            web_copy = client.get(urlsplit(htmllib.unescape(browser.group(1))).path)
            assert web_copy.status_code == 200
            assert "Mind &amp; Body" in web_copy.text

        # Next week's issue, with something new to send.
        next_week = scaffold.DEMO_AT + timedelta(days=7)
        folder = tmp_path / "next-week"
        write_article(folder, "a.txt", "Naps that help", "2026-11-25")
        write_article(folder, "b.txt", "Quiet bedrooms", "November 27, 2026")
        report = sender.ingest([str(folder)], next_week, category="Sleep & recovery")
        assert report.errors == []
        assert report.articles == 2
        before = len(smtp_server.handler.messages)
        second = send_schedule(sender, "weekly", next_week, smtp_server.url, FAST)
        assert second.outcome == "sent"
        assert second.counts["sent"] == 2
        assert second.counts["suppressed"] == 1
        new = smtp_server.handler.messages[before:]
        recipients = sorted(r for m in new for r in m.recipients)
        assert recipients == ["ann@example.org", "cat@example.org"]
        plain = message_from_bytes(new[0].data, policy=policy.default).get_body(("plain",))
        assert plain is not None
        assert "Naps that help" in plain.get_content()
    finally:
        sender.close()
