"""The similarity index kept in the store: computed at ingest, read by a build.

Three tables (schema.py): `similar_terms` (document frequency per hashed term),
`similar_postings` (each article's heaviest terms and weights: the inverted
index) and `neighbours` (each article's top-k similar articles with the score
and when it was computed). Indexing a batch, in id order, for each article:

1. its vector (`similar.weigh`) from the frequencies of the articles indexed
   before it, itself included;
2. candidates through the postings of its terms, the newest
   `POSTINGS_PER_TERM` per term (so a common term costs the same at 10k and 1M
   articles), scored by the dot product; the best `k` at or above
   `STORE_FLOOR` are kept;
3. each pair is stored both ways: the new article links back, and the older one
   links forward to it (a build still filters by the issue's moment).

Every step depends only on the articles indexed before, never on where a batch
starts, so `reindex` (all articles again, in id order) ends with the same rows
as the ingests that made them. An edited article is indexed again: its rows and
postings are replaced and it is compared with the whole archive (its document
frequencies count once more until a `reindex`).

Portable SQL (SQLAlchemy Core): the same tables work in PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache, lru_cache
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.compiler import SQLCompiler

from newsletter import similar, words
from newsletter.config import RelatedSettings
from newsletter.schema import articles, meta, neighbours, similar_postings, similar_terms

METHOD = 1  # bump when the scoring changes: a stored index of another method needs `reindex`
STORE_FLOOR = 0.02  # no neighbour row below this score (the lowest min_similarity allowed)
POSTINGS_PER_TERM = 32  # newest postings read per term of an article
TERMS_PER_QUERY = 100  # terms whose postings one statement reads (SQLite allows 500 SELECTs in one)
QUERY_TERMS = similar.TOP_TERMS  # an article's heaviest terms looked up in the postings
BATCH = 2000  # articles per transaction
CHUNK = 500  # bound parameters per IN (...)
PARAMS_KEY = "similar_params"  # meta: the method, k and language the stored index was made with
DOCS_KEY = "similar_docs"  # meta: how many article versions the frequencies count

Progress = Callable[[int, int], None]


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
    vector: similar.Vector  # the whole unit vector; its head is what is stored and compared


# -- parameters ---------------------------------------------------------


def stored_params(conn: Connection) -> Params | None:
    value = conn.scalar(sa.select(meta.c.value).where(meta.c.key == PARAMS_KEY))
    if value is None:
        return None
    data = json.loads(value)
    return Params(int(data["k"]), str(data["language"]), int(data["method"]))


def adopt(engine: Engine, settings: RelatedSettings) -> list[str]:
    """The index keeps the parameters it was made with; a new one takes the settings'.
    Returns a warning when the settings changed since (the stored ones stay in use)."""
    wanted = Params.of(settings)
    with engine.begin() as conn:
        found = stored_params(conn)
        if found is None:
            _set_meta(conn, PARAMS_KEY, wanted.dumps())
            return []
    if found == wanted:
        return []
    return [
        f"related links: the stored index was made with neighbours={found.k}, "
        f"language={found.language or 'unset'} (method {found.method}); "
        f"run `newsletter reindex` to use the settings"
    ]


def _set_meta(conn: Connection, key: str, value: str) -> None:
    if conn.execute(meta.update().where(meta.c.key == key).values(value=value)).rowcount == 0:
        conn.execute(meta.insert().values(key=key, value=value))


# -- indexing -------------------------------------------------------------


def index(engine: Engine, ids: Iterable[int], progress: Progress | None = None) -> int:
    """Index the articles `ids` (new or edited), in id order, a batch per transaction."""
    todo = sorted(set(ids))
    for start in range(0, len(todo), BATCH):
        with engine.begin() as conn:
            _index_batch(conn, todo[start : start + BATCH])
        if progress is not None:
            progress(min(start + BATCH, len(todo)), len(todo))
    return len(todo)


def reindex(engine: Engine, settings: RelatedSettings, progress: Progress | None = None) -> int:
    """Forget the index and make it again from every article, in id order, with the
    settings' parameters: one batch in memory at a time."""
    with engine.begin() as conn:
        for table in (neighbours, similar_postings, similar_terms):
            conn.execute(table.delete())
        _set_meta(conn, PARAMS_KEY, Params.of(settings).dumps())
        _set_meta(conn, DOCS_KEY, "0")
        total = conn.scalar(sa.select(sa.func.count()).select_from(articles)) or 0
    done, last = 0, 0
    while True:
        with engine.begin() as conn:
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


def _index_batch(conn: Connection, ids: Sequence[int]) -> None:
    params = stored_params(conn) or Params()
    _forget(conn, _indexed(conn, ids))
    stop = words.stop_words(params.language)
    docs = [_Doc(r.id, similar.counts(_prose(r), stop), r.updated_at, {}) for r in _texts(conn, ids)]
    stored_df = _frequencies(conn, {t for d in docs for t in d.counts})
    df = dict(stored_df)
    count = int(conn.scalar(sa.select(meta.c.value).where(meta.c.key == DOCS_KEY)) or 0)
    for doc in docs:
        count += 1
        for term in doc.counts:
            df[term] = df.get(term, 0) + 1
        doc.vector = similar.weigh(doc.counts, df, count)
    older = _postings(conn, similar.union_terms(similar.top(d.vector, QUERY_TERMS) for d in docs))
    _insert(conn, neighbours, _neighbour_rows(docs, older, params.k))
    _insert(conn, similar_postings, _posting_rows(docs))
    _write_frequencies(conn, df, stored_df)
    _set_meta(conn, DOCS_KEY, str(count))


def _neighbour_rows(
    docs: Sequence[_Doc], older: Mapping[int, list[tuple[int, float]]], k: int
) -> list[tuple[Any, ...]]:
    """Each document against the stored postings and the batch's earlier documents:
    (article_id, neighbour_id, score, computed_at) both ways."""
    recent: dict[int, list[tuple[int, float]]] = {}  # term → this batch's postings, newest last
    rows: list[tuple[Any, ...]] = []
    for doc in docs:
        query = similar.top(doc.vector, QUERY_TERMS)
        lists = {t: _newest(recent.get(t, []), older.get(t, [])) for t in query}
        for other, score in similar.best(query, lists, k, STORE_FLOOR):
            rows += [(doc.id, other, score, doc.when), (other, doc.id, score, doc.when)]
        for term, weight in similar.top(doc.vector, similar.TOP_TERMS).items():
            recent.setdefault(term, []).append((doc.id, weight))
    return rows


def _newest(batch: list[tuple[int, float]], stored: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """A term's newest `POSTINGS_PER_TERM` postings: the batch's (newer), then the store's."""
    head = batch[: -POSTINGS_PER_TERM - 1 : -1]
    return head + stored[: POSTINGS_PER_TERM - len(head)] if len(head) < POSTINGS_PER_TERM else head


def _posting_rows(docs: Sequence[_Doc]) -> list[tuple[Any, ...]]:
    """(term, article_id, weight) of each document's head."""
    return [(t, d.id, w) for d in docs for t, w in similar.top(d.vector, similar.TOP_TERMS).items()]


def _indexed(conn: Connection, ids: Sequence[int]) -> list[int]:
    """Which of `ids` are indexed already (edited articles)."""
    found: set[int] = set()
    for chunk in _chunks(ids):
        query = sa.select(similar_postings.c.article_id).where(similar_postings.c.article_id.in_(chunk))
        found.update(conn.scalars(query.distinct()))
    return sorted(found)


def _forget(conn: Connection, ids: Sequence[int]) -> None:
    """An edited article's postings and neighbour rows go, both directions of each pair."""
    for chunk in _chunks(ids):
        conn.execute(similar_postings.delete().where(similar_postings.c.article_id.in_(chunk)))
        query = sa.select(neighbours.c.article_id, neighbours.c.neighbour_id)
        pairs = conn.execute(query.where(neighbours.c.article_id.in_(chunk))).all()
        if pairs:
            mirror = neighbours.delete().where(
                neighbours.c.article_id == sa.bindparam("b_other"),
                neighbours.c.neighbour_id == sa.bindparam("b_self"),
            )
            conn.execute(mirror, [{"b_other": other, "b_self": self} for self, other in pairs])
        conn.execute(neighbours.delete().where(neighbours.c.article_id.in_(chunk)))


def _texts(conn: Connection, ids: Sequence[int]) -> list[Any]:
    cols = (articles.c.id, articles.c.title, articles.c.standfirst, articles.c.body, articles.c.updated_at)
    found: list[Any] = []
    for chunk in _chunks(ids):
        found += conn.execute(sa.select(*cols).where(articles.c.id.in_(chunk))).all()
    return sorted(found, key=lambda r: r.id)


def _prose(row: Any) -> str:
    return "\n".join([row.title, row.standfirst, *(text for _, text in json.loads(row.body))])


def _frequencies(conn: Connection, terms: set[int]) -> dict[int, int]:
    found: dict[int, int] = {}
    for chunk in _chunks(sorted(terms)):
        query = sa.select(similar_terms.c.term, similar_terms.c.df).where(similar_terms.c.term.in_(chunk))
        found.update({t: n for t, n in conn.execute(query)})
    return found


def _write_frequencies(conn: Connection, df: Mapping[int, int], stored: Mapping[int, int]) -> None:
    changed = [{"b_term": t, "b_df": n} for t, n in df.items() if t in stored and stored[t] != n]
    added = [{"term": t, "df": n} for t, n in df.items() if t not in stored]
    if changed:
        update = similar_terms.update().where(similar_terms.c.term == sa.bindparam("b_term"))
        conn.execute(update.values(df=sa.bindparam("b_df")), changed)
    if added:
        conn.execute(similar_terms.insert(), added)


def _postings(conn: Connection, terms: set[int]) -> dict[int, list[tuple[int, float]]]:
    """Per term, the newest `POSTINGS_PER_TERM` stored postings: each one range read of the
    (term, article_id) key, `TERMS_PER_QUERY` of them in one statement (UNION ALL)."""
    found: dict[int, list[tuple[int, float]]] = {}
    ordered = sorted(terms)
    for start in range(0, len(ordered), TERMS_PER_QUERY):
        chunk = ordered[start : start + TERMS_PER_QUERY]
        query = _postings_query(len(chunk))
        for term, article_id, weight in _fetch(conn, query, {f"t{n}": t for n, t in enumerate(chunk)}):
            found.setdefault(term, []).append((article_id, weight))
    return found


@cache
def _postings_query(terms: int) -> sa.CompoundSelect[Any]:
    p = similar_postings.c
    parts = [
        sa.select(
            sa.select(p.term, p.article_id, p.weight)
            .where(p.term == sa.bindparam(f"t{n}"))
            .order_by(p.article_id.desc())
            .limit(POSTINGS_PER_TERM)
            .subquery()
        )
        for n in range(terms)
    ]
    return sa.union_all(*parts)


# The hot paths go to the DBAPI cursor: statements compiled by the connection's own dialect
# (so still portable), rows as plain tuples; SQLAlchemy's per-row work was half the time.


def _fetch(conn: Connection, query: sa.sql.ClauseElement, params: dict[str, Any]) -> list[Any]:
    """Rows of a query of integers and floats only (no type needs converting)."""
    compiled = _compiled(conn.dialect, query)
    values = compiled.construct_params(params)  # with the statement's own (LIMIT)
    order = compiled.positiontup
    cursor = conn.connection.cursor()
    try:
        cursor.execute(
            compiled.string, tuple(values[n] for n in order or ()) if compiled.positional else values
        )
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _insert(conn: Connection, table: sa.Table, rows: list[tuple[Any, ...]]) -> None:
    """Many rows, values in the table's column order, each through its type's bind processor."""
    if not rows:
        return
    statement = _insert_statement(table)
    compiled = _compiled(conn.dialect, statement)
    processors = [_memo(c.type.bind_processor(conn.dialect)) for c in table.columns]
    for i, processor in enumerate(processors):  # only the columns that need it (computed_at)
        if processor is not None:
            rows = [(*row[:i], processor(row[i]), *row[i + 1 :]) for row in rows]
    names = [c.name for c in table.columns]
    if compiled.positional:
        position = [names.index(name) for name in compiled.positiontup or ()]
        in_order = position == list(range(len(names)))  # SQLite: the table's own order
        params: list[Any] = rows if in_order else [tuple(row[i] for i in position) for row in rows]
    else:
        params = [dict(zip(names, row, strict=True)) for row in rows]
    cursor = conn.connection.cursor()
    try:
        cursor.executemany(compiled.string, params)
    finally:
        cursor.close()


def _memo(processor: Callable[[Any], Any] | None) -> Callable[[Any], Any] | None:
    """A bind processor called once per distinct value (a batch shares a few `computed_at`)."""
    return lru_cache(maxsize=1024)(processor) if processor is not None else None


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


def read(engine: Engine, ids: Iterable[int], at: datetime, min_score: float) -> dict[int, list[Neighbour]]:
    """The neighbours of `ids` as of `at`, best first: published by `at`, scoring at least
    `min_score`, and computed by `at`, unless the article itself was indexed later (an
    archive loaded after the moment): then its own rows count, not those computed after."""
    target, source = articles.alias("target"), articles.alias("source")
    query = (
        sa.select(neighbours.c.article_id, neighbours.c.neighbour_id, neighbours.c.score, target.c.category)
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
    with engine.connect() as conn:
        for chunk in _chunks(sorted(set(ids))):
            for row in conn.execute(query.where(neighbours.c.article_id.in_(chunk))):
                found.setdefault(row.article_id, []).append(
                    Neighbour(row.neighbour_id, row.score, row.category)
                )
    return found


def counts(engine: Engine) -> tuple[int, int]:
    """(articles indexed, neighbour rows)."""
    with engine.connect() as conn:
        indexed = conn.scalar(sa.select(sa.func.count(sa.distinct(similar_postings.c.article_id)))) or 0
        rows = conn.scalar(sa.select(sa.func.count()).select_from(neighbours)) or 0
    return indexed, rows


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]
