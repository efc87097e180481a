"""The preview beyond loopback (issue 20): a login from NEWSLETTER_PREVIEW_PASSWORD, a
signed session cookie, form tokens bound to the session. Starlette's TestClient over the
real app and project; the loopback default needs no login."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from newsletter import scaffold
from newsletter.core.errors import NewsletterError
from newsletter.project import Project
from newsletter.web.access import COOKIE, PASSWORD_VARIABLE, Login
from newsletter.web.preview import create_app, serve
from tests.conftest import NOW

SECRET = "a-test-secret-of-enough-length"
PASSWORD = "correct horse battery staple"
ENV = {"NEWSLETTER_SECRET_KEY": SECRET, PASSWORD_VARIABLE: PASSWORD}
ROUTES = ["/", "/changes", "/schedules/weekly", "/schedules/weekly/issue.html", "/schedules/weekly/issue.txt"]
POSTS = ["/schedules/weekly/test", "/schedules/weekly/approve"]


@pytest.fixture
def guarded(project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET)
    app = create_app(project_dir, clock=lambda: NOW, allowed_hosts=["*"], login=Login.from_environ(ENV))
    with TestClient(app, base_url="https://preview.example.org", follow_redirects=False) as client:
        yield client


def log_in(client: TestClient, password: str = PASSWORD) -> None:
    answer = client.post("/login", data={"password": password})
    assert answer.status_code == 303, answer.text


@pytest.mark.parametrize("path", ROUTES)
def test_without_a_login_every_page_goes_to_the_login_page(guarded: TestClient, path: str):
    answer = guarded.get(path)
    assert (answer.status_code, answer.headers["location"]) == (303, "/login")


@pytest.mark.parametrize("path", POSTS)
def test_without_a_login_no_post_is_taken(guarded: TestClient, path: str):
    assert guarded.post(path, data={"token": "x", "editor": "Eve"}).status_code == 401


def test_a_wrong_password_is_refused_and_no_cookie_set(guarded: TestClient):
    answer = guarded.post("/login", data={"password": "<script>guess</script>"})
    assert answer.status_code == 401 and "Wrong password." in answer.text
    assert "<script>guess" not in answer.text and COOKIE not in answer.headers.get("set-cookie", "")
    assert guarded.get("/").status_code == 303
    guarded.cookies.set(COOKIE, "anything.forged.here")
    assert guarded.get("/").status_code == 303


def test_the_right_password_sets_a_strict_cookie_and_pages_work(guarded: TestClient):
    answer = guarded.post("/login", data={"password": PASSWORD})
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"].lower()
    assert cookie.startswith(COOKIE) and "httponly" in cookie and "samesite=strict" in cookie
    assert "secure" in cookie  # the request was https
    assert guarded.get("/").status_code == 200
    assert guarded.get("/schedules/weekly").status_code == 200


def test_a_form_token_works_only_in_its_own_session(project_dir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET)
    path = project_dir / "schedules" / "weekly.toml"
    path.write_text(path.read_text("utf-8") + 'approval = "required"\n', "utf-8")
    with closing(Project(project_dir, environ=ENV)) as project:
        project.ingest([str(scaffold.demo_articles())], NOW)
    app = create_app(project_dir, clock=lambda: NOW, allowed_hosts=["*"], login=Login.from_environ(ENV))
    with TestClient(app, base_url="https://p.example.org", follow_redirects=False) as mine:
        log_in(mine)
        page = mine.get("/schedules/weekly", params={"at": scaffold.DEMO_AT.isoformat()})
        assert page.status_code == 200 and "approve-form" in page.text, page.text[-3000:]
        form_html = page.text[page.text.index('class="approve-form"') :]
        form = {k: html.unescape(v) for k, v in re.findall(r'name="(\w+)" value="([^"]*)">', form_html)[:2]}
        with TestClient(app, base_url="https://p.example.org", follow_redirects=False) as theirs:
            log_in(theirs)
            assert theirs.post("/schedules/weekly/approve", data={**form, "editor": "Eve"}).status_code == 403
        done = mine.post("/schedules/weekly/approve", data={**form, "editor": "Ada"})
        assert done.status_code == 200, done.text


def test_over_http_the_cookie_is_not_secure(project_dir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET)
    app = create_app(project_dir, allowed_hosts=["*"], login=Login.from_environ(ENV))
    with TestClient(app, base_url="http://192.0.2.1", follow_redirects=False) as client:
        answer = client.post("/login", data={"password": PASSWORD})
    assert "secure" not in answer.headers["set-cookie"].lower()


def test_the_loopback_default_needs_no_login(project_dir: Path):
    with TestClient(create_app(project_dir, clock=lambda: NOW), base_url="http://127.0.0.1") as client:
        assert client.get("/").status_code == 200
        assert client.get("/login").status_code == 200  # harmless: the page, never needed


def test_beyond_loopback_without_a_password_it_refuses_to_start(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv(PASSWORD_VARIABLE, raising=False)
    with pytest.raises(NewsletterError) as caught:
        serve(project_dir, "0.0.0.0", 0)
    assert PASSWORD_VARIABLE in str(caught.value) and "\n" not in str(caught.value)
