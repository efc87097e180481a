"""A transport URL read and checked, sending nothing (README: Sending).

One reading of the URL for everyone: config.py checks `[email] transport` (and
NEWSLETTER_EMAIL_TRANSPORT) with it when the settings load, cli.py checks `--transport`,
and transports.py builds its transport from what it returns. A leaf of its own rather
than part of transports.py: the settings, which the pure stages and the preview import,
may not reach the sending code (contracts `pure` and `web-sending`).
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

PASSWORD_VARIABLE = "NEWSLETTER_SMTP_PASSWORD"
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_MESSAGES = 100
SECURITY = {"smtp": "none", "smtp+starttls": "starttls", "smtps": "tls"}
DEFAULT_PORTS = {"none": 25, "starttls": 587, "tls": 465}
SCHEMES = (*SECURITY, "file", "memory")
FORMS = "smtp://HOST[:PORT], smtp+starttls://HOST[:PORT], smtps://HOST[:PORT] or file:DIR"
HINT = f"A transport is {FORMS}, with ?timeout=SECONDS and, for SMTP, ?max_messages=N (README: Sending)."


@dataclass(frozen=True)
class TransportURL:
    """What a transport URL asks for; `folder` for file:, host and port for SMTP."""

    scheme: str
    host: str = ""
    port: int = 0
    username: str = ""
    folder: str = ""
    timeout: float = DEFAULT_TIMEOUT
    max_messages: int = DEFAULT_MAX_MESSAGES  # per SMTP connection; 0: no limit

    @property
    def security(self) -> str:
        """none | starttls | tls for SMTP; empty for file: and memory:."""
        return SECURITY.get(self.scheme, "")


def parse(url: str) -> TransportURL:
    """The URL's parts, or ValueError saying what was expected and showing the URL
    (its password hidden). Environment-free: the password variable is the sender's check."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError(f"{FORMS}, got {shown(url)!r}")
    timeout, max_messages = _options(parts.query, scheme in SECURITY, url)
    if scheme == "file":
        folder = unquote(parts.path or parts.netloc)
        if not folder:
            raise ValueError(f"a folder after file: (file:outbox), got {shown(url)!r}")
        return TransportURL(scheme, folder=folder, timeout=timeout)
    if scheme == "memory":
        return TransportURL(scheme, timeout=timeout)
    host, port, username = _smtp_address(url, scheme)
    return TransportURL(scheme, host, port, username, timeout=timeout, max_messages=max_messages)


def _smtp_address(url: str, scheme: str) -> tuple[str, int, str]:
    parts = urlsplit(url.strip())
    if not parts.hostname:
        raise ValueError(f"a host after {scheme}:// (such as {scheme}://localhost), got {shown(url)!r}")
    try:
        port = parts.port
    except ValueError:  # not a number, or above 65535
        port = 0
    if port is None:
        port = DEFAULT_PORTS[SECURITY[scheme]]
    elif not 1 <= port <= 65535:
        raise ValueError(f"a port number from 1 to 65535 after the host, got {shown(url)!r}")
    if parts.password is not None:
        raise ValueError(f"no password in the URL (set {PASSWORD_VARIABLE}), got {shown(url)!r}")
    username = unquote(parts.username or "")
    if username and scheme == "smtp" and not is_loopback(parts.hostname):
        # A password never crosses the network in clear text (loopback is not the network).
        raise ValueError(
            f"smtp+starttls:// or smtps:// to log in to {parts.hostname} "
            f"(smtp:// would send the password without TLS), got {shown(url)!r}"
        )
    return parts.hostname, port, username


def _options(query: str, smtp: bool, url: str) -> tuple[float, int]:
    known = ("timeout", "max_messages") if smtp else ("timeout",)
    options = dict(parse_qsl(query, keep_blank_values=True))
    if unknown := sorted(set(options) - set(known)):
        listed = " and ".join(f"?{k}=" for k in known)
        raise ValueError(f"only the options {listed}; unknown: {', '.join(unknown)}, got {shown(url)!r}")
    timeout = _number(options.get("timeout", str(DEFAULT_TIMEOUT)))
    if timeout is None or not 0 < timeout <= 3600:
        raise ValueError(f"?timeout= a number of seconds from 0 to 3600, got {shown(url)!r}")
    text = options.get("max_messages", str(DEFAULT_MAX_MESSAGES))
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"?max_messages= a whole number (0: no limit), got {shown(url)!r}")
    return timeout, int(text)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def shown(url: str) -> str:
    """The URL as it may be printed: a password in it replaced by ***."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:/@?#]*):[^/?#]*@", r"\1:***@", url)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
