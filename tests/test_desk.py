"""The editor's desk: the variants an issue goes out in (counted by `send`'s own rule) and
test sends (to listed editors only, sealed as an issue, recorded nowhere). Real SQLite,
a real aiosmtpd relay, dkimpy's verifier."""

from __future__ import annotations

import html
import re
import warnings
from collections import Counter
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path

import dkim
import pytest
import sqlalchemy as sa
from starlette.exceptions import StarletteDeprecationWarning

from newsletter import scaffold
from newsletter.core.errors import ConfigError
from newsletter.core.models import SubscriberRow
from newsletter.delivery.desk import DESK_LOG, TestSend, audience_plan, send_test
from newsletter.delivery.send import send_schedule
from newsletter.project import Project
from newsletter.storage import schema
from newsletter.storage.roster import Roster
from newsletter.web.preview import create_app
from tests.conftest import NOW, SECRET, THREE_READERS, CliRunnerForProject, SMTPServer
from tests.test_dkim import enable, keygen

with warnings.catch_warnings():  # as in test_preview.py: Starlette would rather run on httpx2
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

WEEK = scaffold.DEMO_AT
EDITORS = ["editor@site.org", "chief@site.org"]
# Sleep-only readers, everything readers, one who picked a category with nothing new,
# a paused one and an unsubscribed one: the counts must leave the last three out.
AUDIENCE = (
    *THREE_READERS,
    SubscriberRow("dan@example.org", "Dan", ("Sleep & recovery",)),
    SubscriberRow("eve@example.org", "Eve", ("Movement & fitness", "Sleep & recovery")),
)


def listed(root: Path, *addresses: str) -> None:
    path = root / "newsletter.toml"
    quoted = ", ".join(f'"{a}"' for a in addresses)
    path.write_text(path.read_text("utf-8") + f"\n[preview]\ntest_recipients = [{quoted}]\n", "utf-8")


@pytest.fixture
def desk(demo_project: Project) -> Project:
    listed(demo_project.root, *EDITORS)
    project = Project(demo_project.root, environ=SECRET)
    Roster(project.store).import_subscribers(AUDIENCE, NOW)
    return project


def sent_per_variant(project: Project) -> Counter[str]:
    deliveries, variants = schema.deliveries, schema.issue_variants
    query = (
        sa.select(variants.c.variant, sa.func.count())
        .select_from(deliveries.join(variants, deliveries.c.variant_id == variants.c.id))
        .where(deliveries.c.status == "sent")
        .group_by(variants.c.variant)
    )
    with project.store.engine.connect() as conn:
        return Counter({key: n for key, n in conn.execute(query)})


def test_variant_counts_are_what_send_delivers(desk: Project, smtp_server: SMTPServer):
    plan = audience_plan(desk, desk.digest(desk.schedule("weekly"), WEEK))
    assert len(plan.variants) >= 2  # sleep only, and everything
    summary = send_schedule(desk, "weekly", WEEK, smtp_server.url)
    assert summary.outcome == "sent"
    assert Counter({v.key: v.readers for v in plan.variants}) == sent_per_variant(desk)
    assert plan.readers == len(smtp_server.handler.messages) == summary.counts["sent"]


def test_a_test_send_arrives_marked_and_records_nothing(desk: Project, smtp_server: SMTPServer):
    test = TestSend("weekly", WEEK, ["Editor@Site.org"], "Ann Editor", transport=smtp_server.url)
    assert send_test(desk, test, NOW) == ["editor@site.org"]
    [received] = smtp_server.handler.messages
    assert received.recipients == ["editor@site.org"]
    message = message_from_bytes(received.data, policy=policy.default)
    assert str(message["Subject"]).startswith("[TEST] ")
    assert message["List-Id"] and message["List-Unsubscribe"]
    with desk.store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.deliveries)).scalar() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.issues)).scalar() == 0
    log = (desk.root / DESK_LOG).read_text("utf-8")
    assert "test send of weekly (the whole issue) to editor@site.org by Ann Editor" in log
    assert NOW.isoformat() in log


def test_a_test_send_of_one_variant_has_only_its_sections(desk: Project, smtp_server: SMTPServer):
    plan = audience_plan(desk, desk.digest(desk.schedule("weekly"), WEEK))
    sleep = next(v for v in plan.variants if v.categories == ("Sleep & recovery",))
    send_test(desk, TestSend("weekly", WEEK, EDITORS, "Ann", sleep.key, smtp_server.url), NOW)
    assert len(smtp_server.handler.messages) == 2
    text = message_from_bytes(smtp_server.handler.messages[0].data, policy=policy.default)
    body = text.get_body(("plain",))
    assert body is not None
    assert "Sleep & recovery" in body.get_content()
    assert "Movement & fitness" not in body.get_content()


def test_an_address_not_listed_is_refused_before_anything_goes_out(desk: Project, smtp_server: SMTPServer):
    with pytest.raises(ConfigError, match="'someone@else.org' is not a test recipient") as e:
        send_test(desk, TestSend("weekly", WEEK, [EDITORS[0], "someone@else.org"], "Ann"), NOW)
    assert "test_recipients" in e.value.hint
    assert smtp_server.handler.messages == []
    assert not (desk.root / DESK_LOG).exists()


def test_send_test_on_the_command_line_is_signed_like_an_issue(
    cli: CliRunnerForProject,
    desk: Project,
    smtp_server: SMTPServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    _, toml, dns = keygen(cli, tmp_path / "keys" / "k.pem")
    enable(desk.root, toml)
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET["NEWSLETTER_SECRET_KEY"])
    result = cli(
        "send", "weekly", "--at", WEEK.isoformat(), "--transport", smtp_server.url,
        "--test", EDITORS[0], "--test", EDITORS[1], "--editor", "Ann",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "[TEST]" in result.stdout
    received = smtp_server.handler.messages
    assert sorted(r for m in received for r in m.recipients) == sorted(EDITORS)
    for message in received:
        assert dkim.verify(message.data, dnsfunc=dns)
        assert b"Subject: [TEST] " in message.data
    with desk.store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.deliveries)).scalar() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.issues)).scalar() == 0


def test_send_test_to_someone_not_listed_is_a_one_line_error(cli: CliRunnerForProject, desk: Project):
    result = cli("send", "weekly", "--transport", "memory:", "--test", "stranger@elsewhere.org")
    assert result.exit_code == 1
    assert "'stranger@elsewhere.org' is not a test recipient" in result.stderr


# -- the preview's desk ----------------------------------------------------------


@pytest.fixture
def desk_client(
    desk: Project, smtp_server: SMTPServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    path = desk.root / "newsletter.toml"
    text = path.read_text("utf-8").replace('transport = "', f'transport = "{smtp_server.url}" # "', 1)
    path.write_text(text, "utf-8")
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET["NEWSLETTER_SECRET_KEY"])
    app = create_app(desk.root, clock=lambda: WEEK)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client


def form_of(page: str) -> dict[str, str]:
    found = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page))
    return {k: html.unescape(v) for k, v in found.items()}


def test_the_page_lists_variants_with_send_counts_and_shows_each(desk: Project, desk_client):
    plan = audience_plan(desk, desk.digest(desk.schedule("weekly"), WEEK))
    page = desk_client.get("/schedules/weekly", params={"at": WEEK.isoformat()})
    assert page.status_code == 200
    shown = re.findall(
        r'data-key="([^"]*)"[^>]*>[^<]*</a>\s*<span class="badge ok readers">(\d+)<', page.text
    )
    assert {html.unescape(k): int(n) for k, n in shown} == {v.key: v.readers for v in plan.variants}
    sleep = next(v for v in plan.variants if v.categories == ("Sleep & recovery",))
    one = desk_client.get("/schedules/weekly", params={"at": WEEK.isoformat(), "variant": sleep.key})
    assert 'aria-current="page">Sleep &amp; recovery</a>' in one.text
    frame = re.search(r'id="frame-desktop" title="[^"]*" src="([^"]+)"', one.text)
    assert frame is not None
    text = desk_client.get(html.unescape(frame[1]).replace("issue.html", "issue.txt")).text
    assert "Sleep & recovery" in text and "Movement & fitness" not in text
    missing = desk_client.get("/schedules/weekly/issue.html", params={"variant": "Nobody\x1fwants"})
    assert missing.status_code == 404


def test_the_page_sends_a_test_with_its_token_only(desk: Project, desk_client, smtp_server: SMTPServer):
    page = desk_client.get("/schedules/weekly", params={"at": WEEK.isoformat()})
    form = {**form_of(page.text), "to": EDITORS[1], "editor": "Ann\nForged line"}
    sent = desk_client.post("/schedules/weekly/test", data=form)
    assert sent.status_code == 200, sent.text
    assert f"Test sent to {EDITORS[1]}." in sent.text
    [received] = smtp_server.handler.messages
    assert received.recipients == [EDITORS[1]] and b"Subject: [TEST] " in received.data
    assert "by Ann Forged line\n" in (desk.root / DESK_LOG).read_text("utf-8")
    stranger = desk_client.post("/schedules/weekly/test", data={**form, "to": "x@elsewhere.org"})
    assert stranger.status_code == 400 and "is not a test recipient" in stranger.text
    forged = desk_client.post("/schedules/weekly/test", data={**form, "token": "forged"})
    assert forged.status_code == 403
    assert len(smtp_server.handler.messages) == 1
    with desk.store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.deliveries)).scalar() == 0
