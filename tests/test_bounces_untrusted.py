"""The bounce mailbox is written by strangers: what it trusts, and what one bad mail does.

A bounce or complaint is acted on only with proof that we sent what it is about: a
return-path token whose HMAC checks out, or a Message-ID equal to one we stored (its
random part included). The address a DSN or ARF report names proves nothing: anyone can
write one. And each mail is read on its own: one that cannot be read is left in place and
reported, and the mails after it are still read. Real sends through aiosmtpd, real
SQLite, real Maildirs; the property test feeds generated, mutated and forged reports
through the same reader.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import re
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsletter.core.errors import StoreError
from newsletter.core.tokens import Tokens
from newsletter.delivery import bounces
from newsletter.delivery.bounces import read_mailbox
from newsletter.project import Project
from newsletter.storage.roster import Roster
from newsletter.storage.schema import bounce_reports, deliveries
from tests.conftest import NOW, SECRET, SECRET_KEY, SMTPServer
from tests.test_bounces import arf, deliver, drop, dsn, read, return_path, status_of


def forged(verp: str) -> str:
    """The same delivery id, a made-up HMAC: what anyone can write."""
    return re.sub(r"-[0-9a-f]{20}@", "-0123456789abcdef0123@", verp)


def new_maildir(folder: Path) -> Path:
    for sub in ("cur", "new", "tmp"):
        (folder / sub).mkdir(parents=True)
    return folder


@pytest.fixture
def maildir(tmp_path: Path) -> Path:
    return new_maildir(tmp_path / "bounces")


# -- finding: a forged bounce suppressed anyone --------------------------------------


def test_a_forged_token_and_a_real_address_suppress_nobody(
    sender: Project, smtp_server: SMTPServer, maildir: Path
):
    deliver(sender, smtp_server)
    bob, cat = return_path(smtp_server, "bob@example.org"), return_path(smtp_server, "cat@example.org")
    drop(maildir, "1.dsn", dsn(forged(bob), "bob@example.org", "5.1.1"))  # Final-Recipient: Bob
    drop(maildir, "2.arf", arf("fbl@example.org", forged(cat), "cat@example.org"))  # Original-Rcpt-To
    drop(maildir, "3.none", dsn("postmaster@example.org", "ann@example.org", "5.1.1"))  # no token at all
    summary = read(sender, maildir)
    assert summary.suppressed == [] and not summary.counts
    assert {s.status for s in Roster(sender.store).subscribers()} == {"active"}
    assert {d.status for d in _deliveries(sender)} == {"sent"}
    assert sorted(os.listdir(maildir / ".Unhandled" / "cur")) == [
        "1.dsn:2,",
        "2.arf:2,",
        "3.none:2,",
    ]  # put aside
    assert [line.split(":", 1)[0] for line in summary.left] == ["new/1.dsn", "new/2.arf", "new/3.none"]
    assert "a hard bounce with neither a valid return-path token of ours nor a Message-ID" in summary.left[0]
    assert "a complaint with neither" in summary.left[1]


def test_a_guessable_message_id_names_no_delivery(sender: Project, smtp_server: SMTPServer, maildir: Path):
    """The Message-ID form of old versions, `<issueN.deliveryM@domain>`, is a guess away."""
    deliver(sender, smtp_server)
    delivery = next(d for d in _deliveries(sender) if d.email == "bob@example.org")
    guessed = f"<issue{delivery.issue_id}.delivery{delivery.id}@example.org>"
    drop(maildir, "1.old", dsn("postmaster@example.org", "x@elsewhere.example", "5.1.1", "failed", guessed))
    summary = read(sender, maildir)
    assert len(summary.left) == 1 and status_of(sender, "bob@example.org") == "active"


def test_the_daemon_reports_a_forged_bounce_and_suppresses_nobody(
    sender: Project, smtp_server: SMTPServer, maildir: Path, monkeypatch, caplog
):
    deliver(sender, smtp_server)
    drop(
        maildir, "1.dsn", dsn(forged(return_path(smtp_server, "bob@example.org")), "bob@example.org", "5.1.1")
    )
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("NEWSLETTER_BOUNCES_MAILBOX", str(maildir))
    with caplog.at_level(logging.INFO, logger="newsletter.scheduler"):
        summary = bounces.scheduled(sender.root, logging.getLogger("newsletter.scheduler"))
    assert summary is not None and summary.suppressed == []
    assert "new/1.dsn: a hard bounce with neither" in caplog.text
    assert status_of(sender, "bob@example.org") == "active"


# -- finding: one bad DSN stopped every later mail, for good -------------------------


def utf8_dsn(to: str) -> bytes:
    """A DSN whose fields hold raw UTF-8 (RFC 6533), as a relay writes one for a message
    that went out with SMTPUTF8 (here: to Ann, forwarding to her new address)."""
    return dsn(to, "jürgen@exämple.org", "5.1.1").replace(
        b"550 5.1.1 mailbox trouble", "550 5.1.1 Postfach unbekannt: jürgen".encode()
    )


def test_a_utf8_dsn_is_read_and_the_mails_after_it_too(
    sender: Project, smtp_server: SMTPServer, maildir: Path
):
    deliver(sender, smtp_server)
    drop(maildir, "1.utf8", utf8_dsn(return_path(smtp_server, "ann@example.org")))
    drop(maildir, "2.bounce", dsn(return_path(smtp_server, "bob@example.org"), "bob@example.org", "5.1.1"))
    summary = read(sender, maildir)
    assert summary.counts["hard"] == 2 and summary.left == []
    assert sorted(summary.suppressed) == ["ann@example.org: bounced", "bob@example.org: bounced"]
    ann = next(d for d in _deliveries(sender) if d.email == "ann@example.org")
    assert ann.last_error == "bounced 5.1.1: smtp; 550 5.1.1 Postfach unbekannt: jürgen"
    assert os.listdir(maildir / "new") == []


def test_a_mail_that_cannot_be_read_is_put_aside_and_reported_and_the_rest_read(
    sender: Project, smtp_server: SMTPServer, maildir: Path
):
    deliver(sender, smtp_server)
    drop(maildir, "1.broken", UNREADABLE)
    drop(maildir, "2.bounce", dsn(return_path(smtp_server, "bob@example.org"), "bob@example.org", "5.1.1"))
    summary = read(sender, maildir)
    assert summary.counts["hard"] == 1 and summary.suppressed == ["bob@example.org: bounced"]
    [left] = summary.left
    assert left.startswith("new/1.broken: cannot be read (")
    assert os.listdir(maildir / "new") == [] and os.listdir(maildir / ".Unhandled" / "cur") == ["1.broken:2,"]


def test_a_database_error_while_acting_stops_the_pass_and_keeps_the_mail(
    sender: Project, smtp_server: SMTPServer, maildir: Path
):
    """Only reading a mail is guarded: what cannot be recorded must not be moved."""
    deliver(sender, smtp_server)
    drop(maildir, "1.bounce", dsn(return_path(smtp_server, "bob@example.org"), "bob@example.org", "5.1.1"))
    short = {**SECRET, "NEWSLETTER_DATABASE_URL": "sqlite:///newsletter.db?timeout=0.2"}
    database = sender.root / "newsletter.db"
    with (
        closing(Project(sender.root, environ=short)) as project,
        closing(sqlite3.connect(database, isolation_level=None)) as holder,
    ):
        holder.execute("BEGIN IMMEDIATE")  # another writer, mid-transaction
        with pytest.raises(StoreError, match="locked"):
            read_mailbox(project, str(maildir), NOW)
        holder.execute("ROLLBACK")
    assert os.listdir(maildir / "new") == ["1.bounce"]
    assert status_of(sender, "bob@example.org") == "active"


# A failure notice without a From line: flufl.bounce's Yale detector fails on it (IndexError).
UNREADABLE = (
    b"To: postmaster@example.org\r\nSubject: failure notice\r\n\r\nI could not deliver your message.\r\n"
)


# -- the property: strangers' bytes -------------------------------------------------


@dataclass(frozen=True)
class Sent:
    delivery_id: int
    subscriber_id: int
    email: str
    token: str  # the return-path token
    message_id: str


def _deliveries(project: Project) -> list[sa.Row]:
    with project.store.engine.connect() as conn:
        return list(conn.execute(sa.select(deliveries).order_by(deliveries.c.id)))


def _sent(project: Project) -> list[Sent]:
    tokens = Tokens(SECRET_KEY)
    return [
        Sent(d.id, d.subscriber_id, d.email, tokens.for_delivery(d.id), d.message_id)
        for d in _deliveries(project)
    ]


GARBAGE = st.text(st.characters(codec="utf-8"), max_size=40)


@st.composite
def tokens_in(draw: st.DrawFn, sent: list[Sent]) -> str:
    """A return path: ours, one with a forged HMAC, a bare address, or garbage."""
    one = draw(st.sampled_from(sent))
    token = draw(
        st.sampled_from(
            [
                one.token,
                one.token.upper(),
                f"{one.delivery_id}-{draw(st.text('0123456789abcdef', min_size=20, max_size=20))}",
                "",
            ]
        )
    )
    return f"bounces+{token}@example.org" if token else draw(st.sampled_from(["postmaster@example.org", ""]))


@st.composite
def message_ids(draw: st.DrawFn, sent: list[Sent]) -> str:
    one = draw(st.sampled_from(sent))
    guessed = re.sub(r"<[0-9a-f]{8}", "<00000000", one.message_id)
    old = f"<issue1.delivery{one.delivery_id}@example.org>"
    huge = f"<{'0' * 32}.{'9' * 40}@example.org>"
    return draw(st.sampled_from([one.message_id, guessed, old, huge, "", "<>"]) | GARBAGE)


@st.composite
def recipients(draw: st.DrawFn, sent: list[Sent]) -> str:
    return draw(st.sampled_from([*(s.email for s in sent), "jürgen@exämple.org", "ü"]) | GARBAGE)


@st.composite
def reports(draw: st.DrawFn, sent: list[Sent]) -> bytes:
    """A DSN, an ARF report, a qmail bounce or a mailto: unsubscribe, with its fields drawn
    from ours, forged ones, raw UTF-8 and garbage."""
    to, recipient, message_id = draw(tokens_in(sent)), draw(recipients(sent)), draw(message_ids(sent))
    shape = draw(st.sampled_from(["dsn", "arf", "qmail", "unsubscribe"]))
    if shape == "dsn":
        status = draw(st.sampled_from(["5.1.1", "4.2.2", "2.0.0", "9.9.9", ""]) | GARBAGE)
        action = draw(st.sampled_from(["failed", "delayed", "delivered", ""]) | GARBAGE)
        text = dsn(to, recipient, status, action, message_id).decode()
    elif shape == "arf":
        text = (
            arf("fbl@example.org", to, recipient)
            .decode()
            .replace(
                "Subject: Mind & Body Weekly\r\n",
                f"Subject: Mind & Body Weekly\r\nMessage-ID: {message_id}\r\n",
            )
        )
    elif shape == "qmail":
        text = QMAIL.format(to=to, recipient=recipient, message_id=message_id)
    else:
        ours = Tokens(SECRET_KEY).make(draw(st.sampled_from(sent)).subscriber_id)
        payload, signature = ours.split(".")
        token = draw(st.sampled_from([ours, f"{payload}.{signature[::-1]}", "NDI.Ex-forged"]))
        text = f"From: {recipient}\r\nTo: unsubscribe@example.org\r\nSubject: unsubscribe {token}\r\n\r\n"
    return draw(mutated(text.encode()))


QMAIL = """From: MAILER-DAEMON@mail.example.net\r
To: {to}\r
Subject: failure notice\r
\r
Hi. This is the qmail-send program at mail.example.net.\r
I'm afraid I wasn't able to deliver your message to the following addresses.\r
This is a permanent error; I've given up. Sorry it didn't work out.\r
\r
<{recipient}>:\r
Sorry, no mailbox here by that name. (#5.1.1)\r
\r
--- Below this line is a copy of the message.\r
\r
Return-Path: <{to}>\r
Message-ID: {message_id}\r
Subject: Mind & Body Weekly\r
"""

NASTY = st.sampled_from(
    [
        b"\xff\xfe",
        "jürgen".encode(),
        b"=?x-unknown?B?SGVsbG8=?=",
        b"=?utf-8?B?!!!?=",
        b'; charset="x-no-such-charset"',
        b"\r\n\r\n",
        b"\r\n--B\r\n",
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n',
        b"Content-Transfer-Encoding: base64\r\n",
        b"\x00",
    ]
)


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """Up to four mutations: bytes inserted, overwritten or cut, lines dropped or doubled,
    the mail truncated."""
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(data)))
        how = draw(st.sampled_from(["insert", "overwrite", "cut", "drop line", "double line", "truncate"]))
        piece = draw(NASTY | st.binary(min_size=1, max_size=8))
        lines = data.split(b"\n")
        n = draw(st.integers(0, max(len(lines) - 1, 0)))
        if how == "insert":
            data = data[:at] + piece + data[at:]
        elif how == "overwrite":
            data = data[:at] + piece + data[at + len(piece) :]
        elif how == "cut":
            data = data[:at] + data[at + draw(st.integers(1, 40)) :]
        elif how == "drop line":
            data = b"\n".join(lines[:n] + lines[n + 1 :])
        elif how == "double line":
            data = b"\n".join(lines[: n + 1] + lines[n:])
        else:
            data = data[:at]
    return data


def test_no_mail_escapes_the_reader_and_nothing_is_acted_on_without_proof(
    sender: Project, smtp_server: SMTPServer, tmp_path: Path
):
    deliver(sender, smtp_server)
    sent = _sent(sender)
    by_delivery = {s.delivery_id: s for s in sent}
    unsubscribe_tokens = {Tokens(SECRET_KEY).make(s.subscriber_id): s.subscriber_id for s in sent}
    mails: dict[str, bytes] = {}  # every mail fed in, by its digest (the record's mail_key)
    boxes = itertools.count()

    @settings(
        max_examples=100,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.lists(reports(sent), min_size=1, max_size=4))
    def check(batch: list[bytes]) -> None:
        folder = new_maildir(tmp_path / f"box{next(boxes)}")
        for n, data in enumerate(batch):
            drop(folder, f"{n}.mail", data)
            mails[hashlib.sha256(data).hexdigest()] = data
        summary = read(sender, folder)  # no exception escapes
        assert sum(summary.counts.values()) + len(summary.left) == len(batch)  # each mail accounted for
        assert os.listdir(folder / "new") == []  # every mail moved: acted on, or put aside
        assert summary.unhandled == len(summary.left)  # those left are put aside for a person
        with sender.store.engine.connect() as conn:
            records = list(conn.execute(sa.select(bounce_reports)))
        for record in records:  # each act has its proof in the mail's own bytes
            data = mails[record.mail_key]
            if record.kind == "unsubscribe":
                # (the last base64 character of a signature holds spare bits: any of four will do)
                assert any(
                    t[:-1].encode() in data and s == record.subscriber_id
                    for t, s in unsubscribe_tokens.items()
                )
                continue
            proof = by_delivery[record.delivery_id]
            assert proof.token.encode() in data.lower() or proof.message_id.encode() in data
            assert record.subscriber_id == proof.subscriber_id
        acted_on = {r.subscriber_id for r in records}
        for subscriber in Roster(sender.store).subscribers():
            assert subscriber.status == "active" or subscriber.id in acted_on

    check()
