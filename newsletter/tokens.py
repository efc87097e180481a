"""Unsubscribe tokens: a subscriber id, HMAC-signed with NEWSLETTER_SECRET_KEY.

They never expire: an unsubscribe link in a years-old email must still work.

Return-path tokens (VERP, `bounces+<token>@domain`) name a delivery, signed with the
same secret for another purpose (its own salt), so one is never taken for the other.
They are lower-case hex, because mail systems may fold the case of a local part.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping

from itsdangerous import BadSignature, Signer, URLSafeSerializer

from newsletter.errors import ConfigError, NewsletterError

SECRET_VARIABLE = "NEWSLETTER_SECRET_KEY"
MIN_SECRET_LENGTH = 16
SALT = "newsletter.unsubscribe"
RETURN_PATH_SALT = "newsletter.return-path"
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


class Tokens:
    def __init__(self, secret: str) -> None:
        self.serializer = URLSafeSerializer(secret, salt=SALT)
        # itsdangerous's key derivation with the return path's own salt: a separate key.
        signer = Signer(secret, salt=RETURN_PATH_SALT, digest_method=hashlib.sha256)
        self.return_path_key = signer.derive_key()

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

    def read_delivery(self, token: str) -> int:
        """The delivery a return-path token names (case-insensitive); BadToken if not ours."""
        found = RETURN_PATH_TOKEN.fullmatch(token.strip())
        if found is None or not hmac.compare_digest(self._mac(int(found[1])), found[2].lower()):
            raise BadToken(f"not a return-path token of ours: {token[:64]!r}")
        return int(found[1])

    def _mac(self, delivery_id: int) -> str:
        digest = hmac.new(self.return_path_key, f"delivery:{delivery_id}".encode(), hashlib.sha256)
        return digest.hexdigest()[:RETURN_PATH_DIGITS]
