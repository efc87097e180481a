"""Signup that says nothing by its timing or its answer, limits that hold under parallel
requests, and signup's mails sent as issues are: `serve`'s app under uvicorn on
127.0.0.1, its mail to a real aiosmtpd on 127.0.0.1 (tests/conftest.py), requests over
HTTP with httpx, on SQLite (and on a private PostgreSQL: tests/postgres.py)."""

from __future__ import annotations

import html as htmllib
import re
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path
from urllib.parse import urlsplit

import dkim
import httpx
import pytest
import sqlalchemy as sa
from starlette.types import ASGIApp

from newsletter.audience.dispatch import for_serve
from newsletter.core.models import SubscriberRow, SubscriberStatus
from newsletter.core.tokens import Tokens
from newsletter.delivery.transports import Courier
from newsletter.project import Project
from newsletter.storage.consents import Consents
from newsletter.storage.outbox import Outbox
from newsletter.storage.records import Choices, Consent
from newsletter.storage.rights import DataRights
from newsletter.storage.roster import Roster
from newsletter.storage.schema import outbox, signup_events, subscribers
from newsletter.web.public import create_app
from tests.browser import AppServer
from tests.conftest import CliRunnerForProject, SMTPServer
from tests.postgres import needs_postgres, postgresql  # noqa: F401 (the fixture)
from tests.test_dkim import enable, keygen

KEY = "test-secret-key-0123456789"
QUICK = "[signup]\nmin_seconds = 0\n"  # the requests come at once: no minimum time
ROUNDS = 3  # the timing is judged in the best of these (see the test)
PAIRS = 40
LIMIT = "ip_limit = 16\n"  # the 16 signups of one address, all from this IP, pass it


class Public(AppServer):
    """`serve`'s app (as cli.py makes it: the courier and the dispatcher) under uvicorn."""

    def __init__(self, root: Path, smtp_url: str, environ: dict[str, str] | None = None) -> None:
        self.environ = {"NEWSLETTER_SECRET_KEY": KEY, **(environ or {})}

        def make_app(url: str) -> ASGIApp:
            courier = lambda _, env: Courier.for_url(smtp_url, env)  # noqa: E731
            self.app = create_app(root, self.environ, courier_for=courier, dispatch_for=for_serve)
            return self.app

        super().__init__(make_app, "public server")


@pytest.fixture
def serving(project_dir: Path, smtp_server: SMTPServer) -> Iterator[Callable[..., Public]]:
    started: list[Public] = []

    def start(settings: str = "", environ: dict[str, str] | None = None) -> Public:
        path = project_dir / "newsletter.toml"
        path.write_text(path.read_text(encoding="utf-8") + "\n" + settings + "\n", encoding="utf-8")
        started.append(Public(project_dir, smtp_server.url, environ))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def form_token(http: httpx.Client) -> str:
    found = http.get("/subscribe", headers={"accept": "application/json"}).json()
    return str(found["form_token"])


def sign_up(http: httpx.Client, token: str, email: str, name: str = "") -> httpx.Response:
    return http.post("/subscribe", data={"email": email, "name": name, "form_token": token})


def drained(project: Project, server: Public | None = None, timeout: float = 20.0) -> None:
    """Until the background task (or a drain) has sent what the outbox held, and is done."""
    deadline = time.monotonic() + timeout
    dispatcher = server.app.state.dispatcher if server else None
    while Outbox(project.store).waiting() or (dispatcher and dispatcher.lock.locked()):
        assert time.monotonic() < deadline, "the outbox was not drained"
        time.sleep(0.002)


def known_addresses(project: Project) -> dict[str, str]:
    """One address of each kind a signup may meet (besides a new one)."""
    now = datetime.now(UTC)
    rows = [SubscriberRow(f"{k}@example.org") for k in ("active", "unsubscribed", "forgotten")]
    Roster(project.store).import_subscribers(rows, now)
    gone = next(s for s in Roster(project.store).subscribers() if s.email == "unsubscribed@example.org")
    Roster(project.store).suppress(gone.id, SubscriberStatus.UNSUBSCRIBED, now)
    DataRights(project.store).forget("forgotten@example.org", now)
    Consents(project.store).signup("pending@example.org", Choices(), Consent("subscribe", "yes"), True, now)
    return {k: f"{k}@example.org" for k in ("active", "pending", "unsubscribed", "forgotten")}


# -- finding 3: the time and the answer say nothing ---------------------------------------


@pytest.mark.slow  # 320 requests, each timed alone: about 20 s
@pytest.mark.timeout(300)
def test_a_signup_answers_alike_and_as_fast_whoever_the_address_is(
    serving: Callable[..., Public], project: Project, smtp_server: SMTPServer
):
    """40 pairs per kind, interleaved (the new address first in every other pair), each
    request timed alone: the outbox is drained between requests, as it is after each
    answer. The medians must be within max(10 %, 2 ms) of each other: an absolute floor
    so that a noisy shared 2-core machine does not fail it; a request that rendered and
    sent its mail took about 40 ms more. Every signup is queued alike and recorded after
    the answer, so the request does the same work whatever the address. A round that
    misses is measured again, up to three rounds: a leak misses in every one."""
    kinds = known_addresses(project)
    # The same address 40 times: no per-address limit in the way (its own work differs).
    server = serving(QUICK + "ip_limit = 100000\naddress_limit = 1000\n")
    # A connection per request: on a kept-alive one, Linux's delayed ACK adds 40 ms to
    # some answers at random (uvicorn writes head and body apart), whatever the address.
    with httpx.Client(base_url=server.url, limits=httpx.Limits(max_keepalive_connections=0)) as http:
        token = form_token(http)
        for n in range(5):  # warm-up: templates compiled, connections made
            sign_up(http, token, f"warm{n}@example.org")
            drained(project, server)
        for kind, address in kinds.items():
            # A leak (a mail rendered and sent in the request: ~40 ms) shows in every round;
            # a burst of load on a shared machine in one round only: up to three rounds.
            rounds: list[tuple[float, float]] = []
            while len(rounds) < ROUNDS and not any(alike(*r) for r in rounds):
                rounds.append(timed_pairs(http, token, project, server, kind, address, len(rounds)))
            assert any(alike(*r) for r in rounds), (kind, rounds)
            arrived = [m for m in smtp_server.handler.messages if m.recipients[0].startswith(f"new-{kind}-")]
            assert len(arrived) == PAIRS * len(rounds)  # each new address got its confirmation
            # a pending or unsubscribed address is asked to confirm again, once an hour at most
            assert len(smtp_server.handler.received_by(address)) == (kind in ("pending", "unsubscribed"))


def alike(new: float, other: float) -> bool:
    """Medians within max(10 %, 2 ms) of each other."""
    return abs(new - other) <= max(0.1 * max(new, other), 0.002)


def timed_pairs(
    http: httpx.Client, token: str, project: Project, server: Public, kind: str, address: str, round_: int
) -> tuple[float, float]:
    """PAIRS interleaved pairs (the new address first in every other pair), each request
    timed alone; the same answer for all. The medians: (new, this kind)."""
    times: dict[str, list[float]] = {"new": [], kind: []}
    answers: set[tuple[int, bytes]] = set()
    for n in range(PAIRS):
        pair = [("new", f"new-{kind}-{round_}-{n}@example.org"), (kind, address)]
        for label, email in pair if n % 2 else reversed(pair):
            started = time.perf_counter()
            answer = sign_up(http, token, email)
            times[label].append(time.perf_counter() - started)
            answers.add((answer.status_code, answer.content))
            drained(project, server)
    assert len(answers) == 1, f"{kind}: the answers differ"
    assert next(iter(answers))[0] == 200
    return statistics.median(times["new"]), statistics.median(times[kind])


# -- finding 4: limits under parallel requests ------------------------------------------------


def at_once(count: int, request: Callable[[int], httpx.Response]) -> list[httpx.Response]:
    """`count` requests started together, each on its own connection."""
    start = threading.Barrier(count)

    def one(n: int) -> httpx.Response:
        start.wait(timeout=10)
        return request(n)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def parallel_signups(server: Public, project: Project, smtp_server: SMTPServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        token = form_token(http)

    def post(email: str) -> httpx.Response:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            return sign_up(http, token, email)

    same = at_once(16, lambda _: post("race@example.org"))
    assert [a.status_code for a in same] == [200] * 16, [a.text[:200] for a in same if a.status_code != 200]
    with project.store.engine.begin() as conn:  # the IP's count starts again
        conn.execute(signup_events.delete().where(signup_events.c.kind == "ip"))
    one_ip = at_once(30, lambda n: post(f"crowd{n}@example.org"))
    codes = sorted(a.status_code for a in one_ip)
    assert set(codes) == {200, 429} and codes.count(200) == 16, codes
    drained(project)
    with project.store.engine.connect() as conn:
        ids = list(conn.scalars(sa.select(subscribers.c.id).where(subscribers.c.email == "race@example.org")))
        assert len(ids) == 1
        queued = conn.scalar(sa.select(sa.func.count()).where(outbox.c.subscriber_id == ids[0]))
    assert queued == 1
    assert len(smtp_server.handler.received_by("race@example.org")) == 1


@pytest.mark.timeout(120)
def test_parallel_signups_keep_the_limits_on_sqlite(
    serving: Callable[..., Public], project: Project, smtp_server: SMTPServer
):
    """16 at once of one address: no error, one subscriber, one confirmation mail (the
    limit is one an hour); then 30 at once from one IP: the limit of 16, never more."""
    parallel_signups(serving(QUICK + LIMIT), project, smtp_server)


@needs_postgres
@pytest.mark.timeout(180)
def test_parallel_signups_keep_the_limits_on_postgresql(
    serving: Callable[..., Public],
    project_dir: Path,
    smtp_server: SMTPServer,
    postgresql: Callable[[], str],  # noqa: F811
):
    url = {"NEWSLETTER_DATABASE_URL": postgresql()}
    server = serving(QUICK + LIMIT, url)
    with closing(Project(project_dir, environ=url)) as project:
        parallel_signups(server, project, smtp_server)


# -- finding 8: every mail goes out the same way ---------------------------------------------


def stored_message_id(project: Project, notice_id: int) -> str:
    with project.store.engine.connect() as conn:
        return str(conn.scalar(sa.select(outbox.c.message_id).where(outbox.c.id == notice_id)))


def check_sealed(project: Project, data: bytes, mail_from: str, dns: Callable[..., bytes | None]) -> int:
    """Signed for the test key, from its own return path, with its stored Message-ID;
    returns the outbox row the return path names."""
    assert dkim.verify(data, dnsfunc=dns), data[:800]
    found = re.fullmatch(r"bounces\+(n(\d+)-[0-9a-f]{20})@example\.org", mail_from)
    assert found is not None, mail_from
    notice_id = int(found[2])
    assert found[1] == Tokens(KEY).for_notice(notice_id)
    mail = message_from_bytes(data, policy=policy.default)
    assert mail["Message-ID"] == stored_message_id(project, notice_id)
    return notice_id


@pytest.mark.timeout(120)
def test_confirmation_and_welcome_are_signed_and_carry_their_return_path(
    serving: Callable[..., Public],
    project: Project,
    smtp_server: SMTPServer,
    cli: CliRunnerForProject,
    tmp_path: Path,
):
    _, toml, dns = keygen(cli, tmp_path / "keys" / "k.pem", "--selector", "nl2026")
    enable(project.root, toml + '\n[bounces]\nreturn_path = "bounces+{token}@example.org"')
    server = serving(QUICK)
    name = "Zoë Ångström-Łukasiewicz « test »"
    with httpx.Client(base_url=server.url) as http:
        assert sign_up(http, form_token(http), "zoe@example.org", name).status_code == 200
        drained(project)
        [confirmation] = smtp_server.handler.received_by("zoe@example.org")
        first = check_sealed(project, confirmation.data, confirmation.sender, dns)
        mail = message_from_bytes(confirmation.data, policy=policy.default)
        assert mail["To"].addresses[0].display_name == name
        assert mail["Subject"] == "Confirm your subscription to Mind & Body"
        text = mail.get_body(("plain",))
        assert text is not None
        link = re.search(r"https://\S+/confirm\?token=\S+", str(text.get_content()))
        assert link is not None
        url = urlsplit(link.group(0))
        page = http.get(f"{url.path.removeprefix('/newsletter')}?{url.query}").text
        fields = {n: htmllib.unescape(v) for n, v in re.findall(r'name="(\w+)" value="([^"]+)"', page)}
        done = http.post("/confirm", data={"token": fields["token"], "form_token": fields["form_token"]})
        assert done.status_code == 200 and "You are subscribed" in done.text
        drained(project)
    welcome = smtp_server.handler.received_by("zoe@example.org")[1]
    assert check_sealed(project, welcome.data, welcome.sender, dns) != first
    mail = message_from_bytes(welcome.data, policy=policy.default)
    assert mail["Subject"] == "Welcome to Mind & Body"
    assert mail["To"].addresses[0].display_name == name
    assert mail["List-Unsubscribe"]
