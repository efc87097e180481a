"""The preview's "Edit this issue" panel (issue 20, item 3): the form saves a new version
with its token only, the page and its frames show it at once, moves work without
JavaScript, a save withdraws an approval, and the panel speaks the site's language."""

from __future__ import annotations

import html
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po
from starlette.exceptions import StarletteDeprecationWarning

from newsletter import scaffold
from newsletter.core.languages import SUPPORTED
from newsletter.core.translations import catalogue
from newsletter.project import Project
from newsletter.storage.approvals import Approvals
from newsletter.storage.issues import Issues
from newsletter.storage.overrides import IssueOverrides
from newsletter.web import pages
from newsletter.web.preview import create_app
from tests.conftest import SECRET

with warnings.catch_warnings():  # as in test_preview.py: Starlette would rather run on httpx2
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

WEEK = scaffold.DEMO_AT


@pytest.fixture
def client(demo_project: Project, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET["NEWSLETTER_SECRET_KEY"])
    with TestClient(create_app(demo_project.root, clock=lambda: WEEK), base_url="http://127.0.0.1") as made:
        yield made


def edit_form(page: str) -> dict[str, str]:
    form = page[page.index('class="edit-form"') :]
    found = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', form))
    return {k: html.unescape(v) for k, v in found.items()}


def ids_shown(page: str) -> list[int]:
    return [int(i) for i in re.findall(r'data-article="(\d+)"', page)]


def frame_html(client: TestClient, page: str) -> str:
    frame = re.search(r'id="frame-desktop" title="[^"]*" src="([^"]+)"', page)
    assert frame is not None
    return client.get(html.unescape(frame[1])).text


def test_a_save_shows_at_once_in_the_page_and_its_frames(demo_project: Project, client: TestClient):
    page = client.get("/schedules/weekly", params={"at": WEEK.isoformat()}).text
    assert 'id="edit"' in page and "No edits yet" in page
    articles = ids_shown(page)
    pinned, dropped = articles[-1], articles[0]
    form = {**edit_form(page), "editor": "Ann\nEditor", "subject": "Our pick", "pin": str(pinned),
            "exclude": str(dropped), "intro": "Hello **readers** <script>alert(1)</script>"}  # fmt: skip
    saved = client.post("/schedules/weekly/edit", data=form, follow_redirects=False)
    assert saved.status_code == 303
    assert saved.headers["location"].startswith("/schedules/weekly?at=") and saved.headers[
        "location"
    ].endswith("#edit")
    after = client.get(saved.headers["location"]).text
    assert '<dd id="subject" dir="auto">Our pick</dd>' in after
    assert re.search(r"<b>Version 1</b> · Ann Editor ·", after)
    assert "intro, subject, lead, left out" in after
    email = frame_html(client, after)
    assert "<strong>readers</strong>" in email and "<script>alert" not in email
    lead = demo_project.store.articles()
    title = next(s.article.title for s in lead if s.id == pinned)
    assert email.index("<strong>readers</strong>") < email.index(f'id="a-{pinned}"')
    assert html.escape(title) in email and f'id="a-{dropped}"' not in email
    assert f'class="edit-row excluded" data-article="{dropped}"' in after
    [version] = IssueOverrides(demo_project.store).history("weekly", WEEK)
    assert version.editor == "Ann Editor" and version.overrides.pin == pinned


def test_a_move_reorders_within_the_section_without_javascript(client: TestClient):
    page = client.get("/schedules/weekly", params={"at": WEEK.isoformat()}).text
    before = ids_shown(page)
    second = before[1]
    form = {**edit_form(page), "editor": "Ann", "move": f"{second}:up"}
    client.post("/schedules/weekly/edit", data=form)
    after = ids_shown(client.get("/schedules/weekly", params={"at": WEEK.isoformat()}).text)
    assert after[:2] == [second, before[0]] and sorted(after) == sorted(before)


def test_no_token_no_save(demo_project: Project, client: TestClient):
    page = client.get("/schedules/weekly", params={"at": WEEK.isoformat()}).text
    forged = client.post("/schedules/weekly/edit", data={**edit_form(page), "editor": "X", "token": "forged"})
    assert forged.status_code == 403
    nameless = client.post("/schedules/weekly/edit", data={**edit_form(page), "editor": " "})
    assert nameless.status_code == 400 and "say who you are" in nameless.text
    unknown = client.post("/schedules/weekly/edit", data={**edit_form(page), "editor": "X", "pin": "999999"})
    assert unknown.status_code == 400 and "--pin &#39;999999&#39;: no article" in unknown.text
    assert IssueOverrides(demo_project.store).history("weekly", WEEK) == []


def test_a_save_withdraws_the_approval_and_the_page_says_so(demo_project: Project, client: TestClient):
    path = demo_project.root / "schedules" / "weekly.toml"
    path.write_text(path.read_text("utf-8") + '\napproval = "required"\n', "utf-8")
    demo_project.build("weekly", WEEK, WEEK)
    [issue] = [i for i in Issues(demo_project.store).issues("weekly") if i.period.end == WEEK]
    Approvals(demo_project.store).approve(issue.id, "Chief", WEEK)
    page = client.get("/schedules/weekly", params={"at": WEEK.isoformat()}).text
    assert 'id="approved"' in page and 'id="edit-withdraws"' in page
    client.post("/schedules/weekly/edit", data={**edit_form(page), "editor": "Ann", "subject": "Changed"})
    again = client.get("/schedules/weekly", params={"at": WEEK.isoformat()}).text
    assert 'id="waiting"' in again and Approvals(demo_project.store).approval(issue.id) is None


def test_the_panel_speaks_the_site_language(demo_project: Project, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET["NEWSLETTER_SECRET_KEY"])
    monkeypatch.setenv("NEWSLETTER_SITE_LANGUAGE", "de")
    with TestClient(create_app(demo_project.root, clock=lambda: WEEK), base_url="http://127.0.0.1") as client:
        page = client.get("/schedules/weekly", params={"at": WEEK.isoformat()}).text
    assert "Diese Ausgabe bearbeiten" in page and "Als Aufmacher festlegen" in page


def panel_messages() -> set[str]:
    found = extract_from_file(
        "jinja2.ext:babel_extract",
        str(Path(pages.__file__).parent / "templates" / "_edit.html"),
        options={"trimmed": "true", "extensions": "jinja2.ext.i18n"},
    )
    return {m if isinstance(m, str) else m[0] for _, m, _, _ in found}


@pytest.mark.parametrize("language", [lang for lang in SUPPORTED if lang != "en"])
def test_every_word_of_the_panel_is_translated(language: str):
    with catalogue(language).open("rb") as f:
        po = read_po(f, locale=language)
    translated = {m.id for m in po if isinstance(m.id, str) and m.string}
    words = panel_messages()
    assert {"Edit this issue", "Move up: %(title)s", "left out"} <= words
    assert not words - translated, f"{language}: {sorted(words - translated)}"


def test_an_edit_from_the_command_line_refreshes_open_pages(demo_project: Project):
    from newsletter.delivery.editing import Change, edit
    from newsletter.web.workspace import Workspace

    workspace = Workspace(demo_project.root, lambda: WEEK)
    before = workspace.version()
    edit(demo_project, demo_project.schedule("weekly"), WEEK, Change(subject="New"), "Ann", WEEK)
    assert workspace.version() != before  # what `/changes` answers open pages
    workspace.close()


# What the desk says in English: none of it may be left on a German site's pages.
DESK_ENGLISH = (
    "Schedules", "Next send", "Headers", "Send a test", "Variants", "readers", "Download", "Size",
    "Desktop &amp; mobile", "Text part", "Articles", "Your name", "Quality check", "Preview the upcoming",
)  # fmt: skip


def test_the_whole_desk_speaks_the_site_language(demo_project: Project, monkeypatch: pytest.MonkeyPatch):
    """Not only the panels: headings, labels, the index, the login and error pages, and the
    forms' answers ("Not saved: …") follow [site] language."""
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET["NEWSLETTER_SECRET_KEY"])
    monkeypatch.setenv("NEWSLETTER_SITE_LANGUAGE", "de")
    with TestClient(create_app(demo_project.root, clock=lambda: WEEK), base_url="http://127.0.0.1") as client:
        page = client.get("/schedules/weekly", params={"at": WEEK.isoformat()}).text
        index = client.get("/").text
        missing = client.get("/schedules/nope").text
        nameless = client.post("/schedules/weekly/edit", data={**edit_form(page), "editor": " "})
        test = client.post("/schedules/weekly/test", data={**edit_form(page), "editor": " "})
    assert '<html lang="de" dir="ltr">' in page and "Test senden" in page and "Herunterladen" in page
    assert "Nächste Ausgabe ansehen" in index and "Kein solcher Zeitplan" in missing
    for shown in (page, index):
        body = shown[shown.index("<main") :]
        assert not [w for w in DESK_ENGLISH if re.search(rf">[^<]*\b{re.escape(w)}\b", body)], shown
    assert nameless.status_code == 400 and "Nicht gespeichert: Sagen Sie, wer Sie sind" in nameless.text
    assert test.status_code == 400 and "Test nicht gesendet" in test.text and "Zeitpläne" in test.text
