"""`newsletter preview`: editors see any schedule's issue as of any moment.

A Starlette app over `Project.build` (the same code `build` and `send` use):
server-rendered pages, a little plain JavaScript for tabs, frame sizing and
live reload (it polls `/changes`, which fingerprints the project's files and
archive), and the raw .html/.txt/.eml parts for the iframes and downloads.

Routes: `/`, `/schedules/<name>?at=&variant=&scheme=`, `/schedules/<name>/issue.{html,txt,eml}?at=&variant=`
(`&scheme=light|dark` on the .html: web/color_scheme.py),
`POST /schedules/<name>/test` (the desk's "Send a test", web/desk.py), `POST /schedules/<name>/approve`
(an approval-required schedule's "Approve"), `POST /schedules/<name>/edit` ("Edit this issue",
web/editor.py), `/changes?since=`, `/static/...`; bound beyond
loopback, `GET/POST /login` and a session for everything else (web/access.py).
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from newsletter.core.clock import utc_now as utc_now  # the one clock; re-exported
from newsletter.core.errors import NewsletterError
from newsletter.core.schedules import schedule_names
from newsletter.core.translations import N_, translations
from newsletter.project import Project
from newsletter.web import desk, editor, listen
from newsletter.web import pages as page_env
from newsletter.web.access import LOGIN_PATH, Login, LoginRequired, session_of, set_session
from newsletter.web.color_scheme import forced, scheme_of
from newsletter.web.desk import UnknownVariant
from newsletter.web.forms import Fields, TooLarge, read_fields
from newsletter.web.security import PAGE_CSP, SecurityHeaders, email_headers, framed_page_headers
from newsletter.web.views import (
    BadMoment,
    ErrorInfo,
    ScheduleNotFound,
    explain,
    issue_page,
    issue_parts,
    load_schedule,
    schedule_rows,
)
from newsletter.web.workspace import Clock, Workspace

STATIC = Path(__file__).parent / "static"
# Names a browser on this machine uses for a loopback server. Anything else in
# the Host header is a DNS-rebinding attempt to read unpublished drafts.
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
PARTS = {
    "html": "text/html; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
    "eml": "message/rfc822",
}


class Pages:
    """The route handlers. Plain `def`: Starlette runs them in its thread pool,
    so a build never blocks the event loop (or the `/changes` polls)."""

    def __init__(self, workspace: Workspace, templates: Jinja2Templates, login: Login | None = None) -> None:
        self.workspace = workspace
        self.templates = templates
        self.login = login

    def render(
        self,
        request: Request,
        name: str,
        status_code: int = 200,
        headers: dict[str, str] | None = None,
        **context: Any,
    ) -> Response:
        context.setdefault("version", self.workspace.version())
        context.setdefault("project_name", self.workspace.root.name)
        context.update(page_env.words(context.get("language") or self.workspace.language()))
        return self.templates.TemplateResponse(
            request, name, context, status_code=status_code, headers=headers
        )

    def error(
        self,
        request: Request,
        status: int,
        title: str,
        error: ErrorInfo,
        headers: dict[str, str] | None = None,
        **context: Any,
    ) -> Response:
        return self.render(
            request, "error.html", status, headers, title=title, error=error, status=status, **context
        )

    def words(self) -> Callable[[str], str]:
        """The site's language for the titles and messages made here; an error panel's
        `kind` is marked with N_ and translated by the page (_error.html)."""
        return translations(self.workspace.language()).gettext

    def index(self, request: Request) -> Response:
        version = self.workspace.version()  # before reading: a change meanwhile still shows
        try:
            rows = schedule_rows(self.workspace)
        except NewsletterError as e:
            title = self.words()(N_("The project cannot be opened"))
            return self.error(request, 500, title, explain(self.workspace, e))
        return self.render(request, "index.html", rows=rows, now=self.workspace.clock(), version=version)

    def issue(self, request: Request) -> Response:
        name = request.path_params["name"]
        version = self.workspace.version()
        try:
            page = issue_page(
                self.workspace,
                name,
                request.query_params.get("at"),
                request.query_params.get("variant"),
                session_of(request),
            )
            page.scheme = scheme_of(request.query_params.get("scheme"))
        except ScheduleNotFound:
            return self.not_found(request, name)
        except BadMoment as e:
            _ = self.words()
            hint = _("Pick a date and time with the picker, or use ISO 8601.")
            info = ErrorInfo(N_("Bad date"), str(e), hint)
            return self.error(request, 400, _("That moment cannot be shown"), info)
        except NewsletterError as e:
            title = self.words()(N_("Schedule %(name)s cannot be loaded")) % {"name": repr(name)}
            return self.error(request, 500, title, explain(self.workspace, e))
        return self.render(request, "issue.html", page=page, version=version, **page_env.words(page.language))

    def part(self, request: Request) -> Response:
        name, part = request.path_params["name"], request.path_params["part"]
        if part not in PARTS:
            raise HTTPException(404)
        # Errors here are seen inside the preview's iframe: let the preview frame them.
        framed = framed_page_headers()
        try:
            build, parts = issue_parts(
                self.workspace, name, request.query_params.get("at"), request.query_params.get("variant")
            )
        except ScheduleNotFound:
            return self.not_found(request, name, framed)
        except UnknownVariant as e:
            info = ErrorInfo(N_("Not found"), str(e), e.hint)
            return self.error(request, 404, self.words()(N_("No such variant")), info, framed)
        except BadMoment as e:
            _ = self.words()
            info = ErrorInfo(N_("Bad date"), str(e), _("Use ISO 8601 such as 2026-11-23T08:00."))
            return self.error(request, 400, _("That moment cannot be shown"), info, framed)
        except NewsletterError as e:
            title = self.words()(N_("The issue cannot be built"))
            return self.error(request, 500, title, explain(self.workspace, e), framed)
        if part not in parts:
            return self.empty_period(request, framed)
        stem = page_env.issue_stem_of(build)
        disposition = "attachment" if part == "eml" else "inline"
        headers = {**email_headers(), "content-disposition": f'{disposition}; filename="{stem}.{part}"'}
        body = parts[part]
        scheme = scheme_of(request.query_params.get("scheme"))
        if part == "html" and scheme:  # the frames' light/dark switch (web/color_scheme.py)
            body = forced(body.decode(), scheme).encode()
        return Response(body, media_type=PARTS[part], headers=headers)

    async def test_send(self, request: Request) -> Response:
        """ "Send a test": the form's fields, then the send in a worker thread."""
        try:
            fields = await read_fields(request)
        except TooLarge:
            raise HTTPException(413) from None
        return await run_in_threadpool(self._test_send, request, fields)

    def _test_send(self, request: Request, fields: Fields) -> Response:
        name = request.path_params["name"]
        with self.workspace.project() as project:
            try:
                load_schedule(project, name)
            except ScheduleNotFound:
                return self.not_found(request, name)
            outcome = desk.test_send(project, name, fields, session_of(request), self.workspace.clock())
        back = page_env.issue_url(name, None, None, fields.one("variant", 2048) or None, fields.one("at"))
        return self.render(request, "sent.html", outcome.status, outcome=outcome, schedule=name, back=back)

    async def approve(self, request: Request) -> Response:
        """ "Approve": the form's fields, then the approval in a worker thread."""
        try:
            fields = await read_fields(request)
        except TooLarge:
            raise HTTPException(413) from None
        return await run_in_threadpool(self._approve, request, fields)

    def _approve(self, request: Request, fields: Fields) -> Response:
        name = request.path_params["name"]
        with self.workspace.project() as project:
            try:
                schedule = load_schedule(project, name)
            except ScheduleNotFound:
                return self.not_found(request, name)
            outcome = desk.approve(project, schedule, fields, session_of(request), self.workspace.clock())
        back = page_env.issue_url(name, None, None, None, fields.one("at"))
        _ = self.words()
        heading = _("Approved") if outcome.approved else _("Not approved")
        return self.render(
            request, "sent.html", outcome.status, outcome=outcome, schedule=name, back=back, heading=heading
        )

    async def edit_issue(self, request: Request) -> Response:
        """ "Edit this issue": the panel's fields, then a new version in a worker thread."""
        try:
            fields = await editor.read_edit(request)
        except TooLarge:
            raise HTTPException(413) from None
        return await run_in_threadpool(self._edit_issue, request, fields)

    def _edit_issue(self, request: Request, fields: Fields) -> Response:
        name = request.path_params["name"]
        with self.workspace.project() as project:
            try:
                schedule = load_schedule(project, name)
            except ScheduleNotFound:
                return self.not_found(request, name)
            outcome = editor.save(project, schedule, fields, session_of(request), self.workspace.clock())
        back = page_env.issue_url(name, None, None, None, fields.one("at"))
        if outcome.status == 303:  # saved: the page, its frames and the history show it
            return RedirectResponse(f"{back}#edit", status_code=303)
        return self.render(
            request,
            "sent.html",
            outcome.status,
            outcome=outcome,
            schedule=name,
            back=back,
            heading=self.words()(N_("Not saved")),
        )

    def login_page(self, request: Request) -> Response:
        return self.render(request, "login.html", message="")

    async def log_in(self, request: Request) -> Response:
        """The login form's POST: the password's hash compared in constant time, then a
        session cookie (HttpOnly, SameSite=Strict, Secure over https)."""
        try:
            fields = await read_fields(request)
        except TooLarge:
            raise HTTPException(413) from None
        if self.login is None or not self.login.accepts(fields.one("password", 1024)):
            return self.render(request, "login.html", 401, message=self.words()(N_("Wrong password.")))
        response = RedirectResponse("/", status_code=303)
        set_session(response, request, self.login)
        return response

    def changes(self, request: Request) -> Response:
        """What open pages poll: the current version, and whether it differs from `since`."""
        version = self.workspace.version()
        return JSONResponse({"version": version, "changed": version != request.query_params.get("since")})

    def empty_period(self, request: Request, headers: dict[str, str]) -> Response:
        _ = self.words()
        info = ErrorInfo(
            N_("Empty period"),
            _(
                "Nothing new in this period, and the schedule has skip_if_empty = true: "
                "no email would go out."
            ),
            _("Pick another date."),
        )
        return self.error(request, 404, _("No issue for this period"), info, headers)

    def not_found(self, request: Request, name: str, headers: dict[str, str] | None = None) -> Response:
        _ = self.words()
        known = ", ".join(schedule_names(self.workspace.root)) or _("none yet")
        return self.error(
            request,
            404,
            _("No such schedule"),
            ErrorInfo(
                N_("Not found"),
                _("There is no schedule named %(name)s.") % {"name": repr(name)},
                _("Schedules are the schedules/NAME.toml files of the project (here: %(names)s).")
                % {"names": known},
            ),
            headers,
        )

    async def http_error(self, request: Request, exc: Exception) -> Response:
        """No route, a static file that is not there, a wrong method: a page, not a bare status."""
        assert isinstance(exc, HTTPException)
        missing = exc.status_code == 404
        # English, N_-marked: asking the project for its language would block the event loop.
        info = ErrorInfo(
            N_("Not found") if missing else N_("Error"),
            N_("There is no page at this address.") if missing else exc.detail,
            N_("Start again from the list of schedules."),
        )
        # version="": computing it here would block the event loop (this handler is async).
        return self.error(
            request,
            exc.status_code,
            N_("Not found") if missing else N_("Request error"),
            info,
            dict(exc.headers or {}),
            version="",
            language="en",  # asking the project for it would block the event loop too
        )

    async def crash(self, request: Request, exc: Exception) -> Response:
        """A bug, not a user error: uvicorn logs the traceback, the page never shows it."""
        response = self.templates.TemplateResponse(
            request,
            "error.html",
            {
                "title": N_("Something went wrong"),
                "status": 500,
                "version": "",
                "project_name": "",
                **page_env.words("en"),
                "error": ErrorInfo(
                    N_("Internal error"),
                    N_("The preview hit a bug while making this page."),
                    N_("The details are in the terminal running `newsletter preview`."),
                ),
            },
            status_code=500,
        )
        # ServerErrorMiddleware sits outside SecurityHeaders: set the essentials here.
        response.headers.update(
            {
                "x-content-type-options": "nosniff",
                "cache-control": "no-store",
                "content-security-policy": PAGE_CSP,
            }
        )
        return response


def create_app(
    root: Path,
    *,
    clock: Clock | None = None,
    allowed_hosts: Sequence[str] | None = None,
    login: Login | None = None,
) -> Starlette:
    """The preview app for the project at `root`.

    `clock` stands in for now (tests pin it); `allowed_hosts` defaults to the
    loopback names, so a page elsewhere cannot reach drafts by DNS rebinding;
    `login`: every route needs a session (web/access.py), for a bind beyond loopback.
    """
    workspace = Workspace(root, clock or utc_now)
    pages = Pages(workspace, page_env.templates(), login)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        workspace.close()

    routes = [
        Route("/", pages.index, name="index"),
        Route("/changes", pages.changes, name="changes"),
        Route("/schedules/{name}", pages.issue, name="issue"),
        Route("/schedules/{name}/issue.{part}", pages.part, name="part"),
        Route("/schedules/{name}/test", pages.test_send, methods=["POST"], name="test"),
        Route("/schedules/{name}/approve", pages.approve, methods=["POST"], name="approve"),
        Route("/schedules/{name}/edit", pages.edit_issue, methods=["POST"], name="edit"),
        Route(LOGIN_PATH, pages.login_page, name="login"),
        Route(LOGIN_PATH, pages.log_in, methods=["POST"], name="log_in"),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = [
        Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts or LOOPBACK_HOSTS)),
        Middleware(SecurityHeaders),
        *([Middleware(LoginRequired, login=login)] if login is not None else []),
    ]
    return Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={HTTPException: pages.http_error, Exception: pages.crash},
    )


def serve(root: Path, host: str, port: int) -> None:
    """Run the preview until Ctrl+C; a directory that is not a project fails before binding."""
    Project(root).close()  # raises NewsletterError: cli.py makes it `Error: ...` and exit 1
    loopback = _is_loopback(host)
    login = None if loopback else Login.from_environ(os.environ)  # no password: refuse to start
    sock = listen.bind(host, port)  # a port in use is one error, before anything claims to start
    if not loopback:
        print(
            f"warning: serving unpublished drafts on {host}, reachable from other machines "
            "(login required; put it behind https)",
            file=sys.stderr,
        )
    # Also the address as given (127.0.0.2, ::1): the Host header a browser sends for it.
    app = create_app(
        root, allowed_hosts=[*LOOPBACK_HOSTS, _bracketed(host)] if loopback else ["*"], login=login
    )
    print(f"Previewing {root.resolve()}", file=sys.stderr)
    # Uvicorn prints the address (also the port it picked for --port 0). Pages poll
    # every second, so access logs would drown the terminal. No connection is
    # long-lived, so shutdown is prompt; the timeout is only a backstop.
    config = uvicorn.Config(
        app, host=host, port=port, log_level="info", access_log=False, timeout_graceful_shutdown=3
    )
    listen.run(config, sock)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
