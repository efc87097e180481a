"""Issue 20, preview polish (no browser): the frames' light/dark switch, the inbox row
read back from the .eml, the "Issue of" picker of send times, dates in the site's language
and the schedule's zone, and `newsletter check`'s findings on the issue page."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from email import message_from_bytes, policy
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir, extract_from_file
from babel.messages.pofile import read_po
from markupsafe import escape

from newsletter import scaffold
from newsletter.core.languages import SUPPORTED
from newsletter.core.translations import catalogue
from newsletter.digest.check import check_letter, read_letter
from newsletter.project import Project
from newsletter.web.color_scheme import forced, has_dark_styles
from newsletter.web.preview import create_app
from newsletter.web.views import issue_page
from newsletter.web.workspace import Workspace

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

WEB = Path(__file__).parent.parent / "newsletter" / "web"
PLACEHOLDER = re.compile(r"%\(\w+\)s")
DARK_STYLE = """<mj-style>
  @media (prefers-color-scheme: dark) { .night-body { background-color: #101418 !important; } }
  @media screen and (prefers-color-scheme: light) { .day-only { color: #222222 !important; } }
</mj-style>"""


def without_dark_styles(root: Path) -> None:
    """The project's templates with their dark-mode rules made plain width rules."""
    templates = root / "templates"
    for path in (
        templates / "digest.mjml.j2",
        templates / "partials" / "head.mjml.j2",
        templates / "partials" / "base.mjml.j2",
    ):
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace("(prefers-color-scheme:dark)", "(max-width:1px)"), encoding="utf-8")


def with_dark_styles(root: Path) -> None:
    """A project template with a dark rule and a light one of its own, besides the default's."""
    digest = root / "templates" / "digest.mjml.j2"
    text = digest.read_text(encoding="utf-8")
    digest.write_text(text.replace("</mj-head>", f"{DARK_STYLE}\n</mj-head>", 1), encoding="utf-8")


@pytest.fixture
def client(demo_project: Project) -> Iterator[TestClient]:
    app = create_app(demo_project.root, clock=lambda: scaffold.DEMO_AT)
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client


def test_forced_decides_only_the_colour_scheme_conditions():
    html = (
        "<style>@media (prefers-color-scheme: dark) { a { color: #fff } }"
        "@media screen and (PREFERS-COLOR-SCHEME:light) { a { color: #000 } }"
        "@media (max-width: 480px) { a { color: red } }</style>"
        "<p>(prefers-color-scheme: dark) in the text stays</p>"
    )
    dark = forced(html, "dark")
    assert "@media (min-width: 0px) { a { color: #fff } }" in dark
    assert "@media screen and (max-width: -1px) { a { color: #000 } }" in dark
    assert "@media (max-width: 480px)" in dark and "<p>(prefers-color-scheme: dark) in the text" in dark
    light = forced(html, "light")
    assert "@media (max-width: -1px) { a { color: #fff } }" in light
    assert "screen and (min-width: 0px)" in light
    assert has_dark_styles(html) and not has_dark_styles("<p>(prefers-color-scheme: dark)</p>")


def test_the_dark_frame_applies_the_emails_own_dark_styles(client: TestClient, demo_project: Project):
    with_dark_styles(demo_project.root)
    page = client.get("/schedules/weekly", params={"scheme": "dark"})
    src = re.search(r'id="frame-desktop"[^>]* src="([^"]+)"', page.text)
    assert src is not None and "scheme=dark" in src.group(1)
    assert 'id="scheme-dark" href="/schedules/weekly?scheme=dark" aria-current="true"' in page.text
    assert 'id="no-dark-styles"' not in page.text
    dark = client.get(src.group(1).replace("&amp;", "&")).text
    plain = client.get("/schedules/weekly/issue.html").text
    assert "prefers-color-scheme" in plain and "prefers-color-scheme" not in dark
    assert re.search(r"@media\s*\(min-width: 0px\)\s*\{\s*\.night-body", dark)


def test_without_dark_styles_the_page_says_so_and_works_without_script(
    client: TestClient, demo_project: Project
):
    assert 'id="no-dark-styles"' not in client.get("/schedules/weekly", params={"scheme": "dark"}).text
    without_dark_styles(demo_project.root)
    page = client.get("/schedules/weekly", params={"scheme": "dark"})
    assert 'id="no-dark-styles"' in page.text
    light = client.get("/schedules/weekly", params={"scheme": "light"})
    assert 'id="no-dark-styles"' not in light.text and "scheme=light" in light.text
    odd = client.get("/schedules/weekly", params={"scheme": "<sepia>"})
    assert odd.status_code == 200 and "sepia" not in odd.text


def test_the_inbox_row_is_the_message_headers_read_back(client: TestClient, demo_project: Project):
    space = Workspace(demo_project.root, lambda: scaffold.DEMO_AT)
    page = issue_page(space, "weekly", None)
    eml = client.get("/schedules/weekly/issue.eml", params={"at": page.at.isoformat()}).content
    message = message_from_bytes(eml, policy=policy.default)
    row = page.inbox
    assert row is not None and page.build is not None and page.build.issue is not None
    assert row.subject == str(message["Subject"]) == page.build.issue.subject
    assert row.sender == message["From"].addresses[0].display_name == "Mind & Body"
    assert row.preheader == page.build.issue.preheader and row.received == page.period.end  # type: ignore[union-attr]
    html = client.get("/schedules/weekly").text
    assert '<b class="inbox-sender" id="inbox-sender" dir="auto">Mind &amp; Body</b>' in html


def site_language(root: Path, language: str) -> None:
    settings = root / "newsletter.toml"
    text = settings.read_text(encoding="utf-8")
    settings.write_text(re.sub(r'(?m)^language = "en"', f'language = "{language}"', text, count=1))


def test_the_picker_offers_send_times_in_the_site_language_and_zone(
    client: TestClient, demo_project: Project
):
    page = client.get("/schedules/weekly").text
    assert 'id="at-other" name="at" value="' in page and "Date and time in Europe/London" in page
    assert '<option value="2026-11-23T08:00:00+00:00" selected>Mon 23 Nov 2026, 08:00 GMT</option>' in page
    assert '<option value="2026-11-30T08:00:00+00:00">Mon 30 Nov 2026, 08:00 GMT</option>' in page
    site_language(demo_project.root, "de")
    german = client.get("/schedules/weekly").text
    assert (
        '<option value="2026-11-23T08:00:00+00:00" selected>Mo., 23. Nov. 2026, 08:00 GMT</option>' in german
    )
    assert "Datum und Uhrzeit in Europe/London" in german and "Ausgabe vom" in german


def test_the_issue_page_reports_what_check_finds_in_the_eml(client: TestClient, demo_project: Project):
    """The page's findings are `newsletter check FILE.eml --built`'s, but for SpamAssassin."""
    digest = demo_project.root / "templates" / "digest.mjml.j2"  # no <title>: a warning
    digest.write_text(re.sub(r"<mj-title>.*?</mj-title>", "", digest.read_text(encoding="utf-8")))
    space = Workspace(demo_project.root, lambda: scaffold.DEMO_AT)
    page = issue_page(space, "weekly", None)
    assert page.build is not None
    eml = client.get("/schedules/weekly/issue.eml", params={"at": page.at.isoformat()}).content
    report = check_letter(read_letter("issue.eml", eml, sent=False), spam=False)
    cli = {str(f) for f in report.findings if f.level in ("error", "warning")}
    shown = {w.removeprefix("check: ") for w in page.build.warnings if w.startswith("check: ")}
    assert cli and cli == shown | set(page.header_checks)
    html = client.get("/schedules/weekly").text
    assert 'id="quality"' in html and all(str(escape(f)) in html for f in cli)


def desk_messages() -> set[str]:
    """The _("...") of the preview's own templates (the desk)."""
    found = extract_from_dir(
        str(WEB / "templates"),
        method_map=[("*.html", "jinja2.ext:babel_extract")],
        options_map={"*.html": {"trimmed": "true", "extensions": "jinja2.ext.i18n"}},
    )
    return {m if isinstance(m, str) else m[0] for name, _, m, _, _ in found if "/" not in name}


def desk_code_messages() -> set[str]:
    """The N_("...") and _("...") of the desk's handlers: page titles, error panels, the
    forms' answers ("Not saved: …")."""
    keywords = {**DEFAULT_KEYWORDS, "N_": None}
    files = [WEB / name for name in ("preview.py", "views.py", "desk.py", "editor.py")]
    found = [m for f in files for _, m, _, _ in extract_from_file("python", str(f), keywords=keywords)]
    return {m if isinstance(m, str) else m[0] for m in found}


def test_the_extraction_finds_every_part_of_the_desk():
    pages, code = desk_messages(), desk_code_messages()
    assert {"Email colours", "Dark", "In the inbox", "Date and time in %(zone)s"} <= pages
    assert {"Schedules", "Send a test", "%(num)s reader", "Waiting for approval", "Log in"} <= pages
    assert {"Not saved: %(reason)s", "Test sent to %(addresses)s.", "No such schedule", "sent"} <= code


@pytest.mark.parametrize("language", [lang for lang in SUPPORTED if lang != "en"])
def test_every_word_the_desk_marks_is_translated(language: str):
    with catalogue(language).open("rb") as f:
        po = read_po(f, locale=language)
    translated = {(m.id if isinstance(m.id, str) else m.id[0]): m for m in po if m.id and m.string}
    wanted = desk_messages() | desk_code_messages()
    missing = wanted - set(translated)
    assert not missing, f"{language}: {sorted(missing)}"
    for msgid in wanted:  # every placeholder kept (a plural form may say "one" in words)
        string, expected = translated[msgid].string, set(PLACEHOLDER.findall(msgid))
        forms = [string] if isinstance(string, str) else list(string or ())
        assert all(set(PLACEHOLDER.findall(f)) <= expected for f in forms), f"{language}: {msgid!r}"
        assert set(PLACEHOLDER.findall(forms[-1])) == expected, f"{language}: {msgid!r}"


class _Words(HTMLParser):
    """The words a template prints outside Jinja: text and titles/labels, but for <code>."""

    def __init__(self) -> None:
        super().__init__()
        self.words: list[str] = []
        self.code = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.code += tag == "code"
        self.words += [v or "" for k, v in attrs if k in ("title", "aria-label", "placeholder", "alt")]

    def handle_endtag(self, tag: str) -> None:
        self.code -= tag == "code"

    def handle_data(self, data: str) -> None:
        if not self.code:
            self.words.append(data)


@pytest.mark.parametrize("template", sorted(p.name for p in (WEB / "templates").glob("*.html")))
def test_no_word_of_the_desk_is_hard_coded(template: str):
    """Every word a person reads goes through the catalogues: what is left of a template
    without its Jinja ({{ }}, {% %}, {% trans %} blocks, comments) has no English in it."""
    source = (WEB / "templates" / template).read_text(encoding="utf-8")
    bare = re.sub(r"{#.*?#}|{% trans.*?{% endtrans %}|{{.*?}}|{%.*?%}", " ", source, flags=re.S)
    parser = _Words()
    parser.feed(bare)
    left = {w for text in parser.words for w in re.findall(r"[A-Za-z]{2,}", text)}
    assert left <= {"KB", "px", "newsletter", "html", "txt", "eml"}, f"{template}: {sorted(left)}"
