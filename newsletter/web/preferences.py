"""The preference centre: `/preferences?token=T`, linked from every issue's footer and
the welcome mail. GET shows the reader's categories, schedules and pause; POST (with the
page's CSRF token) saves them or unsubscribes. The next send honours them.

The token is the preference centre's own (tokens.Purposes): an unsubscribe or
confirmation token does not open it, and its token unsubscribes nobody by itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response

from newsletter.core.models import SubscriberStatus
from newsletter.core.text import person_name
from newsletter.core.tokens import BadToken, Purposes
from newsletter.core.translations import N_
from newsletter.project import Project
from newsletter.storage.records import Choices, Subscriber
from newsletter.storage.roster import Roster
from newsletter.web.forms import Fields, handle_post, mask
from newsletter.web.signup import FORM_LIFETIME, Offer, Page

OPEN = (SubscriberStatus.ACTIVE, SubscriberStatus.PAUSED)
log = logging.getLogger("newsletter.public")


class Preferences:
    def __init__(
        self, project: Project, purposes: Purposes, clock: Callable[[], datetime], page: Page
    ) -> None:
        self.project, self.purposes, self.clock, self.page = project, purposes, clock, page

    def _reader(self, token: str) -> Subscriber | Response:
        try:
            subscriber_id = self.purposes.read_preferences(token)
        except BadToken:
            return self.page(
                "signup_invalid.html", 400, title=N_("This preferences link is not valid"), reason="bad"
            )
        found = Roster(self.project.store).subscriber(subscriber_id)
        if found is None:
            return self.page(
                "signup_invalid.html", 404, title=N_("This subscription no longer exists"), reason="gone"
            )
        return found

    def show(self, request: Request) -> Response:
        token = request.query_params.get("token", "")
        reader = self._reader(token)
        if isinstance(reader, Response):
            return reader
        return self._form(reader, token)

    def _form(
        self, reader: Subscriber, token: str, status: int = 200, saved: bool = False, error: str = ""
    ) -> Response:
        if reader.status not in OPEN:
            return self.page(
                "unsubscribed.html", title=N_("You are not subscribed"), address=mask(reader.email)
            )
        offer = Offer.of(self.project.schedules())
        return self.page(
            "preferences.html",
            status,
            title=N_("Your newsletter preferences"),
            address=mask(reader.email),
            token=token,
            form_token=self.purposes.make_form("preferences", token, self.clock()),
            categories=offer.categories,
            schedules=offer.schedules,
            chosen_categories=list(reader.categories or offer.categories),
            chosen_schedules=list(reader.schedules or [n for n, _ in offer.schedules]),
            paused=reader.status == SubscriberStatus.PAUSED,
            saved=saved,
            error=error,
        )

    async def save(self, request: Request) -> Response:
        return await handle_post(request, self._save)

    def _save(self, fields: Fields) -> Response:
        now = self.clock()
        token = fields.one("token")
        reader = self._reader(token)
        if isinstance(reader, Response):
            return reader
        try:
            self.purposes.read_form(fields.one("form_token"), "preferences", token, now, FORM_LIFETIME)
        except BadToken:
            return self.page("signup_invalid.html", 403, title=N_("Please save from the page"), reason="csrf")
        roster = Roster(self.project.store)
        if fields.one("action") == "unsubscribe":
            if roster.suppress(reader.id, SubscriberStatus.UNSUBSCRIBED, now):
                log.info("subscriber %d unsubscribed (preferences)", reader.id)
            return self.page(
                "unsubscribed.html", title=N_("You are unsubscribed"), address=mask(reader.email)
            )
        offer = Offer.of(self.project.schedules())
        if not fields.many("categories") or not fields.many("schedules"):
            error = N_("Choose at least one topic and one newsletter, or pause or unsubscribe.")
            return self._form(reader, token, 400, error=error)
        categories, schedules = offer.choose(fields.many("categories"), fields.many("schedules"))
        paused = fields.one("paused") == "yes"
        roster.set_preferences(
            reader.id, Choices(person_name(reader.name), categories, schedules), paused, now
        )
        log.info("subscriber %d changed preferences", reader.id)
        updated = roster.subscriber(reader.id)
        return self._form(updated or reader, token, saved=True)
