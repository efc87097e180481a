"""`make bench`: every figure of issue 23 (and issue 22's send figures) beside a peer
measured in the same run, printed as one markdown table and kept in
benchmarks/results/latest.json.

Shared machines are noisy, so each figure is a ratio against its peer, the medians
(min-max) of repetitions in which ours and the peer's alternate (figures.py). Archives
are generated once, seeded, into .cache/bench/ (archives.py; recall@3's are topical.py's
realistic ones); the Node peer (npm mjml and juice, pinned) is installed there too; the
ingest floor is floor_ingest.py; the send peer is raw smtplib (send.py), against
aiosmtpd's Sink and again against a private Debian Postfix that queues and discards
(tests/postfix_instance.py; skipped with a note where postfix is missing or we are not root).

    .venv/bin/python benchmarks/bench.py            # make bench: 10k and 100k archives
    .venv/bin/python benchmarks/bench.py --smoke    # make bench-smoke: tiny, once, nothing judged
    .venv/bin/python benchmarks/bench.py --scale    # make bench-scale: the 1M rows (P4, recall@3)

Progress goes to stderr; the table to stdout. Never fails on a missed target.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from datetime import date
from pathlib import Path

import archives
import measures
import processes
import recall
import send
import topical
from figures import Figure, Target, interleaved, table
from measures import ENV, Sizes

from newsletter import scaffold
from newsletter.core.models import SubscriberRow
from newsletter.delivery import signing
from newsletter.project import Project
from newsletter.storage.roster import Roster

RESULTS = Path(__file__).resolve().parent / "results"
SMOKE = Sizes(small=300, large=1_000, files=200, new=50, subscribers=100, reps=1, slow_reps=1)
SCALE = 1_000_000
RECALL_TARGET = Target(ratio=0.9, at_least=True)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- send: issue 22's figures, through send.py's own functions ----------------------------


def send_figures(sizes: Sizes, work: Path, subscribers: int) -> list[Figure]:
    """The whole `send_schedule` (1 connection, DKIM rsa-sha256) against raw smtplib
    sending the same signed bytes over one connection to the same sink."""
    send.SUBSCRIBERS = subscribers
    port = send.free_port()
    sink = send.start_sink(port)
    try:
        messages = _signed(send.raw_messages(work))
        runs = iter(range(1_000))

        def ours() -> float:
            return send.newsletter_rate(work / f"send-{next(runs)}", port, 1, signing.RSA)

        mine, raw = interleaved(sizes.slow_reps, ours, lambda: send.raw_rate(port, messages, 1))
    finally:
        sink.terminate()
        sink.wait()
    return [
        Figure(
            "send",
            f"whole `send` of an issue to {subscribers:,} subscribers, 1 connection, DKIM rsa-sha256",
            "msg/s",
            mine,
            "raw smtplib, the same signed bytes, 1 connection",
            raw,
            Target(ratio=0.6, at_least=True),
            "aiosmtpd Sink on 127.0.0.1; workers: see send.py",
        ),
    ]


def worker_figures(sizes: Sizes, work: Path, subscribers: int) -> list[Figure]:
    """Delivery by 1, 2 and 4 `newsletter worker` processes (first claim to last finish,
    DKIM rsa-sha256) against raw smtplib sending the same signed bytes over one connection,
    the rounds interleaved; and the CPU of one personalised message."""
    send.SUBSCRIBERS = subscribers
    port = send.free_port()
    sink = send.start_sink(port)
    url = f"smtp://127.0.0.1:{port}"
    raw: list[float] = []
    rates: dict[int, list[float]] = {1: [], 2: [], 4: []}
    try:
        messages = send.signed_messages(work)
        made = send.message_cpu(work)
        for round_ in range(sizes.slow_reps):
            raw.append(send.raw_rate(port, messages, 1))
            for count, found in rates.items():
                found.append(send.workers_rate(work, url, count, round_))
    finally:
        sink.terminate()
        sink.wait()
    return [
        Figure(
            "message",
            "CPU of one personalised message (made, not signed)",
            "µs",
            [made],
            target=Target(value=20),
        ),
        _workers(1, subscribers, rates[1], "raw smtplib, the same signed bytes, 1 connection", raw, 0.8),
        _workers(2, subscribers, rates[2], "1 worker", rates[1], 1.7),
        _workers(4, subscribers, rates[4], "1 worker", rates[1], None),
    ]


def _workers(
    count: int, subscribers: int, ours: list[float], peer: str, theirs: list[float], ratio: float | None
) -> Figure:
    return Figure(
        "workers",
        f"delivery by {count} `newsletter worker` process{'es' if count > 1 else ''}, "
        f"{subscribers:,} subscribers, DKIM rsa-sha256",
        "msg/s",
        ours,
        peer,
        theirs,
        Target(ratio=ratio, at_least=True) if ratio else None,
        "aiosmtpd Sink on 127.0.0.1, in its own process on the same cores",
    )


def postfix_figures(sizes: Sizes, work: Path, subscribers: int) -> list[Figure]:
    """The same rows against Debian's Postfix (a private instance that queues what it
    accepts, then discards it): the whole `send` beside raw smtplib on 1 connection, and
    1 and 2 workers beside raw smtplib on as many connections; each pair interleaved."""
    sys.path.append(str(Path(__file__).resolve().parent.parent))  # tests/ is not installed
    from tests import postfix_instance  # shared with tests/test_postfix.py

    if reason := postfix_instance.unavailable():
        say(f"note: the Postfix rows are skipped: {reason}")
        return []
    send.SUBSCRIBERS = subscribers
    runs, work = iter(range(1_000)), work / "postfix"  # its own projects and keys
    work.mkdir()
    with postfix_instance.running() as postfix:
        port, url = postfix.port, f"smtp://127.0.0.1:{postfix.port}"
        messages = send.signed_messages(work)

        def whole() -> float:
            return send.newsletter_rate(work / f"send-{next(runs)}", port, 1, signing.RSA)

        def workers(count: int) -> float:
            return send.workers_rate(work, url, count, next(runs))

        rows = [("whole", whole, 1)] + [(f"{n}", lambda n=n: workers(n), n) for n in (1, 2)]
        found = {
            name: interleaved(sizes.slow_reps, ours, lambda n=n: send.raw_rate(port, messages, n))
            for name, ours, n in rows
        }
    return [_postfix_row(name, n, subscribers, *found[name]) for name, _, n in rows]


def _postfix_row(
    name: str, connections: int, subscribers: int, ours: list[float], raw: list[float]
) -> Figure:
    what = (
        f"whole `send` of an issue to {subscribers:,} subscribers, 1 connection"
        if name == "whole"
        else f"delivery by {name} `newsletter worker` process{'es' if connections > 1 else ''}, "
        f"{subscribers:,} subscribers"
    )
    return Figure(
        "send" if name == "whole" else "workers",
        f"{what}, DKIM rsa-sha256, to Postfix",
        "msg/s",
        ours,
        f"raw smtplib, the same signed bytes, {connections} connection{'s' if connections > 1 else ''}",
        raw,
        None,
        "a private Debian Postfix on 127.0.0.1, queueing then discarding; same cores",
    )


def _signed(messages: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    key = signing.load_key(signing.generate(signing.RSA).private_pem, signing.RSA, "bench")
    signer = signing.Signer("example.org", "bench", signing.RSA, key)
    return [(recipient, signer.sign(data)) for recipient, data in messages]


# -- peak RSS of whole commands ---------------------------------------------------------


def rss_figures(sizes: Sizes, work: Path, small: Path, ingest_rss: list[float]) -> list[Figure]:
    build = processes.cli(
        ["--project", str(small), "build", archives.SCHEDULE, "--at", archives.AT.isoformat()]
    )
    sent = _send_rss(work, sizes.subscribers)
    return [
        Figure(
            "RSS",
            f"peak RSS of `build`, {sizes.small:,} archive",
            "MB",
            [build.rss_mb],
            target=Target(value=200, note="(scale.py's)"),
        ),
        Figure("RSS", f"peak RSS of `ingest` of {sizes.files:,} files", "MB", ingest_rss),
        Figure(
            "RSS",
            f"peak RSS of `send` to {sizes.subscribers:,} subscribers",
            "MB",
            [sent.rss_mb],
            target=Target(value=150, note="(issue 22's, for a worker)"),
        ),
    ]


def _send_rss(work: Path, subscribers: int) -> processes.Run:
    root = work / "send-rss"
    scaffold.init(root, name="Bench", base_url="https://example.org", demo=True)
    project = Project(root, environ=ENV)
    people = [SubscriberRow(f"reader{i}@example.org", f"Reader {i}") for i in range(subscribers)]
    Roster(project.store).import_subscribers(people, measures.AT)
    project.close()
    port = send.free_port()
    sink = send.start_sink(port)
    try:
        return processes.cli(
            [
                "--project",
                str(root),
                "send",
                "weekly",
                "--at",
                scaffold.DEMO_AT.isoformat(),
                "--transport",
                f"smtp://127.0.0.1:{port}",
                "--allow-placeholders",
            ],
            ENV,
        )
    finally:
        sink.terminate()
        sink.wait()


# -- recall@3 of the related-link index --------------------------------------------------


def recall_figures(sizes: list[int]) -> list[Figure]:
    """Recall@3 on the realistic archives (topical.py: topics and stories, so related
    articles exist and the exhaustive top 3 means something)."""
    figures = []
    for size in sizes:
        started = time.perf_counter()
        found = recall.recall(topical.archive(size))
        say(f"  recall@3 at {size:,}: {found} ({time.perf_counter() - started:.0f} s)")
        for way, label in (("earlier", "among the articles before it"), ("all", "over the whole archive")):
            value, sampled, weight = found[way]
            figures.append(
                Figure(
                    "recall",
                    f"recall@3 of the related index, {size:,}-article archive of topics and stories, {label}",
                    "",
                    [value],
                    "exhaustive top 3, same score",
                    [1.0],
                    RECALL_TARGET,
                    f"{sampled} sampled articles; the links shown score {weight:.2f} of the best's",
                )
            )
    return figures


# -- the run --------------------------------------------------------------------------------


def run_all(sizes: Sizes, work: Path, node_note: str) -> list[Figure]:
    figures: list[Figure] = []
    with contextlib.redirect_stdout(sys.stderr):  # the archive makers print their progress
        small, large = archives.archive(sizes.small), archives.archive(sizes.large)
        copy = archives.working_copy(sizes.small, work)
    steps = [
        ("P1, P1b, HTML size", lambda: measures.render_figures(copy, sizes, node_note)),
        (
            "P4",
            lambda: [
                measures.cold_figure(
                    small, large, sizes, f"{sizes.large:,} vs {sizes.small:,}", sizes.slow_reps
                )
            ],
        ),
        ("P5b", lambda: [measures.new_articles_figure(sizes, work)]),
        ("preview", lambda: [measures.preview_figure(copy, sizes)]),
        ("send", lambda: send_figures(sizes, work, 2_000 if sizes.reps > 1 else sizes.subscribers)),
        ("workers", lambda: worker_figures(sizes, work, 2_000 if sizes.reps > 1 else sizes.subscribers)),
        ("Postfix", lambda: postfix_figures(sizes, work, 2_000 if sizes.reps > 1 else sizes.subscribers)),
    ]
    ingest_rss: list[float] = []
    for name, step in steps:
        figures += _step(name, step)
        if name == "P4":
            say("P5 ...")
            p5, ingest_rss = measures.ingest_figures(sizes, work)
            figures.append(p5)
    figures += _step("RSS", lambda: rss_figures(sizes, work, copy, ingest_rss))
    figures += _step("recall@3", lambda: recall_figures([sizes.small, sizes.large]))
    return figures


def _step(name: str, step: object) -> list[Figure]:
    say(f"{name} ...")
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        found: list[Figure] = step()  # type: ignore[operator]
    say(f"  {name}: {time.perf_counter() - started:.0f} s")
    return found


def run_scale(sizes: Sizes, size: int) -> list[Figure]:
    with contextlib.redirect_stdout(sys.stderr):
        small, huge = archives.archive(sizes.small), archives.archive(size)
    label = f"{size:,} vs {sizes.small:,}"
    return [measures.cold_figure(small, huge, sizes, label, sizes.slow_reps), *recall_figures([size])]


def report(figures: list[Figure], judged: bool, seconds: float, out: Path | None, merge: bool) -> None:
    info = {
        "date": date.today().isoformat(),
        "machine": processes.machine(),
        "versions": processes.versions(),
    }
    print(table(figures, judged))
    print()
    machine, versions = info["machine"], info["versions"]
    print(
        f"{info['date']}; {machine['cores']} cores, {machine['cpu']}; "  # type: ignore[index]
        + ", ".join(f"{k} {v}" for k, v in versions.items() if v)
        + f"; {seconds:.0f} s"
    )  # type: ignore[attr-defined]
    if out is None:
        return
    kept = json.loads(out.read_text())["figures"] if merge and out.exists() else []
    new = [{"key": f.key, **f.as_json(judged)} for f in figures]
    measures_now = {f["measure"] for f in new}
    data = {
        **info,
        "seconds": round(seconds),
        "articles_words": archives.WORDS,
        "figures": [f for f in kept if f["measure"] not in measures_now] + new,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny archives, once, no targets judged")
    parser.add_argument("--scale", action="store_true", help="the 1M rows only (P4, recall@3)")
    parser.add_argument("--scale-size", type=int, default=SCALE, help="the archive of --scale (default 1M)")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")  # a library's deprecation notice is not a figure
    sizes = SMOKE if args.smoke else Sizes()
    started = time.perf_counter()
    node_note = processes.install_node_peer()
    if node_note:
        say(f"note: {node_note}")
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        figures = run_scale(sizes, args.scale_size) if args.scale else run_all(sizes, work, node_note)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = archives.CACHE / "smoke.json" if args.smoke else RESULTS / "latest.json"
    report(figures, not args.smoke, time.perf_counter() - started, out, merge=args.scale)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main(sys.argv[1:]))
