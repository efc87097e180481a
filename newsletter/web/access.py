"""Who may open the preview when it listens beyond this machine: a password from the
environment (`NEWSLETTER_PREVIEW_PASSWORD`), then a signed session cookie. On loopback
(the default) there is no login: whoever reaches 127.0.0.1 is already at the editor's desk.

The password is never stored: its keyed hash is compared in constant time. The session id
also binds the desk's form tokens (web/desk.py), so a form works only in its own session.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from newsletter.core.errors import NewsletterError
from newsletter.core.tokens import secret_key

PASSWORD_VARIABLE = "NEWSLETTER_PREVIEW_PASSWORD"
COOKIE = "newsletter_preview_session"
SESSION_SALT = "newsletter.preview.session"
SESSION_LIFETIME = timedelta(hours=12)
LOGIN_PATH = "/login"
OPEN_PREFIXES = (LOGIN_PATH, "/static/")  # the login page and its stylesheet


@dataclass(frozen=True)
class Login:
    """The preview's password (as a keyed hash) and its session signer."""

    key: bytes
    password_hash: bytes
    sessions: URLSafeTimedSerializer

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Login:
        password = environ.get(PASSWORD_VARIABLE, "")
        if not password:
            raise NewsletterError(
                f"the preview would listen beyond this machine and {PASSWORD_VARIABLE} is not set",
                f"Set {PASSWORD_VARIABLE} (and NEWSLETTER_SECRET_KEY) to require a login, "
                "or keep the default --host 127.0.0.1.",
            )
        secret = secret_key(environ)
        key = secret.encode()
        return cls(key, _hash(key, password), URLSafeTimedSerializer(secret, salt=SESSION_SALT))

    def accepts(self, given: str) -> bool:
        return hmac.compare_digest(_hash(self.key, given), self.password_hash)

    def new_session(self) -> str:
        return str(self.sessions.dumps(secrets.token_urlsafe(18)))

    def session(self, cookie: str) -> str | None:
        """The session id a cookie carries; None if it is not ours or too old."""
        if not cookie or len(cookie) > 512:
            return None
        try:
            value = self.sessions.loads(cookie, max_age=int(SESSION_LIFETIME.total_seconds()))
        except BadSignature:
            return None
        return value if isinstance(value, str) else None


def _hash(key: bytes, password: str) -> bytes:
    return hmac.new(key, password.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()


def session_of(request: Request) -> str:
    """The request's session id ("" on loopback, where nobody logs in): what form tokens bind to."""
    return str(request.scope.get("state", {}).get("preview_session", ""))


class LoginRequired:
    """Every route but the login page and the static files needs a valid session cookie:
    a page is redirected to the login page, anything else is 401."""

    def __init__(self, app: ASGIApp, login: Login) -> None:
        self.app = app
        self.login = login

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(OPEN_PREFIXES):
            await self.app(scope, receive, send)
            return
        session = self.login.session(Request(scope).cookies.get(COOKIE, ""))
        if session is not None:
            scope.setdefault("state", {})["preview_session"] = session
            await self.app(scope, receive, send)
            return
        if scope["method"] in ("GET", "HEAD"):
            refused: PlainTextResponse | RedirectResponse = RedirectResponse(LOGIN_PATH, status_code=303)
        else:
            refused = PlainTextResponse("Log in first.", status_code=401)
        await refused(scope, receive, send)


def set_session(response: RedirectResponse, request: Request, login: Login) -> None:
    response.set_cookie(
        COOKIE,
        login.new_session(),
        max_age=int(SESSION_LIFETIME.total_seconds()),
        httponly=True,
        secure=request.url.scheme == "https",
        samesite="strict",
    )
