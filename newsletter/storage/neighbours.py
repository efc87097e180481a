"""The similarity index kept in the store: computed at ingest, read by a build.

Three tables (schema.py): `similar_terms` (per hashed term: its document
frequency and its newest `POSTINGS_PER_TERM` postings, packed; the inverted
index), `similar_articles` (the terms each article was posted under) and
`neighbours` (each article's top-k similar articles with the score and when it
was computed). Indexing a batch, in id order, for each article:

1. its vector (`similar.weigh`) from the frequencies of the articles indexed
   before it, itself included;
2. candidates through the newest postings of its terms (so a common term costs
   the same at 10k and 1M articles), scored by the dot product; the best `k` at
   or above `STORE_FLOOR` are kept;
3. each pair is stored both ways: the new article links back, and the older one
   links forward to it (a build still filters by the issue's moment);
4. it is posted under its terms, pushing out each term's oldest posting once
   the term holds `POSTINGS_PER_TERM`: no later article could reach it there.

A batch reads and writes one row per term it uses, so the work and the writes
per article are bounded by the vocabulary, not the archive. Every step depends
only on the articles indexed before, never on where a batch starts, so
`reindex` (all articles again, in id order) ends with the same rows as the
ingests that made them. An edited article is indexed again: its neighbour rows
and postings are replaced (a term it leaves holds one posting fewer until new
articles come) and its document frequencies count once more until a `reindex`.

Portable SQL (SQLAlchemy Core): the same tables work in PostgreSQL.
"""

from __future__ import annotations

import bisect
import gc
import itertools
import json
import struct
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.compiler import SQLCompiler

from newsletter.core.config import RelatedSettings
from newsletter.core.models import LinkTarget
from newsletter.related import similar, words
from newsletter.storage.schema import articles, meta, neighbours, similar_articles, similar_terms
from newsletter.storage.store import Store

METHOD = 3  # bump when the scoring changes: a stored index of another method needs `reindex`
STORE_FLOOR = 0.02  # no neighbour row below this score (the lowest min_similarity allowed)
POSTINGS_PER_TERM = 32  # newest postings read per term of an article
BATCH = 2000  # articles per transaction
CHUNK = 500  # bound parameters per IN (...)
PARAMS_KEY = "similar_params"  # meta: the method, k and language the stored index was made with
DOCS_KEY = "similar_docs"  # meta: how many article versions the frequencies count

Progress = Callable[[int, int], None]
Posting = tuple[int, float]  # (article id, weight) under a term


@dataclass(frozen=True)
class Params:
    k: int = 20
    language: str = ""
    method: int = METHOD

    @classmethod
    def of(cls, settings: RelatedSettings) -> Params:
        return cls(settings.neighbours, words.language_code(settings.language) if settings.language else "")

    def dumps(self) -> str:
        return json.dumps({"method": self.method, "k": self.k, "language": self.language}, sort_keys=True)


@dataclass(frozen=True)
class Neighbour:
    target: int
    score: float
    category: str


@dataclass
class _Doc:
    id: int
    counts: dict[int, int]
    when: datetime
    vector: similar.Vector  # its heaviest terms: what is stored and compared


# -- parameters ---------------------------------------------------------


def stored_params(conn: Connection) -> Params | None:
    value = conn.scalar(sa.select(meta.c.value).where(meta.c.key == PARAMS_KEY))
    if value is None:
        return None
    data = json.loads(value)
    return Params(int(data["k"]), str(data["language"]), int(data["method"]))


def adopt(store: Store, settings: RelatedSettings) -> list[str]:
    """The index keeps the parameters it was made with; a new one takes the settings'.
    Returns a warning when the settings changed since (the stored ones stay in use)."""
    wanted = Params.of(settings)
    with store.engine.begin() as conn:
        found = stored_params(conn)
        if found is None:
            _set_meta(conn, PARAMS_KEY, wanted.dumps())
            return []
    if found == wanted:
        return []
    return [
        f"related links: the stored index was made with neighbours={found.k}, "
        f"language={found.language or 'unset'} (method {found.method}, this version's is {METHOD}); "
        f"run `newsletter reindex` to use the settings"
    ]


def _set_meta(conn: Connection, key: str, value: str) -> None:
    if conn.execute(meta.update().where(meta.c.key == key).values(value=value)).rowcount == 0:
        conn.execute(meta.insert().values(key=key, value=value))


# -- indexing -------------------------------------------------------------


def index(conn: Connection, ids: Iterable[int]) -> int:
    """Index the articles `ids` (new or edited), in id order, in the caller's transaction:
    the one that stores them (`Store.upsert`), so no article is kept without its links."""
    todo = sorted(set(ids))
    for start in range(0, len(todo), BATCH):
        _index_batch(conn, todo[start : start + BATCH])
    return len(todo)


def reindex(store: Store, settings: RelatedSettings, progress: Progress | None = None) -> int:
    """Forget the index and make it again from every article, in id order, with the
    settings' parameters: one batch in memory at a time."""
    with store.engine.begin() as conn:
        for table in (neighbours, similar_articles, similar_terms):
            conn.execute(table.delete())
        _set_meta(conn, PARAMS_KEY, Params.of(settings).dumps())
        _set_meta(conn, DOCS_KEY, "0")
        total = conn.scalar(sa.select(sa.func.count()).select_from(articles)) or 0
    done, last = 0, 0
    while True:
        with store.engine.begin() as conn:
            batch = list(
                conn.scalars(
                    sa.select(articles.c.id).where(articles.c.id > last).order_by(articles.c.id).limit(BATCH)
                )
            )
            if not batch:
                break
            _index_batch(conn, batch)
        done, last = done + len(batch), batch[-1]
        if progress is not None:
            progress(done, total)
    return done


@contextmanager
def _collector_paused() -> Iterator[None]:
    """A batch makes a few hundred thousand tuples (postings, rows) and no reference
    cycles: the cyclic collector would walk them again and again, a third of the time of
    unpacking the postings. Refcounting frees them all the same."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _index_batch(conn: Connection, ids: Sequence[int]) -> None:
    with _collector_paused():
        _index(conn, ids)


def _index(conn: Connection, ids: Sequence[int]) -> None:
    params = stored_params(conn) or Params()
    stop = words.stop_words(params.language)
    docs = [_Doc(r.id, similar.counts(_prose(r), stop), r.updated_at, {}) for r in _texts(conn, ids)]
    edited = _forget(conn, ids)
    terms = _Terms.read(
        conn, {t for d in docs for t in d.counts} | {t for old in edited.values() for t in old}
    )
    count = _weigh(docs, terms, _docs_counted(conn))
    terms.unpack({t for d in docs for t in d.vector})
    for article, old in edited.items():
        terms.withdraw(article, old)
    stamp = _bind_processor(conn, neighbours.c.computed_at)
    _insert(conn, neighbours, _neighbour_rows(docs, terms.newest, params.k, stamp))
    terms.write(conn)
    _insert(conn, similar_articles, [(d.id, _pack_terms(list(d.vector))) for d in docs])
    _set_meta(conn, DOCS_KEY, str(count))


def _docs_counted(conn: Connection) -> int:
    """How many article versions the stored frequencies count."""
    return int(conn.scalar(sa.select(meta.c.value).where(meta.c.key == DOCS_KEY)) or 0)


def _weigh(docs: Sequence[_Doc], terms: _Terms, count: int) -> int:
    """Each document's vector from the frequencies of the documents before it and itself;
    returns how many documents the frequencies count now."""
    for doc in docs:
        count += 1
        terms.df.update(doc.counts.keys())  # one more document with each term (counted in C)
        doc.vector = similar.weigh(doc.counts, terms.df, count)
    return count


def _neighbour_rows(
    docs: Sequence[_Doc], newest: dict[int, list[Posting]], k: int, stamp: Callable[[Any], Any]
) -> list[tuple[Any, ...]]:
    """Each document against the newest postings of its terms, the stored ones and the
    batch's earlier documents': (article_id, neighbour_id, score, computed_at) both ways.
    `newest` (per term, newest first) ends holding the batch too."""
    rows: list[tuple[Any, ...]] = []
    for doc in docs:
        when = stamp(doc.when)
        for other, score in similar.best(doc.vector, newest, k, STORE_FLOOR):
            rows += [(doc.id, other, score, when), (other, doc.id, score, when)]
        _post(doc, newest)
    return rows


def _post(doc: _Doc, newest: dict[int, list[Posting]]) -> None:
    """The document into its terms' newest postings (highest id first), each keeping at
    most `POSTINGS_PER_TERM`: the next document of the batch sees it."""
    for term, weight in doc.vector.items():
        found = newest.setdefault(term, [])
        if not found or doc.id > found[0][0]:
            found.insert(0, (doc.id, weight))  # a new article: the newest
        else:
            bisect.insort(found, (doc.id, weight), key=lambda p: -p[0])  # an edited one keeps its place
        if len(found) > POSTINGS_PER_TERM:
            found.pop()


class _Terms:
    """A batch's terms as stored: document frequencies, and the newest postings of the
    terms it looks up (unpacked from their blobs only then); written back at the end."""

    def __init__(self, stored: dict[int, tuple[int, bytes]]) -> None:
        self.stored = stored
        self.df = Counter({t: df for t, (df, _) in stored.items()})
        self.newest: dict[int, list[Posting]] = {}

    @classmethod
    def read(cls, conn: Connection, terms: set[int]) -> _Terms:
        t = similar_terms.c
        stored: dict[int, tuple[int, bytes]] = {}
        for chunk in _chunks(sorted(terms)):
            query = sa.select(t.term, t.df, t.postings).where(t.term.in_(chunk))
            stored.update({term: (df, bytes(blob)) for term, df, blob in conn.execute(query)})
        return cls(stored)

    def unpack(self, terms: Iterable[int]) -> None:
        for term in terms:
            if term not in self.newest:
                row = self.stored.get(term)
                self.newest[term] = list(_PAIR.iter_unpack(row[1])) if row else []

    def withdraw(self, article: int, terms: Sequence[int]) -> None:
        """An edited article's old postings go (the next older ones were not kept: its
        terms hold one posting fewer until new articles come)."""
        self.unpack(terms)
        for term in terms:
            self.newest[term] = [p for p in self.newest[term] if p[0] != article]

    def write(self, conn: Connection) -> None:
        changed, added = [], []
        for term, df in self.df.items():
            found, row = self.newest.get(term), self.stored.get(term)
            blob = _pack_postings(found) if found is not None else row[1] if row else b""
            if row:
                changed.append((df, blob, term))
            else:  # a new term (one outside every head so far is counted, never posted)
                added.append((term, df, blob))
        _execute_many(conn, _TERM_UPDATE, ("b_df", "b_postings", "b_term"), changed)
        _insert(conn, similar_terms, added)


_TERM_UPDATE = (
    similar_terms.update()
    .where(similar_terms.c.term == sa.bindparam("b_term"))
    .values(df=sa.bindparam("b_df"), postings=sa.bindparam("b_postings"))
)


# Packed as little-endian (id, weight) pairs, newest first, and term hashes: the same
# bytes on every machine and in every database.
_PAIR = struct.Struct("<qd")


@cache
def _pairs(n: int) -> struct.Struct:
    return struct.Struct("<" + "qd" * n)


def _pack_postings(postings: list[Posting]) -> bytes:
    return _pairs(len(postings)).pack(*itertools.chain.from_iterable(postings))


def _pack_terms(terms: list[int]) -> bytes:
    return struct.pack(f"<{len(terms)}q", *terms)


def _unpack_terms(blob: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(blob) // 8}q", blob))


def _forget(conn: Connection, ids: Sequence[int]) -> dict[int, list[int]]:
    """Which of `ids` were indexed before (edited articles), with the terms they were
    posted under; their neighbour rows go, both directions of each pair."""
    a = similar_articles.c
    edited: dict[int, list[int]] = {}
    for chunk in _chunks(ids):
        query = sa.select(a.article_id, a.terms).where(a.article_id.in_(chunk))
        edited.update({article: _unpack_terms(bytes(blob)) for article, blob in conn.execute(query)})
    for chunk in _chunks(sorted(edited)):
        conn.execute(similar_articles.delete().where(a.article_id.in_(chunk)))
        query = sa.select(neighbours.c.article_id, neighbours.c.neighbour_id)
        pairs = conn.execute(query.where(neighbours.c.article_id.in_(chunk))).all()
        if pairs:
            mirror = neighbours.delete().where(
                neighbours.c.article_id == sa.bindparam("b_other"),
                neighbours.c.neighbour_id == sa.bindparam("b_self"),
            )
            conn.execute(mirror, [{"b_other": other, "b_self": self} for self, other in pairs])
        conn.execute(neighbours.delete().where(neighbours.c.article_id.in_(chunk)))
    return edited


def _texts(conn: Connection, ids: Sequence[int]) -> list[Any]:
    cols = (articles.c.id, articles.c.title, articles.c.standfirst, articles.c.body, articles.c.updated_at)
    found: list[Any] = []
    for chunk in _chunks(ids):
        found += conn.execute(sa.select(*cols).where(articles.c.id.in_(chunk))).all()
    return sorted(found, key=lambda r: r.id)


def _prose(row: Any) -> str:
    return "\n".join([row.title, row.standfirst, *(text for _, text in json.loads(row.body))])


# The hot path goes to the DBAPI's executemany: statements compiled by the connection's own
# dialect (so still portable), rows as plain tuples; SQLAlchemy's per-row work was half the time.


def _insert(conn: Connection, table: sa.Table, rows: list[tuple[Any, ...]]) -> None:
    """Many rows, values in the table's column order as the driver takes them (a column
    with a bind processor, such as `computed_at`, already through `_bind_processor`)."""
    _execute_many(conn, _insert_statement(table), [c.name for c in table.columns], rows)


def _execute_many(
    conn: Connection, statement: sa.sql.ClauseElement, names: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    """A module-level or cached statement once per row, each row's values in the order of
    its bind parameters' `names`."""
    if not rows:
        return
    compiled = _compiled(conn.dialect, statement)
    if compiled.positional:
        position = [names.index(name) for name in compiled.positiontup or ()]
        in_order = position == list(range(len(names)))
        params: list[Any] = rows if in_order else [tuple(row[i] for i in position) for row in rows]
    else:
        params = [dict(zip(names, row, strict=True)) for row in rows]
    conn.exec_driver_sql(compiled.string, params)  # a DBAPI executemany, errors as SQLAlchemy's


def _bind_processor(conn: Connection, column: sa.Column[Any]) -> Callable[[Any], Any]:
    """The column type's conversion to what the driver takes (identity when it has none):
    through the dialect's own implementation, so SQLite stores SQLAlchemy's text format."""
    processor = column.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    return processor if processor is not None else (lambda value: value)


@cache
def _insert_statement(table: sa.Table) -> sa.Insert:
    return table.insert().values({c.name: sa.bindparam(c.name) for c in table.columns})


_COMPILED: dict[tuple[str, int], SQLCompiler] = {}


def _compiled(dialect: sa.Dialect, statement: sa.sql.ClauseElement) -> SQLCompiler:
    """The statement compiled for this dialect, once (the statements are module-level or
    cached, so their ids are stable)."""
    key = (dialect.name, id(statement))
    if key not in _COMPILED:
        _COMPILED[key] = cast(SQLCompiler, statement.compile(dialect=dialect))
    return _COMPILED[key]


# -- reading --------------------------------------------------------------


def read(
    store: Store,
    ids: Iterable[int],
    at: datetime,
    min_score: float,
    targets: dict[int, LinkTarget] | None = None,
) -> dict[int, list[Neighbour]]:
    """The neighbours of `ids` as of `at`, best first: published by `at`, scoring at least
    `min_score`, and computed by `at`, unless the article itself was indexed later (an
    archive loaded after the moment): then its own rows count, not those computed after.
    `targets`, when given, gets what a link shows of each neighbour (read in the same query)."""
    target, source = articles.alias("target"), articles.alias("source")
    shown = (target.c.title, target.c.url, target.c.published)
    query = (
        sa.select(
            neighbours.c.article_id, neighbours.c.neighbour_id, neighbours.c.score, target.c.category, *shown
        )
        .join(target, target.c.id == neighbours.c.neighbour_id)
        .join(source, source.c.id == neighbours.c.article_id)
        .where(
            target.c.published <= at,
            neighbours.c.score >= min_score,
            sa.or_(neighbours.c.computed_at <= at, neighbours.c.computed_at <= source.c.updated_at),
        )
        .order_by(neighbours.c.article_id, neighbours.c.score.desc(), neighbours.c.neighbour_id.desc())
    )
    found: dict[int, list[Neighbour]] = {}
    with store.engine.connect() as conn:
        for chunk in _chunks(sorted(set(ids))):
            for row in conn.execute(query.where(neighbours.c.article_id.in_(chunk))):
                found.setdefault(row.article_id, []).append(
                    Neighbour(row.neighbour_id, row.score, row.category)
                )
                if targets is not None:
                    targets[row.neighbour_id] = LinkTarget(
                        row.neighbour_id, row.title, row.url, row.published
                    )
    return found


def counts(store: Store) -> tuple[int, int]:
    """(article versions indexed since the last `reindex`, neighbour rows)."""
    with store.engine.connect() as conn:
        indexed = _docs_counted(conn)
        rows = conn.scalar(sa.select(sa.func.count()).select_from(neighbours)) or 0
    return indexed, rows


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]
