"""`newsletter serve`: the public pages that subscribers reach from an email.

A small Starlette app of its own, apart from the editors' preview: nothing in
it can show a draft. Routes:

- `GET /unsubscribe?token=T` a confirm page; it changes nothing (link scanners
  and mail security gateways fetch every link in a message).
- `POST /unsubscribe?token=T` the unsubscribe itself: RFC 8058 one-click
  (`List-Unsubscribe=One-Click`, url-encoded or multipart) or the confirm
  page's form (token in a `token` field). The subscriber is suppressed for
  every later send. Idempotent. The signed token is the capability, so no
  CSRF token; it is read from the query string or the form field, nothing else.
- `GET /issues/<schedule>-YYYY-MM-DD.html` the issue as sent, where the
  emails' "view in your browser" link points (`send` writes the file).
- `GET /issues/`, `/issues/feed.atom`, `/issues/<schedule>/feed.atom` the archive
  of sent issues and its Atom feeds (web/archive.py).
- `GET /` a line naming the site; `GET /healthz` "ok".

Deployment: the emails link to `[web] public_url` + `/unsubscribe?token=...`
and `/issues/...`, so put a reverse proxy (TLS) in front that maps
`public_url` to this app. It serves at its own root (`/unsubscribe`); a proxy
that keeps public_url's path (`/newsletter/unsubscribe`) works too, the prefix
is recognised and stripped. Tokens travel in URLs: pages send no referrer,
uvicorn's access log shows them redacted, and the proxy's log should too.

`NEWSLETTER_SECRET_KEY` verifies tokens (the same key `send` signs with);
without it the app refuses to start.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from newsletter.core.clock import utc_now as utc_now  # the one clock; re-exported
from newsletter.core.languages import direction
from newsletter.core.models import SubscriberStatus
from newsletter.core.tokens import BadToken, Tokens, secret_key
from newsletter.core.translations import N_, translations
from newsletter.project import Project
from newsletter.storage.records import SUPPRESSED, Subscriber
from newsletter.storage.roster import Roster
from newsletter.web import listen
from newsletter.web.archive import Archive
from newsletter.web.forms import TooLarge, capped_body, form_values
from newsletter.web.forms import mask as mask  # re-exported
from newsletter.web.preferences import Preferences
from newsletter.web.security import SecurityHeaders
from newsletter.web.signup import CourierFactory, DispatchFactory, Offer, Signups, embed_snippet

TEMPLATES = Path(__file__).parent / "templates" / "public"
STEM = re.compile(r"^[A-Za-z0-9_-]+-\d{4}-\d{2}-\d{2}$")
MAX_TOKEN = 256  # ours are ~30 characters; anything far longer is not worth verifying

PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# The issue as emailed: inline styles and remote images, never a script. The
# sandbox makes it as inert as in a mail client (links still work).
ISSUE_CSP = (
    "default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; img-src * data:; "
    "font-src * data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; "
    "sandbox allow-popups allow-popups-to-escape-sandbox"
)
DEFAULT_HEADERS = {
    "content-security-policy": PAGE_CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",  # a page's URL may carry a token
    "cache-control": "no-store",
}
HTTP_ERRORS = {
    404: (N_("Page not found"), N_("There is no page at this address.")),
    405: (N_("Method not allowed"), N_("This address does not take that kind of request.")),
}
SHOWN = ("title", "message", "error")  # what handlers pass as message ids, marked N_

Clock = Callable[[], datetime]
log = logging.getLogger("newsletter.public")


class PublicPrefix:
    """Serve under public_url's path too (`/newsletter/unsubscribe`), for proxies
    that pass the path on as it is: the prefix becomes the ASGI root_path."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.prefix and scope["type"] == "http" and not scope.get("root_path"):
            path = scope["path"]
            if path == self.prefix or path.startswith(self.prefix + "/"):
                scope = {**scope, "root_path": self.prefix}
        await self.app(scope, receive, send)


class Pages:
    """The route handlers. The store is used from Starlette's thread pool."""

    def __init__(self, project: Project, tokens: Tokens, clock: Clock) -> None:
        self.project = project
        self.tokens = tokens
        self.clock = clock
        self.site = project.settings.site
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(TEMPLATES)),
            autoescape=True,  # site names and addresses are text
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            extensions=["jinja2.ext.i18n"],
        )
        # The public pages speak the site's language ([site] language), through the
        # catalogues the mails use; {% trans %} blocks are whitespace-trimmed as there.
        self.words = translations(self.site.language)
        self.env.policies["ext.i18n.trimmed"] = True
        self.env.install_gettext_translations(self.words, newstyle=False)  # type: ignore[attr-defined]

    def page(
        self, name: str, status: int = 200, headers: Mapping[str, str] | None = None, **context: Any
    ) -> HTMLResponse:
        for key in SHOWN:
            if context.get(key):
                context[key] = self.words.gettext(context[key])
        html = self.env.get_template(name).render(
            site=self.site.name,
            site_url=self.site.base_url,
            theme=self.project.settings.theme,
            lang=self.site.language,
            dir=direction(self.site.language),
            **context,
        )
        return HTMLResponse(html, status_code=status, headers=dict(headers or {}))

    def invalid(self, reason: str) -> HTMLResponse:
        return self.page("invalid.html", 400, title=N_("This unsubscribe link is not valid"), reason=reason)

    # -- unsubscribe ---------------------------------------------------------

    def subscriber_for(self, token: str | None) -> Subscriber | HTMLResponse:
        """The subscriber a token names, or the error page to show instead."""
        if not token:
            return self.invalid("missing")
        try:
            if len(token) > MAX_TOKEN:
                raise BadToken("this unsubscribe link is not valid")
            subscriber_id = self.tokens.read(token)
        except BadToken:
            return self.invalid("tampered")
        found = Roster(self.project.store).subscriber(subscriber_id)
        if found is None:
            return self.page(
                "invalid.html", 404, title=N_("This subscription no longer exists"), reason="unknown"
            )
        return found

    async def unsubscribe_page(self, request: Request) -> Response:
        if request.method == "POST":
            return await self.unsubscribe(request)
        return await run_in_threadpool(self.confirm, request)

    def confirm(self, request: Request) -> Response:
        """GET: say what a click on the button will do; change nothing."""
        token = request.query_params.get("token")
        subscriber = self.subscriber_for(token)
        if isinstance(subscriber, Response):
            return subscriber
        address = mask(subscriber.email)
        if subscriber.status in SUPPRESSED:
            return self.page("done.html", title=N_("You are unsubscribed"), address=address, already=True)
        return self.page("confirm.html", title=N_("Unsubscribe"), address=address, token=token)

    async def unsubscribe(self, request: Request) -> Response:
        """POST: one-click or the form. Suppresses for good; a repeat is a no-op."""
        try:
            form = await read_form(request)
        except TooLarge:  # not an unsubscribe
            return PlainTextResponse("Request body too large", status_code=413)
        in_query = request.query_params.get("token")
        in_form = form.get("token")
        if in_query and in_form and in_query != in_form:
            return self.invalid("tampered")
        return await run_in_threadpool(self._unsubscribe, in_query or in_form)

    def _unsubscribe(self, token: str | None) -> Response:
        subscriber = self.subscriber_for(token)
        if isinstance(subscriber, Response):
            return subscriber
        changed = Roster(self.project.store).suppress(
            subscriber.id, SubscriberStatus.UNSUBSCRIBED, self.clock()
        )
        if changed:
            log.info("subscriber %d unsubscribed", subscriber.id)
        return self.page(
            "done.html", title=N_("You are unsubscribed"), address=mask(subscriber.email), already=not changed
        )

    # -- the rest --------------------------------------------------------------

    def issue(self, request: Request) -> Response:
        stem = request.path_params["stem"]
        if not STEM.match(stem):
            raise HTTPException(404)
        folder = (self.project.root / "issues").resolve()
        path = (folder / f"{stem}.html").resolve()
        if path.parent != folder or not path.is_file():
            raise HTTPException(404)
        return FileResponse(
            path,
            media_type="text/html; charset=utf-8",
            headers={"content-security-policy": ISSUE_CSP, "cache-control": "no-cache"},
        )

    def index(self, request: Request) -> Response:
        return self.page("index.html", title=N_("Newsletter"))

    def healthz(self, request: Request) -> Response:
        return PlainTextResponse("ok")

    async def http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        title, message = HTTP_ERRORS.get(
            exc.status_code, (N_("Request error"), N_("This request cannot be served."))
        )
        return self.page("error.html", exc.status_code, exc.headers, title=title, message=message)

    async def crash(self, request: Request, exc: Exception) -> Response:
        """A bug or a store outage: logged with its traceback, shown without it."""
        log.error("public page failed on %s %s", request.method, request.url.path, exc_info=exc)
        return self.page(
            "error.html",
            500,
            DEFAULT_HEADERS,
            title=N_("Something went wrong"),
            message=N_("This page could not be shown just now. Please try again later."),
        )


async def read_form(request: Request) -> Mapping[str, str]:
    """The POST's url-encoded or multipart fields (strings only; the last of a name), the
    body capped at MAX_BODY. Any other body yields no fields: the query string still counts."""
    values = await form_values(request, await capped_body(request), max_fields=20)
    return {key: found[-1] for key, found in values.items()}


def create_app(
    root: Path,
    environ: Mapping[str, str] | None = None,
    *,
    clock: Clock | None = None,
    courier_for: CourierFactory | None = None,
    dispatch_for: DispatchFactory | None = None,
) -> Starlette:
    """The public app for the project at `root`. Raises ConfigError when
    NEWSLETTER_SECRET_KEY is missing or short, NewsletterError when `root`
    is not a project: both before anything is served."""
    project = Project(root, environ=None if environ is None else dict(environ))
    try:
        tokens = Tokens(secret_key(project.environ))
        pages = Pages(project, tokens, clock or utc_now)
        # Signup mails are queued in the outbox and sent after the answer by the dispatcher
        # the command line made, through its courier (web imports no transport).
        courier = courier_for(project.transport_url(), project.environ) if courier_for else None
        dispatcher = dispatch_for(project, courier, pages.clock) if dispatch_for else None
    except Exception:
        project.close()
        raise
    signups = Signups(project, tokens.purposes, dispatcher, pages.clock, pages.page)
    preferences = Preferences(project, tokens.purposes, pages.clock, pages.page)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        project.close()

    routes = [
        Route("/", pages.index, methods=["GET"]),
        Route("/healthz", pages.healthz, methods=["GET"]),
        Route("/unsubscribe", pages.unsubscribe_page, methods=["GET", "POST"]),
        Route("/issues/{stem}.html", pages.issue, methods=["GET"]),
        *Archive(project, pages.page, pages.clock).routes(),  # /issues/ and its Atom feeds
        Route("/subscribe", signups.form, methods=["GET"]),
        Route("/subscribe", signups.subscribe, methods=["POST"]),
        Route("/confirm", signups.confirm_page, methods=["GET"]),
        Route("/confirm", signups.confirm, methods=["POST"]),
        Route("/preferences", preferences.show, methods=["GET"]),
        Route("/preferences", preferences.save, methods=["POST"]),
    ]
    prefix = urlsplit(project.settings.public_url).path.rstrip("/")
    middleware = [
        Middleware(PublicPrefix, prefix=prefix),
        Middleware(SecurityHeaders, headers=DEFAULT_HEADERS),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={HTTPException: pages.http_error, Exception: pages.crash},
    )
    app.state.project = project
    app.state.dispatcher = dispatcher
    return app


class RedactTokens(logging.Filter):
    """Keeps unsubscribe tokens out of uvicorn's access log."""

    PATTERN = re.compile(r"(token=)[^&\s]*")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                self.PATTERN.sub(r"\1[redacted]", a) if isinstance(a, str) else a for a in record.args
            )
        return True


def serve(
    root: Path,
    host: str,
    port: int,
    courier_for: CourierFactory | None = None,
    embed: bool = False,
    dispatch_for: DispatchFactory | None = None,
) -> None:
    """Run the public pages until Ctrl+C, binding `host`:`port` as given.
    A missing secret or a directory that is not a project fails before binding.
    `embed`: print the HTML snippet of the signup form for the site instead."""
    if embed:
        embedded = Project(root)
        try:
            settings = embedded.settings
            print(embed_snippet(settings.public_url, Offer.of(embedded.schedules()), settings.site.language))
        finally:
            embedded.close()
        return
    app = create_app(root, courier_for=courier_for, dispatch_for=dispatch_for)
    project: Project = app.state.project
    try:  # a port in use is one error, before anything claims to start
        sock = listen.bind(host, port)
    except listen.PortError:
        project.close()
        raise
    config = uvicorn.Config(
        app, host=host, port=port, log_level="info", server_header=False, timeout_graceful_shutdown=3
    )
    logging.getLogger("uvicorn.access").addFilter(RedactTokens())
    print(
        f"Serving the public pages of {project.root} (emails link to {project.settings.public_url})",
        file=sys.stderr,
    )
    listen.run(config, sock)
