"""Editorial overrides (issue 20, item 3): an intro, a subject, a pinned lead, articles left
out and reordered, saved per issue period as versions, used by build, send and run, and
recorded with the send. Real SQLite files, aiosmtpd on 127.0.0.1, the CLI in-process."""

from __future__ import annotations

import email
import re
from dataclasses import dataclass
from datetime import timedelta
from email.message import Message
from email.policy import default
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from newsletter.delivery import due_sends
from newsletter.delivery.approval import NotApprovedError
from newsletter.delivery.editing import Change, edit
from newsletter.delivery.send import send_schedule
from newsletter.digest.overrides import Overrides, arrange, intro_html, intro_text
from newsletter.digest.render import Renderer, default_templates
from newsletter.project import Project
from newsletter.storage.approvals import Approvals
from newsletter.storage.issues import Issues
from newsletter.storage.overrides import IssueGoneOutError, IssueOverrides
from tests.conftest import NOW, CliRunnerForProject, SMTPServer
from tests.test_render import LINKS, SETTINGS, digest
from tests.test_scheduler import CATEGORY, GRACE, root, sender, subscribe, utc, write_markdown

__all__ = ["root", "sender"]  # the fixtures, shared with test_scheduler

FIRE = utc(2026, 11, 27, 10)  # the next daily issue after NOW (2026-11-26 12:00Z)
SLUGS = ("first-news", "second-news", "third-news")
INJECTIONS = (
    "Hello <script>alert(1)</script>\n\n"
    "[click](javascript:alert(1)) [data](data:text/html;base64,PHNjcmlwdD4=) <javascript:alert(2)>\n\n"
    '<img src="https://tracker.example/p.gif" onerror="alert(3)"> <a href="javascript:alert(4)">x</a>\n\n'
    '<div onclick="alert(5)">raw</div> ![pixel](https://tracker.example/q.gif)\n\n'
    "[fine](https://example.org/fine)"
)


class Tags(HTMLParser):
    """Every element and attribute of an HTML document, as a browser's parser sees them."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {k: v or "" for k, v in attrs}))


def injected(html: str) -> list[str]:
    """What INJECTIONS would have made of the HTML if any of it got through as markup."""
    bad = []
    for tag, attrs in Tags(html).found:
        if tag in ("script", "iframe", "object") or (tag == "img" and "tracker" in attrs.get("src", "")):
            bad.append(tag)
        bad += [
            f"{tag} {k}" for k, v in attrs.items() if k.startswith("on") or "javascript:" in v or "data:" in v
        ]
    return bad


def write_daily(root: Path, extra: str = "") -> None:
    (root / "schedules" / "daily.toml").write_text(
        f'title = "Daily"\ncron = "0 10 * * *"\ntimezone = "UTC"\ncategories = ["{CATEGORY}"]\n{extra}'
    )


@pytest.fixture
def daily(root: Path, sender: Project, tmp_path: Path) -> list[str]:
    """Three articles in the next daily issue (the newest first), and two readers."""
    write_daily(root)
    for n, slug in enumerate(SLUGS):
        write_markdown(tmp_path / "src", slug, utc(2026, 11, 26, 10, 15 + 20 * n))
    sender.ingest([str(tmp_path / "src")], NOW, CATEGORY)
    return subscribe(sender, 2)


def ids(project: Project) -> dict[str, int]:
    return {s.article.title: s.id for s in project.store.articles()}


def url_of(project: Project, title: str) -> str:
    return next(s.article.url for s in project.store.articles() if s.article.title == title)


def titles(project: Project) -> list[str]:
    return [a.title for a in project.digest(project.schedule("daily"), NOW).articles]


# -- the pure step ---------------------------------------------------------------------


@dataclass(frozen=True)
class Card:
    id: int


@st.composite
def picked_and_overrides(draw: st.DrawFn) -> tuple[list[tuple[str, list[Card]]], Overrides]:
    every = draw(st.lists(st.integers(1, 60), unique=True, max_size=25))
    cuts = sorted(draw(st.lists(st.integers(0, len(every)), max_size=4)))
    bounds = [0, *cuts, len(every)]
    sections = [
        (f"s{n}", [Card(i) for i in every[a:b]])
        for n, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False))
    ]
    named = st.integers(0, 70)  # ids of the issue and others (gone from the period, typed wrong)
    overrides = Overrides(
        pin=draw(named),
        exclude=tuple(draw(st.lists(named, max_size=8))),
        order=tuple(draw(st.lists(named, max_size=10))),
    )
    return sections, overrides


@given(picked_and_overrides())
def test_arrange_never_adds_and_keeps_every_other_article_once(case):
    sections, overrides = case
    arranged = arrange(sections, overrides)
    before = [c.id for _, cards in sections for c in cards]
    after = [c.id for _, cards in arranged for c in cards]
    assert sorted(after) == sorted(i for i in before if i not in overrides.exclude)  # once each, none new
    assert all(cards for _, cards in arranged)  # no empty section
    assert {cat: {c.id for c in cards} for cat, cards in arranged} == {
        cat: {c.id for c in cards if c.id not in overrides.exclude}
        for cat, cards in sections
        if any(c.id not in overrides.exclude for c in cards)
    }  # an article stays in its own section
    if overrides.pin in after:
        assert after[0] == overrides.pin  # the lead


def test_order_puts_the_listed_first_and_keeps_the_rest():
    sections = [("a", [Card(1), Card(2), Card(3), Card(4)])]
    assert [c.id for c in arrange(sections, Overrides(order=(3, 9, 1)))[0][1]] == [3, 1, 2, 4]


def test_pin_moves_its_section_first():
    sections = [("a", [Card(1)]), ("b", [Card(2), Card(3)])]
    assert arrange(sections, Overrides(pin=3)) == [("b", [Card(3), Card(2)]), ("a", [Card(1)])]


def test_the_intro_markdown_never_injects_markup():
    html = intro_html(INJECTIONS)
    assert {tag for tag, _ in Tags(html).found} == {"p", "a"} and injected(html) == []
    # an image is not made (no pixel is fetched): its alt text links to it, as any https link
    assert re.findall(r'href="([^"]*)"', html) == [
        "https://tracker.example/q.gif",
        "https://example.org/fine",
    ]
    assert "&lt;script&gt;" in html  # what was typed is shown, as text
    text = intro_text(INJECTIONS)
    assert "fine <https://example.org/fine>" in text and "click data" in text
    assert "alert(1))" not in text and "alert(2)" not in text  # refused links: their words only


# -- the email -------------------------------------------------------------------------


def test_an_issue_without_overrides_renders_as_before():
    plain = digest()
    issue = Renderer([default_templates()]).render(plain, SETTINGS, LINKS)
    assert plain.intro == "" and ' i"' not in issue.html and "border-left:3px" not in issue.html


def test_intro_and_subject_reach_both_parts_above_the_lead_and_rtl():
    from dataclasses import replace

    edited = replace(digest(), intro="A **word** from us. " + INJECTIONS, subject="Our pick\nthis week")
    issue = Renderer([default_templates()]).render(edited, SETTINGS, LINKS)
    assert issue.subject == "Our pick this week"
    lead = edited.articles[0]
    assert issue.html.index("<strong>word</strong>") < issue.html.index(
        f'id="a-{lead.id}"'
    )  # the lead's card
    assert issue.text.index("A word from us.") < issue.text.index(edited.articles[0].title)
    assert injected(issue.html) == []
    arabic = replace(edited, schedule=replace(edited.schedule, language="ar"))
    html = Renderer([default_templates()]).render(arabic, SETTINGS, LINKS).html
    assert re.search(r'<div dir="rtl" style="text-align:right;border-right:3px', html)


# -- stored, built, sent ---------------------------------------------------------------


def test_an_override_changes_the_next_build_and_is_recorded_with_the_send(
    daily: list[str], sender: Project, smtp_server: SMTPServer
):
    schedule = sender.schedule("daily")
    assert titles(sender) == ["third-news", "second-news", "first-news"]
    article = ids(sender)
    change = Change(
        intro="Editor's note: read **second** first.\n\n<script>alert(1)</script> [x](javascript:alert(1))",
        subject="Hand-picked",
        pin="second-news",
        exclude=(url_of(sender, "third-news"), str(article["third-news"])),  # by URL, by id: once
    )
    first = edit(sender, schedule, NOW, change, "Ada", NOW)
    assert first is not None and first.saved.version == 1
    edit(sender, schedule, NOW, Change(order=("first-news",)), "Bea", NOW + timedelta(minutes=1))
    assert titles(sender) == ["second-news", "first-news"]  # pinned beats the order; third left out
    build = sender.build("daily", NOW, NOW)
    assert build.issue is not None and build.issue.subject == "Hand-picked"
    [built] = Issues(sender.store).issues("daily")
    assert built.overrides_version == 2
    summary = send_schedule(sender, "daily", NOW, smtp_server.url)
    assert summary.outcome == "sent" and summary.counts["sent"] == 2
    [sent] = Issues(sender.store).issues("daily")
    assert (sent.status, sent.overrides_version, sent.subject) == ("sent", 2, "Hand-picked")
    for received in smtp_server.handler.messages:
        message = email.message_from_bytes(received.data, policy=default)
        assert message["Subject"] == "Hand-picked"
        html, text = _body(message, "html"), _body(message, "plain")
        assert "<strong>second</strong>" in html and injected(html) == [] and "javascript:" not in html
        assert "javascript:" not in text and "<script>alert(1)</script>" in text  # typed: plain text
        assert (
            html.index("Editor") < html.index('">second-news</a></h3>') < html.index('">first-news</a></h3>')
        )
        assert (
            '">third-news</a></h3>' not in html and "\n1. third-news" not in text
        )  # no card (a related link may name it)
        assert text.index("Editor's note") < text.index("second-news")
    with pytest.raises(IssueGoneOutError):
        edit(sender, schedule, NOW, Change(subject="Too late"), "Ada", NOW)


def _body(message: Message, kind: str) -> str:
    part = message.get_body((kind,))  # type: ignore[attr-defined]
    assert part is not None
    return str(part.get_content())


def test_no_override_records_no_version(daily: list[str], sender: Project, smtp_server: SMTPServer):
    send_schedule(sender, "daily", NOW, smtp_server.url)
    [sent] = Issues(sender.store).issues("daily")
    assert sent.status == "sent" and sent.overrides_version is None


def test_a_save_withdraws_the_approval_and_the_daemon_sends_the_approved_version(
    root: Path, daily: list[str], sender: Project, smtp_server: SMTPServer
):
    write_daily(root, 'approval = "required"\n')
    schedule = sender.schedule("daily")
    edit(sender, schedule, NOW, Change(subject="Version one"), "Ada", NOW)
    sender.build("daily", NOW, NOW)
    [issue] = Issues(sender.store).issues("daily")
    Approvals(sender.store).approve(issue.id, "Chief", NOW)
    result = edit(sender, schedule, NOW, Change(subject="Version two"), "Ada", NOW + timedelta(minutes=1))
    assert result is not None and result.withdrawn and Approvals(sender.store).approval(issue.id) is None
    [waiting] = due_sends.catch_up(sender, FIRE + timedelta(minutes=1), GRACE, smtp_server.url)
    assert waiting is None and smtp_server.handler.messages == []  # not approved again: not sent
    Approvals(sender.store).approve(issue.id, "Chief", FIRE)
    [went] = due_sends.catch_up(sender, FIRE + timedelta(minutes=2), GRACE, smtp_server.url)
    assert went is not None and went.outcome == "sent"
    subjects = {
        email.message_from_bytes(m.data, policy=default)["Subject"] for m in smtp_server.handler.messages
    }
    assert subjects == {"Version two"}
    assert Issues(sender.store).issues("daily")[0].overrides_version == 2


def test_versions_are_kept_with_who_and_when(daily: list[str], sender: Project):
    schedule = sender.schedule("daily")
    edit(sender, schedule, NOW, Change(subject="One"), "Ada", NOW)
    assert edit(sender, schedule, NOW, Change(subject=" One "), "Ann", NOW) is None  # no change: no version
    edit(sender, schedule, NOW, Change(pin="first-news"), "Bea", NOW + timedelta(hours=1))
    edit(sender, schedule, NOW, Change(reset=True), "Cy", NOW + timedelta(hours=2))
    history = IssueOverrides(sender.store).history("daily", FIRE)
    assert [(s.version, s.editor) for s in history] == [(3, "Cy"), (2, "Bea"), (1, "Ada")]
    assert history[1].overrides.subject == "One" and history[1].overrides.pin == ids(sender)["first-news"]
    assert history[0].overrides == Overrides()
    assert titles(sender) == ["third-news", "second-news", "first-news"]


# -- the command line ------------------------------------------------------------------


def test_edit_from_the_command_line(
    daily: list[str], sender: Project, cli: CliRunnerForProject, tmp_path: Path
):
    intro = tmp_path / "intro.md"
    intro.write_text("Hello *readers*.\n")
    at = NOW.isoformat()
    result = cli("edit", "daily", "--at", at, "--intro", str(intro), "--pin", "first-news",
                 "--exclude", "second-news", "--subject", "Picked", "--editor", "Ada", "--show")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "daily: overrides version 1 of the 2026-11-27 10:00 issue saved by Ada" in result.output
    assert re.search(r"lead #\d+ first-news", result.output)
    assert re.search(r"left out #\d+ second-news", result.output)
    assert re.search(r"version 1: Ada at [0-9T:+-]+: intro, subject, pin, exclude\n", result.output)
    assert titles(sender) == ["first-news", "third-news"]
    assert cli("edit", "daily", "--at", at, "--exclude", "", "--include", "second-news").exit_code == 1


@pytest.mark.parametrize(
    ("args", "error", "hint"),
    [
        (("--pin", "no-such-news"), "Error: --pin 'no-such-news': no article of the 2026-11-27 10:00 "
         "issue has that URL, slug or id", "--show` lists the issue's articles"),
        (("--exclude", "https://example.org/elsewhere"), "Error: --exclude 'https://example.org/elsewhere': "
         "no article", "newsletter edit daily --at 2026-11-27T10:00:00+00:00 --show"),
        (("--order", "99999"), "Error: --order '99999': no article", "--show"),
        (("--intro", "missing.md"), "Error: --intro missing.md: No such file or directory", "Markdown file"),
        (("--subject", "x" * 201), "Error: subject: 201 characters; at most 200", "shorten it"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_naming_the_key(
    daily: list[str], sender: Project, cli: CliRunnerForProject, args: tuple[str, ...], error: str, hint: str
):
    result = cli("edit", "daily", "--at", NOW.isoformat(), *args)
    assert result.exit_code == 1
    assert result.stderr.startswith(error), result.stderr
    assert hint in result.stderr.splitlines()[1]
    assert IssueOverrides(sender.store).history("daily", FIRE) == []  # nothing half-written


def test_an_intro_not_utf8_is_refused(daily: list[str], cli: CliRunnerForProject, tmp_path: Path):
    bad = tmp_path / "latin1.md"
    bad.write_bytes("Caf\xe9".encode("latin-1"))
    result = cli("edit", "daily", "--at", NOW.isoformat(), "--intro", str(bad))
    assert result.exit_code == 1 and f"Error: --intro {bad}: not UTF-8 (byte 3)" in result.stderr


def test_a_send_racing_a_save_never_sends_the_unapproved_version(
    root: Path, daily: list[str], sender: Project, smtp_server: SMTPServer
):
    """The daemon asked `waiting` and found it approved; an editor saves before the send
    reads the issue: the send refuses (the save withdrew the approval), nothing goes out."""
    write_daily(root, 'approval = "required"\n')
    sender.build("daily", NOW, NOW)
    [issue] = Issues(sender.store).issues("daily")
    Approvals(sender.store).approve(issue.id, "Chief", NOW)
    edit(sender, sender.schedule("daily"), NOW, Change(subject="Unseen"), "Ada", NOW)
    with pytest.raises(NotApprovedError, match="not sent: daily: the 2026-11-27 10:00 issue is waiting"):
        send_schedule(sender, "daily", NOW, smtp_server.url)
    assert smtp_server.handler.messages == [] and Issues(sender.store).issues("daily")[0].status == "built"
