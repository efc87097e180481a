"""End to end through a real MTA: a private Postfix instance on a random 127.0.0.1 port.

The fixture runs tests/postfix_instance.py's instance (its own main.cf, master.cf, queue and
data directory in a fresh temp folder, `postfix -c DIR start`, stopped afterwards). It relays
nowhere (`default_transport = error`) and delivers the test domain to Maildirs through
virtual(8); unknown users are accepted at RCPT and then bounced, so Postfix writes a real DSN
(RFC 3464) and sends it to the message's return path, the VERP address, which lands in the
bounce Maildir (bounces+anything@ is the bounces user, by recipient_delimiter). No mocks of
Postfix. Debian's `postfix` package (.ci/run installs it); it must run as root (CI does), and
the Maildirs belong to `nobody`.
"""

from __future__ import annotations

import smtplib
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path

import pytest
import sqlalchemy as sa

from newsletter import scaffold
from newsletter.core.models import SubscriberRow
from newsletter.core.tokens import Tokens
from newsletter.delivery.send import SendOptions, send_schedule
from newsletter.project import Project
from newsletter.storage.roster import Roster
from newsletter.storage.schema import deliveries, issue_variants
from tests import postfix_instance
from tests.conftest import NOW, CliRunnerForProject
from tests.postfix_instance import Postfix

DOMAIN = "test.example"
KEY = "test-secret-key-0123456789"
SIGNING = Path(__file__).parent.parent.joinpath("newsletter", "signing.py").exists()

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        postfix_instance.POSTFIX is None, reason="Debian's postfix is not installed (.ci/run installs it)"
    ),
]

# Relays nowhere; delivers the test domain to Maildirs through virtual(8).
MAIL_CF = """\
# Accept unknown users at RCPT, then bounce them: a real DSN to the return path.
smtpd_reject_unlisted_recipient = no
default_transport = error:this test instance relays nowhere
relay_transport = error:this test instance relays nowhere
virtual_mailbox_domains = {domain}
virtual_mailbox_base = {root}/mail
virtual_mailbox_maps = texthash:{root}/conf/mailboxes
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
recipient_delimiter = +
"""


@pytest.fixture
def postfix() -> Iterator[Postfix]:
    if reason := postfix_instance.unavailable():
        pytest.skip(reason)
    # A trailing slash: a Maildir. bounces+TOKEN@ is delivered to bounces (recipient_delimiter).
    mailboxes = "".join(f"{user}@{DOMAIN} {user}/\n" for user in ("ann", "cat", "bounces"))
    with postfix_instance.running(MAIL_CF, DOMAIN, {"mailboxes": mailboxes}) as instance:
        yield instance


def dkim_environment() -> tuple[dict[str, str], dict[str, str]]:
    """The [dkim] settings and key (in the environment), and the TXT records to publish."""
    from newsletter.delivery import signing

    pair = signing.generate()
    environ = {
        "NEWSLETTER_DKIM_DOMAIN": "example.org",
        "NEWSLETTER_DKIM_SELECTOR": "e2e",
        signing.KEY_VARIABLE: pair.private_pem.decode("ascii"),
    }
    return environ, {"e2e._domainkey.example.org.": signing.txt_value(pair)}


def test_an_issue_through_postfix_bounces_and_complaints_come_back(
    demo_project: Project, postfix: Postfix, monkeypatch: pytest.MonkeyPatch
):
    started = time.monotonic()
    environ = {
        "NEWSLETTER_SECRET_KEY": KEY,
        "NEWSLETTER_BOUNCES_RETURN_PATH": f"bounces+{{token}}@{DOMAIN}",
        "NEWSLETTER_BOUNCES_MAILBOX": str(postfix.maildir("bounces")),
    }
    dkim_env, records = dkim_environment() if SIGNING else ({}, {})
    environ.update(dkim_env)
    people = ("ann", "nobody", "cat")  # ann and cat have mailboxes; nobody does not
    project = Project(demo_project.root, environ=environ)
    try:
        Roster(project.store).import_subscribers(
            [SubscriberRow(f"{p}@{DOMAIN}", p.title()) for p in people], NOW
        )
        summary = send_schedule(project, "weekly", scaffold.DEMO_AT, postfix.url, SendOptions())
        assert summary.outcome == "sent", (summary.message, postfix.log()[-3000:])
        assert summary.counts["sent"] == 3  # Postfix accepted all three; the bounce comes later
        subject = _subject(project)
    finally:
        project.close()

    # The one who exists: the delivered file, as Postfix wrote it.
    [delivered] = postfix.wait_for_mail("ann", 1)
    data = delivered.read_bytes()
    message = message_from_bytes(data, policy=policy.default)
    assert message["Subject"] == subject  # decodes to exactly what was rendered
    assert message["To"].addresses[0].addr_spec == f"ann@{DOMAIN}"
    assert message["From"].addresses[0].addr_spec == "digest@example.org"
    assert message["Return-Path"] == f"<{_return_path(demo_project, 'ann')}>"  # our VERP MAIL FROM
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    assert "Mind & Body" in text.get_content() and "</html>" in html.get_content().lower()
    assert "unsubscribe?token=" in text.get_content()
    if SIGNING:
        import dkim

        def dns(name: bytes, timeout: int = 5) -> bytes | None:
            value = records.get(name.decode("ascii"))
            return value.encode("ascii") if value else None

        assert dkim.verify(data, dnsfunc=dns), data[:800]  # and so the body arrived intact
    else:  # TODO: verify the DKIM signature with dkimpy once newsletter/delivery/signing.py lands
        pass

    # The unknown one: Postfix's own DSN comes back to that delivery's return path.
    [dsn] = postfix.wait_for_mail("bounces", 1)
    assert b"Status: 5.1.1" in dsn.read_bytes()

    # The complainer: an ARF report from "their provider", sent through Postfix to the return path.
    [cat_mail] = postfix.wait_for_mail("cat", 1)
    cat_return_path = _return_path(demo_project, "cat")
    with smtplib.SMTP("127.0.0.1", postfix.port, timeout=10) as smtp:
        smtp.sendmail("", [cat_return_path], _arf(cat_return_path, f"cat@{DOMAIN}", cat_mail.read_bytes()))
    postfix.wait_for_mail("bounces", 2)

    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    cli = CliRunnerForProject(demo_project.root)
    result = cli("bounces")
    assert result.exit_code == 0, result.stderr
    assert f"suppressed nobody@{DOMAIN}: bounced" in result.stdout
    assert f"suppressed cat@{DOMAIN}: complained" in result.stdout
    assert "1 hard bounces, 1 complaints; 2 suppressed" in result.stdout

    statuses = {
        s.email: s.status for s in Roster(Project(demo_project.root, environ=environ).store).subscribers()
    }
    assert statuses == {
        f"ann@{DOMAIN}": "active",
        f"nobody@{DOMAIN}": "bounced",
        f"cat@{DOMAIN}": "complained",
    }
    bounced = _delivery(demo_project, "nobody")
    assert bounced.status == "bounced" and bounced.last_error.startswith("bounced 5.1.1")
    assert list((postfix.maildir("bounces") / "new").iterdir()) == []
    assert len(list((postfix.maildir("bounces") / ".Processed" / "cur").iterdir())) == 2

    again = cli("bounces")  # nothing left to read, nothing changes
    assert again.exit_code == 0 and "nothing new; 0 suppressed" in again.stdout
    print(f"postfix end-to-end: {time.monotonic() - started:.1f} s")


def _subject(project: Project) -> str:
    with project.store.engine.connect() as conn:
        return str(conn.scalar(sa.select(issue_variants.c.subject).limit(1)))


def _delivery(project: Project, user: str):
    with Project(project.root, environ={}).store.engine.connect() as conn:
        return conn.execute(sa.select(deliveries).where(deliveries.c.email == f"{user}@{DOMAIN}")).one()


def _return_path(project: Project, user: str) -> str:
    """The return path the delivery to `user` went out with (what `send` built for it)."""
    return f"bounces+{Tokens(KEY).for_delivery(_delivery(project, user).id)}@{DOMAIN}"


def _arf(to: str, recipient: str, original: bytes) -> bytes:
    """A feedback-loop complaint (RFC 5965) with the whole original message attached."""
    head = (
        f"From: Feedback Loop <fbl@isp.example>\r\nTo: {to}\r\n"
        "Subject: Complaint about a message from example.org\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="F"\r\n\r\n'
        "--F\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n\r\n"
        "--F\r\nContent-Type: message/feedback-report\r\n\r\n"
        f"Feedback-Type: abuse\r\nUser-Agent: ISP-FBL/2.1\r\nVersion: 1\r\n"
        f"Original-Mail-From: <{to}>\r\nOriginal-Rcpt-To: <{recipient}>\r\n\r\n"
        "--F\r\nContent-Type: message/rfc822\r\n\r\n"
    )
    return head.encode() + original.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + b"\r\n--F--\r\n"
