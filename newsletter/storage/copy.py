"""`newsletter db copy --to URL`: a project's whole database copied to an empty one (a
SQLite project moving to PostgreSQL), verified before it is committed.

The target's schema is made at head and every table copied in dependency order, in
batches, inside one transaction on the target; the source is read in one transaction (a
consistent snapshot while `serve` or `run` keep writing). Before the commit each table's
row count and checksum are compared on both sides; a difference, or any error, rolls the
target back to empty. The checksum is the sum (mod 2**256) of a SHA-256 of each row's
values as SQLAlchemy returns them, normalised (datetimes in UTC, bytes, floats by repr):
the same rows give the same sum on either database whatever order each returns them in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsletter.core.errors import StoreError
from newsletter.core.transport_url import shown
from newsletter.storage import dberrors, migrations
from newsletter.storage.schema import metadata
from newsletter.storage.store import Store, with_driver

BATCH = 1000  # rows read and inserted at a time: memory stays flat at any archive size


@dataclass(frozen=True)
class TableCheck:
    """One table as read on each side: its row count and checksum."""

    name: str
    rows: int
    checksum: str
    target_rows: int
    target_checksum: str

    @property
    def same(self) -> bool:
        return (self.rows, self.checksum) == (self.target_rows, self.target_checksum)


class CopyError(StoreError):
    """The copy was refused or failed; the target is left as it was."""


def copy_database(source: Store, target_url: str, batch: int = BATCH) -> list[TableCheck]:
    """Copy every table of `source` into the empty database at `target_url`; the checks,
    one a table. CopyError (nothing written) for a target that is not empty, or a copy
    whose counts or checksums differ."""
    engine = _engine(target_url)
    try:
        with source.engine.connect() as src, src.begin(), engine.begin() as dst:
            _refuse_non_empty(dst, target_url)
            metadata.create_all(dst)
            migrations.stamp(dst)
            checks = [_copy_checked(src, dst, table, batch, target_url) for table in metadata.sorted_tables]
            _advance_sequences(dst)
            if bad := [c.name for c in checks if not c.same]:
                raise CopyError(f"copy to {shown(target_url)} differs in {', '.join(bad)}; nothing kept")
        return checks
    except sa.exc.OperationalError as e:
        raise dberrors.open_error(engine, e) from e
    finally:
        engine.dispose()


def _engine(url: str) -> sa.Engine:
    try:
        engine = sa.create_engine(with_driver(url))
    except (sa.exc.ArgumentError, ImportError) as e:
        raise CopyError(f"cannot use database URL {shown(url)!r}: {e}") from e
    dberrors.install(engine)
    return engine


def _refuse_non_empty(conn: Connection, url: str) -> None:
    tables = sorted(sa.inspect(conn).get_table_names())
    if tables:
        listed = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
        raise CopyError(
            f"{shown(url)} is not empty ({len(tables)} tables: {listed}); nothing copied",
            "Copy into a new, empty database (e.g. `createdb newsletter`), or drop this one's tables.",
        )


def _copy_checked(src: Connection, dst: Connection, table: sa.Table, batch: int, url: str) -> TableCheck:
    """One table copied; a row the target refuses (a value too long for PostgreSQL's
    column, say) is one line naming the table, and the whole copy is rolled back."""
    try:
        return _copy_table(src, dst, table, batch)
    except sa.exc.DBAPIError as e:
        reason = str(e.orig).strip().splitlines()[0] if e.orig else str(e)
        raise CopyError(
            f"copy to {shown(url)} failed in table {table.name}: {reason}; nothing kept",
            "Fix the row it names in the source and copy again (the target is still empty).",
        ) from None


def _copy_table(src: Connection, dst: Connection, table: sa.Table, batch: int) -> TableCheck:
    if table.name == "meta":  # the target's own rows, written by its creation: the source's win
        dst.execute(table.delete())
    rows, total = 0, 0
    for chunk in _read(src, table, batch):
        dst.execute(table.insert(), [dict(r._mapping) for r in chunk])
        rows += len(chunk)
        total += sum(_row_hash(r) for r in chunk)
    target_rows, target_total = 0, 0
    for chunk in _read(dst, table, batch):
        target_rows += len(chunk)
        target_total += sum(_row_hash(r) for r in chunk)
    return TableCheck(table.name, rows, _digest(total), target_rows, _digest(target_total))


def _read(conn: Connection, table: sa.Table, batch: int) -> Iterator[list[sa.Row[Any]]]:
    query = sa.select(table).order_by(*table.primary_key.columns).execution_options(yield_per=batch)
    result = conn.execute(query)
    for chunk in result.partitions(batch):
        yield list(chunk)


def _row_hash(row: sa.Row[Any]) -> int:
    digest = hashlib.sha256("\x1f".join(_normal(v) for v in row).encode("utf-8", "surrogatepass"))
    return int.from_bytes(digest.digest(), "big")


def _normal(value: object) -> str:
    """One spelling per value whichever database returned it."""
    if value is None:
        return "\x00"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _digest(total: int) -> str:
    return f"{total % 2**256:064x}"[:16]


def _advance_sequences(conn: Connection) -> None:
    """Rows came with their ids: PostgreSQL's id sequences start after the highest, so the
    next row a command adds does not collide (SQLite takes the next id by itself)."""
    if conn.dialect.name != "postgresql":
        return
    for table in metadata.sorted_tables:
        for column in _serial_columns(table.primary_key.columns):
            conn.execute(
                sa.text(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', '{column.name}'), "
                    f"COALESCE(MAX({column.name}), 1), MAX({column.name}) IS NOT NULL) FROM {table.name}"
                )
            )


def _serial_columns(columns: Iterable[sa.Column[Any]]) -> list[sa.Column[Any]]:
    keys = list(columns)
    return [
        c
        for c in keys
        if len(keys) == 1
        and c.autoincrement is not False
        and not c.foreign_keys
        and isinstance(c.type, sa.Integer)
    ]
