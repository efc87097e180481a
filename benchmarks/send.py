"""Sending throughput: `newsletter send` (ledger, splicing, retries) against raw
smtplib sending the same bytes to the same local SMTP server, 1 and 4 connections;
and `newsletter send` again with DKIM signing on (RSA-2048 and Ed25519) in the same run.
First, the CPU time of making one personalised message (two tokens, the splice, the
return path), and of signing it with its variant's body hash, as `send` does (`--message`:
only that).

Then workers (issue 22): delivery of a recorded issue (DKIM rsa-sha256) by 1, 2 and 4
`newsletter worker --once` processes on the project's SQLite, from the first claim to the
last finish as the ledger has them, against raw smtplib on one connection sending the same
signed bytes; rounds interleaved, medians. `figures()` returns them (value, unit, peer,
ratio, target) for a table; `--rss` runs one worker over 100,000 subscribers and prints
its peak RSS.

The server is aiosmtpd's Sink in its own process on 127.0.0.1. Run with `make bench`.
"""

from __future__ import annotations

import os
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from newsletter import scaffold
from newsletter.core.models import SubscriberRow
from newsletter.core.tokens import Tokens
from newsletter.delivery import signing, variants
from newsletter.delivery.send import SendOptions, render_variant, send_schedule
from newsletter.digest.mail import MessageTemplate, Recipient
from newsletter.project import Project
from newsletter.storage.roster import Roster
from newsletter.storage.schema import deliveries

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


def demo_project(root: Path, dkim: str = "", readers: int | None = None) -> Project:
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
    count = SUBSCRIBERS if readers is None else readers  # read now: bench.py sets SUBSCRIBERS
    people = [SubscriberRow(f"reader{i}@example.org", f"Reader {i}") for i in range(count)]
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


def send_template(temp: Path) -> MessageTemplate:
    """The demo issue's template as `send` makes it: the bodies with the placeholders of
    each reader's tokens (spliced in per message), List-Id and Feedback-ID."""
    project = demo_project(temp / "cpu", readers=10)
    schedule = project.schedule("weekly")
    variant = render_variant(project, project.digest(schedule, scaffold.DEMO_AT))
    made = variants.template(variant, project.settings, schedule, 1, NOW, None)
    project.close()
    return made


def message_cpu(temp: Path) -> float:
    """CPU µs a message (process time, the mean over SUBSCRIBERS): made, then made and signed."""
    template = send_template(temp)
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
            f"mailto:unsubscribe@example.org?subject=unsubscribe%20{token}",
            tokens.purposes.make_preferences(i),
        )

    started = time.process_time()
    for i in range(SUBSCRIBERS):
        template.render(reader(i))
        tokens.for_delivery(i)
    made = (time.process_time() - started) / SUBSCRIBERS * 1e6
    print(f"make:   a personalised message {made:,.0f} µs CPU (two tokens, splice, return path)")
    result = made
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
    return result


# -- workers (issue 22) -----------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """One measured figure, for a table (`make bench`): `ratio` to `peer`, against `target`."""

    name: str
    value: float
    unit: str
    peer: str
    ratio: float | None
    target: str


def signed_messages(temp: Path) -> list[tuple[str, bytes]]:
    """The messages a send makes (DKIM rsa-sha256), for raw smtplib to send as they are."""
    project = demo_project(temp / "raw-signed", signing.RSA)
    signer = signing.prepare(project.settings, project.environ, project.root)
    assert signer is not None
    build = project.build("weekly", scaffold.DEMO_AT, NOW, record=False)
    assert build.issue is not None
    template = MessageTemplate(
        build.issue.subject, build.issue.text, build.issue.html, project.settings.email.from_, NOW
    )
    project.close()
    tokens = Tokens(SECRET["NEWSLETTER_SECRET_KEY"])
    body_hash = signing.BodyHash(template.fixed_body())
    messages = []
    for i in range(SUBSCRIBERS):
        token = tokens.make(i)
        person = Recipient(
            f"Reader {i}", f"reader{i}@example.org", f"<{i}@example.org>", token,
            f"https://example.org/unsubscribe?token={token}", "", tokens.purposes.make_preferences(i),
        )  # fmt: skip
        data = signer.sign(template.render(person), body_hash=body_hash.digest(template.readers_body(person)))
        messages.append((person.email, data))
    return messages


def recorded(root: Path, url: str, readers: int | None = None) -> Project:
    """A project whose weekly issue is recorded (variants stored), nothing delivered."""
    project = demo_project(root, signing.RSA, readers)
    stop = threading.Event()
    stop.set()
    send_schedule(project, "weekly", scaffold.DEMO_AT, url, SendOptions(), stop=stop)
    return project


def run_workers(project: Project, url: str, count: int) -> list[subprocess.Popen[bytes]]:
    environ = {**os.environ, **SECRET}
    command = [sys.executable, "-m", "newsletter.cli", "--project", str(project.root), "worker", "--once"]
    return [
        subprocess.Popen([*command, "--transport", url], env=environ, stdout=subprocess.DEVNULL)
        for _ in range(count)
    ]


def workers_rate(temp: Path, url: str, count: int, round_: int) -> float:
    """Messages a second from the first claim to the last finish, `count` worker processes."""
    project = recorded(temp / f"workers-{count}-{round_}", url)
    for worker in run_workers(project, url, count):
        assert worker.wait() == 0
    with project.store.engine.connect() as conn:
        first, last, sent = conn.execute(
            sa.select(
                sa.func.min(deliveries.c.claimed_at), sa.func.max(deliveries.c.sent_at), sa.func.count()
            ).where(deliveries.c.status == "sent")
        ).one()
    project.close()
    assert sent == SUBSCRIBERS, sent
    return float(sent / (last - first).total_seconds())


def worker_figures(temp: Path, port: int, rounds: int = 3) -> list[Figure]:
    """1, 2 and 4 workers and raw smtplib (one connection, the same signed bytes), rounds
    interleaved so that the machine's load falls on all of them alike; medians."""
    url = f"smtp://127.0.0.1:{port}"
    messages = signed_messages(temp)
    rates: dict[str, list[float]] = {"raw": [], "raw4": [], "1": [], "2": [], "4": []}
    for round_ in range(rounds):
        rates["raw"].append(raw_rate(port, messages, 1))
        rates["raw4"].append(raw_rate(port, messages, 4))  # what the peer takes at most
        for count in (1, 2, 4):
            rates[str(count)].append(workers_rate(temp, url, count, round_))
    median = {k: statistics.median(v) for k, v in rates.items()}
    peer = "raw smtplib, 1 connection, same signed bytes"
    targets = {"1": ">= 0.8 x raw", "2": ">= 1.7 x 1 worker", "4": ""}
    figures = [
        Figure("delivery, raw smtplib", median["raw"], "msg/s", "aiosmtpd Sink", None, ""),
        Figure("delivery, raw smtplib, 4 connections", median["raw4"], "msg/s", "aiosmtpd Sink", None, ""),
    ]
    for workers in ("1", "2", "4"):
        ratio = median[workers] / median["raw"]
        figures.append(
            Figure(f"delivery, {workers} worker(s)", median[workers], "msg/s", peer, ratio, targets[workers])
        )
    figures.append(Figure("2 workers / 1 worker", median["2"] / median["1"], "x", "1 worker", None, ">= 1.7"))
    return figures


def figures(rounds: int = 3) -> list[Figure]:
    """Every figure of this benchmark (printed by `main` as well)."""
    port = free_port()
    server = start_sink(port)
    try:
        with tempfile.TemporaryDirectory() as temp:
            made = message_cpu(Path(temp))
            found = [Figure("a personalised message", made, "µs CPU", "", None, "<= 20")]
            messages = raw_messages(Path(temp))
            raw = raw_rate(port, messages, 1)
            rsa = newsletter_rate(Path(temp), port, 1, signing.RSA)
            found.append(
                Figure(
                    f"the whole send, {SUBSCRIBERS} readers, rsa",
                    rsa,
                    "msg/s",
                    "raw smtplib",
                    rsa / raw,
                    ">= 0.6",
                )
            )
            found += worker_figures(Path(temp), port, rounds)
    finally:
        server.terminate()
        server.wait()
    return found


def show(found: list[Figure]) -> None:
    for f in found:
        ratio = f" ({f.ratio:.2f} x {f.peer})" if f.ratio is not None else ""
        target = f"; target {f.target}" if f.target else ""
        print(f"workers: {f.name}: {f.value:,.1f} {f.unit}{ratio}{target}")


def peak_rss(readers: int = 100_000) -> float:
    """Peak RSS (MB) of one `worker --once` delivering an issue to `readers` subscribers."""
    port = free_port()
    server = start_sink(port)
    try:
        with tempfile.TemporaryDirectory() as temp:
            url = f"smtp://127.0.0.1:{port}"
            project = recorded(Path(temp) / "rss", url, readers)
            [worker] = run_workers(project, url, 1)
            peak = 0
            while worker.poll() is None:  # its own high-water mark, from exec on
                peak = max(peak, high_water(worker.pid))
                time.sleep(0.2)
            assert worker.returncode == 0
            project.close()
    finally:
        server.terminate()
        server.wait()
    return peak / 1024


def high_water(pid: int) -> int:
    """VmHWM (kB) of a running process. Not getrusage: a child's ru_maxrss starts from
    the RSS of the parent it was forked from (the benchmark's, with its 100,000 readers)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)


def main() -> int:
    if "--rss" in sys.argv:
        readers = int(sys.argv[sys.argv.index("--rss") + 1]) if sys.argv[-1] != "--rss" else 100_000
        peak = peak_rss(readers)
        print(f"rss:    a worker sending to {readers:,} subscribers: peak {peak:,.0f} MB (target < 150 MB)")
        return 0
    if "--message" in sys.argv:  # only the CPU of making (and signing) one message
        with tempfile.TemporaryDirectory() as temp:
            message_cpu(Path(temp))
        return 0
    if "--workers" in sys.argv:
        show(figures())
        return 0
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
    show(worker_figures_alone())
    return 0


def worker_figures_alone() -> list[Figure]:
    port = free_port()
    server = start_sink(port)
    try:
        with tempfile.TemporaryDirectory() as temp:
            return worker_figures(Path(temp), port)
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
