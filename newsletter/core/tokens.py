"""Unsubscribe tokens: a subscriber id, HMAC-signed with NEWSLETTER_SECRET_KEY.

They never expire: an unsubscribe link in a years-old email must still work.

Confirmation, preference and form tokens (`Purposes`) are signed with the same secret,
each with its own salt: a token made for one purpose never verifies for another.
Confirmation and form tokens carry their signing time and expire; preference links,
like unsubscribe links, live as long as the emails that carry them.

Return-path tokens (VERP, `bounces+<token>@domain`) name a delivery, signed with the
same secret for another purpose (its own salt), so one is never taken for the other.
They are lower-case hex, because mail systems may fold the case of a local part.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from itsdangerous import BadSignature, Signer, URLSafeSerializer, URLSafeTimedSerializer

from newsletter.core.errors import ConfigError, NewsletterError

SECRET_VARIABLE = "NEWSLETTER_SECRET_KEY"
MIN_SECRET_LENGTH = 16
SALT = "newsletter.unsubscribe"
RETURN_PATH_SALT = "newsletter.return-path"
CONFIRM_SALT = "newsletter.confirm"
PREFERENCES_SALT = "newsletter.preferences"
FORM_SALT = "newsletter.form"  # the signup form's render time, and CSRF tokens of pages
URL_SAFE = bytes.maketrans(b"+/", b"-_")  # base64 to URL-safe base64
RETURN_PATH_DIGITS = 20  # 80 bits of HMAC-SHA256: a forged bounce has to guess them
RETURN_PATH_TOKEN = re.compile(
    rf"(?<![0-9a-z])(\d{{1,18}})-([0-9a-f]{{{RETURN_PATH_DIGITS}}})(?![0-9a-z])", re.I
)


class BadToken(NewsletterError):
    """A token that was not signed by us (tampered, truncated, or another key)."""

    hint = "Use the link from the email as it is."


def secret_key(environ: Mapping[str, str]) -> str:
    key = environ.get(SECRET_VARIABLE, "")
    if len(key) < MIN_SECRET_LENGTH:
        raise ConfigError(
            SECRET_VARIABLE,
            "",
            f"expected a secret of at least {MIN_SECRET_LENGTH} "
            "characters in the environment (it signs unsubscribe links)",
            f"export {SECRET_VARIABLE}=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')",
        )
    return key


class KeyedSerializer(URLSafeSerializer):
    """itsdangerous's URLSafeSerializer, its key derived once (`send` signs two tokens a
    message; deriving the key and building a Signer each time was most of a message's
    making). `dumps` of a small int (every subscriber id) is the same token computed
    directly: URL-safe base64 of the JSON, ".", URL-safe base64 of its HMAC-SHA1 under the
    derived key, both unpadded; byte for byte itsdangerous's (tests/test_tokens.py).
    `loads` (verification) stays itsdangerous's own."""

    def __init__(self, secret: str, salt: str) -> None:
        super().__init__(secret, salt=salt)
        # Keyed once: a copy of it costs less than OpenSSL's one-shot hmac.digest.
        self.keyed = hmac.new(self.make_signer().derive_key(), digestmod="sha1")

    def dumps(self, obj: Any, salt: str | bytes | None = None) -> str:
        # JSON of an int is its decimal digits (not of a bool: `true`); one of 8 bytes or
        # fewer (below 10^8) is never compressed: itsdangerous keeps a zlib stream only when
        # 2 bytes shorter, and one is never under 9 bytes.
        if type(obj) is not int or salt is not None or not -(10**7) < obj < 10**8:
            return super().dumps(obj, salt)
        payload = _base64(str(obj).encode("ascii"))
        mac = self.keyed.copy()
        mac.update(payload.encode("ascii"))
        return f"{payload}.{_base64(mac.digest())}"


def _base64(data: bytes) -> str:
    """itsdangerous's base64_encode (URL-safe, no padding), as text."""
    return binascii.b2a_base64(data, newline=False).rstrip(b"=").translate(URL_SAFE).decode("ascii")


class Tokens:
    def __init__(self, secret: str) -> None:
        self.serializer = KeyedSerializer(secret, salt=SALT)
        # itsdangerous's key derivation with the return path's own salt: a separate key.
        signer = Signer(secret, salt=RETURN_PATH_SALT, digest_method=hashlib.sha256)
        self.return_path_key = signer.derive_key()
        self.return_path_mac = hmac.new(self.return_path_key, digestmod="sha256")  # keyed once
        self.purposes = Purposes(secret)

    def make(self, subscriber_id: int) -> str:
        return str(self.serializer.dumps(subscriber_id))

    def read(self, token: str) -> int:
        try:
            value = self.serializer.loads(token)
        except BadSignature as e:
            raise BadToken("this unsubscribe link is not valid") from e
        if not isinstance(value, int):
            raise BadToken("this unsubscribe link is not valid")
        return value

    def for_delivery(self, delivery_id: int) -> str:
        """The return-path token of a delivery: `<id>-<hex HMAC>`, safe in a local part."""
        return f"{delivery_id}-{self._mac(delivery_id)}"

    def for_notice(self, notice_id: int) -> str:
        """The return-path token of a mail of the outbox (outbox.py): `n<id>-<hex HMAC>`,
        never read as a delivery's (RETURN_PATH_TOKEN wants no letter before the id)."""
        digest = hmac.new(self.return_path_key, f"notice:{notice_id}".encode(), hashlib.sha256)
        return f"n{notice_id}-{digest.hexdigest()[:RETURN_PATH_DIGITS]}"

    def read_delivery(self, token: str) -> int:
        """The delivery a return-path token names (case-insensitive); BadToken if not ours."""
        found = RETURN_PATH_TOKEN.fullmatch(token.strip())
        if found is None or not hmac.compare_digest(self._mac(int(found[1])), found[2].lower()):
            raise BadToken(f"not a return-path token of ours: {token[:64]!r}")
        return int(found[1])

    def _mac(self, delivery_id: int) -> str:
        mac = self.return_path_mac.copy()
        mac.update(f"delivery:{delivery_id}".encode())
        return mac.hexdigest()[:RETURN_PATH_DIGITS]


class Expired(BadToken):
    """A well-signed token past its lifetime."""

    hint = "Ask for a new link (sign up again)."


class Purposes:
    """The tokens of signup and the preference centre, one salt per purpose.
    `now` is passed in: the clock stays at the edge."""

    def __init__(self, secret: str) -> None:
        self.confirm = URLSafeTimedSerializer(secret, salt=CONFIRM_SALT)
        self.preferences = KeyedSerializer(secret, salt=PREFERENCES_SALT)
        self.form = URLSafeTimedSerializer(secret, salt=FORM_SALT)

    def make_confirm(self, consent_id: int, now: datetime) -> str:
        return _timed_dumps(self.confirm, consent_id, now)

    def read_confirm(self, token: str, now: datetime, lifetime: timedelta) -> int:
        """The consent a confirmation link names; Expired past `lifetime`, BadToken if not ours."""
        value, signed = _timed_loads(self.confirm, token, "this confirmation link is not valid")
        if now - signed > lifetime:
            raise Expired("this confirmation link has expired")
        if not isinstance(value, int):
            raise BadToken("this confirmation link is not valid")
        return value

    def make_preferences(self, subscriber_id: int) -> str:
        return str(self.preferences.dumps(subscriber_id))

    def read_preferences(self, token: str) -> int:
        try:
            value = self.preferences.loads(token)
        except BadSignature as e:
            raise BadToken("this preferences link is not valid") from e
        if not isinstance(value, int):
            raise BadToken("this preferences link is not valid")
        return value

    def make_form(self, page: str, bound_to: str, now: datetime) -> str:
        """A page's form token: CSRF (bound to the page and its capability token, if
        any) and the time the form was rendered."""
        return _timed_dumps(self.form, [page, bound_to], now)

    def read_form(self, token: str, page: str, bound_to: str, now: datetime, lifetime: timedelta) -> datetime:
        """When the form was rendered; BadToken for another page, binding or key, Expired when old."""
        value, signed = _timed_loads(self.form, token, "this form has no valid security token")
        expected = [page, bound_to]
        if not isinstance(value, list) or not hmac.compare_digest(
            "\x1f".join(map(str, value)).encode(), "\x1f".join(expected).encode()
        ):
            raise BadToken("this form's security token belongs to another page")
        if now - signed > lifetime:
            raise Expired("this form has expired")
        return signed


def _timed_dumps(serializer: URLSafeTimedSerializer, value: Any, now: datetime) -> str:
    """itsdangerous stamps with time.time(); this stamps with `now` (a fresh signer per call)."""
    signer = serializer.make_signer()
    signer.get_timestamp = lambda: int(now.timestamp())  # type: ignore[attr-defined]
    return signer.sign(serializer.dump_payload(value)).decode("ascii")


def _timed_loads(serializer: URLSafeTimedSerializer, token: str, message: str) -> tuple[Any, datetime]:
    if len(token) > 512:
        raise BadToken(message)
    try:
        value, signed = serializer.loads(token, return_timestamp=True)
    except BadSignature as e:
        raise BadToken(message) from e
    return value, signed
