"""The measurements of `make bench` (benchmarks/bench.py), each returning its figures."""

from __future__ import annotations

import html
import random
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import archives
import processes
import scale
from figures import Figure, Target, interleaved

from newsletter import scaffold
from newsletter.project import Project

ENV = {"NEWSLETTER_SECRET_KEY": "benchmark-secret-key-0123456789"}
AT = archives.AT
HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Sizes:
    small: int = 10_000  # the archive of P1, P1b, preview, `build` RSS
    large: int = 100_000  # P4's and P5b's
    files: int = 10_000  # P5's seed-format text files
    new: int = 1_000  # P5b's new articles
    subscribers: int = 10_000  # `send` RSS
    reps: int = 5  # repetitions of the quick figures
    slow_reps: int = 3  # of the figures that take seconds (P4, P5, P5b, send)


# -- P1, P1b, HTML size: a warm build against npm mjml + juice -------------------------


def render_figures(root: Path, sizes: Sizes, node_note: str) -> list[Figure]:
    project = Project(root, environ={})
    source = _mjml_of(project)
    issue_articles = 0

    def build() -> float:
        nonlocal issue_articles
        started = time.perf_counter()
        made = project.build(archives.SCHEDULE, AT, AT, record=False)
        assert made.issue is not None
        project.parts(made.issue, AT)  # the MIME message, as `build --out` writes it
        issue_articles = len(made.digest.articles)
        return (time.perf_counter() - started) * 1000

    made = project.build(archives.SCHEDULE, AT, AT, record=False)
    assert made.issue is not None
    schedule = project.schedule(archives.SCHEDULE)
    links = project.links(schedule, made.digest.period)

    def render() -> float:
        started = time.perf_counter()
        issue = project.renderer.render(made.digest, project.settings, links)
        project.parts(issue, AT)
        return (time.perf_counter() - started) * 1000

    node_size = 0
    peer = None
    with tempfile.NamedTemporaryFile("w", suffix=".mjml", delete=False) as file:
        file.write(source)
    if not node_note:
        peer = processes.NodePeer(Path(file.name))

    def node() -> float:
        nonlocal node_size
        assert peer is not None
        ms, _, node_size = peer.render()
        return ms

    for _ in range(1 if sizes.reps == 1 else 3):  # warm: caches, templates, the JIT
        build(), render(), peer and node()
    ours_build, node_build = interleaved(sizes.reps, build, node if peer else None)
    ours_render, node_render = interleaved(sizes.reps, render, node if peer else None)
    if peer is not None:
        peer.close()
    project.close()
    Path(file.name).unlink()
    note = f"{issue_articles} articles of ~{archives.WORDS} words"
    peer_name = f"npm mjml {processes.MJML_VERSION} + juice {processes.JUICE_VERSION}, one warm node process"
    return [
        Figure(
            "P1",
            f"warm in-process build + MIME, {sizes.small:,} archive",
            "ms",
            ours_build,
            peer_name if peer else node_note,
            node_build,
            Target(ratio=0.7),
            note,
        ),
        Figure(
            "P1b",
            "render + MIME alone",
            "ms",
            ours_render,
            "same Node" if peer else node_note,
            node_render,
            Target(ratio=0.5),
        ),
        Figure(
            "size",
            "HTML of the issue",
            "KB",
            [made.issue.html_size / 1024],
            "Node's HTML",
            [node_size / 1024] if node_size else [],
            Target(value=102, note="(Gmail clips at 102 KB)"),
        ),
    ]


def _mjml_of(project: Project) -> str:
    """The MJML our build hands to mjml-python (seen on its way in), for the Node peer."""
    import mjml

    seen: list[str] = []
    original = mjml.mjml2html

    def capture(source: str, **options: object) -> str:
        seen.append(source)
        return original(source, **options)  # type: ignore[arg-type]

    mjml.mjml2html = capture
    try:
        project.build(archives.SCHEDULE, AT, AT, record=False)
    finally:
        mjml.mjml2html = original
    return max(seen, key=len)  # the issue: a first build also renders the notices' templates (their check)


# -- P4: a cold build against a larger archive ------------------------------------------

_COLD = """
import sys
from datetime import datetime
from pathlib import Path
from newsletter.project import Project
at = datetime.fromisoformat(sys.argv[2])
Project(Path(sys.argv[1]), environ={}).build(sys.argv[3], at, at, record=False)
"""


def cold_figure(small: Path, large: Path, sizes: Sizes, label: str, reps: int) -> Figure:
    def cold(root: Path) -> float:
        args = [sys.executable, "-c", _COLD, str(root), AT.isoformat(), archives.SCHEDULE]
        return processes.process(args).seconds

    ours, theirs = interleaved(reps, lambda: cold(large), lambda: cold(small))
    return Figure(
        "P4",
        f"cold build (new process), {label} archive",
        "s",
        ours,
        f"the same build, {sizes.small:,} archive",
        theirs,
        Target(ratio=1.2, note="(at 1M)"),
    )


# -- P5: `ingest` as a whole process against a stdlib floor --------------------------------


def ingest_figures(sizes: Sizes, work: Path) -> tuple[Figure, list[float]]:
    folder = archives.seed_files(sizes.files)
    rss: list[float] = []
    cpu: list[float] = []

    def ours() -> float:
        root = work / f"ingest-{len(rss)}"
        scaffold.init(root, name="Bench", base_url="https://example.org")
        run = processes.cli(["--project", str(root), "ingest", str(folder)])
        rss.append(run.rss_mb)
        cpu.append(run.cpu)
        return sizes.files / run.seconds

    def floor() -> float:
        database = work / f"floor-{time.perf_counter_ns()}.db"
        run = processes.process([sys.executable, str(HERE / "floor_ingest.py"), str(folder), str(database)])
        return sizes.files / run.seconds

    mine, theirs = interleaved(sizes.slow_reps, ours, floor)
    note = f"~680-word files; {min(cpu):.1f}–{max(cpu):.1f} CPU-s a run"
    figure = Figure(
        "P5",
        f"`ingest` of {sizes.files:,} seed-format text files, whole CLI process",
        "files/s",
        mine,
        "stdlib floor: same reading, one SQLite INSERT per article",
        theirs,
        Target(ratio=0.5, at_least=True),
        note,
    )
    return figure, rss


# -- P5b: new articles into a large archive against into an empty project ------------------


def new_articles_figure(sizes: Sizes, work: Path) -> Figure:
    large = archives.working_copy(sizes.large, work)
    now = AT + timedelta(days=1)
    runs = [0, 0]

    def into(root: Path, which: int) -> float:
        folder = _new_files(work, runs[which], sizes.new, sizes.large)  # repetition n: set n, both
        runs[which] += 1
        project = Project(root, environ={})
        started = time.perf_counter()
        report = project.ingest([str(folder)], now, scale.CATEGORIES[0])
        rate = report.counts.added / (time.perf_counter() - started)
        project.close()
        assert report.counts.added == sizes.new, report.counts
        return rate

    def empty() -> float:
        root = work / f"empty-{runs[1]}"
        scaffold.init(root, name="Bench", base_url="https://example.org")
        return into(root, 1)

    ours, theirs = interleaved(sizes.slow_reps, lambda: into(large, 0), empty)
    return Figure(
        "P5b",
        f"{sizes.new:,} new articles into a {sizes.large:,} archive, with related-link indexing",
        "articles/s",
        ours,
        "into an empty project",
        theirs,
        Target(ratio=0.8, value=1000, at_least=True),
        f"{archives.WORDS}-word articles",
    )


def _new_files(work: Path, run: int, count: int, size: int) -> Path:
    """The `run`th set of new text files (seed format, ~640 words; the same set for both)."""
    folder = work / f"new-{run}"
    if folder.exists():
        return folder
    folder.mkdir()
    writer, rng = scale.Writer(7), random.Random(1000 + run)
    for n in range(count):
        a = writer.article(rng, size - count + n, size, tag=f"b{run}-", paragraphs=archives.PARAGRAPHS)
        lines = [a.title, a.standfirst, f"Published {a.published:%B %d, %Y}", *(b.text for b in a.body)]
        (folder / f"{n:05d}.txt").write_text("\n".join(lines))
    return folder


# -- the preview: page and both frames against one build -----------------------------------


def preview_figure(root: Path, sizes: Sizes) -> Figure:
    from starlette.testclient import TestClient

    from newsletter.web.preview import create_app

    project = Project(root, environ={})
    page = f"/schedules/{archives.SCHEDULE}?at={AT.isoformat()}"
    with TestClient(create_app(root, clock=lambda: AT), base_url="http://127.0.0.1") as client:

        def view() -> float:
            started = time.perf_counter()
            answer = client.get(page)
            assert answer.status_code == 200, answer.text[:500]
            for frame in re.findall(r'<iframe[^>]*src="([^"]+)"', answer.text):
                assert client.get(html.unescape(frame)).status_code == 200
            return (time.perf_counter() - started) * 1000

        def build() -> float:
            started = time.perf_counter()
            project.build(archives.SCHEDULE, AT, AT, record=False)
            return (time.perf_counter() - started) * 1000

        view(), build()
        ours, theirs = interleaved(sizes.reps, view, build)
    project.close()
    return Figure(
        "view",
        f"preview page view (page and both frames, in-process), {sizes.small:,} archive",
        "ms",
        ours,
        "one build",
        theirs,
        Target(ratio=1.2),
    )
