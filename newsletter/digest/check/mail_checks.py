"""Checks on the message: parts, headers that decode back, and, on a sent message, the
bulk-sender rules (Gmail and Yahoo, 2024): DKIM aligned with From, one-click unsubscribe."""

from __future__ import annotations

import re
from collections.abc import Iterator
from email.header import decode_header, make_header
from email.message import EmailMessage

from newsletter.digest.check import Finding, Letter

MESSAGE_ID = re.compile(r"<[^<>@\s]+@[^<>@\s]+>")
LONG_SUBJECT = 78


def check_message(letter: Letter) -> list[Finding]:
    message = letter.message
    if message is None:
        return [Finding("structure", "skipped", "an .html file has no headers or text part: check the .eml")]
    found = [*_parts(letter), *_headers(message), *_decoding(message)]
    if letter.sent:
        found += _bulk_sender(message, letter)
    return found


def _parts(letter: Letter) -> Iterator[Finding]:
    if not (letter.text or "").strip():
        yield Finding(
            "structure", "error", "no text/plain part (spam filters and text-only readers need one)"
        )


def _headers(message: EmailMessage) -> Iterator[Finding]:
    for name in ("Date", "From"):
        if not message.get(name):
            yield Finding("headers", "error", f"no {name} header")
    if not MESSAGE_ID.fullmatch(str(message.get("Message-ID", "")).strip()):
        yield Finding("headers", "error", "no well-formed Message-ID (<id@domain>)")
    subject = str(message.get("Subject", "")).strip()
    if not subject:
        yield Finding("headers", "error", "no subject")
    elif len(subject) > LONG_SUBJECT:
        yield Finding("headers", "note", f"subject is {len(subject)} characters: inboxes cut it near 78")


def _decoding(message: EmailMessage) -> Iterator[Finding]:
    """Each header read back two ways (RFC 2047 on the unfolded raw value, and the email
    package's reading) must agree: a dropped space between encoded-words shows here."""
    for name, raw in message.raw_items():
        unfolded = re.sub(r"\r?\n[ \t]", " ", str(raw))
        try:
            decoded = str(make_header(decode_header(unfolded)))
        except (UnicodeDecodeError, LookupError, ValueError) as e:
            yield Finding("headers", "error", f"{name} does not decode: {e}")
            continue
        parsed = str(message[name])
        if " ".join(decoded.split()) != " ".join(parsed.split()):
            yield Finding("headers", "error", f"{name} reads back as {parsed!r}, not {decoded!r}")


def _bulk_sender(message: EmailMessage, letter: Letter) -> Iterator[Finding]:
    yield from _dkim(message)
    unsubscribe = str(message.get("List-Unsubscribe", ""))
    if "<https://" not in unsubscribe:
        yield Finding("bulk", "error", "no https List-Unsubscribe header")
    if "One-Click" not in str(message.get("List-Unsubscribe-Post", "")):
        yield Finding("bulk", "error", "no List-Unsubscribe-Post: List-Unsubscribe=One-Click (RFC 8058)")
    if not re.search(r"<a\b[^>]*>[^<]*unsubscribe", letter.html, re.IGNORECASE):
        yield Finding("bulk", "error", "no visible unsubscribe link in the HTML part")
    if "unsubscribe" not in (letter.text or "").lower():
        yield Finding("bulk", "error", "no unsubscribe link in the text part")


def _dkim(message: EmailMessage) -> Iterator[Finding]:
    signature = str(message.get("DKIM-Signature", ""))
    if not signature:
        yield Finding("bulk", "error", "no DKIM-Signature: Gmail and Yahoo require one from bulk senders")
        return
    d = re.search(r"\bd=([^;\s]+)", signature)
    sender = message["From"].addresses[0].domain.lower() if message.get("From") else ""
    signer = d.group(1).lower() if d else ""
    if not signer or not (sender == signer or sender.endswith("." + signer)):
        yield Finding("bulk", "error", f"DKIM d={signer or '?'} is not aligned with From's domain {sender}")
