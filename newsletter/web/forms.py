"""What the public forms share: reading a POST (url-encoded, multipart or JSON) with
several values per name, the address check, the honeypot, rate-limit keys, and masking
an address for display. No store, no rendering: signup.py and preferences.py use it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Message

from newsletter.core.text import storable

MAX_BODY = 16 * 1024  # a signup or preferences form is well under 2 KB
MAX_FIELDS = 60
# Our JSON is an object of values or lists of values (depth 2). json.loads recurses once
# per level and fails past the recursion limit: deeper bodies are refused before parsing.
MAX_JSON_DEPTH = 8
JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')  # linear: the alternatives never overlap
JSON_BRACKET = re.compile(r"[\[\]{}]")
HONEYPOT = "website"  # hidden from people (CSS and aria-hidden); bots fill it in


class TooLarge(Exception):
    """A body past MAX_BODY: not one of our forms."""


@dataclass(frozen=True)
class Fields:
    """A posted form or JSON object: every value a string, several per name allowed."""

    values: Mapping[str, list[str]] = field(default_factory=dict)
    as_json: bool = False

    def one(self, name: str, limit: int = 512) -> str:
        found = self.values.get(name) or [""]
        return found[0].strip()[:limit]

    def many(self, name: str) -> list[str]:
        return [v.strip() for v in self.values.get(name, []) if v.strip()]


def wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "") or request.headers.get(
        "content-type", ""
    ).startswith("application/json")


async def handle_post(request: Request, handler: Callable[[Fields], Response]) -> Response:
    """A form's POST: its fields handed to `handler` in a worker thread (it reads and
    writes the database); a body past MAX_BODY is refused with 413, unread."""
    try:
        fields = await read_fields(request)
    except TooLarge:
        return PlainTextResponse("Request body too large", status_code=413)
    return await run_in_threadpool(handler, fields)


async def read_fields(request: Request) -> Fields:
    """The POST's fields, the body capped at MAX_BODY. A malformed body has no fields."""
    body = await capped_body(request)
    if request.headers.get("content-type", "").startswith("application/json"):
        return Fields(_json_fields(body), as_json=True)
    return Fields(await form_values(request, body))


async def capped_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The request body; TooLarge past `limit`, whatever Content-Length claims."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise TooLarge()
    return bytes(body)


async def form_values(request: Request, body: bytes, max_fields: int = MAX_FIELDS) -> dict[str, list[str]]:
    """The url-encoded or multipart fields of a body already read (strings only, every
    value of a name, in order); none when it is malformed or holds a file."""
    done = False

    async def replay() -> Message:  # Starlette parses a form from the receive channel
        nonlocal done
        if done:
            return {"type": "http.disconnect"}
        done = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        async with Request(request.scope, replay).form(max_files=0, max_fields=max_fields) as form:
            values: dict[str, list[str]] = {}
            for key, value in form.multi_items():
                if isinstance(value, str):
                    values.setdefault(storable(key), []).append(storable(value))
            return values
    except HTTPException:
        return {}


def _json_fields(body: bytes) -> dict[str, list[str]]:
    """A JSON object's fields; none when the body is not UTF-8, too deep or not an object."""
    try:
        text = body.decode("utf-8") or "{}"
        data = None if too_deep(text) else json.loads(text)
    except ValueError:  # UnicodeDecodeError and a number past int's digit limit included
        return {}
    if not isinstance(data, dict):
        return {}
    values: dict[str, list[str]] = {}
    for key, value in list(data.items())[:MAX_FIELDS]:
        items = value if isinstance(value, list) else [value]
        kept = [storable(str(v)) for v in items[:MAX_FIELDS] if isinstance(v, (str, int, float, bool))]
        values[storable(key)] = kept
    return values


def too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON text nests arrays or objects deeper than `limit` (brackets counted
    outside strings, without parsing)."""
    depth = 0
    for bracket in JSON_BRACKET.findall(JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > limit:
            return True
    return False


def checked_address(text: str) -> str | None:
    """The address normalised (domain lower-cased, whole address lower-cased as the list
    keeps it), or None when its syntax is wrong. No DNS lookup."""
    from email_validator import EmailNotValidError, validate_email

    if not text or len(text) > 320:
        return None
    try:
        found = validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        return None
    return str(found.normalized).lower()


def rate_key(secret: bytes, kind: str, value: str) -> str:
    """What the rate-limit table keeps instead of an IP or address: a keyed digest."""
    return hmac.new(secret, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def client_ip(request: Request) -> str:
    """The peer's address (behind a proxy, uvicorn's --forwarded-allow-ips makes it the client's)."""
    return storable(request.client.host)[:64] if request.client else ""  # the column's width


def mask(email: str) -> str:
    """a***@example.org: enough for its owner to recognise, little for anyone else."""
    local, at, domain = email.rpartition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"
