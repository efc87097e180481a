"""SMTP as real relays need it: connections reused up to a per-connection limit,
PIPELINING where offered, SMTPUTF8 where an address needs it. Against aiosmtpd on
127.0.0.1, and a few lines of raw SMTP where the test is about the bytes we write."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from aiosmtpd.controller import Controller

from newsletter.core.errors import ConfigError
from newsletter.delivery.transports import PermanentFailure, SMTPTransport, transport_factory
from tests.conftest import free_port

MESSAGE = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nHello.\r\n"


@dataclass
class Counting:
    """Which SMTP session took each message; PIPELINING advertised when `pipelining`."""

    pipelining: bool = False
    sessions: list[int] = field(default_factory=list)
    recipients: list[str] = field(default_factory=list)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.sessions.append(id(session))
        self.recipients += envelope.rcpt_tos
        return "250 OK"


@pytest.fixture
def counting() -> Iterator[tuple[Counting, int]]:
    handler, port = Counting(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, enable_SMTPUTF8=True)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def transport(url: str) -> SMTPTransport:
    made = transport_factory(url, {})()
    assert isinstance(made, SMTPTransport)
    return made


def test_a_connection_carries_at_most_max_messages(counting: tuple[Counting, int]):
    handler, port = counting
    smtp = transport(f"smtp://127.0.0.1:{port}?max_messages=2")
    for n in range(5):
        smtp.send("bounces@example.org", f"reader{n}@example.org", MESSAGE)
    smtp.close()
    assert len(handler.recipients) == 5
    assert [handler.sessions.count(s) for s in dict.fromkeys(handler.sessions)] == [2, 2, 1]


def test_without_a_limit_one_connection_carries_everything(counting: tuple[Counting, int]):
    handler, port = counting
    smtp = transport(f"smtp://127.0.0.1:{port}?max_messages=0")
    for n in range(5):
        smtp.send("bounces@example.org", f"reader{n}@example.org", MESSAGE)
    smtp.close()
    assert len(set(handler.sessions)) == 1


def test_a_bad_max_messages_is_a_config_error():
    expected = r"--transport: expected \?max_messages= a whole number \(0: no limit\), got '.*=many'"
    with pytest.raises(ConfigError, match=expected):
        transport_factory("smtp://127.0.0.1:25?max_messages=many", {})


def test_pipelined_envelopes_are_delivered(counting: tuple[Counting, int]):
    handler, port = counting
    handler.pipelining = True
    smtp = transport(f"smtp://127.0.0.1:{port}")
    for n in range(3):
        smtp.send("bounces@example.org", f"reader{n}@example.org", MESSAGE)
    smtp.close()
    assert handler.recipients == [f"reader{n}@example.org" for n in range(3)]


def test_a_non_ascii_address_goes_with_smtputf8(counting: tuple[Counting, int]):
    handler, port = counting
    smtp = transport(f"smtp://127.0.0.1:{port}")
    smtp.send("bounces@example.org", "josé@example.org", MESSAGE)
    smtp.close()
    assert handler.recipients == ["josé@example.org"]


# -- the bytes on the wire: a few lines of SMTP by hand ------------------------------------


class RawServer:
    """Answers one connection, advertising PIPELINING (and SMTPUTF8 when `utf8`),
    and keeps each chunk it read, so a test can see what arrived in one write."""

    def __init__(self, utf8: bool = False) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.chunks: list[bytes] = []
        self.utf8 = utf8
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            conn.sendall(b"220 raw ESMTP\r\n")
            pending = b""
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                self.chunks.append(data)
                pending += data
                pending = self._answer(conn, pending)

    def _answer(self, conn: socket.socket, pending: bytes) -> bytes:
        while b"\r\n" in pending:
            line, pending = pending.split(b"\r\n", 1)
            conn.sendall(self._reply(line.upper()))
        return pending

    def _reply(self, line: bytes) -> bytes:
        if line.startswith(b"EHLO"):
            return (
                b"250-raw\r\n250-PIPELINING\r\n" + (b"250-SMTPUTF8\r\n" if self.utf8 else b"") + b"250 OK\r\n"
            )
        if line.startswith(b"DATA"):
            return b"354 go on\r\n"
        if line == b".":
            return b"250 queued\r\n"
        if line.startswith((b"MAIL", b"RCPT", b"RSET", b"QUIT")):
            return b"250 OK\r\n" if not line.startswith(b"QUIT") else b"221 bye\r\n"
        return b""  # a message line

    def close(self) -> None:
        self.listener.close()
        self.thread.join(timeout=2)


def test_mail_from_and_rcpt_to_go_in_one_write():
    server = RawServer()
    smtp = transport(f"smtp://127.0.0.1:{server.port}?timeout=2")
    smtp.send("bounces+d1@example.org", "reader@example.org", MESSAGE)
    smtp.close()
    server.close()
    envelope = next(c for c in server.chunks if c.startswith(b"MAIL FROM"))
    assert envelope == b"MAIL FROM:<bounces+d1@example.org>\r\nRCPT TO:<reader@example.org>\r\n"


def test_a_pipelined_non_ascii_address_says_smtputf8():
    server = RawServer(utf8=True)
    smtp = transport(f"smtp://127.0.0.1:{server.port}?timeout=2")
    smtp.send("bounces@example.org", "josé@example.org", MESSAGE)
    smtp.close()
    server.close()
    envelope = next(c for c in server.chunks if c.startswith(b"MAIL FROM"))
    assert envelope == "MAIL FROM:<bounces@example.org> SMTPUTF8\r\nRCPT TO:<josé@example.org>\r\n".encode()


def test_a_server_without_smtputf8_refuses_only_that_recipient():
    server = RawServer(utf8=False)
    smtp = transport(f"smtp://127.0.0.1:{server.port}?timeout=2")
    with pytest.raises(PermanentFailure) as refused:
        smtp.send("bounces@example.org", "josé@example.org", MESSAGE)
    assert refused.value.about_recipient
    smtp.send("bounces@example.org", "ann@example.org", MESSAGE)  # the connection still serves
    smtp.close()
    server.close()
