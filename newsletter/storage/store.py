"""The store: the archive's queries over the tables of `schema`.

Portable SQL only (SQLite is the embedded default, PostgreSQL a URL away).
Datetimes are stored as naive UTC and come back timezone-aware.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection as Connection  # re-exported: the transaction callers hold
from sqlalchemy.engine import Engine

from newsletter.core.config import check_database_url
from newsletter.core.errors import StoreError
from newsletter.core.models import Article, LinkTarget, Period, RelatedRef, StoredArticle
from newsletter.core.transport_url import shown
from newsletter.storage import dberrors, issues, migrations
from newsletter.storage.article_rows import (
    CARD_FIELDS,
    article_from,
    article_row,
    card_from,
    content_hash,
    ref_row,
    text_key,
)
from newsletter.storage.schema import (
    SCHEMA_VERSION as SCHEMA_VERSION,  # re-exported: the version a store writes
)
from newsletter.storage.schema import (
    articles,
    meta,
    metadata,
    related_refs,
)

CHUNK = 500  # bound parameters per IN (...) query; SQLite allows 32766
CARD_COLUMNS = tuple(articles.c[name] for name in CARD_FIELDS)
# What an upsert reads of a stored article: id, key, content_hash, published, first_seen, backlog.
ExistingRow = sa.Row[int, str, str, datetime, datetime, bool]


@dataclass
class UpsertCounts:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    written: list[int] = field(default_factory=list)  # ids of the added and updated rows


class Store:
    """The archive of articles and issues behind one SQLAlchemy URL."""

    def __init__(self, url: str) -> None:
        try:  # checked as the settings check it: a driver's import error would say nothing useful
            check_database_url(url)
        except ValueError as e:
            raise StoreError(f"database URL: expected {e}") from e
        try:
            self.engine: Engine = sa.create_engine(with_driver(url))
        except (sa.exc.ArgumentError, ImportError) as e:
            raise StoreError(f"cannot use database URL {shown(url)!r}: {e}") from e
        self.url = url
        self.upgraded_from: str | None = None  # the revision this open upgraded the database from
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        dberrors.install(self.engine)  # disk full, read-only, locked: StoreError naming the database
        self._migrate()

    def close(self) -> None:
        self.engine.dispose()

    def _migrate(self) -> None:
        """Made at head (create_all, stamped), or an older database brought up to it: the
        revisions after its own (Alembic's `alembic_version`, else `meta` schema_version)."""
        try:
            with self.engine.begin() as conn:
                metadata.create_all(conn)
                self.upgraded_from = _bring_up_to_date(conn)
        except sa.exc.OperationalError as e:  # a kind dberrors does not know: still name the database
            raise dberrors.open_error(self.engine, e) from e

    @property
    def schema_version(self) -> int:
        return int(self._meta("schema_version"))

    @property
    def revision(self) -> int:
        """Grows with every change to the articles: a cache key for derived data."""
        return int(self._meta("revision"))

    def _meta(self, key: str) -> str:
        with self.engine.connect() as conn:
            return str(conn.scalar(sa.select(meta.c.value).where(meta.c.key == key)))

    # -- articles ---------------------------------------------------------

    def upsert(
        self,
        batch: Sequence[Article],
        now: datetime,
        index: Callable[[Connection, list[int]], object] | None = None,
        chunk: int | None = None,
    ) -> UpsertCounts:
        """Add new articles, update edited ones, count the unchanged (the last copy of a
        key wins). One transaction per `chunk` articles (all in one without), in which
        `index` (the related links) runs on the ids written: each chunk's articles are kept
        with their links or not at all, and a big ingest never holds the write lock for
        long (a send running beside it waits at most one chunk)."""
        latest = list({a.key: a for a in batch}.values())
        counts = UpsertCounts(unchanged=len(batch) - len(latest))
        step = chunk or len(latest) or 1
        for start in range(0, len(latest), step):
            with self.engine.begin() as conn:
                self._upsert_chunk(conn, latest[start : start + step], now, index, counts)
        return counts

    def _upsert_chunk(
        self,
        conn: Connection,
        batch: Sequence[Article],
        now: datetime,
        index: Callable[[Connection, list[int]], object] | None,
        counts: UpsertCounts,
    ) -> None:
        existing = self._existing(conn, [a.key for a in batch])
        added, changed = _split_batch(batch, existing, counts)
        ids = self._insert_articles(conn, added, now) + self._update_articles(conn, changed, now)
        written = [a for a, _ in added] + [a for a, _ in changed]
        self._write_related(conn, list(zip(ids, written, strict=True)))
        self._resolve_pending(conn, list(zip(ids, written, strict=True)))
        counts.written += ids
        if ids:
            conn.execute(
                meta.update()
                .where(meta.c.key == "revision")
                .values(value=sa.cast(sa.cast(meta.c.value, sa.Integer) + 1, sa.String))
            )
            if index is not None:
                index(conn, ids)

    def _existing(self, conn: Connection, keys: list[str]) -> dict[str, ExistingRow]:
        found: dict[str, ExistingRow] = {}
        cols = (
            articles.c.id,
            articles.c.key,
            articles.c.content_hash,
            articles.c.published,
            articles.c.first_seen,
            articles.c.backlog,
        )
        for chunk in _chunks(keys):
            for row in conn.execute(sa.select(*cols).where(articles.c.key.in_(chunk))):
                found[row.key] = row
        return found

    def adopt_legacy(self, batch: Sequence[Article], place: Callable[[str], str]) -> int:
        """Rows stored under an old rule's key (the source path as typed, or the generated
        URL) take the key of the batch article they hold, so that a re-ingest finds them
        instead of adding a copy. Only for batch keys not stored yet; first the row whose
        source is the same place (`place(source)`, "" for none: the resolved path), else a
        row with the same URL and content. One transaction; returns the rows re-keyed."""
        with self.engine.begin() as conn:
            if conn.scalar(sa.select(meta.c.value).where(meta.c.key == "legacy_keys")) == "0":
                return 0  # a database made under these rules: skip the scan
            stored = self._existing(conn, [a.key for a in batch])
            wanted = list({a.key: a for a in batch if a.key not in stored}.values())
            if not wanted:
                return 0
            cols = (articles.c.id, articles.c.source, articles.c.url, articles.c.content_hash)
            legacy = conn.execute(
                sa.select(*cols)
                .where(sa.or_(articles.c.key == articles.c.source, articles.c.key == articles.c.url))
                .order_by(articles.c.id)
            ).all()
            by_place: dict[str, int] = {}
            by_content: dict[tuple[str, str], int] = {}
            for row in legacy:
                where = place(row.source)
                if where:
                    by_place.setdefault(where, row.id)
                by_content.setdefault((row.url, row.content_hash), row.id)
            moves: dict[int, str] = {}
            for article in wanted:  # the same file first: an edited one is still itself
                found = by_place.get(place(article.source)) if place(article.source) else None
                if found is not None and found not in moves:
                    moves[found] = article.key
            placed = set(moves.values())
            for article in (a for a in wanted if a.key not in placed):
                found = by_content.get((article.url, content_hash(article)))
                if found is not None and found not in moves:
                    moves[found] = article.key
            if moves:
                conn.execute(
                    articles.update()
                    .where(articles.c.id == sa.bindparam("b_id"))
                    .values(key=sa.bindparam("b_key")),
                    [{"b_id": id_, "b_key": key} for id_, key in moves.items()],
                )
        return len(moves)

    def urls_held(self, urls: Iterable[str], keys: Iterable[str] = ()) -> dict[str, str]:
        """URL → key of the stored articles with one of `urls` or one of `keys`."""
        found: dict[str, str] = {}
        cols = (articles.c.url, articles.c.key)
        with self.engine.connect() as conn:
            for column, values in ((articles.c.url, urls), (articles.c.key, keys)):
                for chunk in _chunks(sorted(set(values))):
                    rows = conn.execute(sa.select(*cols).where(column.in_(chunk)))
                    found.update({url: key for url, key in rows})
        return found

    def _insert_articles(
        self, conn: Connection, added: list[tuple[Article, Any]], now: datetime
    ) -> list[int]:
        if not added:
            return []
        rows = [article_row(a, now, now) for a, _ in added]
        # A plain executemany, then the ids by key (unique): on SQLite, RETURNING with the
        # rows' order costs as much again as the insert.
        conn.execute(articles.insert(), rows)
        stored = self._existing(conn, [a.key for a, _ in added])
        return [stored[a.key].id for a, _ in added]

    def _update_articles(
        self, conn: Connection, changed: list[tuple[Article, Any]], now: datetime
    ) -> list[int]:
        if not changed:
            return []
        rows = [{"b_id": old.id, **article_row(a, old.first_seen, now)} for a, old in changed]
        statement = articles.update().where(articles.c.id == sa.bindparam("b_id"))
        conn.execute(statement, rows)
        conn.execute(related_refs.delete().where(related_refs.c.article_id.in_([o.id for _, o in changed])))
        return [old.id for _, old in changed]

    def _write_related(self, conn: Connection, written: list[tuple[int, Article]]) -> None:
        summaries = [r.summary for _, a in written for r in a.related]
        targets = self._standfirst_ids(conn, [text_key(s) for s in summaries])
        rows = [
            ref_row(article_id, position, ref, targets)
            for article_id, a in written
            for position, ref in enumerate(a.related)
        ]
        if rows:
            conn.execute(related_refs.insert(), rows)

    def _standfirst_ids(self, conn: Connection, keys: list[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for chunk in _chunks(sorted(set(keys))):
            query = (
                sa.select(articles.c.standfirst_key, articles.c.id)
                .where(articles.c.standfirst_key.in_(chunk))
                .order_by(articles.c.id)
            )
            found.update({key: id_ for key, id_ in conn.execute(query)})
        return found

    def _resolve_pending(self, conn: Connection, written: list[tuple[int, Article]]) -> None:
        """Related entries that named an article not yet stored point at it now."""
        rows = [{"b_id": id_, "b_key": text_key(a.standfirst)} for id_, a in written if a.standfirst]
        if rows:
            conn.execute(
                related_refs.update()
                .where(
                    related_refs.c.target_id.is_(None),
                    related_refs.c.summary_key == sa.bindparam("b_key"),
                )
                .values(target_id=sa.bindparam("b_id")),
                rows,
            )

    def articles(
        self, *, category: str | None = None, since: datetime | None = None, until: datetime | None = None
    ) -> list[StoredArticle]:
        query = sa.select(articles).order_by(articles.c.published.desc(), articles.c.id.desc())
        if category is not None:
            query = query.where(articles.c.category == category)
        if since is not None:
            query = query.where(articles.c.published >= since)
        if until is not None:
            query = query.where(articles.c.published <= until)
        return self._fetch(query)

    def candidates(
        self, schedule: str, categories: Iterable[str], period: Period, at: datetime, per_category: int
    ) -> list[StoredArticle]:
        """Per category, the newest `per_category` articles published in the period
        and by `at` that no earlier sent issue of `schedule` carried: one query, ranked
        over the category index, then only what a card shows of each (no tags, no
        related entries: a card's links come from `related_targets` and the neighbours)."""
        wanted = list(dict.fromkeys(categories))
        if not wanted:
            return []
        order = (articles.c.published.desc(), articles.c.id.desc())
        ranked = (
            sa.select(
                articles.c.id,
                sa.func.row_number().over(partition_by=articles.c.category, order_by=order).label("rank"),
            )
            .where(
                articles.c.category.in_(wanted),
                articles.c.published >= period.start,
                articles.c.published < period.end,
                articles.c.published <= at,
                articles.c.backlog.is_(False),  # a first read's undated entries are not news
                articles.c.id.not_in(issues.sent_articles(schedule, period.end)),
            )
            .subquery()
        )
        query = (
            sa.select(*CARD_COLUMNS)
            .join(ranked, ranked.c.id == articles.c.id)
            .where(ranked.c.rank <= per_category)
            .order_by(*order)
        )
        with self.engine.connect() as conn:
            return [StoredArticle(r.id, card_from(r)) for r in conn.execute(query)]

    def category_names(self) -> tuple[str, ...]:
        """Every category of the archive, by name (the category index answers it)."""
        query = sa.select(articles.c.category).distinct().order_by(articles.c.category)
        with self.engine.connect() as conn:
            return tuple(conn.scalars(query))

    def link_targets(self, ids: Iterable[int]) -> dict[int, LinkTarget]:
        cols = (articles.c.id, articles.c.title, articles.c.url, articles.c.published)
        found: dict[int, LinkTarget] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(sorted(set(ids))):
                for row in conn.execute(sa.select(*cols).where(articles.c.id.in_(chunk))):
                    found[row.id] = LinkTarget(row.id, row.title, row.url, row.published)
        return found

    def _fetch(self, query: sa.Select[Any]) -> list[StoredArticle]:
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            related = self._related_of(conn, [r.id for r in rows])
        return [StoredArticle(r.id, article_from(r, related.get(r.id, ()))) for r in rows]

    def _related_of(self, conn: Connection, ids: list[int]) -> dict[int, tuple[RelatedRef, ...]]:
        found: dict[int, list[RelatedRef]] = {}
        cols = (
            related_refs.c.article_id,
            related_refs.c.category,
            related_refs.c.summary,
            related_refs.c.published,
        )
        for chunk in _chunks(ids):
            query = (
                sa.select(*cols)
                .where(related_refs.c.article_id.in_(chunk))
                .order_by(related_refs.c.article_id, related_refs.c.position)
            )
            for row in conn.execute(query):
                found.setdefault(row.article_id, []).append(
                    RelatedRef(row.category, row.summary, row.published)
                )
        return {k: tuple(v) for k, v in found.items()}

    def related_targets(
        self, ids: Iterable[int], targets: dict[int, LinkTarget] | None = None
    ) -> dict[int, list[int]]:
        """Each article's resolved explicit related entries, in the source's order;
        `targets`, when given, gets what a link shows of each (read in the same query)."""
        refs, target = related_refs.c, articles.c
        query = (
            sa.select(refs.article_id, refs.target_id, target.title, target.url, target.published)
            .join(articles, articles.c.id == refs.target_id)
            .order_by(refs.article_id, refs.position)
        )
        found: dict[int, list[int]] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(sorted(set(ids))):
                for row in conn.execute(query.where(refs.article_id.in_(chunk))):
                    found.setdefault(row.article_id, []).append(row.target_id)
                    if targets is not None:
                        targets[row.target_id] = LinkTarget(row.target_id, row.title, row.url, row.published)
        return found

    def related_counts(self) -> tuple[int, int]:
        """(resolved, unresolved) explicit related entries."""
        with self.engine.connect() as conn:
            total = conn.scalar(sa.select(sa.func.count()).select_from(related_refs)) or 0
            open_ = (
                conn.scalar(
                    sa.select(sa.func.count())
                    .select_from(related_refs)
                    .where(related_refs.c.target_id.is_(None))
                )
                or 0
            )
        return total - open_, open_


def stored_revision(url: str) -> str | None:
    """`db current`: the revision of the database at `url`, read without upgrading it
    (None: no newsletter database there yet; a missing SQLite file is not made)."""
    check_database_url(url)
    engine = sa.create_engine(with_driver(url))
    if engine.url.get_backend_name() == "sqlite" and not Path(engine.url.database or "").is_file():
        return None
    try:
        with engine.connect() as conn:
            return migrations.stored(conn)
    except sa.exc.OperationalError as e:
        raise dberrors.open_error(engine, e) from e
    finally:
        engine.dispose()


def with_driver(url: str) -> str:
    """`postgresql://` is psycopg 3, the driver installed with newsletter (SQLAlchemy's own
    default would be psycopg2); a URL naming its driver is left as it is."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme) :]
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (preview) never block the writer
    # In WAL mode NORMAL keeps every commit through a process crash (SIGKILL);
    # only a power cut may lose the last few. FULL would fsync twice per delivery.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    # A freed cell's bytes zeroed in the page being written anyway (no extra I/O): an old
    # version of an updated row never lingers in a page (erasure.py: ON for a forget).
    cursor.execute("PRAGMA secure_delete=FAST")
    cursor.close()


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _split_batch(
    batch: Sequence[Article], existing: dict[str, Any], counts: UpsertCounts
) -> tuple[list[tuple[Article, Any]], list[tuple[Article, Any]]]:
    """Sort a batch of distinct keys into new and changed articles, counting each."""
    added, changed = [], []
    for article in batch:
        old = existing.get(article.key)
        if old is not None and article.undated:
            # Keep the first-seen time, and whether that was a first read's backlog.
            article = replace(article, published=old.published, backlog=old.backlog)
        if old is None:
            added.append((article, None))
        elif old.content_hash != content_hash(article):
            changed.append((article, old))
        else:
            counts.unchanged += 1
    counts.added += len(added)
    counts.updated += len(changed)
    return added, changed


__all__ = ["Store", "UpsertCounts", "text_key", "date"]


def _bring_up_to_date(conn: Connection) -> str | None:
    """The revision the database was upgraded from (None: made now, or already at head)."""
    version = conn.scalar(sa.select(meta.c.value).where(meta.c.key == "schema_version"))
    if version is None:
        conn.execute(
            meta.insert(),
            [
                {"key": "schema_version", "value": str(SCHEMA_VERSION)},
                {"key": "revision", "value": "0"},
                # Made with file keys: no row of an older identity rule to adopt.
                {"key": "legacy_keys", "value": "0"},
            ],
        )
        migrations.stamp(conn)
        return None
    found = migrations.current(conn)
    if found == migrations.HEAD:  # every open but the first after an upgrade: no Alembic import
        return None
    if int(version) > SCHEMA_VERSION or (found is not None and not migrations.known(found)):
        raise StoreError(
            f"database schema version {version} (revision {found or '-'}) is newer than this "
            f"program's {SCHEMA_VERSION} ({migrations.HEAD})",
            "Upgrade newsletter.",
        )
    start = found or migrations.revision_id(int(version))  # from before Alembic: stamped there
    ran = migrations.upgrade(conn, start)
    conn.execute(meta.update().where(meta.c.key == "schema_version").values(value=str(SCHEMA_VERSION)))
    return start if ran else None
