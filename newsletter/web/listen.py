"""The one way `preview` and `serve` start uvicorn: on a socket bound first.

Binding before the app starts makes a port in use one clear error (`port 8080 on
127.0.0.1 is in use`, exit 1) instead of uvicorn's "Application startup complete"
followed by `[Errno 98]` and exit 3. uvicorn is then handed that very socket, so no
other process can take the port in between (the race a check-then-bind would have).
"""

from __future__ import annotations

import errno
import socket

import uvicorn

from newsletter.core.errors import NewsletterError


class PortError(NewsletterError):
    """The address and port to serve on cannot be had."""


def bind(host: str, port: int) -> socket.socket:
    """A socket bound as uvicorn binds one (SO_REUSEADDR; IPv6 for an address with ':')."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as e:
        sock.close()
        raise _port_error(host, port, e) from e
    return sock


def _port_error(host: str, port: int, error: OSError) -> PortError:
    if error.errno == errno.EADDRINUSE:
        return PortError(
            f"port {port} on {host} is in use",
            "Stop what is using it, or pass --port with another port (--port 0 picks a free one).",
        )
    if error.errno == errno.EACCES:
        return PortError(
            f"port {port} on {host} needs privileges to bind",
            "Pass --port with a port above 1023, behind a proxy.",
        )
    reason = error.strerror or str(error)
    return PortError(
        f"cannot listen on {host} port {port}: {reason}", "Check --host (an address of this machine)."
    )


class _BoundServer(uvicorn.Server):
    """uvicorn logs where it listens only when it binds the socket itself: log it here."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if sockets and self.started:
            self._log_started_message(sockets)


def run(config: uvicorn.Config, sock: socket.socket) -> None:
    """Serve on `sock` (from `bind`) until Ctrl+C."""
    try:
        _BoundServer(config).run(sockets=[sock])
    finally:
        sock.close()
