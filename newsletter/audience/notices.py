"""The one-off mails of signup: the double opt-in confirmation, the welcome, and the
latest issue sent to a new reader. Rendered with the project's templates (`confirm`,
`welcome`: Jinja, then MJML, like issues) and encoded by mail.py; the caller sends them.

Nothing here sends or touches the store: dispatch.py renders what the outbox holds
(with the Message-ID stored there), seals it as issues are, and hands it to the courier.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from newsletter.core.config import Settings
from newsletter.core.text import plain_line
from newsletter.digest.mail import MessageTemplate, Recipient, sender
from newsletter.digest.render import Renderer


@dataclass(frozen=True)
class Outgoing:
    """A message ready for the courier: envelope sender and recipient, and its bytes."""

    sender: str
    recipient: str
    data: bytes


@dataclass(frozen=True)
class Links:
    """Where a new reader's mails point, tokens included."""

    preferences: str
    unsubscribe: str


def confirmation(
    renderer: Renderer,
    settings: Settings,
    email: str,
    name: str,
    url: str,
    lifetime: timedelta,
    now: datetime,
    message_id: str,
) -> Outgoing:
    subject = f"Confirm your subscription to {settings.site.name}"
    context = _context(settings, subject, "One click and you are subscribed", name)
    html, text = renderer.notice("confirm", {**context, "confirm_url": url, "lifetime": in_words(lifetime)})
    return _outgoing(settings, subject, html, text, email, name, now, message_id, None)


def welcome(
    renderer: Renderer,
    settings: Settings,
    email: str,
    name: str,
    schedules: list[str],
    links: Links,
    now: datetime,
    message_id: str,
) -> Outgoing:
    subject = f"Welcome to {settings.site.name}"
    context = _context(settings, subject, "You are subscribed", name)
    context |= {
        "schedules": schedules,
        "preferences_url": links.preferences,
        "unsubscribe_url": links.unsubscribe,
    }
    html, text = renderer.notice("welcome", context)
    return _outgoing(settings, subject, html, text, email, name, now, message_id, links)


def issue(
    settings: Settings,
    subject: str,
    html: str,
    text: str,
    email: str,
    name: str,
    tokens: tuple[str, str],
    links: Links,
    now: datetime,
    message_id: str,
) -> Outgoing:
    """A stored variant as it went out, spliced with this reader's (unsubscribe,
    preferences) tokens."""
    return _outgoing(settings, subject, html, text, email, name, now, message_id, links, tokens)


def in_words(span: timedelta) -> str:
    """7 days, 1 day, 12 hours: how a mail says how long a link works."""
    days, hours = span.days, span.seconds // 3600
    count, unit = (days, "day") if days and not hours else (days * 24 + hours or 1, "hour")
    return f"{count} {unit}{'' if count == 1 else 's'}"


def _context(settings: Settings, subject: str, preheader: str, name: str) -> dict[str, object]:
    return {"site": settings.site, "subject": subject, "preheader": preheader, "name": plain_line(name)}


def _outgoing(
    settings: Settings,
    subject: str,
    html: str,
    text: str,
    email: str,
    name: str,
    now: datetime,
    message_id: str,
    links: Links | None,
    tokens: tuple[str, str] = ("", ""),
) -> Outgoing:
    origin = sender(settings.email.from_)
    template = MessageTemplate(subject, text, html, settings.email.from_, now)
    recipient = Recipient(
        name,
        email,
        message_id,
        token=tokens[0],
        unsubscribe_url=links.unsubscribe if links else "",
        preferences_token=tokens[1],
    )
    return Outgoing(origin.addr_spec, email, template.render(recipient))
