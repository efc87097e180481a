"""The bounce mailbox, a Maildir or an IMAP folder over TLS: listing its mails and putting
each one processed away. Its own room: how mail is fetched and moved knows nothing of what
a mail says (bounce_reading.py) or what is done about it (bounces.py).
"""

from __future__ import annotations

import imaplib
import os
import ssl
from collections.abc import Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from newsletter.core.errors import ConfigError, NewsletterError

PASSWORD_VARIABLE = "NEWSLETTER_BOUNCES_PASSWORD"
PROCESSED = ".Processed"  # the Maildir++ sub-folder processed mails are moved to
KEYWORD = "NewsletterProcessed"  # the IMAP keyword processed mails are flagged with
# Mails read once and not acted on (an auto-reply, a forged bounce) are put aside here,
# for a person to read, so the next pass (a cron job) does not report them again.
UNHANDLED = ".Unhandled"
UNHANDLED_KEYWORD = "NewsletterUnhandled"
IMAP_TIMEOUT = 30.0


class MailboxError(NewsletterError):
    """The bounce mailbox could not be read or changed; names it and what was expected."""

    hint = "Check [bounces] mailbox in newsletter.toml (or --mailbox)."


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

    def put_aside(self, mail: Mail) -> None: ...

    def tally(self) -> Tally: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Tally:
    """What lies in the mailbox: mails not read yet, and those put aside unhandled."""

    waiting: int
    unhandled: int


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
        self._move(mail, PROCESSED, "S")

    def put_aside(self, mail: Mail) -> None:
        """Into .Unhandled, unseen: a person reads it there (move it back to read it again)."""
        self._move(mail, UNHANDLED, "")

    def _move(self, mail: Mail, name: str, flag: str) -> None:
        folder = self.path / name
        base, _, flags = mail.id.split("/", 1)[1].partition(":2,")
        try:
            for sub in ("cur", "new", "tmp"):
                (folder / sub).mkdir(parents=True, exist_ok=True)
            (folder / "maildirfolder").touch()
            os.replace(self.path / mail.id, folder / "cur" / f"{base}:2,{''.join(sorted({*flags, *flag}))}")
        except FileNotFoundError:
            pass  # moved by another reader meanwhile: it is processed either way
        except OSError as e:
            raise MailboxError(f"{self.path}: cannot move {mail.id} into {name} ({e.strerror})") from e

    def tally(self) -> Tally:
        return Tally(_count(self.path), _count(self.path / UNHANDLED))

    def close(self) -> None:
        pass


def _count(path: Path) -> int:
    try:
        return sum(1 for sub in ("new", "cur") for name in os.listdir(path / sub) if not name.startswith("."))
    except FileNotFoundError:
        return 0
    except OSError as e:
        raise MailboxError(f"{path}: cannot be listed ({e.strerror})") from e


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
    flagged \\Seen and `NewsletterProcessed` (kept in the folder, never deleted); those
    read and not acted on flagged `NewsletterUnhandled` (left unseen, for a person)."""

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
        for uid in uids(self._command(client, "SEARCH", *WAITING)):
            data = fetched(self._command(client, "FETCH", uid, "(BODY.PEEK[])"))
            if data is not None:
                yield Mail(uid, data, f"UID {uid}")

    def done(self, mail: Mail) -> None:
        self._command(self._connect(), "STORE", mail.id, "+FLAGS.SILENT", f"(\\Seen {KEYWORD})")

    def put_aside(self, mail: Mail) -> None:
        self._command(self._connect(), "STORE", mail.id, "+FLAGS.SILENT", f"({UNHANDLED_KEYWORD})")

    def tally(self) -> Tally:
        client = self._connect()
        aside = ("KEYWORD", UNHANDLED_KEYWORD, "UNKEYWORD", KEYWORD)
        return Tally(
            len(uids(self._command(client, "SEARCH", *WAITING))),
            len(uids(self._command(client, "SEARCH", *aside))),
        )

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


WAITING = ("UNKEYWORD", KEYWORD, "UNKEYWORD", UNHANDLED_KEYWORD)  # a UID SEARCH for mails not read yet


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
