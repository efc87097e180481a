"""MIME: an Issue becomes a multipart/alternative email (text, then HTML)."""

from __future__ import annotations

from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

from newsletter.errors import ConfigError
from newsletter.models import Issue
from newsletter.render import plain_line


def sender(from_header: str) -> Address:
    """The [email] from setting as an Address; a bad one is a config error."""
    name, addr = parseaddr(from_header)
    if "@" not in addr:
        raise ConfigError("newsletter.toml", "email.from",
                          f"expected 'Name <address@example.org>', got {from_header!r}")
    username, domain = addr.rsplit("@", 1)
    return Address(plain_line(name), username, domain)


def compose(issue: Issue, from_header: str, to: Address, now: datetime,
            message_id: str | None = None) -> EmailMessage:
    """One complete message. Header values are single lines: no CR/LF can add a header."""
    origin = sender(from_header)
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = origin
    message["To"] = Address(plain_line(to.display_name), to.username, to.domain)
    message["Subject"] = plain_line(issue.subject)
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id or make_msgid("digest", domain=origin.domain)
    message.set_content(issue.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(issue.html, subtype="html", charset="utf-8", cte="quoted-printable")
    return message
