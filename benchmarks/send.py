"""Sending throughput: `newsletter send` (ledger, splicing, retries) against raw
smtplib sending the same bytes to the same local SMTP server, 1 and 4 connections;
and `newsletter send` again with DKIM signing on (RSA-2048 and Ed25519) in the same run.
First, the CPU time of making one personalised message (two tokens, the splice, the
return path), and of signing it with its variant's body hash, as `send` does.

The server is aiosmtpd's Sink in its own process on 127.0.0.1. Run with `make bench`.
"""

from __future__ import annotations

import os
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from newsletter import scaffold
from newsletter.core.models import SubscriberRow
from newsletter.core.tokens import Tokens
from newsletter.delivery import signing
from newsletter.delivery.send import SendOptions, send_schedule
from newsletter.digest.mail import MessageTemplate, Recipient
from newsletter.project import Project
from newsletter.storage.roster import Roster

SUBSCRIBERS = 2000
SECRET = {"NEWSLETTER_SECRET_KEY": "benchmark-secret-key-0123456789"}
NOW = datetime(2026, 11, 26, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_sink(port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}", "-c", "aiosmtpd.handlers.Sink"]
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the SMTP sink did not start")


def demo_project(root: Path, dkim: str = "") -> Project:
    scaffold.init(root, name="Bench", base_url="https://example.org")
    if dkim:  # the key beside the project, not in it, as the README says
        key = root.parent / f"{root.name}.pem"
        signing.write_key(key, signing.generate(dkim).private_pem)
        settings = root / "newsletter.toml"
        settings.write_text(
            settings.read_text(encoding="utf-8")
            + '\n[dkim]\ndomain = "example.org"\nselector = "bench"\n'
            + f'algorithm = "{dkim}"\nkey_file = "{key}"\n',
            encoding="utf-8",
        )
    project = Project(root, environ=SECRET)
    project.ingest([str(scaffold.demo_articles())], NOW)
    people = [SubscriberRow(f"reader{i}@example.org", f"Reader {i}") for i in range(SUBSCRIBERS)]
    Roster(project.store).import_subscribers(people, NOW)
    return project


def newsletter_rate(temp: Path, port: int, connections: int, dkim: str = "") -> float:
    project = demo_project(temp / f"project-{connections}{dkim and '-' + dkim}", dkim)
    summary = send_schedule(
        project, "weekly", scaffold.DEMO_AT, f"smtp://127.0.0.1:{port}", SendOptions(connections=connections)
    )
    project.close()
    assert summary.counts["sent"] == SUBSCRIBERS, summary.counts
    return SUBSCRIBERS / summary.seconds


def raw_messages(temp: Path) -> list[tuple[str, bytes]]:
    project = demo_project(temp / "raw")
    build = project.build("weekly", scaffold.DEMO_AT, NOW, record=False)
    assert build.issue is not None
    template = MessageTemplate(
        build.issue.subject, build.issue.text, build.issue.html, project.settings.email.from_, NOW
    )
    project.close()
    return [
        (
            f"reader{i}@example.org",
            template.render(Recipient(f"Reader {i}", f"reader{i}@example.org", f"<{i}@example.org>")),
        )
        for i in range(SUBSCRIBERS)
    ]


def raw_rate(port: int, messages: list[tuple[str, bytes]], connections: int) -> float:
    def worker(chunk: list[tuple[str, bytes]]) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
            for recipient, data in chunk:
                smtp.sendmail("digest@example.org", [recipient], data)

    chunks = [messages[n::connections] for n in range(connections)]
    threads = [threading.Thread(target=worker, args=(chunk,)) for chunk in chunks]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(messages) / (time.perf_counter() - started)


def message_cpu(temp: Path) -> None:
    """CPU µs a message (process time, the mean over SUBSCRIBERS): made, then made and signed."""
    project = demo_project(temp / "cpu")
    build = project.build("weekly", scaffold.DEMO_AT, NOW, record=False)
    assert build.issue is not None
    template = MessageTemplate(
        build.issue.subject, build.issue.text, build.issue.html, project.settings.email.from_, NOW
    )
    project.close()
    tokens = Tokens(SECRET["NEWSLETTER_SECRET_KEY"])

    def reader(i: int) -> Recipient:
        token = tokens.make(i)
        url = f"https://example.org/unsubscribe?token={token}"
        return Recipient(
            f"Reader {i}",
            f"reader{i}@example.org",
            f"<{i}@example.org>",
            token,
            url,
            "",
            tokens.purposes.make_preferences(i),
        )

    started = time.process_time()
    for i in range(SUBSCRIBERS):
        template.render(reader(i))
        tokens.for_delivery(i)
    made = (time.process_time() - started) / SUBSCRIBERS * 1e6
    print(f"make:   a personalised message {made:,.0f} µs CPU (two tokens, splice, return path)")
    for algorithm in signing.ALGORITHMS:
        key = signing.load_key(signing.generate(algorithm).private_pem, algorithm, "bench")
        signer = signing.Signer("example.org", "bench", algorithm, key)
        body_hash = signing.BodyHash(template.fixed_body())
        started = time.process_time()
        for i in range(SUBSCRIBERS):
            person = reader(i)
            signer.sign(template.render(person), body_hash=body_hash.digest(template.readers_body(person)))
        signed = (time.process_time() - started) / SUBSCRIBERS * 1e6
        print(f"make:   made and signed {algorithm} {signed:,.0f} µs CPU a message")


def main() -> int:
    port = free_port()
    server = start_sink(port)
    try:
        with tempfile.TemporaryDirectory() as temp:
            message_cpu(Path(temp))
            messages = raw_messages(Path(temp))
            for connections in (1, 4):
                raw = raw_rate(port, messages, connections)
                ours = newsletter_rate(Path(temp), port, connections)
                rsa = newsletter_rate(Path(temp), port, connections, signing.RSA)
                ed25519 = newsletter_rate(Path(temp), port, connections, signing.ED25519)
                print(
                    f"send:   {SUBSCRIBERS} messages, {connections} connection(s): newsletter "
                    f"{ours:,.0f} msg/s, raw smtplib {raw:,.0f} msg/s ({ours / raw:.0%})"
                )
                print(
                    f"dkim:   {SUBSCRIBERS} messages, {connections} connection(s): signed rsa-sha256 "
                    f"{rsa:,.0f} msg/s ({rsa / ours:.0%} of unsigned), ed25519-sha256 {ed25519:,.0f} msg/s "
                    f"({ed25519 / ours:.0%}); unsigned {ours:,.0f} msg/s"
                )
    finally:
        server.terminate()
        server.wait()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
