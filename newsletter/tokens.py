"""Unsubscribe tokens: a subscriber id, HMAC-signed with NEWSLETTER_SECRET_KEY.

They never expire: an unsubscribe link in a years-old email must still work.
"""

from __future__ import annotations

from collections.abc import Mapping

from itsdangerous import BadSignature, URLSafeSerializer

from newsletter.errors import ConfigError, NewsletterError

SECRET_VARIABLE = "NEWSLETTER_SECRET_KEY"
MIN_SECRET_LENGTH = 16
SALT = "newsletter.unsubscribe"


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
