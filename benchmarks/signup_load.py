"""Load on `newsletter serve`: 2,000 signups and 2,000 archive reads (/issues/), 32 in
flight, against the public app under uvicorn in a thread on 127.0.0.1, its mail to a
local file: outbox (the drain runs after each answer, as in production). Prints p50 and
p99 latency of each, and fails on any error (a status other than 200). Run with
`make bench`; bounded in count and in time (every request has a 30 s timeout).
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from newsletter import scaffold
from newsletter.audience.dispatch import for_serve
from newsletter.delivery.transports import Courier
from newsletter.web.public import create_app

REQUESTS = 2000
IN_FLIGHT = 32
ENVIRON = {"NEWSLETTER_SECRET_KEY": "benchmark-secret-key-0123456789"}


def serve(root: Path, outbox: Path) -> tuple[uvicorn.Server, threading.Thread, str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    courier = lambda _, env: Courier.for_url(f"file:{outbox}", env)  # noqa: E731
    app = create_app(root, ENVIRON, courier_for=courier, dispatch_for=for_serve)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{sock.getsockname()[1]}"


async def load(url: str, make: list[tuple[str, dict[str, str] | None]]) -> list[float]:
    """Every request once, IN_FLIGHT at a time; the latencies, in seconds."""
    limits = httpx.Limits(max_connections=IN_FLIGHT)
    times: list[float] = []
    queue = iter(make)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:

        async def worker() -> None:
            for path, form in queue:
                started = time.perf_counter()
                answer = await (http.post(path, data=form) if form else http.get(path))
                times.append(time.perf_counter() - started)
                if answer.status_code != 200:
                    raise SystemExit(f"{path}: {answer.status_code} {answer.text[:200]}")

        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    return times


def report(what: str, times: list[float], seconds: float) -> None:
    cuts = statistics.quantiles(times, n=100)
    print(
        f"{what}: {len(times)} in {seconds:.1f} s ({len(times) / seconds:.0f}/s), "
        f"p50 {cuts[49] * 1000:.1f} ms, p99 {cuts[98] * 1000:.1f} ms, 0 errors"
    )


def main() -> None:
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as folder:
        root = Path(folder) / "project"
        scaffold.init(root, name="Mind & Body", base_url="https://example.org", demo=True)
        settings = root / "newsletter.toml"
        limits = "\n[signup]\nmin_seconds = 0\nip_limit = 100000\n"  # one client, at once
        settings.write_text(settings.read_text() + limits)
        server, thread, url = serve(root, Path(folder) / "outbox")
        token = httpx.get(f"{url}/subscribe", headers={"accept": "application/json"}).json()["form_token"]
        signups = [
            ("/subscribe", {"email": f"reader{n}@example.org", "form_token": token}) for n in range(REQUESTS)
        ]
        for what, requests in (("signups", signups), ("archive reads", [("/issues/", None)] * REQUESTS)):
            started = time.perf_counter()
            times = asyncio.run(load(url, list(requests)))
            report(what, times, time.perf_counter() - started)
        server.should_exit = True  # the drain in flight finishes first
        thread.join(timeout=60)


if __name__ == "__main__":
    main()
