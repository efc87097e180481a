"""Bounces, complaints and mailto: unsubscribes, read from the bounce mailbox.

Every message goes out with its own return path, `bounces+<token>@domain` (VERP,
`[bounces] return_path`), the token naming the delivery and signed (tokens.py), so a
bounce names its delivery without guesswork. `newsletter bounces` (and `newsletter run`,
every `[bounces] every`) reads the mailbox, a Maildir or IMAP over TLS, and acts on each mail:

- a DSN (RFC 3464), or another common bounce shape (flufl.bounce's detectors), marks the
  delivery `bounced` with its status code. A hard bounce (5.x.x) suppresses the address at
  once, soft ones (4.x.x) after `[bounces] soft_limit` in a row across issues. A delay
  notice ("Action: delayed": the relay is still trying) is recorded and changes nothing.
- an ARF feedback report (RFC 5965: someone pressed "spam") suppresses the address as
  `complained`.
- a mail to the List-Unsubscribe `mailto:` address whose token (the subject
  "unsubscribe TOKEN", or an address unsubscribe+TOKEN@) checks out unsubscribes its
  subscriber.

Which delivery: only one the mail proves it is about. Anyone can write a DSN or an ARF
report naming any address, so the address in it proves nothing; what does is a
return-path token whose HMAC checks out (in the bounce's recipient headers, the DSN's
fields, the returned message), or else the returned message's Message-ID equal to the
one stored for a delivery, its 128 random bits included.

Each mail acted on is recorded by a digest of its bytes, in one transaction with what it
did (`Suppression.record_bounce`), and only then moved away (Maildir: into its `.Processed`
folder; IMAP: flagged \\Seen and `NewsletterProcessed`): reading a mail twice changes
nothing, and none is lost. A mail that is none of these, or proves nothing, is left
where it is and reported; so is one that cannot be read at all (raw bytes no parser or
detector copes with), and the mails after it are still read.
"""

from __future__ import annotations

import email
import email.errors
import email.header
import email.policy
import email.utils
import hashlib
import imaplib
import logging
import os
import re
import ssl
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, suppress
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from newsletter.core.errors import ConfigError, NewsletterError
from newsletter.core.tokens import RETURN_PATH_TOKEN, BadToken, Tokens
from newsletter.storage.suppression import (
    COMPLAINT,
    DELAYED,
    HARD,
    SOFT,
    UNSUBSCRIBE,
    BounceRecord,
    BounceTarget,
    Suppression,
)

if TYPE_CHECKING:
    from newsletter.project import Project

logger = logging.getLogger(__name__)
PASSWORD_VARIABLE = "NEWSLETTER_BOUNCES_PASSWORD"
PROCESSED = ".Processed"  # the Maildir++ sub-folder processed mails are moved to
KEYWORD = "NewsletterProcessed"  # the IMAP keyword processed mails are flagged with
IMAP_TIMEOUT = 30.0
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


class MailboxError(NewsletterError):
    """The bounce mailbox could not be read or changed; names it and what was expected."""

    hint = "Check [bounces] mailbox in newsletter.toml (or --mailbox)."


# -- what a mail says -------------------------------------------------------


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
        detail=_one_line(_header(worst, "diagnostic-code") or _header(worst, "status")),
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


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]


# -- which delivery ---------------------------------------------------------


def target_of(reading: Reading, ledger: Suppression, tokens: Tokens) -> BounceTarget | None:
    """The delivery a bounce or complaint proves it is about: a return-path token whose
    HMAC checks out, else a Message-ID equal to a stored one, random part and all. Never
    the recipient the mail names: anyone can write a DSN about anyone."""
    for token in reading.tokens:
        try:
            delivery_id = tokens.read_delivery(token)
        except BadToken:
            continue
        found = ledger.bounce_target(delivery_id)
        if found is not None:
            return found
    return ledger.delivery_by_message_id(reading.message_id) if reading.message_id else None


def unsubscriber_of(reading: Reading, ledger: Suppression, tokens: Tokens) -> int | None:
    try:
        subscriber_id = tokens.read(reading.unsubscribe_token)
    except BadToken:
        return None
    return subscriber_id if ledger.subscriber(subscriber_id) is not None else None


# -- the mailbox ------------------------------------------------------------


@dataclass(frozen=True)
class Mail:
    id: str  # a Maildir file (new/NAME or cur/NAME), or an IMAP UID
    data: bytes
    label: str = ""  # how a report names it: the Maildir file, or "UID 7"

    def __str__(self) -> str:
        return self.label or self.id


class Mailbox(Protocol):
    name: str

    def mails(self) -> Iterator[Mail]: ...

    def done(self, mail: Mail) -> None: ...

    def close(self) -> None: ...


def open_mailbox(spec: str, root: Path, environ: Mapping[str, str]) -> Mailbox:
    """`imaps://user@host/FOLDER`, or a Maildir path (relative to the project)."""
    if spec.startswith("imaps://"):
        return IMAPBox(IMAPSettings.from_url(spec, environ))
    if "://" in spec:
        raise MailboxError(f"{spec}: expected a Maildir path or imaps://USER@HOST/FOLDER")
    path = Path(spec).expanduser()
    return MaildirBox(path if path.is_absolute() else root / path)


class MaildirBox:
    """A Maildir: mails in new/ and cur/; processed ones moved into its .Processed folder
    (Maildir++), marked seen. A rename: atomic, nothing copied, nothing lost."""

    def __init__(self, path: Path) -> None:
        self.path, self.name = path, str(path)
        if not all((path / sub).is_dir() for sub in ("cur", "new", "tmp")):
            raise MailboxError(f"{path}: expected a Maildir (a folder with cur, new and tmp in it)")

    def mails(self) -> Iterator[Mail]:
        for sub in ("new", "cur"):
            for name in sorted(os.listdir(self.path / sub)):
                if name.startswith("."):
                    continue
                try:
                    data = (self.path / sub / name).read_bytes()
                except (FileNotFoundError, IsADirectoryError):
                    continue  # moved by another reader meanwhile, or not a mail
                except OSError as e:
                    raise MailboxError(f"{self.path / sub / name}: cannot be read ({e.strerror})") from e
                yield Mail(f"{sub}/{name}", data)

    def done(self, mail: Mail) -> None:
        folder = self.path / PROCESSED
        base, _, flags = mail.id.split("/", 1)[1].partition(":2,")
        try:
            for sub in ("cur", "new", "tmp"):
                (folder / sub).mkdir(parents=True, exist_ok=True)
            (folder / "maildirfolder").touch()
            os.replace(self.path / mail.id, folder / "cur" / f"{base}:2,{''.join(sorted({*flags, 'S'}))}")
        except FileNotFoundError:
            pass  # moved by another reader meanwhile: it is processed either way
        except OSError as e:
            raise MailboxError(f"{self.path}: cannot move {mail.id} into {PROCESSED} ({e.strerror})") from e

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class IMAPSettings:
    """`imaps://user@host[:port]/FOLDER[?cafile=PATH]`: IMAP over TLS, the certificate and
    the host name checked (the system's CAs, or cafile's); the password from the environment."""

    host: str
    port: int
    user: str
    folder: str
    password: str = field(default="", repr=False)
    cafile: str = ""
    timeout: float = IMAP_TIMEOUT

    @classmethod
    def from_url(cls, url: str, environ: Mapping[str, str]) -> IMAPSettings:
        parts = urlsplit(url)
        if parts.scheme != "imaps" or not parts.hostname or not parts.username:
            raise MailboxError(f"{url}: expected imaps://USER@HOST[:PORT]/FOLDER")
        password = environ.get(PASSWORD_VARIABLE, "")
        if not password:
            raise ConfigError(
                PASSWORD_VARIABLE,
                "",
                f"expected the password of {unquote(parts.username)}@{parts.hostname} in the environment",
                f"export {PASSWORD_VARIABLE}=...; passwords never go in files",
            )
        query = parse_qs(parts.query)
        try:
            port = parts.port or 993
        except ValueError as e:
            raise MailboxError(f"{url}: expected a port number") from e
        return cls(
            host=parts.hostname,
            port=port,
            user=unquote(parts.username),
            folder=unquote(parts.path.lstrip("/")) or "INBOX",
            password=password,
            cafile=query.get("cafile", [""])[0],
        )

    @property
    def name(self) -> str:
        return f"imaps://{self.user}@{self.host}:{self.port}/{self.folder}"

    def tls(self) -> ssl.SSLContext:
        """Certificates and host names checked, as for a browser; never switched off."""
        return ssl.create_default_context(cafile=self.cafile or None)


class IMAPBox:
    """An IMAP folder over TLS: mails not yet flagged `NewsletterProcessed`; processed ones
    flagged \\Seen and `NewsletterProcessed` (kept in the folder, never deleted)."""

    def __init__(self, settings: IMAPSettings) -> None:
        self.settings, self.name = settings, settings.name
        self.client: imaplib.IMAP4_SSL | None = None

    def _connect(self) -> imaplib.IMAP4_SSL:
        if self.client is not None:
            return self.client
        s = self.settings
        try:
            client = imaplib.IMAP4_SSL(s.host, s.port, ssl_context=s.tls(), timeout=s.timeout)
        except (OSError, imaplib.IMAP4.error) as e:
            raise MailboxError(f"{self.name}: cannot be read ({e})") from e
        try:
            self._open(client)
        except MailboxError:
            with suppress(OSError, imaplib.IMAP4.error):  # a refused login or folder: hang up
                client.shutdown()
            raise
        self.client = client
        return client

    def _open(self, client: imaplib.IMAP4_SSL) -> None:
        s = self.settings
        try:
            client.login(s.user, s.password)
            typ, _ = client.select(_quoted(s.folder))
        except (OSError, imaplib.IMAP4.error) as e:
            raise MailboxError(f"{self.name}: cannot be read ({e})") from e
        if typ != "OK":
            raise MailboxError(f"{self.name}: no folder {s.folder!r}")
        if not keeps_keywords(client.untagged_responses.get("PERMANENTFLAGS", [])):
            raise MailboxError(
                f"{self.name}: expected a folder that keeps custom flags (\\* in PERMANENTFLAGS)"
            )

    def mails(self) -> Iterator[Mail]:
        client = self._connect()
        for uid in uids(self._command(client, "SEARCH", "UNKEYWORD", KEYWORD)):
            data = fetched(self._command(client, "FETCH", uid, "(BODY.PEEK[])"))
            if data is not None:
                yield Mail(uid, data, f"UID {uid}")

    def done(self, mail: Mail) -> None:
        self._command(self._connect(), "STORE", mail.id, "+FLAGS.SILENT", f"(\\Seen {KEYWORD})")

    def _command(self, client: imaplib.IMAP4_SSL, command: str, *args: str) -> list[object]:
        try:
            typ, data = client.uid(command, *args)
        except (OSError, imaplib.IMAP4.error) as e:
            raise MailboxError(f"{self.name}: UID {command} failed ({e})") from e
        if typ != "OK":
            raise MailboxError(f"{self.name}: UID {command} refused ({_text(data)})")
        return list(data)

    def close(self) -> None:
        if self.client is not None:
            with suppress(OSError, imaplib.IMAP4.error):  # the connection is gone either way
                self.client.logout()
            self.client = None


def uids(response: list[object]) -> list[str]:
    """`UID SEARCH`'s answer: [b"1 5 9"] -> ["1", "5", "9"]."""
    return [uid for line in response if isinstance(line, bytes) for uid in line.decode("ascii").split()]


def fetched(response: list[object]) -> bytes | None:
    """`UID FETCH uid (BODY.PEEK[])`'s answer: the literal of the first (envelope, bytes) pair."""
    for item in response:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
            return item[1]
    return None


def keeps_keywords(permanent_flags: Sequence[object]) -> bool:
    """Whether `NewsletterProcessed` sticks: \\* (any keyword) or the keyword itself in
    PERMANENTFLAGS. A server that sends no PERMANENTFLAGS allows all flags (RFC 3501)."""
    text = " ".join(_text([f]) for f in permanent_flags)
    return not permanent_flags or "\\*" in text or KEYWORD.lower() in text.lower()


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(data: Sequence[object]) -> str:
    return " ".join(d.decode("utf-8", "replace") if isinstance(d, bytes) else str(d) for d in data)


# -- one pass over the mailbox ----------------------------------------------


@dataclass
class Summary:
    mailbox: str
    counts: Counter[str] = field(default_factory=Counter)  # by kind; "seen": read before
    suppressed: list[str] = field(default_factory=list)  # "ann@example.org: bounced"
    left: list[str] = field(default_factory=list)  # mails left in place, and why

    def as_json(self) -> dict[str, object]:
        return {"mailbox": self.mailbox, **self.counts, "suppressed": self.suppressed, "left": self.left}

    def line(self) -> str:
        kinds = (HARD, SOFT, DELAYED, COMPLAINT, UNSUBSCRIBE, "seen")
        shown = ", ".join(f"{self.counts[k]} {LABELS[k]}" for k in kinds if self.counts[k])
        return f"{self.mailbox}: {shown or 'nothing new'}; {len(self.suppressed)} suppressed" + (
            f", {len(self.left)} left in place" if self.left else ""
        )


LABELS = {
    HARD: "hard bounces",
    SOFT: "soft bounces",
    DELAYED: "delay notices",
    COMPLAINT: "complaints",
    UNSUBSCRIBE: "unsubscribes",
    "seen": "read before",
}


def process(mailbox: Mailbox, ledger: Suppression, tokens: Tokens, soft_limit: int, now: datetime) -> Summary:
    """Act on every mail in the mailbox that proves which delivery or subscriber it is
    about; move each one acted on, leave the others. Each mail on its own: one that cannot
    be read is left and reported, and the next is read. Acting is not guarded: a database
    error (StoreError) stops the pass, as nothing more could be recorded."""
    summary = Summary(mailbox.name)
    for mail in mailbox.mails():
        key = hashlib.sha256(mail.data).hexdigest()
        if ledger.bounce_seen(key):  # acted on, not moved (stopped in between): move it now
            mailbox.done(mail)
            summary.counts["seen"] += 1
            continue
        reading = _read(mail, summary)
        if reading is None:
            continue
        record = _record(key, reading, ledger, tokens)
        if record is None:
            summary.left.append(f"{mail}: {_unproven(reading)}")
            continue
        outcome = ledger.record_bounce(record, soft_limit, now)
        mailbox.done(mail)
        summary.counts["seen" if outcome.seen else reading.kind] += 1
        if outcome.suppressed is not None and record.subscriber_id is not None:
            subscriber = ledger.subscriber(record.subscriber_id)
            summary.suppressed.append(f"{subscriber.email if subscriber else '?'}: {outcome.suppressed}")
    return summary


def _read(mail: Mail, summary: Summary) -> Reading | None:
    """What a mail says, or None and the mail reported. The one guarded step: a stranger's
    bytes go through email's parser and flufl.bounce's detectors, which may raise anything
    on them; that mail is left, and the next one read."""
    try:
        reading = read_mail(mail.data)
    except Exception as e:  # noqa: BLE001 (see above; nothing is acted on yet)
        logger.debug("bounces: %s cannot be read", mail, exc_info=True)
        summary.left.append(f"{mail}: cannot be read ({_reason(e)})")
        return None
    if reading is None:
        summary.left.append(f"{mail}: not a bounce, complaint or unsubscribe that can be read")
    return reading


def _reason(error: Exception) -> str:
    """An exception in one printable line, short: it may quote the mail's own bytes."""
    text = "".join(c if c.isprintable() else "?" for c in _one_line(str(error)))[:200]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _unproven(reading: Reading) -> str:
    if reading.kind == UNSUBSCRIBE:
        return "an unsubscribe whose token is not ours"
    return (
        f"a {LABELS[reading.kind][:-1]} with neither a valid return-path token of ours nor a "
        "Message-ID we sent (forged, or its return path rewritten); not acted on"
    )


def _record(key: str, reading: Reading, ledger: Suppression, tokens: Tokens) -> BounceRecord | None:
    if reading.kind == UNSUBSCRIBE:
        subscriber_id = unsubscriber_of(reading, ledger, tokens)
        if subscriber_id is None:
            return None
        return BounceRecord(key, UNSUBSCRIBE, None, subscriber_id, detail=f"mailto: from {reading.recipient}")
    target = target_of(reading, ledger, tokens)
    if target is None:
        return None
    return BounceRecord(
        key, reading.kind, target.delivery_id, target.subscriber_id, reading.status, reading.detail
    )


def read_mailbox(project: Project, spec: str | None, now: datetime) -> Summary:
    """`newsletter bounces`: the project's mailbox (or `spec`), read once."""
    from newsletter.core.tokens import secret_key

    chosen = spec or project.settings.bounces.mailbox
    if not chosen:
        raise ConfigError(
            str(project.root / "newsletter.toml"),
            "bounces.mailbox",
            "missing; expected a Maildir path or imaps://USER@HOST/FOLDER (or pass --mailbox)",
        )
    tokens = Tokens(secret_key(project.environ))
    with closing(open_mailbox(chosen, project.root, project.environ)) as mailbox:
        return process(mailbox, Suppression(project.store), tokens, project.settings.bounces.soft_limit, now)


def scheduled(root: Path, log: logging.Logger) -> Summary | None:
    """`newsletter run`'s job: read the mailbox, log one line (and each mail left)."""
    from newsletter.core.clock import utc_now
    from newsletter.project import Project

    try:
        with closing(Project(root)) as project:
            summary = read_mailbox(project, None, utc_now())
    except NewsletterError as e:
        log.error("bounces: %s%s", e, f" ({e.hint})" if e.hint else "")
        return None
    except Exception:  # a bug or a database outage: log it, keep the daemon alive
        log.exception("bounces: failed")
        return None
    for left in summary.left:
        log.warning("bounces: %s: %s; left in place", summary.mailbox, left)
    log.info("bounces: %s", summary.line())
    return summary
