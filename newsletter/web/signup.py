"""Signup and double opt-in: `/subscribe` (the form, and its POST as a form or JSON) and
`/confirm` (GET shows a button and changes nothing; only its POST confirms).

- No enumeration: a new, pending, active or suppressed address gets the same answer.
- Bots and list bombing: a honeypot field, a minimum time between rendering the form and
  posting it (signed into the form's token, which is also its CSRF token), per-IP and
  per-address limits counted in the store, and at most one confirmation mail per address
  an hour. A post without a valid form token (an embedded form on another site) is shown
  our form again, filled in, for one more press.
- No timing either: a request never renders or sends a mail. What it decides (the signup,
  its limits, the mail to send) is one transaction, serialised on the IP and the address
  (limits.py), and the mail is a row of the outbox (outbox.py) that the dispatcher the
  command line hands in sends after the answer, in a background task (the web app imports
  no transport: contract `web-sending`); `newsletter run` drains what is left.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from newsletter.core.config import DEFAULT_CONSENT
from newsletter.core.models import Schedule, SubscriberStatus
from newsletter.core.text import person_name
from newsletter.core.tokens import BadToken, Expired, Purposes
from newsletter.core.translations import N_, translations
from newsletter.digest.mail import sender
from newsletter.project import Project
from newsletter.storage import limits, outbox
from newsletter.storage.consents import Consents
from newsletter.storage.dberrors import IntegrityError
from newsletter.storage.issues import Issues
from newsletter.storage.outbox import Outbox
from newsletter.storage.records import Choices, Consent, Subscriber
from newsletter.storage.store import Connection
from newsletter.web.forms import (
    HONEYPOT,
    Fields,
    checked_address,
    client_ip,
    handle_post,
    mask,
    rate_key,
    wants_json,
)

FORM_LIFETIME = timedelta(days=1)  # a form (and its CSRF token) left open longer is shown again
ADDRESS_WINDOW = timedelta(days=1)
ACTIVE = SubscriberStatus.ACTIVE
CHECK_INBOX = N_("If this address can be subscribed, a mail is on its way: open its link to confirm.")
EMBED_WORDS = (N_("Email"), N_("Name (optional)"), N_("Subscribe"))  # the snippet's labels
Page = Callable[..., HTMLResponse]
log = logging.getLogger("newsletter.public")


class Courier(Protocol):
    """Sends one message (transports.Courier); raises when it did not go out."""

    def send(self, sender: str, recipient: str, message: bytes) -> None: ...


CourierFactory = Callable[[str, dict[str, str]], Courier]  # (transport URL, environ)


class Dispatcher(Protocol):
    """Sends what the outbox holds (dispatch.Dispatch): `kick` drains it now, or makes a
    drain at work go round once more."""

    def kick(self) -> None: ...


# (project, courier, clock): cli.py passes dispatch.for_serve.
DispatchFactory = Callable[[Project, Courier | None, Callable[[], datetime]], Dispatcher]


@dataclass(frozen=True)
class Offer:
    """What a reader can choose: the schedules (name, title) and their categories."""

    schedules: tuple[tuple[str, str], ...]
    categories: tuple[str, ...]

    @classmethod
    def of(cls, schedules: Sequence[Schedule]) -> Offer:
        categories = dict.fromkeys(c for s in schedules for c in s.categories)
        return cls(tuple((s.name, s.title) for s in schedules), tuple(categories))

    def choose(
        self, categories: Sequence[str], schedules: Sequence[str]
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Only what is on offer; everything ticked (or nothing) means all, new ones included."""
        cats = tuple(c for c in self.categories if c in set(categories))
        names = tuple(n for n, _ in self.schedules if n in set(schedules))
        return (
            () if len(cats) in (0, len(self.categories)) else cats,
            () if len(names) in (0, len(self.schedules)) else names,
        )


def wanted(schedule: Schedule, subscriber: Subscriber) -> tuple[str, ...]:
    """The reader's categories within a schedule (send.wanted_categories' rule)."""
    chosen = set(subscriber.categories)
    return tuple(c for c in schedule.categories if not chosen or c in chosen)


def after(response: Response, dispatcher: Dispatcher | None) -> Response:
    """The outbox drained once the answer has gone out: its time is nobody's business."""
    if dispatcher is not None:
        response.background = BackgroundTask(dispatcher.kick)
    return response


class Signups:
    """The handlers of /subscribe and /confirm; the store is used from the thread pool."""

    def __init__(
        self,
        project: Project,
        purposes: Purposes,
        dispatcher: Dispatcher | None,
        clock: Callable[[], datetime],
        page: Page,
    ) -> None:
        self.project, self.purposes, self.dispatcher, self.clock, self.page = (
            project,
            purposes,
            dispatcher,
            clock,
            page,
        )
        self.domain = sender(project.settings.email.from_).domain  # of the queued Message-IDs
        self.settings = project.settings.signup
        self.secret = purposes.form.secret_keys[-1]
        self.words = translations(project.settings.site.language)  # for the JSON answers

    @property
    def consent_text(self) -> str:
        """The settings' consent text; the default one in the site's language (and recorded so)."""
        text = self.settings.consent_text
        return self.words.gettext(text) if text == DEFAULT_CONSENT else text

    @property
    def consents(self) -> Consents:
        return Consents(self.project.store)

    def offer(self) -> Offer:
        return Offer.of(self.project.schedules())

    # -- the form ------------------------------------------------------------

    def form(self, request: Request) -> Response:
        if wants_json(request):
            offer = self.offer()
            return JSONResponse(
                {
                    "form_token": self.purposes.make_form("subscribe", "", self.clock()),
                    "categories": list(offer.categories),
                    "schedules": [{"name": n, "title": t} for n, t in offer.schedules],
                    "consent_text": self.consent_text,
                }
            )
        return self.show_form()

    def show_form(
        self, status: int = 200, fields: Fields | None = None, message: str = "", error: str = ""
    ) -> Response:
        offer = self.offer()
        fields = fields or Fields()
        return self.page(
            "subscribe.html",
            status,
            title=N_("Subscribe"),
            form_token=self.purposes.make_form("subscribe", "", self.clock()),
            categories=offer.categories,
            schedules=offer.schedules,
            email=fields.one("email", 320),
            person_name=person_name(fields.one("name")),
            chosen_categories=fields.many("categories") or list(offer.categories),
            chosen_schedules=fields.many("schedules") or [n for n, _ in offer.schedules],
            consent_text=self.consent_text,
            honeypot=HONEYPOT,
            message=message,
            error=error,
        )

    async def subscribe(self, request: Request) -> Response:
        answer = await handle_post(request, lambda fields: self._subscribe(request, fields))
        return after(answer, self.dispatcher)

    def _subscribe(self, request: Request, fields: Fields) -> Response:
        now = self.clock()
        if fields.one(HONEYPOT):
            log.info("signup dropped: honeypot filled")
            return self.checking(fields)  # a bot learns nothing
        rendered = self._form_time(fields, now)
        if rendered is None:
            return self.refused(fields, 400, "form", N_("Please press Subscribe once more to continue."))
        if (now - rendered).total_seconds() < self.settings.min_seconds:
            return self.refused(
                fields, 400, "too-fast", N_("That was quick: please press Subscribe once more.")
            )
        email = checked_address(fields.one("email", 400))
        ip = client_ip(request)
        choices, consent = self._asked(fields, ip)  # for every address alike: the same work
        try:
            refusal = self._take(email, choices, consent, ip, now)
        except IntegrityError as e:  # an import of the same address at the same moment
            log.warning("signup of %s not recorded: %s", mask(email or ""), e.orig)
            refusal = ""
        if refusal == "ip":
            return self.refused(
                fields, 429, "rate-limited", N_("Too many signups from your network. Try again later.")
            )
        if refusal == "email":
            return self.refused(fields, 400, "email", N_("That does not look like an email address."))
        return self.checking(fields)

    def _take(self, email: str | None, choices: Choices, consent: Consent, ip: str, now: datetime) -> str:
        """The limits, the signup and its mail, in one transaction serialised on the IP and
        the address: "ip" or "email" when refused for that, "" when done (or silently not)."""
        settings = self.settings
        with limits.serialised(self.project.store) as conn:
            if not self._counted(conn, "ip", ip, settings.ip_limit, settings.ip_window, now):
                return "ip"
            if email is None:
                return "email"
            if self._counted(conn, "address", email, settings.address_limit, ADDRESS_WINDOW, now):
                asked = self._payload(email, choices, consent)
                outbox.queue(conn, outbox.SIGNUP, None, "", now, email=email, payload=asked)
        return ""

    def _payload(self, email: str, choices: Choices, consent: Consent) -> str:
        """What dispatch.py records for a signup: the form's choices and consent, opt-in,
        and the key its confirmation mail is limited by (the form secret stays here)."""
        return json.dumps(
            {
                "name": choices.name,
                "categories": list(choices.categories),
                "schedules": list(choices.schedules),
                "form": consent.form,
                "consent_text": consent.text,
                "ip": consent.ip,
                "double": self.settings.double_opt_in,
                "confirm_key": rate_key(self.secret, "confirm-mail", email),
            },
            ensure_ascii=False,
        )

    def _form_time(self, fields: Fields, now: datetime) -> datetime | None:
        try:
            return self.purposes.read_form(fields.one("form_token"), "subscribe", "", now, FORM_LIFETIME)
        except BadToken:
            return None

    def _counted(
        self, conn: Connection, kind: str, value: str, limit: int, window: timedelta, now: datetime
    ) -> bool:
        """Count one event; False (and nothing counted) once `limit` are in the window."""
        key = rate_key(self.secret, kind, value)
        return limits.take(conn, kind, key, limit, window, now, max(window, ADDRESS_WINDOW))

    def _asked(self, fields: Fields, ip: str) -> tuple[Choices, Consent]:
        offer = self.offer()
        categories, schedules = offer.choose(fields.many("categories"), fields.many("schedules"))
        choices = Choices(person_name(fields.one("name")), categories, schedules)
        consent = Consent(
            "embed" if fields.one("form") == "embed" else "subscribe",
            self.consent_text,
            ip if self.settings.store_ip else "",
        )
        return choices, consent

    def checking(self, fields: Fields) -> Response:
        if fields.as_json:
            return JSONResponse({"status": "ok", "message": self.words.gettext(CHECK_INBOX)}, status_code=202)
        return self.page("check.html", title=N_("Check your inbox"), message=CHECK_INBOX)

    def refused(self, fields: Fields, status: int, reason: str, message: str) -> Response:
        if fields.as_json:
            said = self.words.gettext(message)
            return JSONResponse({"status": "error", "reason": reason, "message": said}, status_code=status)
        if reason in ("form", "too-fast"):  # an embedded form, or a quick hand: one more press
            return self.show_form(200, fields, message=message)
        return self.show_form(status, fields, error=message)

    # -- confirmation ----------------------------------------------------------

    def _consent_of(self, token: str, now: datetime) -> int | Response:
        try:
            return self.purposes.read_confirm(token, now, self.settings.confirm_lifetime)
        except Expired:
            return self.page(
                "signup_invalid.html", 400, title=N_("This confirmation link has expired"), reason="expired"
            )
        except BadToken:
            return self.page(
                "signup_invalid.html", 400, title=N_("This confirmation link is not valid"), reason="bad"
            )

    def confirm_page(self, request: Request) -> Response:
        """GET: a button; nothing changes (mail scanners fetch every link)."""
        token = request.query_params.get("token", "")
        now = self.clock()
        consent_id = self._consent_of(token, now)
        if isinstance(consent_id, Response):
            return consent_id
        person = self.consents.consent_subscriber(consent_id)
        if person is None:
            return self.page(
                "signup_invalid.html", 404, title=N_("This signup no longer exists"), reason="gone"
            )
        if not self.consents.is_current(consent_id):
            return self.void()
        return self.page(
            "confirm_signup.html",
            title=N_("Confirm your subscription"),
            address=mask(person.email),
            token=token,
            form_token=self.purposes.make_form("confirm", token, now),
        )

    async def confirm(self, request: Request) -> Response:
        return after(await handle_post(request, self._confirm), self.dispatcher)

    def _confirm(self, fields: Fields) -> Response:
        now = self.clock()
        token = fields.one("token")
        consent_id = self._consent_of(token, now)
        if isinstance(consent_id, Response):
            return consent_id
        try:
            self.purposes.read_form(fields.one("form_token"), "confirm", token, now, FORM_LIFETIME)
        except BadToken:
            return self.page(
                "signup_invalid.html", 403, title=N_("Please confirm from the page"), reason="csrf"
            )
        done = self.consents.confirm(consent_id, now)
        if done is None:
            return self.page(
                "signup_invalid.html", 404, title=N_("This signup no longer exists"), reason="gone"
            )
        if done.void:
            return self.void()
        person = done.subscriber
        if done.activated:
            log.info("subscriber %d confirmed", person.id)
            self.welcome(person, now)
        active = person.status == "active"
        return self.page(
            "confirmed.html",
            title=N_("You are subscribed") if active else N_("This address cannot be subscribed"),
            address=mask(person.email),
            active=active,
            already=not done.activated,
            preferences=f"preferences?token={self.purposes.make_preferences(person.id)}",
        )

    def void(self) -> Response:
        """A link overtaken by a newer signup's, an unsubscribe or a removal: it changes nothing."""
        return self.page(
            "signup_invalid.html", 400, title=N_("This confirmation link is not valid"), reason="void"
        )

    # -- welcome ---------------------------------------------------------------

    def welcome(self, person: Subscriber, now: datetime) -> None:
        """Queue the welcome mail and the latest issue of each chosen schedule, each at most once."""
        latest = []
        for schedule in self.project.schedules() if self.settings.send_latest else []:
            if person.schedules and schedule.name not in person.schedules:
                continue
            if Issues(self.project.store).latest_variant(schedule.name, wanted(schedule, person)) is not None:
                latest.append(schedule.name)  # none sent yet: nothing to queue (nor the one chance)
        Outbox(self.project.store).welcome(person.id, self.settings.welcome, latest, self.domain, now)


def embed_snippet(public_url: str, offer: Offer, language: str = "en") -> str:
    """A plain HTML form for the site's own pages, in the site's language. It posts to
    /subscribe, which answers with our form filled in (a fresh form token) for one more
    press: no script needed."""
    from html import escape

    words = translations(language)
    email, name, button = (escape(words.gettext(w)) for w in EMBED_WORDS)
    lines = [
        f'<form method="post" action="{escape(public_url)}/subscribe" class="newsletter-signup">',
        '  <input type="hidden" name="form" value="embed">',
        f'  <label>{email} <input type="email" name="email" required autocomplete="email"></label>',
        f'  <label>{name} <input type="text" name="name" autocomplete="name"></label>',
    ]
    if len(offer.schedules) > 1:
        box = '  <label><input type="checkbox" name="schedules" value="{}" checked> {}</label>'
        lines += [box.format(escape(n), escape(t)) for n, t in offer.schedules]
    if len(offer.categories) > 1:
        box = '  <label><input type="checkbox" name="categories" value="{}" checked> {}</label>'
        lines += [box.format(escape(c), escape(c)) for c in offer.categories]
    lines += [f'  <button type="submit">{button}</button>', "</form>"]
    return "\n".join(lines)
