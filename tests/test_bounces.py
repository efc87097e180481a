"""Return paths and the bounce mailbox: real sends through aiosmtpd on loopback, real
SQLite, real Maildirs on disk; the bounces, complaints and unsubscribes are crafted mails
in the shapes MTAs and feedback loops send. (tests/test_postfix.py gets a real DSN.)

IMAP: no IMAP server runs here, so the IMAP mailbox is tested in its pieces without a
network (URL, password, TLS context, the parsing of the server's answers).
"""

from __future__ import annotations

import logging
import os
import re
import ssl
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
import sqlalchemy as sa

from newsletter import scaffold
from newsletter.core.errors import ConfigError
from newsletter.core.tokens import BadToken, Tokens
from newsletter.delivery import bounces, signing
from newsletter.delivery.bounce_reading import read_mail
from newsletter.delivery.bounces import read_mailbox
from newsletter.delivery.mailbox import (
    IMAPBox,
    IMAPSettings,
    MailboxError,
    MaildirBox,
    fetched,
    keeps_keywords,
    open_mailbox,
    uids,
)
from newsletter.delivery.send import SendOptions, send_schedule
from newsletter.project import Project
from newsletter.storage.roster import Roster
from newsletter.storage.schema import bounce_reports, deliveries
from tests.conftest import NOW, SECRET, SECRET_KEY, THREE_READERS, VERP, CliRunnerForProject, SMTPServer

KEY = SECRET_KEY
FAST = SendOptions(retry_base=0.05, retry_cap=0.2)
WEEK = scaffold.DEMO_AT


@pytest.fixture
def maildir(tmp_path: Path) -> Path:
    folder = tmp_path / "bounces"
    for sub in ("cur", "new", "tmp"):
        (folder / sub).mkdir(parents=True)
    return folder


def deliver(project: Project, smtp_server: SMTPServer, at=WEEK) -> dict[str, bytes]:
    """Send the weekly issue; each recipient's message as the relay got it, by address."""
    before = len(smtp_server.handler.messages)
    assert send_schedule(project, "weekly", at, smtp_server.url, FAST).outcome == "sent"
    return {m.recipients[0]: m.data for m in smtp_server.handler.messages[before:]}


def return_path(smtp_server: SMTPServer, address: str) -> str:
    return smtp_server.handler.received_by(address)[-1].sender


def drop(folder: Path, name: str, data: bytes) -> Path:
    path = folder / "new" / name
    path.write_bytes(data)
    return path


def dsn(to: str, recipient: str, status: str, action: str = "failed", message_id: str = "") -> bytes:
    """A DSN as Postfix writes one (RFC 3464)."""
    return f"""Return-Path: <>
Delivered-To: {to}
From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
To: {to}
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

I'm sorry to have to inform you that your message could not be delivered.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
Arrival-Date: Mon, 23 Nov 2026 08:00:01 +0000

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: {action}
Status: {status}
Diagnostic-Code: smtp; 550 {status} mailbox trouble

--B
Content-Type: text/rfc822-headers

From: Mind & Body <digest@example.org>
To: {recipient}
Subject: Mind & Body Weekly
Message-ID: {message_id or "<elsewhere@example.org>"}

--B--
""".replace("\n", "\r\n").encode()


def arf(to: str, original_from: str, recipient: str) -> bytes:
    """A feedback-loop complaint (RFC 5965), the original message's headers attached."""
    return f"""From: Feedback Loop <fbl@isp.example>
To: {to}
Subject: Complaint about a message from example.org
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="F"

--F
Content-Type: text/plain

This is an email abuse report for an email message received from example.org.

--F
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: ISP-FBL/2.1
Version: 1
Original-Mail-From: <{original_from}>
Original-Rcpt-To: <{recipient}>
Arrival-Date: Mon, 23 Nov 2026 08:00:01 +0000

--F
Content-Type: text/rfc822-headers

From: Mind & Body <digest@example.org>
To: {recipient}
Subject: Mind & Body Weekly

--F--
""".replace("\n", "\r\n").encode()


def delivery_of(project: Project, address: str, issue: int | None = None):
    query = sa.select(deliveries).where(deliveries.c.email == address).order_by(deliveries.c.id.desc())
    with project.store.engine.connect() as conn:
        return conn.execute(query).first()


def status_of(project: Project, address: str) -> str:
    return next(s.status for s in Roster(project.store).subscribers() if s.email == address)


def read(project: Project, folder: Path) -> bounces.Summary:
    return read_mailbox(project, str(folder), NOW)


# -- the return path ----------------------------------------------------------


def test_each_delivery_goes_out_with_its_own_signed_return_path(sender: Project, smtp_server: SMTPServer):
    deliver(sender, smtp_server)
    tokens = Tokens(KEY)
    for address in ("ann@example.org", "bob@example.org", "cat@example.org"):
        mail_from = return_path(smtp_server, address)  # the SMTP envelope, not a header
        assert VERP.fullmatch(mail_from)
        token = mail_from.removeprefix("bounces+").partition("@")[0]
        assert tokens.read_delivery(token) == delivery_of(sender, address).id
        assert tokens.read_delivery(token.upper()) == delivery_of(sender, address).id  # case folded
        with pytest.raises(BadToken):
            tokens.read(token)  # never an unsubscribe token
    with pytest.raises(BadToken):
        tokens.read_delivery(tokens.make(1))  # nor the other way round
    with pytest.raises(BadToken):
        Tokens("another-secret-key-0123456789").read_delivery(token)


def test_the_return_path_follows_the_setting(demo_project: Project, smtp_server: SMTPServer):
    pattern = {"NEWSLETTER_BOUNCES_RETURN_PATH": "returns-{token}@mail.example.org"}
    project = Project(demo_project.root, environ={**SECRET, **pattern})
    Roster(project.store).import_subscribers(THREE_READERS[:1], NOW)
    try:
        deliver(project, smtp_server)
    finally:
        project.close()
    mail_from = return_path(smtp_server, "ann@example.org")
    assert mail_from.startswith("returns-") and mail_from.endswith("@mail.example.org")


@pytest.mark.parametrize(
    ("pattern", "warned"),
    [("returns-{token}@mail.example.org", False), ("returns-{token}@esp.example.net", True)],
)
def test_a_return_path_not_aligned_with_from_is_warned_at_pre_flight(
    project_dir: Path, pattern: str, warned: bool
):
    project = Project(project_dir, environ={"NEWSLETTER_BOUNCES_RETURN_PATH": pattern})
    notes: list[str] = []
    try:
        signing.preflight(project.settings, project.environ, project.root, notes.append)
    finally:
        project.close()
    expected = (
        "warning: [bounces] return_path domain esp.example.net is not aligned with the From domain "
        "example.org: DMARC (Gmail, Yahoo) wants it to be the From domain or its parent"
    )
    assert notes == ([expected] if warned else [])


@pytest.mark.parametrize(
    "value",
    ["bounces+{token}{token}@example.org", "bounces@{token}.example.org", "no-at-sign", "{who}@example.org"],
)
def test_a_bad_return_path_is_a_config_error_naming_the_key(project_dir: Path, value: str):
    # Set in the environment: the error names the variable, its hint the key it overrides.
    with pytest.raises(ConfigError, match="^NEWSLETTER_BOUNCES_RETURN_PATH: expected ") as caught:
        Project(project_dir, environ={"NEWSLETTER_BOUNCES_RETURN_PATH": value})
    assert "bounces.return_path" in caught.value.hint


# -- bounces --------------------------------------------------------------------


def test_a_hard_bounce_marks_the_delivery_and_suppresses_the_address(
    sender: Project, smtp_server: SMTPServer, maildir: Path
):
    deliver(sender, smtp_server)
    verp = return_path(smtp_server, "bob@example.org")
    drop(maildir, "1.bounce", dsn(verp, "bob@example.org", "5.1.1"))
    summary = read(sender, maildir)
    assert summary.counts["hard"] == 1 and summary.left == []
    assert summary.suppressed == ["bob@example.org: bounced"]
    row = delivery_of(sender, "bob@example.org")
    assert row.status == "bounced" and row.last_error.startswith("bounced 5.1.1: smtp; 550 5.1.1")
    assert status_of(sender, "bob@example.org") == "bounced"
    assert status_of(sender, "ann@example.org") == "active"
    assert os.listdir(maildir / "new") == []
    assert os.listdir(maildir / ".Processed" / "cur") == ["1.bounce:2,S"]  # moved, marked seen
    assert (maildir / ".Processed" / "maildirfolder").exists()


def test_the_same_mail_read_twice_changes_nothing(sender: Project, smtp_server: SMTPServer, maildir: Path):
    deliver(sender, smtp_server)
    mail = dsn(return_path(smtp_server, "bob@example.org"), "bob@example.org", "5.1.1")
    drop(maildir, "1.bounce", mail)
    read(sender, maildir)
    with sender.store.engine.connect() as conn:
        before = conn.execute(sa.select(deliveries, bounce_reports.c.id).outerjoin(bounce_reports)).all()
    drop(maildir, "1.again", mail)  # a copy put back (or a crash between recording and moving)
    summary = read(sender, maildir)
    assert summary.counts == {"seen": 1} and summary.suppressed == []
    with sender.store.engine.connect() as conn:
        after = conn.execute(sa.select(deliveries, bounce_reports.c.id).outerjoin(bounce_reports)).all()
    assert after == before
    assert os.listdir(maildir / "new") == []


def test_soft_bounces_suppress_after_the_limit_in_a_row_across_issues(
    sender: Project, smtp_server: SMTPServer, maildir: Path
):
    for n, week in enumerate((WEEK - timedelta(days=14), WEEK - timedelta(days=7), WEEK)):
        deliver(sender, smtp_server, week)
        drop(
            maildir, f"{n}.soft", dsn(return_path(smtp_server, "cat@example.org"), "cat@example.org", "4.2.2")
        )
        summary = read(sender, maildir)
        assert summary.counts["soft"] == 1
        assert delivery_of(sender, "cat@example.org").last_error.startswith("bounced 4.2.2")
        assert status_of(sender, "cat@example.org") == ("bounced" if n == 2 else "active")  # soft_limit 3


def test_a_delivery_that_went_through_breaks_the_soft_bounce_streak(
    sender: Project, smtp_server: SMTPServer, maildir: Path
):
    weeks = (WEEK - timedelta(days=14), WEEK - timedelta(days=7), WEEK)
    for n, week in enumerate(weeks):
        deliver(sender, smtp_server, week)
        if n != 1:  # the middle issue arrived
            drop(
                maildir,
                f"{n}.soft",
                dsn(return_path(smtp_server, "cat@example.org"), "cat@example.org", "4.2.2"),
            )
    read(sender, maildir)
    assert status_of(sender, "cat@example.org") == "active"


def test_a_delay_notice_changes_nothing(sender: Project, smtp_server: SMTPServer, maildir: Path):
    deliver(sender, smtp_server)
    verp = return_path(smtp_server, "ann@example.org")
    drop(maildir, "1.delay", dsn(verp, "ann@example.org", "4.4.1", action="delayed"))
    summary = read(sender, maildir)
    assert summary.counts["delayed"] == 1 and summary.suppressed == []
    assert delivery_of(sender, "ann@example.org").status == "sent"
    assert status_of(sender, "ann@example.org") == "active"


def test_without_a_token_only_a_whole_stored_message_id_names_the_delivery(
    sender: Project, smtp_server: SMTPServer, maildir: Path
):
    sent = deliver(sender, smtp_server)
    message_id = message_from_bytes(sent["ann@example.org"], policy=policy.default)["Message-ID"]
    drop(
        maildir,
        "1.by-id",
        dsn("postmaster@example.org", "someone@elsewhere.example", "5.1.1", "failed", message_id),
    )
    drop(maildir, "2.by-address", dsn("postmaster@example.org", "bob@example.org", "5.2.1"))
    summary = read(sender, maildir)
    assert summary.counts["hard"] == 1
    assert status_of(sender, "ann@example.org") == "bounced"
    assert status_of(sender, "bob@example.org") == "active"  # an address in a DSN proves nothing
    assert [line.split(":", 1)[0] for line in summary.left] == ["new/2.by-address"]
    assert status_of(sender, "cat@example.org") == "active"


def test_a_message_id_names_its_delivery_only_whole(sender: Project, smtp_server: SMTPServer, maildir: Path):
    sent = deliver(sender, smtp_server)
    message_id = message_from_bytes(sent["cat@example.org"], policy=policy.default)["Message-ID"]
    guessed = re.sub(r"<[0-9a-f]{32}", "<" + "0" * 32, message_id)  # its delivery id, not its random part
    drop(
        maildir, "1.guessed", dsn("postmaster@example.org", "x@elsewhere.example", "5.1.1", "failed", guessed)
    )
    summary = read(sender, maildir)
    assert summary.counts.get("hard", 0) == 0 and len(summary.left) == 1
    assert status_of(sender, "cat@example.org") == "active"


def test_a_non_standard_bounce_is_read_by_flufl_bounce(
    sender: Project, smtp_server: SMTPServer, maildir: Path
):
    deliver(sender, smtp_server)
    verp = return_path(smtp_server, "bob@example.org")
    qmail = f"""From: MAILER-DAEMON@mail.example.net
To: {verp}
Subject: failure notice

Hi. This is the qmail-send program at mail.example.net.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<bob@example.org>:
Sorry, no mailbox here by that name. (#5.1.1)

--- Below this line is a copy of the message.

Return-Path: <{verp}>
Subject: Mind & Body Weekly
"""
    drop(maildir, "1.qmail", qmail.encode())
    summary = read(sender, maildir)
    assert summary.counts["hard"] == 1
    assert delivery_of(sender, "bob@example.org").last_error.startswith("bounced 5.1.1")
    assert status_of(sender, "bob@example.org") == "bounced"


# -- complaints and mailto: unsubscribes ----------------------------------------------


def test_a_feedback_loop_complaint_suppresses_the_address(
    sender: Project, smtp_server: SMTPServer, maildir: Path
):
    deliver(sender, smtp_server)
    verp = return_path(smtp_server, "cat@example.org")
    drop(maildir, "1.arf", arf("fbl@example.org", verp, "cat@example.org"))  # the token: Original-Mail-From
    summary = read(sender, maildir)
    assert summary.counts["complaint"] == 1
    assert summary.suppressed == ["cat@example.org: complained"]
    assert status_of(sender, "cat@example.org") == "complained"
    assert delivery_of(sender, "cat@example.org").status == "sent"  # it did arrive
    assert Roster(sender.store).subscribers("complained")[0].email == "cat@example.org"


def test_a_mail_to_the_mailto_address_unsubscribes(sender: Project, smtp_server: SMTPServer, maildir: Path):
    sent = deliver(sender, smtp_server)
    header = message_from_bytes(sent["ann@example.org"], policy=policy.default)["List-Unsubscribe"]
    mailto = next(p.strip("<> ") for p in str(header).split(",") if "mailto:" in p)
    address, _, query = mailto.removeprefix("mailto:").partition("?")
    subject = query.removeprefix("subject=").replace("%20", " ")
    drop(maildir, "1.unsub", f"From: ann@example.org\nTo: {address}\nSubject: {subject}\n\n".encode())
    summary = read(sender, maildir)
    assert summary.counts["unsubscribe"] == 1
    assert summary.suppressed == ["ann@example.org: unsubscribed"]
    assert status_of(sender, "ann@example.org") == "unsubscribed"


def test_a_forged_token_or_an_unreadable_mail_is_put_aside_and_reported_once(
    sender: Project, smtp_server: SMTPServer, maildir: Path, monkeypatch: pytest.MonkeyPatch
):
    """An auto-reply in the mailbox failed every cron run until someone moved it: now the
    first pass reports it (exit 1) and puts it in .Unhandled; the next ones count it, exit 0."""
    deliver(sender, smtp_server)
    drop(
        maildir, "1.forged", b"From: x@example.net\nSubject: unsubscribe NDI.ExKxiKnQaZWOUI5w4Jy6f-XWrsE\n\n"
    )
    drop(maildir, "2.chatter", b"From: friend@example.net\nSubject: Lovely newsletter!\n\nThanks.\n")
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", KEY)
    result = CliRunnerForProject(sender.root)("bounces", "--mailbox", str(maildir))
    assert result.exit_code == 1
    assert "new/1.forged: an unsubscribe whose token is not ours" in result.stderr
    assert "new/2.chatter: not a bounce, complaint or unsubscribe that can be read" in result.stderr
    assert "Error: 2 mails in" in result.stderr and "put aside in .Unhandled" in result.stderr
    assert os.listdir(maildir / "new") == []
    assert sorted(os.listdir(maildir / ".Unhandled" / "cur")) == ["1.forged:2,", "2.chatter:2,"]  # unseen
    assert {s.status for s in Roster(sender.store).subscribers()} == {"active"}
    again = CliRunnerForProject(sender.root)("bounces", "--mailbox", str(maildir))
    assert again.exit_code == 0, again.stderr
    assert "2 unhandled (0 new) put aside in .Unhandled" in again.stdout


def test_the_command_reads_the_configured_mailbox(
    sender: Project, smtp_server: SMTPServer, maildir: Path, monkeypatch
):
    deliver(sender, smtp_server)
    drop(maildir, "1.bounce", dsn(return_path(smtp_server, "bob@example.org"), "bob@example.org", "5.1.1"))
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", KEY)
    monkeypatch.setenv("NEWSLETTER_BOUNCES_MAILBOX", str(maildir))
    result = CliRunnerForProject(sender.root)("bounces", "--json")
    assert result.exit_code == 0, result.stderr
    assert '"hard": 1' in result.stdout and "bob@example.org: bounced" in result.stdout
    assert CliRunnerForProject(sender.root)("subscribers", "list", "--status", "bounced").stdout.startswith(
        "bob@example.org"
    )


def test_without_a_mailbox_the_command_says_which_key_to_set(cli: CliRunnerForProject, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", KEY)
    monkeypatch.delenv("NEWSLETTER_BOUNCES_MAILBOX", raising=False)
    result = cli("bounces")
    assert result.exit_code == 1
    assert "bounces.mailbox: missing" in result.stderr


def test_the_daemons_job_logs_one_line(
    sender: Project, smtp_server: SMTPServer, maildir: Path, monkeypatch, caplog
):
    deliver(sender, smtp_server)
    drop(maildir, "1.bounce", dsn(return_path(smtp_server, "bob@example.org"), "bob@example.org", "5.1.1"))
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", KEY)
    monkeypatch.setenv("NEWSLETTER_BOUNCES_MAILBOX", str(maildir))
    log = logging.getLogger("newsletter.scheduler")
    with caplog.at_level(logging.INFO, logger="newsletter.scheduler"):
        summary = bounces.scheduled(sender.root, log)
    assert summary is not None and summary.counts["hard"] == 1
    assert "1 hard bounces; 1 suppressed" in caplog.text


# -- the mailboxes --------------------------------------------------------------


def test_a_folder_that_is_not_a_maildir_is_refused_by_name(tmp_path: Path):
    with pytest.raises(MailboxError, match=f"{tmp_path}: expected a Maildir"):
        MaildirBox(tmp_path)


def test_a_maildir_keeps_the_flags_a_mail_had(maildir: Path):
    (maildir / "cur" / "7.mail:2,F").write_bytes(b"Subject: x\n\n")
    box = MaildirBox(maildir)
    [mail] = list(box.mails())
    box.done(mail)
    assert os.listdir(maildir / ".Processed" / "cur") == ["7.mail:2,FS"]


def test_imap_urls_passwords_and_tls(tmp_path: Path):
    env = {"NEWSLETTER_BOUNCES_PASSWORD": "pw"}
    settings = IMAPSettings.from_url("imaps://bounce%40example.org@imap.example.org/Bounces", env)
    assert (settings.user, settings.host, settings.port, settings.folder) == (
        "bounce@example.org",
        "imap.example.org",
        993,
        "Bounces",
    )
    assert "pw" not in repr(settings)
    context = settings.tls()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert IMAPSettings.from_url("imaps://u@h:1993", env).folder == "INBOX"
    with pytest.raises(ConfigError, match="NEWSLETTER_BOUNCES_PASSWORD"):
        IMAPSettings.from_url("imaps://u@h/INBOX", {})
    with pytest.raises(MailboxError, match="expected imaps://USER@HOST"):
        IMAPSettings.from_url("imaps://h/INBOX", env)
    with pytest.raises(MailboxError, match="expected a Maildir path or imaps://"):
        open_mailbox("imap://u@h/INBOX", tmp_path, env)
    assert isinstance(open_mailbox("imaps://u@h/INBOX", tmp_path, env), IMAPBox)  # connects lazily


def test_imap_answers_are_read():
    assert uids([b"3 17 42"]) == ["3", "17", "42"] and uids([b""]) == []
    assert fetched([(b"1 (UID 3 BODY[] {12}", b"Subject: x\r\n"), b")"]) == b"Subject: x\r\n"
    assert fetched([b")"]) is None
    assert keeps_keywords([b"(\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)"])
    assert not keeps_keywords([b"(\\Answered \\Flagged \\Deleted \\Seen \\Draft)"])
    assert keeps_keywords([])  # no PERMANENTFLAGS: every flag is permanent (RFC 3501)


def test_a_dsn_reads_as_what_it_says():
    reading = read_mail(dsn("bounces+5-0123456789abcdef0123@example.org", "Bob@Example.org", "5.7.1"))
    assert reading is not None
    assert (reading.kind, reading.recipient, reading.status) == ("hard", "bob@example.org", "5.7.1")
    assert reading.tokens[0] == "5-0123456789abcdef0123"
    assert read_mail(dsn("x@example.org", "bob@example.org", "2.0.0", action="delivered")) is None


def test_moving_a_mail_twice_is_harmless(maildir: Path):
    """Two readers at once: the second finds the mail gone, which is processed either way."""
    drop(maildir, "1.x", b"Subject: unsubscribe abcdefgh.ijkl\n\n")
    box = MaildirBox(maildir)
    [mail] = list(box.mails())
    box.done(mail)
    box.done(mail)
    assert list(box.mails()) == [] and len(os.listdir(maildir / ".Processed" / "cur")) == 1
