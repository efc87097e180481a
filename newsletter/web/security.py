"""Response headers that keep drafts private and article text inert.

Pages allow only their own scripts and styles. The email documents shown in
the iframes allow no script at all (their styles are inline, by design of
email), may only be framed by the preview itself, and carry a CSP sandbox
so that opening one directly is as inert as seeing it in the frame.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# allow-same-origin lets the preview page measure the frame's height and open
# links in a new tab; scripts stay off (no allow-scripts, script-src 'none').
EMAIL_CSP = (
    "default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; img-src * data:; "
    "font-src * data:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'; "
    "sandbox allow-same-origin allow-popups allow-popups-to-escape-sandbox"
)
FRAMED_PAGE_CSP = PAGE_CSP.replace("frame-ancestors 'none'", "frame-ancestors 'self'")

DEFAULTS = {
    "content-security-policy": PAGE_CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    # Drafts are private: a click on an article link must not leak the preview's URL.
    "referrer-policy": "no-referrer",
    # Every response reflects the files as they are now: never a stale preview.
    "cache-control": "no-store",
}


def email_headers() -> dict[str, str]:
    """For the raw parts shown in the iframes (and any error page shown in their place)."""
    return {"content-security-policy": EMAIL_CSP, "x-frame-options": "SAMEORIGIN"}


def framed_page_headers() -> dict[str, str]:
    """For an error page that stands in for an email inside the preview's iframe."""
    return {"content-security-policy": FRAMED_PAGE_CSP, "x-frame-options": "SAMEORIGIN"}


class SecurityHeaders:
    """Adds `headers` (the preview's DEFAULTS unless told) to every HTTP response
    that did not set its own."""

    def __init__(self, app: ASGIApp, headers: dict[str, str] | None = None) -> None:
        self.app = app
        self.headers = DEFAULTS if headers is None else headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
