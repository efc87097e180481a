"""Data rights: `subscribers export` and `subscribers forget`; the keyed hashes of
forgotten addresses that no import or signup takes again."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from newsletter.storage import erasure, schema
from newsletter.storage.schema import (
    bounce_reports,
    deliveries,
    issues,
    subscribers,
)
from newsletter.storage.store import Store


class DataRights:
    def __init__(self, store: Store) -> None:
        self.engine = store.engine

    def export_people(self, email: str | None = None) -> list[dict[str, Any]]:
        """Everything stored about each person (one, given `email`): their subscriber row
        and, from every other table with a `subscriber_id` or `email` column, their rows.
        Forgotten people have nothing left to export."""
        query = sa.select(subscribers).where(subscribers.c.status != FORGOTTEN).order_by(subscribers.c.email)
        if email is not None:
            query = query.where(subscribers.c.email == email.strip().lower())
        with self.engine.connect() as conn:
            return [_person(conn, row) for row in conn.execute(query)]

    def forget(self, email: str, now: datetime) -> Forgotten:
        """Erase an address and the name with it from every table, in one transaction;
        keep its delivery rows anonymised (the counts stay) and its keyed hash, so it is
        never imported, signed up or mailed again. Idempotent. Then the old bytes go too:
        `Forgotten.left` names a file that may still hold them (erasure.scrub)."""
        address = email.strip().lower()
        with erasure.erasing(self.engine) as conn:
            digest = _address_hash(_suppression_key(conn, create=True), address)
            already = conn.scalar(sa.select(sa.func.count()).where(schema.forgotten.c.address_hash == digest))
            if not already:
                conn.execute(schema.forgotten.insert().values(address_hash=digest, forgotten_at=now))
            row = conn.execute(sa.select(subscribers).where(subscribers.c.email == address)).first()
            erased = _erase_subscriber(conn, row, now) if row is not None else 0
            erased += _erase_by_email(conn, address)
        touched = {t.name for column in ("subscriber_id", "email") for t in _other_tables(column)}
        left = erasure.scrub(self.engine, [*OWN_TABLES, *sorted(touched)])
        return Forgotten(subscriber=row is not None, rows=erased, already=bool(already), left=left)

    def is_forgotten(self, email: str) -> bool:
        """Whether `subscribers forget` erased this address: no import or signup takes it."""
        with self.engine.connect() as conn:
            return bool(forgotten_among(conn, [email.strip().lower()]))


# -- data rights ------------------------------------------------------------

FORGOTTEN = "forgotten"  # the subscriber row left by `forget`: no address, no name
SUPPRESSION_KEY = "suppression_key"  # meta: this database's key for the forgotten hashes
OWN_TABLES = ("subscribers", "deliveries", "bounce_reports", "forgotten")  # erased field by field


@dataclass(frozen=True)
class Forgotten:
    """What `forget` did: whether a subscriber had the address, how many rows it erased or
    anonymised, and whether the address was forgotten before."""

    subscriber: bool
    rows: int
    already: bool
    left: str | None = None  # a write-ahead log a reader kept from being emptied


def _suppression_key(conn: Any, create: bool = False) -> bytes | None:
    """This database's random key for address hashes; made (once) when `create`."""
    query = sa.select(schema.meta.c.value).where(schema.meta.c.key == SUPPRESSION_KEY)
    found = conn.scalar(query)
    if found is None and create:
        conn.execute(schema.meta.insert().values(key=SUPPRESSION_KEY, value=secrets.token_hex(32)))
        found = conn.scalar(query)
    return bytes.fromhex(found) if found is not None else None


def _address_hash(key: bytes | None, address: str) -> str:
    assert key is not None
    return hmac.new(key, address.encode("utf-8"), hashlib.sha256).hexdigest()


def forgotten_among(conn: Any, addresses: Sequence[str]) -> set[str]:
    """The addresses among `addresses` (lower-cased) that were forgotten."""
    key = _suppression_key(conn)
    if key is None or not addresses:
        return set()  # nothing was ever forgotten here
    hashes = {_address_hash(key, a): a for a in addresses}
    found: set[str] = set()
    digests = list(hashes)
    for start in range(0, len(digests), 500):
        query = sa.select(schema.forgotten.c.address_hash).where(
            schema.forgotten.c.address_hash.in_(digests[start : start + 500])
        )
        found.update(hashes[d] for d in conn.scalars(query))
    return found


def _other_tables(column: str) -> list[sa.Table]:
    """Tables other than ours with this column: consent records, rate limits, notices..."""
    return [t for t in schema.metadata.sorted_tables if column in t.c and t.name not in OWN_TABLES]


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _rows(conn: Any, query: Any) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in row._mapping.items()} for row in conn.execute(query)]


def _person(conn: Any, row: Any) -> dict[str, Any]:
    """One subscriber's rows in every table, by table name."""
    found: dict[str, Any] = {"subscriber": {k: _plain(v) for k, v in row._mapping.items()}}
    issue = sa.select(issues.c.schedule, issues.c.period_end, issues.c.subject)
    found["deliveries"] = _rows(
        conn,
        sa.select(deliveries, *(c.label(f"issue_{c.name}") for c in issue.selected_columns))
        .join(issues, issues.c.id == deliveries.c.issue_id)
        .where(deliveries.c.subscriber_id == row.id)
        .order_by(deliveries.c.id),
    )
    found["bounce_reports"] = _rows(
        conn,
        sa.select(bounce_reports)
        .where(bounce_reports.c.subscriber_id == row.id)
        .order_by(bounce_reports.c.id),
    )
    for table in _other_tables("subscriber_id"):
        found[table.name] = _rows(conn, sa.select(table).where(table.c.subscriber_id == row.id))
    for table in _other_tables("email"):
        if "subscriber_id" not in table.c:
            found.setdefault(table.name, []).extend(
                _rows(conn, sa.select(table).where(sa.func.lower(table.c.email) == row.email))
            )
    return found


def _erase_subscriber(conn: Any, row: Any, now: datetime) -> int:
    """The subscriber row anonymised (it holds the delivery counts), their deliveries'
    address, name and errors blanked, their bounce reports' diagnostics, their rows in any
    other table deleted. Returns the number of rows changed."""
    changed = conn.execute(
        subscribers.update()
        .where(subscribers.c.id == row.id)
        .values(email=f"{FORGOTTEN}:{row.id}", name="", categories="[]", status=FORGOTTEN, updated_at=now)
    ).rowcount
    changed += conn.execute(
        deliveries.update()
        .where(deliveries.c.subscriber_id == row.id)
        .values(email="", name="", last_error="", updated_at=now)
    ).rowcount
    theirs = sa.select(deliveries.c.id).where(deliveries.c.subscriber_id == row.id)
    changed += conn.execute(
        bounce_reports.update()
        .where(sa.or_(bounce_reports.c.subscriber_id == row.id, bounce_reports.c.delivery_id.in_(theirs)))
        .values(detail="")
    ).rowcount
    for table in _other_tables("subscriber_id"):
        changed += conn.execute(table.delete().where(table.c.subscriber_id == row.id)).rowcount
    return int(changed)


def _erase_by_email(conn: Any, address: str) -> int:
    """Rows that name the address without a subscriber (deliveries of a removed row
    included): deleted, or blanked in our own tables."""
    changed = conn.execute(
        deliveries.update().where(deliveries.c.email == address).values(email="", name="", last_error="")
    ).rowcount
    for table in _other_tables("email"):
        changed += conn.execute(table.delete().where(sa.func.lower(table.c.email) == address)).rowcount
    return int(changed)
