"""The issues: one owner for the rows of `issues`, `issue_variants`, `issue_articles`
and `issue_links`. The builder records an issue here, the delivery queue takes it into
`sending` and completes it inside its own transactions (claim_issue, move_issue), the
archive and the scheduler read it back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsletter.core.models import IssueStatus, Period
from newsletter.storage.schema import (
    articles,
    issue_articles,
    issue_links,
    issue_variants,
    issues,
    variant_bodies,
)

# Issues that went (or are going) out: never rewritten, and their articles never repeated.
if TYPE_CHECKING:
    from newsletter.storage.store import Store

GONE_OUT = (IssueStatus.SENDING, IssueStatus.SENT)


@dataclass(frozen=True)
class IssueRecord:
    id: int
    schedule: str
    period: Period
    status: str
    subject: str
    sent_at: datetime | None
    queued_at: datetime | None = None  # when it went to sending; the queue lifetime counts from it
    overrides_version: int | None = None  # the editor's overrides it was built or sent with


@dataclass(frozen=True)
class Variant:
    """One rendering of an issue, for one set of categories."""

    key: str
    subject: str
    html: str
    text: str


@dataclass(frozen=True)
class EncodedBody:
    """A variant's message body encoded once (digest/mail.py): its MIME boundary, and the
    encoded text at even positions with the readers' token placeholders between."""

    boundary: str
    pieces: list[str]


@dataclass(frozen=True)
class IssueHistory:
    """What a schedule's past issues say about the one going out at `end` (read at once):
    where its period may start, which articles went out already, and, if this issue went
    out itself, the links it went out with."""

    last_end: datetime | None  # see last_issue_end
    sent: set[int]  # see sent_article_ids
    gone_out: IssueRecord | None  # the issue at `end`, if it is being sent or was sent
    links: dict[int, list[int]] | None  # its kept links (see issue_links); None if none kept


class Issues:
    """The issue rows of one store."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine

    def record_issue(
        self,
        schedule: str,
        period: Period,
        status: str,
        subject: str,
        article_ids: Sequence[int],
        now: datetime,
        overrides_version: int | None = None,
    ) -> IssueRecord:
        """Record a built or skipped issue; a sent issue is never rewritten."""
        try:
            return self._record_issue(schedule, period, status, subject, article_ids, now, overrides_version)
        except sa.exc.IntegrityError:
            # Another process inserted this (schedule, period end) between our read and our
            # insert: the row exists now, so the second try updates or keeps it.
            return self._record_issue(schedule, period, status, subject, article_ids, now, overrides_version)

    def _record_issue(
        self,
        schedule: str,
        period: Period,
        status: str,
        subject: str,
        article_ids: Sequence[int],
        now: datetime,
        overrides_version: int | None,
    ) -> IssueRecord:
        with self.engine.begin() as conn:
            row = self.issue_row(conn, schedule, period.end)
            if row is None:
                conn.execute(
                    issues.insert().values(
                        schedule=schedule,
                        period_start=period.start,
                        period_end=period.end,
                        status=status,
                        subject=subject,
                        created_at=now,
                        overrides_version=overrides_version,
                    )
                )
                row = self.issue_row(conn, schedule, period.end)
            elif row.status not in GONE_OUT:
                conn.execute(
                    issues.update()
                    .where(issues.c.id == row.id)
                    .values(
                        status=status,
                        subject=subject,
                        period_start=period.start,
                        overrides_version=overrides_version,
                    )
                )
                conn.execute(issue_articles.delete().where(issue_articles.c.issue_id == row.id))
            else:
                return issue_record(row)
            if article_ids:
                conn.execute(
                    issue_articles.insert(),
                    [{"issue_id": row.id, "article_id": i} for i in dict.fromkeys(article_ids)],
                )
            return issue_record(self.issue_row(conn, schedule, period.end))

    def sent_article_ids(self, schedule: str, before: datetime) -> set[int]:
        """Articles of this schedule's issues sent (or being sent) that went out before
        `before`: an issue's own articles never count against it, a rebuild is faithful."""
        with self.engine.connect() as conn:
            return set(conn.scalars(sent_articles(schedule, before)))

    def issues(self, schedule: str | None = None) -> list[IssueRecord]:
        query = sa.select(issues).order_by(issues.c.period_end.desc())
        if schedule is not None:
            query = query.where(issues.c.schedule == schedule)
        with self.engine.connect() as conn:
            return [issue_record(r) for r in conn.execute(query)]

    def issue_article_ids(self, issue_id: int) -> list[int]:
        with self.engine.connect() as conn:
            return list(
                conn.scalars(
                    sa.select(issue_articles.c.article_id).where(issue_articles.c.issue_id == issue_id)
                )
            )

    def issue_links(self, issue_id: int) -> dict[int, list[int]] | None:
        """The related links an issue went out with (article → targets, in order);
        None when none were kept for it."""
        with self.engine.connect() as conn:
            return _links_of(conn, issue_id)

    def issue_history(self, schedule: str, end: datetime) -> IssueHistory:
        """Everything a digest of the issue going out at `end` reads of the issues, in one
        transaction: a send recorded meanwhile shows in all of it or in none."""
        with self.engine.begin() as conn:
            row = self.issue_row(conn, schedule, end)
            gone = issue_record(row) if row is not None and row.status in GONE_OUT else None
            return IssueHistory(
                last_end=conn.scalar(_last_end_query(schedule, end)),
                sent=set(conn.scalars(sent_articles(schedule, end))),
                gone_out=gone,
                links=_links_of(conn, gone.id) if gone is not None else None,
            )

    def keep_issue_links(self, issue_id: int, links: dict[int, list[int]]) -> bool:
        """Keep an issue's related links, once: links already kept are never rewritten."""
        rows = [
            {"issue_id": issue_id, "article_id": article_id, "position": n, "target_id": target}
            for article_id, targets in links.items()
            for n, target in enumerate(targets)
        ]
        if not rows:
            return False
        try:
            with self.engine.begin() as conn:
                held = conn.scalar(sa.select(sa.func.count()).where(issue_links.c.issue_id == issue_id))
                if held:
                    return False
                conn.execute(issue_links.insert(), rows)
        except sa.exc.IntegrityError:  # another process kept them first
            return False
        return True

    def issue(self, schedule: str, end: datetime) -> IssueRecord | None:
        """The issue of `schedule` that goes out at `end`, if one was recorded."""
        with self.engine.connect() as conn:
            row = self.issue_row(conn, schedule, end)
        return issue_record(row) if row is not None else None

    def claim_issue(
        self,
        conn: Connection,
        schedule: str,
        period: Period,
        subject: str,
        now: datetime,
        overrides_version: int | None = None,
    ) -> int | None:
        """Take the issue going out at `period.end` into `sending`, inside the ledger's
        transaction: a built row is taken over, a missing one inserted. It starts with a
        write, so two senders serialise here. Returns the id if ours, None if another's."""
        taken = conn.execute(
            issues.update()
            .where(
                issues.c.schedule == schedule,
                issues.c.period_end == period.end,
                issues.c.status == IssueStatus.BUILT,
            )
            .values(
                status=IssueStatus.SENDING,
                subject=subject,
                period_start=period.start,
                queued_at=now,
                overrides_version=overrides_version,
            )
        )
        row = self.issue_row(conn, schedule, period.end)
        if taken.rowcount == 1:
            conn.execute(issue_articles.delete().where(issue_articles.c.issue_id == row.id))
            return int(row.id)
        if row is not None:
            return None
        result = conn.execute(
            issues.insert().values(
                schedule=schedule,
                period_start=period.start,
                period_end=period.end,
                status=IssueStatus.SENDING,
                subject=subject,
                created_at=now,
                queued_at=now,
                overrides_version=overrides_version,
            )
        )
        key = result.inserted_primary_key
        assert key is not None  # an insert of one row always has one
        return int(key[0])

    def move_issue(
        self, conn: Connection, issue_id: int, from_: Sequence[IssueStatus], to: IssueStatus, **values: Any
    ) -> None:
        """Change an issue's status if it is in one of `from_`, in the caller's transaction."""
        conn.execute(
            issues.update()
            .where(issues.c.id == issue_id, issues.c.status.in_(from_))
            .values(status=to, **values)
        )

    def issue_row_by_id(self, conn: Connection, issue_id: int) -> Any:
        return conn.execute(sa.select(issues).where(issues.c.id == issue_id)).one()

    def issue_row(self, conn: Connection, schedule: str, end: datetime) -> Any:
        """The raw issue row, inside a caller's transaction. Only the store writes issue rows;
        the ledger asks it to, inside its own transactions (claim_issue, move_issue)."""
        return conn.execute(
            sa.select(issues).where(issues.c.schedule == schedule, issues.c.period_end == end)
        ).first()

    def last_issue_end(self, schedule: str, before: datetime) -> datetime | None:
        """The end of this schedule's latest issue that went out (sent, being sent, or
        skipped as empty) before `before`: the next period starts there, so no article
        falls between sends the daemon missed."""
        with self.engine.connect() as conn:
            end: datetime | None = conn.scalar(_last_end_query(schedule, before))
        return end

    def record_skipped(self, schedule: str, period: Period, now: datetime) -> IssueRecord:
        return self.record_issue(schedule, period, "skipped", "", [], now)

    def fill(
        self, conn: Any, issue_id: int, article_ids: Sequence[int], variants: Sequence[Variant]
    ) -> dict[str, int]:
        """A claimed issue's articles and variants, in the queue's transaction: variant ids by key."""
        if article_ids:
            conn.execute(
                issue_articles.insert(),
                [{"issue_id": issue_id, "article_id": a} for a in dict.fromkeys(article_ids)],
            )
        variant_ids = {}
        for v in variants:
            result = conn.execute(
                issue_variants.insert().values(
                    issue_id=issue_id, variant=v.key, subject=v.subject, html=v.html, text=v.text
                )
            )
            variant_ids[v.key] = int(result.inserted_primary_key[0])
        return variant_ids

    def store_rendering(self, variant_id: int, variant: Variant, body: EncodedBody) -> None:
        """A variant recorded before its rendering (html "") gets it, with its encoded body:
        from this commit on its deliveries can be claimed. A variant rendered already (by
        another sender) keeps what it has."""
        with self.engine.begin() as conn:
            done = conn.execute(
                issue_variants.update()
                .where(issue_variants.c.id == variant_id, issue_variants.c.html == "")
                .values(subject=variant.subject, html=variant.html, text=variant.text)
            )
            if done.rowcount == 1:
                _insert_body(conn, variant_id, body)

    def store_body(self, variant_id: int, body: EncodedBody) -> EncodedBody:
        """Keep a variant's encoded body unless one is kept already; the one kept."""
        try:
            with self.engine.begin() as conn:
                _insert_body(conn, variant_id, body)
        except sa.exc.IntegrityError:  # another worker stored it first: theirs goes out
            pass
        found = self.variant(variant_id)[1]
        assert found is not None
        return found

    def variant(self, variant_id: int) -> tuple[Variant, EncodedBody | None]:
        """One variant as stored, and its encoded body (None: not encoded yet)."""
        query = sa.select(issue_variants, variant_bodies.c.boundary, variant_bodies.c.pieces).outerjoin(
            variant_bodies, variant_bodies.c.variant_id == issue_variants.c.id
        )
        with self.engine.connect() as conn:
            r = conn.execute(query.where(issue_variants.c.id == variant_id)).one()
        body = EncodedBody(r.boundary, json.loads(r.pieces)) if r.pieces is not None else None
        return Variant(r.variant, r.subject, r.html, r.text), body

    def unencoded(self, issue_id: int) -> list[int]:
        """Variants rendered but with no encoded body: stored before bodies were (schema 12)."""
        encoded = sa.exists().where(variant_bodies.c.variant_id == issue_variants.c.id)
        query = sa.select(issue_variants.c.id).where(
            issue_variants.c.issue_id == issue_id, issue_variants.c.html != "", ~encoded
        )
        with self.engine.connect() as conn:
            return list(conn.scalars(query))

    def unrendered(self, issue_id: int) -> dict[str, int]:
        """Variants recorded and not rendered yet: their ids by key."""
        query = sa.select(issue_variants.c.variant, issue_variants.c.id).where(
            issue_variants.c.issue_id == issue_id, issue_variants.c.html == ""
        )
        with self.engine.connect() as conn:
            return {key: variant_id for key, variant_id in conn.execute(query)}

    def variants(self, issue_id: int) -> dict[int, Variant]:
        query = sa.select(issue_variants).where(issue_variants.c.issue_id == issue_id)
        with self.engine.connect() as conn:
            return {r.id: Variant(r.variant, r.subject, r.html, r.text) for r in conn.execute(query)}

    def issue_by_id(self, issue_id: int) -> IssueRecord:
        with self.engine.connect() as conn:
            return issue_record(self.issue_row_by_id(conn, issue_id))

    def latest_variant(self, schedule: str, wanted: Sequence[str]) -> Variant | None:
        """The latest sent issue of `schedule` as the variant for `wanted` categories (in
        the schedule's order), as it went out; None if none was sent or that variant was
        never stored (nobody had it, or nothing in it was for them)."""
        with self.engine.connect() as conn:
            issue_id = conn.scalar(
                sa.select(issues.c.id)
                .where(issues.c.schedule == schedule, issues.c.status == IssueStatus.SENT)
                .order_by(issues.c.period_end.desc())
                .limit(1)
            )
            if issue_id is None:
                return None
            present = set(
                conn.scalars(
                    sa.select(articles.c.category)
                    .join(issue_articles, issue_articles.c.article_id == articles.c.id)
                    .where(issue_articles.c.issue_id == issue_id)
                )
            )
            key = "\x1f".join(c for c in wanted if c in present)
            row = conn.execute(
                sa.select(issue_variants).where(
                    issue_variants.c.issue_id == issue_id, issue_variants.c.variant == key
                )
            ).first()
        return Variant(row.variant, row.subject, row.html, row.text) if row is not None and key else None


def _insert_body(conn: Connection, variant_id: int, body: EncodedBody) -> None:
    pieces = json.dumps(body.pieces, ensure_ascii=True)
    conn.execute(variant_bodies.insert().values(variant_id=variant_id, boundary=body.boundary, pieces=pieces))


def issue_record(row: Any) -> IssueRecord:
    return IssueRecord(
        row.id,
        row.schedule,
        Period(row.period_start, row.period_end),
        row.status,
        row.subject,
        row.sent_at,
        row.queued_at or row.created_at,
        row.overrides_version,
    )


def sent_articles(schedule: str, before: datetime) -> sa.Select[Any]:
    """The articles of this schedule's issues that went out before `before` (the archive's
    candidates leave them out)."""
    return (
        sa.select(issue_articles.c.article_id)
        .join(issues)
        .where(issues.c.schedule == schedule, issues.c.status.in_(GONE_OUT), issues.c.period_end < before)
    )


def _last_end_query(schedule: str, before: datetime) -> sa.Select[Any]:
    return sa.select(sa.func.max(issues.c.period_end)).where(
        issues.c.schedule == schedule,
        issues.c.status.in_((*GONE_OUT, IssueStatus.SKIPPED)),
        issues.c.period_end < before,
    )


def _links_of(conn: Connection, issue_id: int) -> dict[int, list[int]] | None:
    query = (
        sa.select(issue_links.c.article_id, issue_links.c.target_id)
        .where(issue_links.c.issue_id == issue_id)
        .order_by(issue_links.c.article_id, issue_links.c.position)
    )
    found: dict[int, list[int]] = {}
    for article_id, target_id in conn.execute(query):
        found.setdefault(article_id, []).append(target_id)
    return found or None
