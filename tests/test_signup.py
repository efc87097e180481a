"""Signup, double opt-in, welcome and the preference centre (`newsletter serve`), over
a real SQLite file through Starlette's TestClient; mail goes through transports.Courier
into a MemoryTransport, the in-package transport for tests. The browser test is
tests/test_signup_browser.py."""

from __future__ import annotations

import html as htmllib
import re
import warnings
from collections.abc import Iterator
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import sqlalchemy as sa
from starlette.exceptions import StarletteDeprecationWarning

from newsletter import scaffold
from newsletter.audience.dispatch import for_serve
from newsletter.core.models import SubscriberRow
from newsletter.core.tokens import Purposes, Tokens
from newsletter.delivery.send import SendOptions, SendPlan, send
from newsletter.delivery.transports import Courier, MemoryTransport
from newsletter.project import Project
from newsletter.storage.consents import Consents
from newsletter.storage.rights import DataRights
from newsletter.storage.roster import Roster
from newsletter.storage.schema import consents, signup_events
from newsletter.web.public import create_app
from newsletter.web.signup import Offer, embed_snippet
from tests.conftest import NOW, CliRunnerForProject

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

KEY = "test-secret-key-0123456789"
ENV = {"NEWSLETTER_SECRET_KEY": KEY}
INJECTION = '<script>alert(1)</script><b onmouseover="x">'


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def tick(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def outbox() -> MemoryTransport:
    return MemoryTransport()


@pytest.fixture
def client(project_dir: Path, clock: Clock, outbox: MemoryTransport) -> Iterator[TestClient]:
    app = create_app(
        project_dir,
        ENV,
        clock=clock,
        courier_for=lambda url, env: Courier(lambda: outbox),
        dispatch_for=for_serve,
    )
    with TestClient(app, base_url="https://example.org") as test_client:
        yield test_client


def form_token(client: TestClient, clock: Clock) -> str:
    page = client.get("/subscribe")
    found = re.search(r'name="form_token" value="([^"]+)"', page.text)
    assert found is not None
    clock.tick(seconds=5)  # a person takes a while to fill it in
    return htmllib.unescape(found.group(1))


def sign_up(client: TestClient, clock: Clock, email: str, **fields: Any) -> Any:
    data = {"email": email, "name": "", "form_token": form_token(client, clock), **fields}
    return client.post("/subscribe", data=data)


def mails_to(outbox: MemoryTransport, email: str) -> list[EmailMessage]:
    return [message_from_bytes(m, policy=policy.default) for _, to, m in outbox.sent if to == email]


def body(message: EmailMessage, kind: str = "plain") -> str:
    part = message.get_body((kind,))
    assert part is not None
    return str(part.get_content())


def confirm_link(message: EmailMessage) -> str:
    found = re.search(r"https://\S+/confirm\?token=\S+", body(message))
    assert found is not None
    url = urlsplit(found.group(0))
    return f"{url.path.removeprefix('/newsletter')}?{url.query}"


def hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', page)
    assert found is not None
    return htmllib.unescape(found.group(1))


def status(project: Project, email: str) -> str | None:
    found = {s.email: s.status for s in Roster(project.store).subscribers()}
    return found.get(email)


# -- the form ------------------------------------------------------------------


def test_the_form_offers_schedules_categories_and_the_consent_text(client: TestClient):
    page = client.get("/subscribe")
    assert page.status_code == 200
    text = page.text
    assert 'name="email"' in text and 'name="website"' in text  # the honeypot
    assert 'value="Sleep &amp; recovery"' in text
    assert "Mind &amp; Body Weekly" in text and "Sleep Better" in text
    assert "I agree to receive this newsletter" in text
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    as_json = client.get("/subscribe", headers={"accept": "application/json"}).json()
    assert as_json["form_token"] and "Sleep & recovery" in as_json["categories"]


def test_double_opt_in_from_signup_to_welcome(
    client: TestClient, clock: Clock, outbox: MemoryTransport, project: Project
):
    page = sign_up(client, clock, "Ann@Example.org", name=INJECTION, categories=["Sleep & recovery"])
    assert page.status_code == 200 and "Check your inbox" in page.text
    assert status(project, "ann@example.org") == "pending"
    [mail] = mails_to(outbox, "ann@example.org")
    assert mail["Subject"] == "Confirm your subscription to Mind & Body"
    assert "<script>" not in body(mail, "html") and "&lt;script&gt;" in body(mail, "html")
    link = confirm_link(mail)

    for _ in range(3):  # mail scanners GET every link: nobody is confirmed by that
        shown = client.get(link)
        assert shown.status_code == 200 and "Confirm my subscription" in shown.text
    assert status(project, "ann@example.org") == "pending"
    token = hidden(shown.text, "token")
    assert client.post("/confirm", data={"token": token}).status_code == 403  # no CSRF token
    assert status(project, "ann@example.org") == "pending"

    done = client.post("/confirm", data={"token": token, "form_token": hidden(shown.text, "form_token")})
    assert done.status_code == 200 and "You are subscribed" in done.text
    assert status(project, "ann@example.org") == "active"
    [ann] = Roster(project.store).subscribers()
    assert ann.categories == ("Sleep & recovery",)
    assert ann.name == INJECTION  # kept as typed, escaped wherever shown
    [consent] = Consents(project.store).consents_of(ann.id)
    assert consent["form"] == "subscribe" and consent["ip"] == "testclient"
    assert "I agree" in consent["consent_text"]
    assert consent["created_at"] == NOW + timedelta(seconds=5) and consent["confirmed_at"] == clock.now
    welcome = mails_to(outbox, "ann@example.org")[1]
    assert welcome["Subject"] == "Welcome to Mind & Body"
    assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "/preferences?token=" in body(welcome)

    again = client.post("/confirm", data={"token": token, "form_token": hidden(shown.text, "form_token")})
    assert again.status_code == 200 and "already confirmed" in again.text
    assert len(mails_to(outbox, "ann@example.org")) == 2  # the welcome, once


def test_behind_a_proxy_passing_public_urls_path_on_every_form_and_link_stays_under_it(
    client: TestClient, clock: Clock, outbox: MemoryTransport, project: Project
):
    """init sets public_url to the site + /newsletter; a proxy passes /newsletter/... on to
    serve as it is: the pages answer there, their forms post there, the mails link there."""
    prefix = "https://example.org/newsletter"
    form = client.get("/newsletter/subscribe")
    assert form.status_code == 200 and form_action(form.text, str(form.url)) == f"{prefix}/subscribe"
    clock.tick(seconds=5)
    data = {"email": "ann@example.org", "name": "", "form_token": hidden(form.text, "form_token")}
    assert "Check your inbox" in client.post(f"{prefix}/subscribe", data=data).text
    [mail] = mails_to(outbox, "ann@example.org")
    found = re.search(r"https://\S+/confirm\?token=\S+", body(mail))
    assert found is not None and found.group(0).startswith(f"{prefix}/confirm?token=")
    shown = client.get(found.group(0))  # the link as mailed, prefix and all
    assert shown.status_code == 200 and form_action(shown.text, str(shown.url)) == f"{prefix}/confirm"
    fields = {"token": hidden(shown.text, "token"), "form_token": hidden(shown.text, "form_token")}
    done = client.post(f"{prefix}/confirm", data=fields)
    assert done.status_code == 200 and status(project, "ann@example.org") == "active"
    preferences = re.search(r'href="([^"]*preferences[^"]*)"', done.text)
    assert preferences is not None
    assert urljoin(str(done.url), htmllib.unescape(preferences.group(1))).startswith(f"{prefix}/preferences?")


def form_action(page: str, url: str) -> str:
    """Where the page's form posts, resolved as a browser does against the page's URL."""
    found = re.search(r'<form[^>]*action="([^"]*)"', page)
    assert found is not None
    return urljoin(url, htmllib.unescape(found.group(1)))


def test_a_signup_of_a_listed_address_sends_nothing_and_reveals_nothing(
    client: TestClient, clock: Clock, outbox: MemoryTransport, project: Project
):
    Roster(project.store).import_subscribers([SubscriberRow("bob@example.org", "Bob")], NOW)
    new = sign_up(client, clock, "new@example.org")
    listed = sign_up(client, clock, "bob@example.org")
    assert (new.status_code, new.text) == (listed.status_code, listed.text)
    assert mails_to(outbox, "bob@example.org") == []
    assert status(project, "bob@example.org") == "active"


def test_at_most_one_confirmation_mail_an_hour(client: TestClient, clock: Clock, outbox: MemoryTransport):
    for _ in range(3):
        sign_up(client, clock, "cat@example.org")
    assert len(mails_to(outbox, "cat@example.org")) == 1
    clock.tick(minutes=61)
    sign_up(client, clock, "cat@example.org")
    assert len(mails_to(outbox, "cat@example.org")) == 2


def test_the_eleventh_signup_from_one_ip_is_refused(
    client: TestClient, clock: Clock, outbox: MemoryTransport, project: Project
):
    answers = [sign_up(client, clock, f"p{i}@example.org").status_code for i in range(11)]
    assert answers == [200] * 10 + [429]
    assert status(project, "p10@example.org") is None
    assert len(outbox.sent) == 10
    with project.store.engine.connect() as conn:  # kept as keyed digests, not as addresses
        keys = list(conn.scalars(sa.select(signup_events.c.key)))
    assert keys and not any("@" in k or "testclient" in k for k in keys)
    clock.tick(hours=1, seconds=1)
    assert sign_up(client, clock, "p10@example.org").status_code == 200


def test_json_signup(client: TestClient, clock: Clock, outbox: MemoryTransport, project: Project):
    token = client.get("/subscribe", headers={"accept": "application/json"}).json()["form_token"]
    clock.tick(seconds=3)
    answer = client.post(
        "/subscribe", json={"email": "dee@example.org", "schedules": ["sleep"], "form_token": token}
    )
    assert answer.status_code == 202 and answer.json()["status"] == "ok"
    bad = client.post("/subscribe", json={"email": "not an address", "form_token": token})
    assert bad.status_code == 400 and bad.json()["reason"] == "email"
    assert client.post("/subscribe", json={"email": "eve@example.org"}).json()["reason"] == "form"
    assert status(project, "dee@example.org") == "pending" and status(project, "eve@example.org") is None


@pytest.mark.parametrize("case", ["honeypot", "too fast", "no form token", "malformed address"])
def test_bots_and_bad_input_change_nothing(
    client: TestClient, clock: Clock, outbox: MemoryTransport, project: Project, case: str
):
    token = form_token(client, clock)
    data = {"email": "fay@example.org", "form_token": token}
    if case == "honeypot":
        data["website"] = "http://spam.example"
    elif case == "too fast":
        data["form_token"] = Purposes(KEY).make_form("subscribe", "", clock.now)
    elif case == "no form token":
        del data["form_token"]
    else:
        data["email"] = f"fay@{INJECTION}"
    page = client.post("/subscribe", data=data)
    assert "<script>alert" not in page.text
    if case == "honeypot":
        assert "Check your inbox" in page.text
    elif case == "malformed address":
        assert page.status_code == 400 and "does not look like an email address" in page.text
    else:  # an embedded form, or a quick hand: our form again, filled in, one more press
        assert "once more" in page.text and 'value="fay@example.org"' in page.text
    assert outbox.sent == [] and Roster(project.store).subscribers() == []


def test_tokens_work_for_their_own_purpose_only(
    client: TestClient, clock: Clock, outbox: MemoryTransport, project: Project
):
    sign_up(client, clock, "gus@example.org")
    [mail] = mails_to(outbox, "gus@example.org")
    confirm = parse_qs(urlsplit(confirm_link(mail)).query)["token"][0]
    [gus] = Roster(project.store).subscribers()
    purposes = Purposes(KEY)
    unsubscribe, preferences = Tokens(KEY).make(gus.id), purposes.make_preferences(gus.id)
    assert client.get("/preferences", params={"token": confirm}).status_code == 400
    assert client.get("/preferences", params={"token": unsubscribe}).status_code == 400
    assert client.get("/confirm", params={"token": preferences}).status_code == 400
    assert client.get("/confirm", params={"token": unsubscribe}).status_code == 400
    assert client.get("/unsubscribe", params={"token": preferences}).status_code == 400
    assert client.get("/confirm", params={"token": confirm[:-2]}).status_code == 400
    clock.tick(days=7, seconds=1)
    expired = client.get("/confirm", params={"token": confirm})
    assert expired.status_code == 400 and "expired" in expired.text
    assert status(project, "gus@example.org") == "pending"


def test_a_csrf_token_of_another_page_is_refused(
    client: TestClient, clock: Clock, outbox: MemoryTransport, project: Project
):
    sign_up(client, clock, "hal@example.org")
    shown = client.get(confirm_link(mails_to(outbox, "hal@example.org")[0]))
    token = hidden(shown.text, "token")
    other = Purposes(KEY).make_form("preferences", token, clock.now)
    assert client.post("/confirm", data={"token": token, "form_token": other}).status_code == 403
    assert status(project, "hal@example.org") == "pending"


def press_confirm(client: TestClient, link: str) -> Any:
    """The confirm button's POST, with a CSRF token made for the link's token (whether or
    not the page still shows the button)."""
    token = parse_qs(urlsplit(link).query)["token"][0]
    form = Purposes(KEY).make_form("confirm", token, NOW)
    return client.post("/confirm", data={"token": token, "form_token": form})


def test_an_unsubscribe_voids_the_confirmation_links_sent_before_it(
    client: TestClient, clock: Clock, outbox: MemoryTransport, project: Project
):
    sign_up(client, clock, "ida@example.org")
    [mail] = mails_to(outbox, "ida@example.org")
    [ida] = Roster(project.store).subscribers()
    clock.tick(minutes=5)
    assert client.post("/unsubscribe", params={"token": Tokens(KEY).make(ida.id)}).status_code == 200
    clock.tick(minutes=5)
    shown = client.get(confirm_link(mail))
    assert shown.status_code == 400 and "not valid" in shown.text and "Confirm my" not in shown.text
    pressed = press_confirm(client, confirm_link(mail))
    assert pressed.status_code == 400 and "not valid" in pressed.text
    assert status(project, "ida@example.org") == "unsubscribed"
    assert len(mails_to(outbox, "ida@example.org")) == 1  # no welcome


def test_a_confirmed_link_replayed_after_an_unsubscribe_changes_nothing(
    client: TestClient, clock: Clock, outbox: MemoryTransport, project: Project
):
    sign_up(client, clock, "jo@example.org")
    link = confirm_link(mails_to(outbox, "jo@example.org")[0])
    assert press_confirm(client, link).status_code == 200
    [jo] = Roster(project.store).subscribers()
    clock.tick(minutes=5)
    Roster(project.store).suppress(jo.id, "unsubscribed", clock.now)
    clock.tick(minutes=5)
    assert press_confirm(client, link).status_code == 400
    assert status(project, "jo@example.org") == "unsubscribed"


def test_a_newer_signup_voids_the_older_link_and_its_own_works(
    client: TestClient, clock: Clock, outbox: MemoryTransport, project: Project
):
    for _ in range(3):  # within the hour: one mail, and its link stays the one that works
        sign_up(client, clock, "kim@example.org")
    clock.tick(minutes=61)
    sign_up(client, clock, "kim@example.org", categories=["Sleep & recovery"])
    first, second = (confirm_link(m) for m in mails_to(outbox, "kim@example.org"))
    assert client.get(first).status_code == 400 and press_confirm(client, first).status_code == 400
    assert status(project, "kim@example.org") == "pending"
    assert client.get(second).status_code == 200
    assert press_confirm(client, second).status_code == 200
    [kim] = Roster(project.store).subscribers()
    assert kim.status == "active" and kim.categories == ("Sleep & recovery",)
    assert len(Consents(project.store).consents_of(kim.id)) == 2  # the two whose links went out


def test_within_the_hour_the_one_link_sent_still_works(
    client: TestClient, clock: Clock, outbox: MemoryTransport, project: Project
):
    sign_up(client, clock, "lou@example.org")
    sign_up(client, clock, "lou@example.org")  # a second press: no second mail
    [mail] = mails_to(outbox, "lou@example.org")
    assert press_confirm(client, confirm_link(mail)).status_code == 200
    assert status(project, "lou@example.org") == "active"


def test_forget_voids_a_confirmation_link(
    client: TestClient, clock: Clock, outbox: MemoryTransport, project: Project
):
    sign_up(client, clock, "max@example.org")
    link = confirm_link(mails_to(outbox, "max@example.org")[0])
    DataRights(project.store).forget("max@example.org", clock.now)
    assert client.get(link).status_code == 404 and press_confirm(client, link).status_code == 404
    assert [s.status for s in Roster(project.store).subscribers()] == ["forgotten"]
    assert len(mails_to(outbox, "max@example.org")) == 1


def test_signup_names_are_stored_as_one_clean_line(
    client: TestClient, clock: Clock, outbox: MemoryTransport, project: Project
):
    sign_up(client, clock, "ned@example.org", name="Ned\x00\r\nBcc: x@example.org\u2028" + "e" * 400)
    [ned] = Roster(project.store).subscribers()
    [consent] = Consents(project.store).consents_of(ned.id)
    for name in (ned.name, consent["name"]):
        assert name.startswith("Ned Bcc: x@example.org e") and len(name) == 200
        assert not any(c in name for c in "\x00\r\n\u2028")


# -- preferences and the next send ---------------------------------------------


def preferences_page(client: TestClient, subscriber_id: int) -> Any:
    return client.get("/preferences", params={"token": Purposes(KEY).make_preferences(subscriber_id)})


def save(client: TestClient, page: str, **fields: Any) -> Any:
    data = {"token": hidden(page, "token"), "form_token": hidden(page, "form_token"), **fields}
    return client.post("/preferences", data=data)


def test_preferences_change_what_the_next_send_gives(client: TestClient, demo_project: Project):
    people = ["ann@example.org", "bob@example.org", "cat@example.org", "dan@example.org"]
    Roster(demo_project.store).import_subscribers([SubscriberRow(p, p[:3].title()) for p in people], NOW)
    ids = {s.email: s.id for s in Roster(demo_project.store).subscribers()}
    page = preferences_page(client, ids["ann@example.org"]).text
    assert "a***@example.org" in page and 'value="Sleep &amp; recovery" checked' in page
    assert save(client, page, action="save").status_code == 400  # nothing ticked
    both = ["weekly", "sleep"]
    saved = save(client, page, action="save", schedules=both, categories=["Mindfulness & stress"])
    assert saved.status_code == 200 and "Saved" in saved.text
    page = preferences_page(client, ids["bob@example.org"]).text
    save(client, page, action="save", schedules=["sleep"], categories=["Sleep & recovery"])
    page = preferences_page(client, ids["cat@example.org"]).text
    save(client, page, action="save", schedules=both, categories=["Sleep & recovery"], paused="yes")
    page = preferences_page(client, ids["dan@example.org"]).text
    assert "Unsubscribed" not in save(client, page, action="unsubscribe").text
    assert {s.email: s.status for s in Roster(demo_project.store).subscribers()} == {
        "ann@example.org": "active",
        "bob@example.org": "active",
        "cat@example.org": "paused",
        "dan@example.org": "unsubscribed",
    }
    assert preferences_page(client, ids["dan@example.org"]).text.count("does not get") == 1

    outbox = MemoryTransport()
    summary = send(
        SendPlan(demo_project, "weekly", scaffold.DEMO_AT, SendOptions()), lambda: outbox, lambda: Tokens(KEY)
    )
    assert summary.outcome == "sent"
    got = {to: message_from_bytes(m, policy=policy.default) for _, to, m in outbox.sent}
    assert set(got) == {"ann@example.org"}  # bob chose only sleep, cat paused, dan left
    ann = got["ann@example.org"]
    assert "Mindfulness & stress" in body(ann) and "Sleep & recovery" not in body(ann)
    assert "/preferences?token=" in body(ann)
    link = re.search(r"/preferences\?token=(\S+)", body(ann))
    assert link is not None and Purposes(KEY).read_preferences(link.group(1)) == ids["ann@example.org"]
    assert summary.counts.get("skipped") == 2  # bob (another schedule) and cat (paused)


def confirm_by_mail(client: TestClient, outbox: MemoryTransport, email: str) -> None:
    shown = client.get(confirm_link(mails_to(outbox, email)[0]))
    token, form = hidden(shown.text, "token"), hidden(shown.text, "form_token")
    assert "You are subscribed" in client.post("/confirm", data={"token": token, "form_token": form}).text


def test_a_reimport_keeps_the_categories_readers_chose(
    cli: CliRunnerForProject,
    client: TestClient,
    clock: Clock,
    outbox: MemoryTransport,
    project: Project,
    tmp_path: Path,
):
    people = tmp_path / "people.csv"
    people.write_text("email,name,categories\nann@example.org,Ann,\nbob@example.org,Bob,\n")
    assert cli("subscribers", "import", str(people)).exit_code == 0
    ann = next(s for s in Roster(project.store).subscribers() if s.email == "ann@example.org")
    page = preferences_page(client, ann.id).text
    save(client, page, action="save", schedules=["weekly"], categories=["Mindfulness & stress"])
    sign_up(client, clock, "cat@example.org", categories=["Sleep & recovery"])
    confirm_by_mail(client, outbox, "cat@example.org")  # a signup form's choice is the reader's too
    people.write_text(
        "email,name,categories\n"
        "ann@example.org,Ann Smith,Sleep & recovery\n"
        "bob@example.org,Bob,Sleep & recovery\n"
        "cat@example.org,Cat,Fitness & movement\n"
    )
    result = cli("subscribers", "import", str(people))
    assert result.exit_code == 0, result.output
    assert "0 added, 3 updated, 0 unchanged" in result.stdout
    assert "2 kept the categories they chose" in result.stdout
    found = {s.email: (s.name, s.categories) for s in Roster(project.store).subscribers()}
    assert found == {
        "ann@example.org": ("Ann Smith", ("Mindfulness & stress",)),  # renamed, her choice kept
        "bob@example.org": ("Bob", ("Sleep & recovery",)),  # never chose: the file's
        "cat@example.org": ("Cat", ("Sleep & recovery",)),
    }


def test_pending_addresses_get_no_issue(client: TestClient, clock: Clock, demo_project: Project):
    sign_up(client, clock, "pen@example.org")
    outbox = MemoryTransport()
    summary = send(
        SendPlan(demo_project, "weekly", scaffold.DEMO_AT, SendOptions()), lambda: outbox, lambda: Tokens(KEY)
    )
    assert outbox.sent == [] and sum(summary.counts.get(k, 0) for k in ("sent", "skipped", "suppressed")) == 0


def test_the_latest_issue_goes_to_a_new_reader_once(project_dir: Path, demo_project: Project, clock: Clock):
    settings = project_dir / "newsletter.toml"
    settings.write_text(settings.read_text() + "\n[signup]\nsend_latest = true\n")
    Roster(demo_project.store).import_subscribers(
        [SubscriberRow("old@example.org", "Old", ("Sleep & recovery",))], NOW
    )
    sent = MemoryTransport()
    send(SendPlan(demo_project, "sleep", scaffold.DEMO_AT, SendOptions()), lambda: sent, lambda: Tokens(KEY))
    assert len(sent.sent) == 1
    outbox = MemoryTransport()
    app = create_app(
        project_dir,
        ENV,
        clock=clock,
        courier_for=lambda url, env: Courier(lambda: outbox),
        dispatch_for=for_serve,
    )
    with TestClient(app) as client:
        sign_up(client, clock, "new@example.org", schedules=["sleep"])
        shown = client.get(confirm_link(mails_to(outbox, "new@example.org")[0]))
        data = {"token": hidden(shown.text, "token"), "form_token": hidden(shown.text, "form_token")}
        client.post("/confirm", data=data)
        client.post("/confirm", data=data)
    subjects = [m["Subject"] for m in mails_to(outbox, "new@example.org")]
    assert subjects[:2] == ["Confirm your subscription to Mind & Body", "Welcome to Mind & Body"]
    assert subjects[2].startswith("Sleep Better") and len(subjects) == 3


def test_embed_snippet_and_the_serve_option(cli: CliRunnerForProject, project: Project):
    snippet = embed_snippet("https://example.org/newsletter", Offer.of(project.schedules()))
    assert 'action="https://example.org/newsletter/subscribe"' in snippet
    assert 'value="Sleep &amp; recovery"' in snippet
    result = cli("serve", "--embed")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == snippet


def test_consent_records_keep_no_ip_when_told(
    project_dir: Path, clock: Clock, outbox: MemoryTransport, project: Project
):
    settings = project_dir / "newsletter.toml"
    settings.write_text(settings.read_text() + "\n[signup]\nstore_ip = false\n")
    app = create_app(
        project_dir,
        ENV,
        clock=clock,
        courier_for=lambda url, env: Courier(lambda: outbox),
        dispatch_for=for_serve,
    )
    with TestClient(app) as client:
        sign_up(client, clock, "ivy@example.org")
    with project.store.engine.connect() as conn:
        assert list(conn.scalars(sa.select(consents.c.ip))) == [""]


# -- a double opt-in import ------------------------------------------------------------


def test_a_double_opt_in_import_asks_each_new_address_to_confirm(
    cli: CliRunnerForProject,
    client: TestClient,
    project: Project,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", KEY)
    Roster(project.store).import_subscribers([SubscriberRow("bob@example.org", "Bob")], NOW)
    people = tmp_path / "people.csv"
    people.write_text("email,name,categories\nann@example.org,Ann,Sleep & recovery\nbob@example.org,Bob,\n")
    outbox = tmp_path / "sent"
    result = cli("subscribers", "import", str(people), "--double-opt-in", "--transport", f"file:{outbox}")
    assert result.exit_code == 0, result.output
    assert "double opt-in: 1 asked to confirm by mail, 1 already on the list" in result.stdout
    assert (status(project, "ann@example.org"), status(project, "bob@example.org")) == ("pending", "active")
    [eml] = sorted(outbox.glob("*.eml"))
    mail = message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert mail["To"] == "Ann <ann@example.org>"
    shown = client.get(confirm_link(mail))
    done = client.post(
        "/confirm",
        data={"token": hidden(shown.text, "token"), "form_token": hidden(shown.text, "form_token")},
    )
    assert done.status_code == 200 and "You are subscribed" in done.text
    assert status(project, "ann@example.org") == "active"
    ann = next(s for s in Roster(project.store).subscribers() if s.email == "ann@example.org")
    [consent] = Consents(project.store).consents_of(ann.id)
    assert consent["form"] == "import:people.csv" and consent["ip"] == ""
    people.write_text("email,name,categories\nann@example.org,Ann,Fitness & movement\n")
    assert cli("subscribers", "import", str(people)).exit_code == 0
    ann = next(s for s in Roster(project.store).subscribers() if s.email == "ann@example.org")
    assert ann.categories == ("Fitness & movement",)  # confirmed, but the file's choice, not hers


def test_a_double_opt_in_import_needs_the_secret_before_recording_anyone(
    cli: CliRunnerForProject, project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("NEWSLETTER_SECRET_KEY", raising=False)
    people = tmp_path / "people.csv"
    people.write_text("email\nann@example.org\n")
    result = cli("subscribers", "import", str(people), "--double-opt-in", "--transport", f"file:{tmp_path}")
    assert result.exit_code == 1
    assert "NEWSLETTER_SECRET_KEY" in result.stderr
    assert status(project, "ann@example.org") is None
