"""SMTP replies become the sender's three errors, whatever type smtplib gives their text."""

from __future__ import annotations

import smtplib

import pytest

from newsletter.delivery.transports import PermanentFailure, TemporaryFailure, _classify


@pytest.mark.parametrize(
    "text", [b"5.1.1 <bob@example.org>: no such user", "5.1.1 <bob@example.org>: no such user"]
)
def test_a_refused_recipient_is_permanent_with_its_enhanced_code(text: bytes | str) -> None:
    """smtplib's replies carry bytes; the exceptions it raises itself may carry a str."""
    error = _classify(smtplib.SMTPResponseException(550, text), "RCPT TO")
    assert isinstance(error, PermanentFailure)
    assert error.code == 550
    assert error.enhanced == "5.1.1"
    assert error.mailbox_unknown
    assert error.reason == "RCPT TO: 550 5.1.1 <bob@example.org>: no such user"


def test_a_refused_recipients_reply_is_read_as_text() -> None:
    refused = smtplib.SMTPRecipientsRefused({"ann@example.org": (451, b"4.7.1 try again later")})
    error = _classify(refused, "RCPT TO")
    assert isinstance(error, TemporaryFailure)
    assert error.enhanced == "4.7.1"
    assert error.reason == "RCPT TO: 451 4.7.1 try again later"


def test_reply_text_that_is_not_utf8_is_kept_readable() -> None:
    error = _classify(smtplib.SMTPResponseException(554, b"5.7.1 refus\xe9"), "DATA")
    assert isinstance(error, PermanentFailure)
    assert error.enhanced == "5.7.1"
    assert error.reason == "DATA: 554 5.7.1 refus\ufffd"
