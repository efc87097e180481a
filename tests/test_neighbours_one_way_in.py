"""One way into the archive: `ingest`, `fetch` and the daemon's polls store articles
through the same function, which indexes them with the project's `[related]` settings
and records those settings. Real projects, real SQLite files, a folder source."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from newsletter import scaffold, scheduler
from newsletter.project import Project
from newsletter.storage import neighbours
from newsletter.storage.schema import articles, meta
from newsletter.storage.schema import neighbours as neighbour_rows
from tests.conftest import CliRunnerForProject, write_article

SETTINGS = """
[related]
neighbours = 5
language = "de"

[[sources]]
name = "posts"
path = "posts"
category = "Schlaf"
"""
# German stop words (der, die, und, nicht, ...) weigh only without language = "de".
WORDS = ["Schlaf", "Traum", "Nacht", "Ruhe", "Melatonin", "Rhythmus", "Mittagsschlaf", "Bett"]
FILLER = "der die und das nicht mit auf"


def project_root(tmp_path: Path, name: str) -> Path:
    """A project with `[related] neighbours = 5, language = "de"`, a folder source and
    ten related articles in it (so each has more than five neighbours)."""
    root = tmp_path / name
    scaffold.init(root, name="Schlafbrief", base_url="https://example.org")
    with (root / "newsletter.toml").open("a") as f:
        f.write(SETTINGS)
    for n in range(10):
        near = " ".join(WORDS[(n + k) % len(WORDS)] for k in range(4))
        text = f"{near} {FILLER * (n % 3 + 1)} {near.lower()} Notiz {n}."
        write_article(
            root / "posts",
            f"p{n}.txt",
            f"Schlafgeschichte {n}",
            f"November {10 + n}, 2026",
            body=[text, text],
        )
    return root


def index_of(root: Path) -> tuple[str | None, set[tuple[str, str, float]]]:
    """The recorded index settings and every neighbour row, by the articles' URLs."""
    project = Project(root, environ={})
    try:
        source, target = articles.alias(), articles.alias()
        query = (
            sa.select(source.c.url, target.c.url, neighbour_rows.c.score)
            .join(source, source.c.id == neighbour_rows.c.article_id)
            .join(target, target.c.id == neighbour_rows.c.neighbour_id)
        )
        with project.store.engine.connect() as conn:
            params = conn.scalar(sa.select(meta.c.value).where(meta.c.key == neighbours.PARAMS_KEY))
            found = {(a, b, round(s, 9)) for a, b, s in conn.execute(query)}
    finally:
        project.close()
    return params, found


def test_fetch_first_indexes_and_records_as_ingest_first(tmp_path: Path):
    by_ingest, by_fetch, by_daemon = (project_root(tmp_path, n) for n in ("ingest", "fetch", "daemon"))
    ingested = CliRunnerForProject(by_ingest)("ingest", str(by_ingest / "posts"), "--category", "Schlaf")
    assert ingested.exit_code == 0, ingested.output
    fetched = CliRunnerForProject(by_fetch)("fetch")
    assert fetched.exit_code == 0, fetched.output
    scheduler.scheduled_poll(by_daemon, "weekly")  # the daemon's poll before a send

    params, rows = index_of(by_ingest)
    assert params == neighbours.Params(k=5, language="de").dumps()
    newest = "https://example.org/schlaf/schlafgeschichte-9"  # indexed last: its own top 5 only
    assert sum(1 for source, _, _ in rows if source == newest) == 5
    assert index_of(by_fetch) == (params, rows)
    assert index_of(by_daemon) == (params, rows)
    # Settings recorded by the fetch are the project's: a later ingest has nothing to warn about.
    again = CliRunnerForProject(by_fetch)("ingest", str(by_fetch / "posts"), "--category", "Schlaf")
    assert "related links" not in again.output + again.stderr
