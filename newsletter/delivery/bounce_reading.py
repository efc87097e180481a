"""One mail of the bounce mailbox read: a DSN (RFC 3464), an ARF complaint (RFC 5965), a
mailto: unsubscribe or another bounce shape (flufl.bounce), before anything is looked up.
Its own room: a stranger's bytes parsed into a Reading, pure, apart from the pass that
matches a reading to its delivery and acts on it (bounces.py).
"""

from __future__ import annotations

import email
import email.errors
import email.header
import email.policy
import email.utils
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message

from newsletter.core.models import COMPLAINT, DELAYED, HARD, SOFT, UNSUBSCRIBE
from newsletter.core.tokens import RETURN_PATH_TOKEN

STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
UNSUBSCRIBE_SUBJECT = re.compile(r"\bunsubscribe\s+([A-Za-z0-9_.-]{8,256})", re.I)
UNSUBSCRIBE_ADDRESS = re.compile(r"\bunsubscribe\+([A-Za-z0-9_.-]{8,256})@", re.I)
# Where the bounce of a message sent to bounces+TOKEN@ names that address.
ENVELOPE_HEADERS = ("delivered-to", "x-original-to", "envelope-to", "x-envelope-to", "to", "cc")
RETURNED = ("message/rfc822", "text/rfc822-headers")  # the returned message, or its headers
RAW_8BIT = re.compile("[\udc80-\udcff]")  # how the parser keeps a header's non-ASCII bytes


class ReadingPolicy(email.policy.Compat32):
    """compat32, what flufl.bounce's detectors expect, except for a header holding raw 8-bit
    bytes (an SMTPUTF8 address in a DSN's Final-Recipient, RFC 6533): compat32 hands that
    over as an email.header.Header, which neither this module nor the detectors can use as
    text; here it reads as UTF-8 (RFC 6532), or else as Latin-1."""

    def header_fetch_parse(self, name: str, value: str) -> str:
        if not RAW_8BIT.search(value):
            return value  # as compat32 does
        raw = value.encode("ascii", "surrogateescape")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")


POLICY = ReadingPolicy()


@dataclass(frozen=True)
class Reading:
    """One mail of the bounce mailbox read, before anything is looked up."""

    kind: str  # HARD | SOFT | DELAYED | COMPLAINT | UNSUBSCRIBE
    recipient: str = ""  # the original recipient, when the mail names it
    status: str = ""  # the status code: 5.1.1
    detail: str = ""  # the diagnostic, or the feedback type
    tokens: tuple[str, ...] = ()  # return-path tokens found, best place first, unchecked
    message_id: str = ""  # the returned message's
    unsubscribe_token: str = ""


def read_mail(data: bytes) -> Reading | None:
    """What a mail is (a complaint, a DSN, an unsubscribe, another bounce), or None."""
    message = email.message_from_bytes(data, policy=POLICY)
    text = data.decode("latin-1")  # where a token is looked for last: anywhere in the mail
    return (
        feedback_report(message, text)
        or delivery_report(message, text)
        or unsubscribe_request(message)
        or other_bounce(message, text)
    )


def feedback_report(message: Message, text: str) -> Reading | None:
    """An ARF report (RFC 5965): multipart/report; report-type=feedback-report."""
    if not _is_report(message, "feedback-report"):
        return None
    fields = _fields(_part(message, ("message/feedback-report",)))
    if fields is None or _header(fields, "feedback-type").strip().lower() == "not-spam":
        return None
    returned = _returned(message)
    sources = [_header(fields, "original-mail-from"), *_envelope(message), *_envelope(returned)]
    return Reading(
        COMPLAINT,
        recipient=_address(_header(fields, "original-rcpt-to") or _header(returned, "to")),
        detail=f"feedback-type {(_header(fields, 'feedback-type') or 'abuse').strip().lower()}",
        tokens=_tokens(sources, text),
        message_id=_message_id(returned),
    )


def delivery_report(message: Message, text: str) -> Reading | None:
    """A DSN (RFC 3464): the worst per-recipient block of its message/delivery-status part."""
    blocks = [b for part in _parts(message, "message/delivery-status") for b in _status_blocks(part)]
    if not blocks:
        return None
    per_message = [b for b in blocks if "final-recipient" not in b and "action" not in b]
    recipients = [b for b in blocks if _action(b).startswith(("fail", "error", "delay"))]
    if not recipients:
        return None  # delivered, relayed or expanded: nothing went wrong
    worst = min(recipients, key=_severity)
    action = _action(worst)
    found = STATUS.search(_header(worst, "status")) or STATUS.search(_header(worst, "diagnostic-code"))
    status = found[0] if found else ("4.0.0" if action.startswith("delay") else "5.0.0")
    kind = DELAYED if action.startswith("delay") else (SOFT if status.startswith("4") else HARD)
    returned = _returned(message)
    sources = [
        *_envelope(message),
        *(_header(b, name) for b in per_message for name in ("x-postfix-sender", "original-envelope-id")),
        *_envelope(returned),
    ]
    return Reading(
        kind,
        recipient=_address(_header(worst, "original-recipient") or _header(worst, "final-recipient")),
        status=status,
        detail=one_line(_header(worst, "diagnostic-code") or _header(worst, "status")),
        tokens=_tokens(sources, text),
        message_id=_message_id(returned),
    )


def unsubscribe_request(message: Message) -> Reading | None:
    """A mail to the List-Unsubscribe mailto: "unsubscribe TOKEN" in its subject (what the
    mailto: link fills in), or sent to unsubscribe+TOKEN@."""
    found = UNSUBSCRIBE_SUBJECT.search(_decoded(_header(message, "subject")))
    for name in ENVELOPE_HEADERS:
        found = found or UNSUBSCRIBE_ADDRESS.search(" ".join(_headers(message, name)))
    if found is None:
        return None
    return Reading(UNSUBSCRIBE, recipient=_address(_header(message, "from")), unsubscribe_token=found[1])


def other_bounce(message: Message, text: str) -> Reading | None:
    """The non-standard shapes: flufl.bounce's detectors (Exim, qmail, Yahoo, Exchange, ...)."""
    from flufl.bounce import all_failures

    temporary, permanent = all_failures(message)  # a detector choking: `process` reports the mail
    if not temporary and not permanent:
        return None
    found = STATUS.search(text) if permanent else None
    recipient = sorted(permanent or temporary)[0].decode("ascii", "replace")
    return Reading(
        HARD if permanent else DELAYED,  # their temporary ones are "still trying" warnings
        recipient=recipient.lower(),
        status=found[0] if found and found[1] == "5" else ("5.0.0" if permanent else "4.0.0"),
        detail="bounce in a non-standard form",
        tokens=_tokens(_envelope(message), text),
        message_id=_message_id(_returned(message)),
    )


def _is_report(message: Message, report_type: str) -> bool:
    return bool(
        message.get_content_type() == "multipart/report"
        and str(message.get_param("report-type", "")).lower() == report_type
    )


def _parts(message: Message, content_type: str) -> Iterator[Message]:
    for part in message.walk():
        if part.get_content_type() == content_type:
            yield part


def _part(message: Message, content_types: tuple[str, ...]) -> Message | None:
    return next((p for p in message.walk() if p.get_content_type() in content_types), None)


def _status_blocks(part: Message) -> list[Message]:
    """A delivery-status part's header blocks (the parser makes each a Message)."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [b for b in payload if isinstance(b, Message)]
    text = payload if isinstance(payload, str) else ""
    return [
        email.message_from_string(block.strip() + "\n", policy=POLICY)
        for block in re.split(r"\r?\n\s*\r?\n", text)
    ]


def _fields(part: Message | None) -> Message | None:
    """The fields of a message/feedback-report part, parsed as one header block."""
    if part is None:
        return None
    payload = part.get_payload()
    if isinstance(payload, list):
        return payload[0] if payload and isinstance(payload[0], Message) else None
    return email.message_from_string(payload if isinstance(payload, str) else "", policy=POLICY)


def _returned(message: Message) -> Message | None:
    """The returned message (or its headers) inside a report."""
    part = _part(message, RETURNED)
    if part is None:
        return None
    payload = part.get_payload()
    if isinstance(payload, list):
        return payload[0] if payload and isinstance(payload[0], Message) else None
    raw = part.get_payload(decode=True)
    return email.message_from_bytes(raw if isinstance(raw, bytes) else b"", policy=POLICY)


def _envelope(message: Message | None) -> list[str]:
    if message is None:
        return []
    return [v for name in (*ENVELOPE_HEADERS, "return-path") for v in _headers(message, name)]


def _tokens(sources: list[str], text: str) -> tuple[str, ...]:
    """Return-path tokens in the places given, best first, then anywhere in the mail."""
    found = [m[0] for text in sources for m in RETURN_PATH_TOKEN.finditer(text)]
    found += [m[0] for m in RETURN_PATH_TOKEN.finditer(text)]
    return tuple(dict.fromkeys(t.lower() for t in found))


def _severity(block: Message) -> tuple[int, str]:
    """Failed before delayed; then the lower status class (5 before 4)."""
    delayed = _action(block).startswith("delay")
    found = STATUS.search(_header(block, "status"))
    return (1 if delayed else 0, "" if found is None else str(9 - int(found[1])))


def _address(field_value: str) -> str:
    """`rfc822; Ann@Example.org` or `Ann <ann@example.org>` -> `ann@example.org`."""
    value = field_value.split(";", 1)[1] if ";" in field_value else field_value
    return email.utils.parseaddr(value.strip())[1].strip().lower()


def _message_id(message: Message | None) -> str:
    return _header(message, "message-id").strip()


def _action(block: Message) -> str:
    return _header(block, "action").strip().lower()


def _header(message: Message | None, name: str) -> str:
    return str(message.get(name, "")) if message is not None else ""


def _headers(message: Message, name: str) -> list[str]:
    return [str(v) for v in message.get_all(name, [])]


def _decoded(value: object) -> str:
    try:
        return str(email.header.make_header(email.header.decode_header(str(value))))
    except (UnicodeDecodeError, LookupError, email.errors.HeaderParseError):
        return str(value)


def one_line(text: str) -> str:
    return " ".join(text.split())[:500]
