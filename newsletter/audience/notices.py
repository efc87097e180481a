"""The one-off mails of signup: the double opt-in confirmation, the welcome, and the
latest issue sent to a new reader. Rendered with the project's templates (`confirm`,
`welcome`: Jinja, then MJML, like issues) and encoded by mail.py; the caller sends them.

Nothing here sends or touches the store: dispatch.py renders what the outbox holds
(with the Message-ID stored there), seals it as issues are, and hands it to the courier.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from newsletter.core import translations
from newsletter.core.config import Settings
from newsletter.core.models import Schedule
from newsletter.core.text import plain_line
from newsletter.digest.mail import MessageTemplate, Recipient, sender
from newsletter.digest.render import Renderer, language_context

DAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}


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
    _ = translations.translations(settings.site.language).gettext
    subject = _("Confirm your subscription to %(site)s") % {"site": settings.site.name}
    context = _context(settings, subject, _("One click and you are subscribed"), name)
    lifetime_words = in_words(lifetime, settings.site.language)
    html, text = renderer.notice("confirm", {**context, "confirm_url": url, "lifetime": lifetime_words})
    return _outgoing(settings, subject, html, text, email, name, now, message_id, None)


def welcome(
    renderer: Renderer,
    settings: Settings,
    email: str,
    name: str,
    schedules: list[Schedule],
    links: Links,
    now: datetime,
    message_id: str,
) -> Outgoing:
    language = settings.site.language
    _ = translations.translations(language).gettext
    subject = _("Welcome to %(site)s") % {"site": settings.site.name}
    context = _context(settings, subject, _("You are subscribed"), name)
    context |= {
        "schedules": [s.title for s in schedules],
        "cadences": [(s.title, cadence(s, language)) for s in schedules],
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


def in_words(span: timedelta, language: str = "en") -> str:
    """7 days, 1 day, 12 hours: how a mail says how long a link works."""
    words = translations.translations(language)
    days, hours = span.days, span.seconds // 3600
    if days and not hours:
        return words.ngettext("%(num)d day", "%(num)d days", days) % {"num": days}
    count = days * 24 + hours or 1
    return words.ngettext("%(num)d hour", "%(num)d hours", count) % {"num": count}


def cadence(schedule: Schedule, language: str) -> str:
    """ "every Monday at 08:00", "every day at 07:30"; "" for a cron too rich to say in words."""
    fields = schedule.cron.split()
    if len(fields) != 5 or not (fields[0].isdigit() and fields[1].isdigit()) or fields[2:4] != ["*", "*"]:
        return ""
    _ = translations.translations(language).gettext
    dow = fields[4].lower()
    day = DAYS.get(dow[:3]) if not dow.isdigit() else (int(dow) - 1) % 7
    if dow != "*" and day is None:
        return ""
    name, time = translations.weekday_time(day or 0, int(fields[1]), int(fields[0]), language)
    if dow == "*":
        return _("every day at %(time)s") % {"time": time}
    return _("every %(day)s at %(time)s") % {"day": name, "time": time}


def _context(settings: Settings, subject: str, preheader: str, name: str) -> dict[str, object]:
    return {
        **language_context(settings, settings.site.language),
        "site": settings.site,
        "subject": subject,
        "preheader": preheader,
        "name": plain_line(name),
        "subscribe_url": f"{settings.public_url}/subscribe",
        "archive_url": f"{settings.public_url}/issues/",
    }


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
