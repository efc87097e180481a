"""Transports: where composed messages go, chosen by URL.

    smtp://[user@]host[:port]           plain SMTP (AUTH only to loopback)
    smtp+starttls://[user@]host[:port]  SMTP upgraded with STARTTLS
    smtps://[user@]host[:port]          SMTP over TLS
    file:DIR                            one .eml per message, written atomically
    memory:                             kept in a list: the in-package test double
    (no URL) MockTransport(handler)     each message to a function, which may raise to script a relay

Every transport raises the same three errors, so the sender decides retries
without knowing the protocol: TemporaryFailure (try again later),
PermanentFailure (never), UnknownOutcome (the server may have it).
Query options: ?timeout=SECONDS (default 30); for SMTP, ?max_messages=N (default
100): a connection is closed with QUIT after N messages and the next one opens afresh,
as relays that cap messages per connection expect. SMTP sends MAIL FROM and RCPT TO
in one write where the server offers PIPELINING, and uses SMTPUTF8 where an address
needs it (a server without it refuses that recipient, not everyone).
"""

from __future__ import annotations

import functools
import re
import smtplib
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from newsletter.core import transport_url
from newsletter.core.errors import ConfigError
from newsletter.core.output import atomic_write
from newsletter.core.transport_url import (
    DEFAULT_MAX_MESSAGES,
    DEFAULT_TIMEOUT,
    PASSWORD_VARIABLE,
    TransportURL,
)

ENHANCED_CODE = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\b", re.ASCII)
LEADING_DOT = re.compile(rb"(?m)^\.")


class DeliveryError(Exception):
    """A message was not delivered; the subclass says whether to try again, and
    `about_recipient` whether the reason is this address or the server as a whole."""

    def __init__(self, reason: str, code: int | None = None, enhanced: str = "", stage: str = "") -> None:
        super().__init__(reason)
        self.reason, self.code, self.enhanced, self.stage = reason, code, enhanced, stage

    @property
    def about_recipient(self) -> bool:
        """Only a RCPT TO reply can be about one address; X.1.x (addressing, but not the
        sender's: X.1.7, X.1.8) and X.2.x (mailbox) say so. Without an enhanced code, the
        basic codes for a bad or full mailbox. Everything else (connect, TLS, MAIL FROM,
        DATA, policy X.7.x) is the server refusing everyone alike."""
        if self.stage != "RCPT TO":
            return False
        if self.enhanced:
            _, subject, detail = self.enhanced.split(".")
            return subject == "2" or (subject == "1" and detail not in ("7", "8"))
        return self.code in (450, 452, 550, 551, 552, 553)


class TemporaryFailure(DeliveryError):
    """4xx, or the connection failed before the message was handed over: retry."""


class PermanentFailure(DeliveryError):
    """5xx: this message to this address will never go through."""

    @property
    def mailbox_unknown(self) -> bool:
        return self.enhanced == "5.1.1"


class UnknownOutcome(DeliveryError):
    """The whole message went out but the reply never came: it may have been accepted."""


class Transport(Protocol):
    def send(self, sender: str, recipient: str, message: bytes) -> None: ...

    def close(self) -> None: ...


TransportFactory = Callable[[], Transport]


def transport_factory(url: str, environ: dict[str, str]) -> TransportFactory:
    """A factory of transports: one per connection the sender opens."""
    parsed = _parsed(url)
    if parsed.security:
        settings = SMTPSettings.from_url(url, environ)
        return lambda: SMTPTransport(settings)
    if parsed.scheme == "file":
        folder = Path(parsed.folder)
        return lambda: FileTransport(folder)
    shared = MemoryTransport()
    return lambda: shared


def _parsed(url: str) -> TransportURL:
    """The URL checked as the settings check theirs; a URL that reaches here unchecked is
    an override (the settings' own was checked when they loaded)."""
    try:
        return transport_url.parse(url)
    except ValueError as e:
        raise ConfigError("--transport", "", f"expected {e}", transport_url.HINT) from e


def rate_key(url: str) -> str:
    """What a shared `--rate` is counted by: the relay (scheme, host, port), or the folder;
    never the credentials. "" (a caller's own factory): one rate for all such sends."""
    if not url:
        return "transport"
    parsed = _parsed(url)
    return (
        f"{parsed.scheme}:{parsed.folder}"
        if parsed.folder
        else f"{parsed.scheme}://{parsed.host}:{parsed.port}"
    )


def timeout_of(url: str) -> float:
    """The per-call timeout a transport URL asks for (?timeout=SECONDS)."""
    return _parsed(url).timeout


@dataclass(frozen=True)
class SMTPSettings:
    host: str
    port: int
    security: str  # none | starttls | tls
    username: str = ""
    password: str = field(default="", repr=False)
    timeout: float = DEFAULT_TIMEOUT
    max_messages: int = DEFAULT_MAX_MESSAGES  # per connection; 0: no limit

    @classmethod
    def from_url(cls, url: str, environ: dict[str, str]) -> SMTPSettings:
        parsed = _parsed(url)
        password = environ.get(PASSWORD_VARIABLE, "")
        if parsed.username and not password:
            raise ConfigError(
                "--transport",
                "",
                f"{transport_url.shown(url)!r} names a user but {PASSWORD_VARIABLE} is not set",
                f"export {PASSWORD_VARIABLE}=...; passwords never go in files",
            )
        return cls(
            parsed.host,
            parsed.port,
            parsed.security,
            parsed.username,
            password,
            parsed.timeout,
            parsed.max_messages,
        )


class SMTPTransport:
    """One reused SMTP connection (for `max_messages`); reconnects after any failure."""

    def __init__(self, settings: SMTPSettings) -> None:
        self.settings = settings
        self.connection: smtplib.SMTP | None = None
        self.carried = 0  # messages the open connection has taken

    def send(self, sender: str, recipient: str, message: bytes) -> None:
        connection = self._connected()
        try:
            self._envelope(connection, sender, recipient)
            self._data(connection, message)
        except DeliveryError as e:
            self._after_failure(e)
            raise
        self.carried += 1
        if self.carried == self.settings.max_messages:
            self.close()

    def close(self) -> None:
        if self.connection is not None:
            try:
                self.connection.quit()
            except (smtplib.SMTPException, OSError):
                self.connection.close()
            self.connection = None
        self.carried = 0

    def _connected(self) -> smtplib.SMTP:
        if self.connection is None:
            try:
                self.connection = self._connect()
            except (smtplib.SMTPException, OSError) as e:
                raise _classify(e, "connect") from e
        return self.connection

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.security == "tls":
            context = tls_context()
            connection: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=context)
        else:
            connection = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        connection.ehlo()
        if s.security == "starttls":
            connection.starttls(context=tls_context())
            connection.ehlo()
        if s.username:
            connection.login(s.username, s.password)
        return connection

    def _envelope(self, connection: smtplib.SMTP, sender: str, recipient: str) -> None:
        options = _mail_options(connection, sender, recipient)
        if connection.has_extn("pipelining"):
            return _pipelined_envelope(connection, sender, recipient, options)
        try:
            _expect(connection.mail(sender, options), 250, "MAIL FROM")
        except (smtplib.SMTPException, OSError) as e:
            raise _classify(e, "MAIL FROM") from e
        try:
            _expect(connection.rcpt(recipient), (250, 251), "RCPT TO")
        except (smtplib.SMTPException, OSError) as e:
            raise _classify(e, "RCPT TO") from e
        return None

    def _data(self, connection: smtplib.SMTP, message: bytes) -> None:
        """DATA by hand, so a lost reply after the final dot is told apart from
        a failure while the message was still going out."""
        try:
            _expect(connection.docmd("DATA"), 354, "DATA")
            body = LEADING_DOT.sub(b"..", message)
            if not body.endswith(b"\r\n"):
                body += b"\r\n"
            connection.send(body + b".\r\n")
        except (smtplib.SMTPException, OSError) as e:
            raise _classify(e, "DATA") from e
        try:
            reply = connection.getreply()
        except (smtplib.SMTPException, OSError) as e:
            raise _lost_reply(e) from e
        _expect(reply, 250, "end of DATA")

    def _after_failure(self, error: DeliveryError) -> None:
        """A refused message leaves the connection usable after RSET; anything else drops it."""
        if self.connection is None:
            return
        if isinstance(error, PermanentFailure) or (error.code and error.code != 421):
            try:
                self.connection.rset()
                return
            except (smtplib.SMTPException, OSError):
                pass
        self.connection.close()
        self.connection = None


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One per process, made at the first TLS connection: making one loads the system's
    certificates (23 ms), which was paid at every connect, and every `max_messages`, even
    for plain smtp://. Certificates and host names verified; contexts are thread-safe."""
    return ssl.create_default_context()


def _mail_options(connection: smtplib.SMTP, sender: str, recipient: str) -> list[str]:
    """SMTPUTF8 when an address is not ASCII; a server without it cannot take this
    recipient (553, about the recipient), though it takes everyone else."""
    if sender.isascii() and recipient.isascii():
        return []
    if not connection.has_extn("smtputf8"):
        raise PermanentFailure(
            f"RCPT TO: 553 the server does not offer SMTPUTF8, needed for {recipient!r}", 553, stage="RCPT TO"
        )
    return ["SMTPUTF8"]


def _pipelined_envelope(connection: smtplib.SMTP, sender: str, recipient: str, options: list[str]) -> None:
    """MAIL FROM and RCPT TO in one write (RFC 2920): one round trip per message, not two.
    Addresses with line breaks or brackets never reach the wire as commands."""
    if any(c in address for address in (sender, recipient) for c in "\r\n<>"):
        raise PermanentFailure(f"RCPT TO: 553 not a mailbox: {recipient!r}", 553, stage="RCPT TO")
    params = "".join(f" {o}" for o in options)
    commands = f"MAIL FROM:<{sender}>{params}\r\nRCPT TO:<{recipient}>\r\n"
    try:
        connection.send(commands.encode("utf-8" if options else "ascii"))
        mail_reply = connection.getreply()
    except (smtplib.SMTPException, OSError) as e:
        raise _classify(e, "MAIL FROM") from e
    try:
        rcpt_reply = connection.getreply()
    except (smtplib.SMTPException, OSError) as e:
        raise _classify(e, "RCPT TO") from e
    _expect(mail_reply, 250, "MAIL FROM")
    _expect(rcpt_reply, (250, 251), "RCPT TO")


def _lost_reply(error: Exception) -> DeliveryError:
    """No reply after the final dot. A reset (RST) means the server closed with our bytes
    still unread, so it never took the end of the message: a plain retry. A clean close
    or a timeout after the dot may follow an accepted message: the outcome is unknown."""
    cause = error.__context__ if isinstance(error, smtplib.SMTPException) else error  # smtplib wraps it
    if isinstance(cause, (ConnectionResetError, BrokenPipeError)):
        return TemporaryFailure(
            f"DATA: connection reset before the server took the whole message ({cause})", stage="DATA"
        )
    return UnknownOutcome(f"connection lost after the message was sent: {error}", stage="end of DATA")


def _expect(reply: tuple[int, bytes], wanted: int | tuple[int, ...], stage: str) -> None:
    code, text = reply
    if code not in (wanted if isinstance(wanted, tuple) else (wanted,)):
        raise _reply_error(code, text, stage)


def _reply_error(code: int, reply: bytes | str, stage: str) -> DeliveryError:
    """The server's reply text is bytes, but smtplib's own SMTPResponseExceptions may carry a str."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply or ""
    match = ENHANCED_CODE.match(text)
    enhanced = ".".join(match.groups()) if match else ""
    reason = f"{stage}: {code} {text}"
    if 500 <= code < 600:
        return PermanentFailure(reason, code, enhanced, stage)
    return TemporaryFailure(reason, code, enhanced, stage)


def _classify(error: Exception, stage: str) -> DeliveryError:
    if isinstance(error, DeliveryError):
        return error
    if isinstance(error, smtplib.SMTPResponseException):
        return _reply_error(error.smtp_code, error.smtp_error, stage)
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        code, text = next(iter(error.recipients.values()))
        return _reply_error(code, text, stage)
    if isinstance(error, (ssl.SSLCertVerificationError,)):
        return PermanentFailure(f"{stage}: TLS certificate rejected: {error}", stage=stage)
    if isinstance(error, (socket.timeout, TimeoutError)):
        return TemporaryFailure(f"{stage}: timed out", stage=stage)
    return TemporaryFailure(f"{stage}: {error or type(error).__name__}", stage=stage)


class FileTransport:
    """One .eml per message in a folder: for trying things out, and for outboxes."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def send(self, sender: str, recipient: str, message: bytes) -> None:
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", _message_id(message) or recipient)
        try:
            atomic_write(self.folder / f"{name}.eml", message)
        except OSError as e:  # a full or read-only outbox refuses everyone alike: retry later
            raise TemporaryFailure(f"write {self.folder}: {e.strerror or e}", stage="write") from e

    def close(self) -> None:
        pass


class MemoryTransport:
    """Keeps (sender, recipient, message) in memory; shared by every connection."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, bytes]] = []
        self.lock = threading.Lock()

    def send(self, sender: str, recipient: str, message: bytes) -> None:
        with self.lock:
            self.sent.append((sender, recipient, message))

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class Envelope:
    """One message as the sender hands it to a transport."""

    sender: str
    recipient: str
    message: bytes


class MockTransport:
    """Hands every message to `handler(envelope)`, httpx-style: the handler records it, checks
    it, or scripts the relay by raising TemporaryFailure, PermanentFailure or UnknownOutcome
    (returning means accepted). Any other exception is a bug and ends the run, as one in a
    real transport would. Not reachable by URL: pass `factory=lambda: MockTransport(handler)`
    to `send.send`. One per connection, so with several the handler is called from as many
    threads at once."""

    def __init__(self, handler: Callable[[Envelope], None]) -> None:
        self.handler = handler
        self.closed = False

    def send(self, sender: str, recipient: str, message: bytes) -> None:
        self.handler(Envelope(sender, recipient, message))

    def close(self) -> None:
        self.closed = True


def _message_id(message: bytes) -> str:
    match = re.search(rb"^Message-ID: <([^>]+)>", message, re.M | re.I)
    return match.group(1).decode("ascii", "replace") if match else ""


class Courier:
    """One message at a time through the configured transport, a connection each: the
    confirmation and welcome mails `newsletter serve` sends. The web app gets one from
    the command line (it imports no transport itself: contract `web-sending`)."""

    def __init__(self, factory: TransportFactory) -> None:
        self.factory = factory

    @classmethod
    def for_url(cls, url: str, environ: dict[str, str]) -> Courier:
        return cls(transport_factory(url, environ))

    def send(self, sender: str, recipient: str, message: bytes) -> None:
        """Raises a DeliveryError when the message did not (or may not have) gone out."""
        transport = self.factory()
        try:
            transport.send(sender, recipient, message)
        finally:
            transport.close()
