"""Data rights: `subscribers export` (everything stored about a person) and `subscribers
forget` (erasure with a keyed suppression), over a real SQLite file after real sends to a
`file:` transport and a bounce recorded by the ledger."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from newsletter import scaffold
from newsletter.cli import main
from newsletter.core.models import SubscriberRow
from newsletter.core.tokens import Purposes
from newsletter.delivery.send import SendOptions, send_schedule
from newsletter.project import Project
from newsletter.storage import schema
from newsletter.storage.consents import Consents
from newsletter.storage.queue import DeliveryQueue
from newsletter.storage.records import Choices, Consent
from newsletter.storage.rights import DataRights
from newsletter.storage.roster import Roster
from newsletter.storage.suppression import BounceRecord, Suppression
from tests.conftest import NOW, CliRunnerForProject, free_port

KEY = "test-secret-key-0123456789"
ENV = {"NEWSLETTER_SECRET_KEY": KEY}
FAST = SendOptions(retry_base=0.05, retry_cap=0.2)
BOB = "bob.zyx@example.org"
NAME = "Robert Zyxwv"
READERS = [SubscriberRow("ann@example.org", "Ann"), SubscriberRow(BOB, NAME, ("Sleep & recovery",))]


@pytest.fixture
def sent(demo_project: Project, tmp_path: Path) -> Iterator[Project]:
    """One weekly issue sent to Ann and Bob; Bob's delivery then bounced with his address
    in the diagnostic; a consent record for Bob when the store has that table."""
    project = Project(demo_project.root, environ=ENV)
    Roster(project.store).import_subscribers(READERS, NOW)
    summary = send_schedule(project, "weekly", scaffold.DEMO_AT, f"file:{tmp_path / 'outbox'}", FAST)
    assert summary.outcome == "sent" and summary.counts["sent"] == 2
    bob = next(s for s in Roster(project.store).subscribers() if s.email == BOB)
    with project.store.engine.begin() as conn:
        delivery = conn.scalar(sa.select(schema.deliveries.c.id).where(schema.deliveries.c.email == BOB))
        consents = getattr(schema, "consents", None)
        if consents is not None:
            conn.execute(
                consents.insert().values(
                    subscriber_id=bob.id,
                    form="subscribe",
                    consent_text="Yes please",
                    ip="192.0.2.7",
                    name=NAME,
                    created_at=NOW,
                    confirmed_at=NOW,
                )
            )
    detail = f"550 5.1.1 <{BOB}>: no such user ({NAME})"
    Suppression(project.store).record_bounce(
        BounceRecord("k" * 64, "hard", delivery, bob.id, "5.1.1", detail), 3, NOW
    )
    yield project
    project.close()


def text_columns_holding(engine: sa.Engine, *needles: str) -> list[str]:
    """table.column of every text column, in every table of the database, where a needle is."""
    found = []
    inspector = sa.inspect(engine)
    with engine.connect() as conn:
        for table in inspector.get_table_names():
            for column in inspector.get_columns(table):
                if not isinstance(column["type"], sa.String):  # Text and VARCHAR alike
                    continue
                name = column["name"]
                for needle in needles:
                    query = sa.text(f'SELECT count(*) FROM "{table}" WHERE lower("{name}") LIKE :n')
                    if conn.scalar(query, {"n": f"%{needle.lower()}%"}):
                        found.append(f"{table}.{name}")
    return found


def test_export_json_has_every_row_about_a_person(sent: Project, cli: CliRunnerForProject):
    result = cli("subscribers", "export", "--json")
    assert result.exit_code == 0, result.stderr
    people = json.loads(result.stdout)
    assert [p["subscriber"]["email"] for p in people] == ["ann@example.org", BOB]
    bob = people[1]
    assert bob["subscriber"]["name"] == NAME
    assert bob["subscriber"]["categories"] == '["Sleep & recovery"]'
    [delivery] = bob["deliveries"]
    assert delivery["status"] == "bounced"
    assert delivery["issue_schedule"] == "weekly"
    assert delivery["sent_at"].startswith("20")
    [bounce] = bob["bounce_reports"]
    assert bounce["kind"] == "hard" and bounce["status_code"] == "5.1.1"
    if hasattr(schema, "consents"):
        assert [c["ip"] for c in bob["consents"]] == ["192.0.2.7"]


def test_export_csv_to_a_private_file(sent: Project, cli: CliRunnerForProject, tmp_path: Path):
    out = tmp_path / "export.csv"
    result = cli("subscribers", "export", "--csv", "--email", BOB.upper(), "--out", str(out))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert {r["subscriber"] for r in rows} == {BOB}
    assert {"subscriber", "deliveries", "bounce_reports"} <= {r["table"] for r in rows}
    assert {"table": "subscriber", "column": "name", "value": NAME}.items() <= next(
        r for r in rows if r["table"] == "subscriber" and r["column"] == "name"
    ).items()


def test_export_of_an_unknown_address_and_both_formats(sent: Project, cli: CliRunnerForProject):
    unknown = cli("subscribers", "export", "--email", "nobody@example.org")
    assert unknown.exit_code == 1
    assert "no subscriber 'nobody@example.org'" in unknown.stderr
    both = cli("subscribers", "export", "--json", "--csv")
    assert both.exit_code == 2
    assert "choose one of --json and --csv" in both.stderr


def test_forget_erases_every_trace_and_keeps_counts(sent: Project, cli: CliRunnerForProject):
    engine = sent.store.engine
    assert text_columns_holding(engine, BOB, NAME)  # the check finds what is there
    before = DeliveryQueue(sent.store).counts(1)
    result = cli("subscribers", "forget", BOB, "--yes")
    assert result.exit_code == 0, result.stderr
    assert f"forgot {BOB}" in result.stdout
    assert text_columns_holding(engine, BOB, NAME, "192.0.2.7") == []
    assert DeliveryQueue(sent.store).counts(1) == before  # the delivery rows stay, anonymised
    assert DataRights(sent.store).is_forgotten(BOB.upper())
    assert not DataRights(sent.store).is_forgotten("ann@example.org")
    people = json.loads(cli("subscribers", "export").stdout)
    assert [p["subscriber"]["email"] for p in people] == ["ann@example.org"]
    again = cli("subscribers", "forget", BOB, "--yes")
    assert again.exit_code == 0
    assert "already forgotten" in again.stdout


def test_a_forgotten_address_is_never_imported_or_mailed_again(
    sent: Project, cli: CliRunnerForProject, tmp_path: Path
):
    assert cli("subscribers", "forget", BOB, "--yes").exit_code == 0
    csv_file = tmp_path / "again.csv"
    csv_file.write_text(f"email,name,categories\n{BOB.upper()},{NAME},\nnew@example.org,New,\n")
    result = cli("subscribers", "import", str(csv_file))
    assert result.exit_code == 0, result.stderr
    assert "1 added" in result.stdout and "1 left unsubscribed" in result.stdout
    emails = [s.email for s in Roster(sent.store).subscribers()]
    assert BOB not in emails and "new@example.org" in emails
    assert text_columns_holding(sent.store.engine, BOB) == []


def test_forget_an_address_never_stored_suppresses_it(sent: Project, cli: CliRunnerForProject):
    result = cli("subscribers", "forget", "stranger@example.org", "--yes")
    assert result.exit_code == 0
    assert "nothing stored about stranger@example.org" in result.stdout
    assert DataRights(sent.store).is_forgotten("stranger@example.org")


def test_forget_asks_first(sent: Project, project_dir: Path):
    runner = CliRunner()
    declined = runner.invoke(main, ["--project", str(project_dir), "subscribers", "forget", BOB], input="n\n")
    assert declined.exit_code == 1
    assert "Erase" in declined.stderr and "Aborted" in declined.stderr
    assert not DataRights(sent.store).is_forgotten(BOB)
    accepted = runner.invoke(main, ["--project", str(project_dir), "subscribers", "forget", BOB], input="y\n")
    assert accepted.exit_code == 0
    assert DataRights(sent.store).is_forgotten(BOB)


def test_the_suppression_key_is_per_database_and_not_the_address(sent: Project):
    DataRights(sent.store).forget(BOB, NOW)
    with sent.store.engine.connect() as conn:
        [stored] = conn.scalars(sa.select(schema.forgotten.c.address_hash))
        key = conn.scalar(sa.select(schema.meta.c.value).where(schema.meta.c.key == "suppression_key"))
    assert len(stored) == 64 and BOB not in stored
    assert key is not None and len(key) == 64


# -- the bytes on disk: the database file and its write-ahead log ----------------------

ZED = "zed.signup@example.org"
ZED_NAME = "Zedediah Qwfpgj"


def sign_up_zed(project: Project) -> None:
    """Zed signs up on the form (consent with IP), confirms, changes preferences: copies
    of the address and the name in several pages and several write-ahead log frames."""
    done = Consents(project.store).signup(
        ZED, Choices(ZED_NAME), Consent("subscribe", "Yes please", "192.0.2.9"), True, NOW
    )
    assert done.consent_id is not None and done.subscriber_id is not None
    Consents(project.store).confirm(done.consent_id, NOW)
    Roster(project.store).set_preferences(
        done.subscriber_id, Choices(ZED_NAME, ("Sleep & recovery",)), True, NOW
    )


def files_holding(root: Path, *needles: str) -> list[str]:
    """The database's files (main, -wal, -shm, -journal) whose raw bytes hold a needle."""
    found = []
    for path in sorted(root.glob("newsletter.db*")):
        data = path.read_bytes()
        found += [f"{path.name}: {n}" for n in needles if n.encode() in data or n.lower().encode() in data]
    return found


@pytest.mark.sqlite_only("the bytes of the SQLite file and its write-ahead log")
def test_forget_erases_the_bytes_while_another_process_holds_the_database(
    sent: Project, cli: CliRunnerForProject, project_dir: Path
):
    sign_up_zed(sent)
    Roster(sent.store).subscribers()  # `serve` or `run`: the database open, idle between requests
    assert files_holding(project_dir, ZED, ZED_NAME)  # the check finds what is there
    for address in (ZED, BOB):
        result = cli("subscribers", "forget", address, "--yes")
        assert result.exit_code == 0, result.stderr
    assert files_holding(project_dir, ZED, ZED_NAME, BOB, NAME) == []
    assert DataRights(sent.store).is_forgotten(ZED)  # the holder reads on as before


@pytest.mark.slow
def test_forget_erases_the_bytes_while_serve_runs(sent: Project, project_dir: Path):
    """`newsletter serve` as a real process that has read the subscriber, then `forget` as
    another: neither newsletter.db nor newsletter.db-wal holds the address or the name."""
    sign_up_zed(sent)
    [zed] = [s for s in Roster(sent.store).subscribers() if s.email == ZED]
    sent.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update({**ENV, "NEWSLETTER_ALLOW_PLACEHOLDERS": "1"})
    command = [sys.executable, "-m", "newsletter.cli", "--project", str(project_dir)]
    port = free_port()
    server = subprocess.Popen([*command, "serve", "--port", str(port)], env=env, stderr=subprocess.DEVNULL)
    try:
        page = wait_for_page(
            f"http://127.0.0.1:{port}/preferences?token={Purposes(KEY).make_preferences(zed.id)}"
        )
        assert "z***@example.org" in page  # serve has read Zed's row
        forget = subprocess.run(
            [*command, "subscribers", "forget", ZED, "--yes"], env=env, capture_output=True
        )
        assert forget.returncode == 0, forget.stderr
        assert files_holding(project_dir, ZED, ZED_NAME) == []
        assert "z***" not in wait_for_page(f"http://127.0.0.1:{port}/preferences?token=x")  # still serving
    finally:
        server.terminate()
        server.wait(timeout=10)


def wait_for_page(url: str) -> str:
    deadline = time.monotonic() + 20
    while True:
        try:
            return httpx.get(url, timeout=5).text
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.sqlite_only("the bytes of the SQLite file and its write-ahead log")
@pytest.mark.slow
def test_forget_says_so_when_a_reader_keeps_the_log_from_being_emptied(
    sent: Project, cli: CliRunnerForProject, project_dir: Path
):
    sign_up_zed(sent)
    with sent.store.engine.connect() as reader:  # a read transaction left open: an old snapshot
        reader.exec_driver_sql("BEGIN")
        reader.exec_driver_sql("SELECT count(*) FROM subscribers").all()
        result = cli("subscribers", "forget", ZED, "--yes")
        reader.exec_driver_sql("ROLLBACK")
    assert result.exit_code == 1
    assert f"forgot {ZED}" in result.stdout
    assert "newsletter.db-wal" in result.stderr and "run it again" in result.stderr
    again = cli("subscribers", "forget", ZED, "--yes")
    assert again.exit_code == 0 and "already forgotten" in again.stdout
    assert files_holding(project_dir, ZED, ZED_NAME) == []
