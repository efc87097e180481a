"""Email addresses: one syntax check (email-validator, no DNS) for subscribers
and for the `[email] from` setting alike.

A leaf module (no project imports) so that config.py can use it: render.py,
mail.py and subscribers.py all import config.
"""

from __future__ import annotations

from email.utils import getaddresses, parseaddr

MAILBOX_EXAMPLE = "'Name <address@example.org>'"


def normalize_email(raw: str) -> str:
    """The address as stored: syntax checked (no DNS), lower-cased. Raises ValueError."""
    return _checked(raw.strip()).lower()


def parse_mailbox(header: str) -> tuple[str, str]:
    """`Name <user@example.org>` (or a bare address) as (name, address), the address
    syntax-checked and kept as written. Raises ValueError saying what was expected."""
    name, address = parseaddr(header)
    # A comma splits `Health, Mind & Body <...>` into two mailboxes: say how to keep one.
    quoting = "; a name with a comma goes in double quotes" if "," in header else ""
    if "@" not in address:
        raise ValueError(f"{MAILBOX_EXAMPLE}{quoting}")
    if len(getaddresses([header])) != 1:
        raise ValueError(f"{MAILBOX_EXAMPLE}, one address and nothing after it{quoting}")
    try:
        _checked(address)
    except ValueError as e:
        raise ValueError(f"{MAILBOX_EXAMPLE} ({e})") from e
    return name, address


def _checked(address: str) -> str:
    from email_validator import EmailNotValidError, validate_email  # with the first address checked

    try:
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as e:
        raise ValueError(str(e)) from e
