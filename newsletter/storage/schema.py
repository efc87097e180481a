"""The database schema: SQLAlchemy Core tables, portable to SQLite and PostgreSQL.

Datetimes are stored as naive UTC and come back timezone-aware.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

SCHEMA_VERSION = 12  # newsletter/storage/migrations.py brings older databases up to it


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, naive UTC in the database."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.astimezone(UTC).replace(tzinfo=None) if value else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=UTC) if value else None


metadata = sa.MetaData()

meta = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
)

articles = sa.Table(
    "articles",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("key", sa.String(1024), nullable=False, unique=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("standfirst", sa.Text, nullable=False),
    sa.Column("standfirst_key", sa.String(40), nullable=False, index=True),
    sa.Column("category", sa.String(255), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("published", UTCDateTime, nullable=False),
    sa.Column("undated", sa.Boolean, nullable=False, default=False),
    # Undated and from a source's first read: stored, never picked as a period's news.
    sa.Column("backlog", sa.Boolean, nullable=False, default=False),
    sa.Column("origin", sa.String(64), nullable=False, default=""),  # [[sources]] name
    sa.Column("image", sa.Text, nullable=False, default=""),
    sa.Column("author", sa.Text, nullable=False, default=""),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("tags", sa.Text, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("first_seen", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_articles_category_published", "category", "published"),
    # Unique URLs at ingest ask which of a batch's URLs are taken: a scan of a 1M archive without it.
    sa.Index("ix_articles_url", "url"),
    # Articles and categories per source (`sources`, and which sources feed a schedule
    # before each send) are read from this index alone, never from the rows.
    sa.Index("ix_articles_origin_category", "origin", "category"),
)

related_refs = sa.Table(
    "related_refs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("article_id", sa.ForeignKey("articles.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("category", sa.String(255), nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("summary_key", sa.String(40), nullable=False, index=True),
    sa.Column("published", sa.Date, nullable=True),
    sa.Column("target_id", sa.ForeignKey("articles.id", ondelete="SET NULL"), nullable=True),
)

issues = sa.Table(
    "issues",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("schedule", sa.String(64), nullable=False),
    sa.Column("period_start", UTCDateTime, nullable=False),
    sa.Column("period_end", UTCDateTime, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # built | skipped | sending | sent
    sa.Column("subject", sa.Text, nullable=False, default=""),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime, nullable=True),
    # When it went to `sending`: the queue lifetime of its retries counts from here.
    sa.Column("queued_at", UTCDateTime, nullable=True),
    # The version of the editor's overrides it was built or sent with (issue_overrides); None: none.
    sa.Column("overrides_version", sa.Integer, nullable=True),
    # One issue per schedule and send time: the key that makes sends happen once.
    sa.UniqueConstraint("schedule", "period_end", name="uq_issue_schedule_period"),
)

# An editor's approval of an issue of an `approval = "required"` schedule (storage/approvals.py).
approvals = sa.Table(
    "approvals",
    metadata,
    sa.Column("issue_id", sa.ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("approved_at", UTCDateTime, nullable=False),
    sa.Column("editor", sa.String(100), nullable=False),
)

# An editor's overrides of the issue going out at (schedule, period_end): every save is a
# new version, never rewritten (storage/overrides.py). `state`: the whole of them as JSON
# (digest/overrides.py `Overrides`: intro, subject, pin, exclude, order).
issue_overrides = sa.Table(
    "issue_overrides",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("schedule", sa.String(64), nullable=False),
    sa.Column("period_end", UTCDateTime, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("editor", sa.String(100), nullable=False),
    sa.Column("saved_at", UTCDateTime, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.UniqueConstraint("schedule", "period_end", "version", name="uq_issue_override_version"),
)

issue_articles = sa.Table(
    "issue_articles",
    metadata,
    sa.Column("issue_id", sa.ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("article_id", sa.ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True),
)


# One row per [[sources]] name: what the last polls found, kept across failures.
sources = sa.Table(
    "sources",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("configured", sa.Text, nullable=False),  # its url or path in newsletter.toml then
    sa.Column("location", sa.Text, nullable=False),  # where it is read: after permanent redirects
    sa.Column("etag", sa.Text, nullable=True),
    sa.Column("last_modified", sa.Text, nullable=True),
    sa.Column("polled_at", UTCDateTime, nullable=True),  # the last attempt
    sa.Column("succeeded_at", UTCDateTime, nullable=True),  # the last poll that read the source
    sa.Column("status", sa.String(16), nullable=False, default="new"),  # new | ok | not-modified | failed
    sa.Column("message", sa.Text, nullable=False, default=""),  # counts, or the failure
)


# An article picture's size, learned once at ingest (declared by the source, else read
# from the file's first bytes); 0 x 0: not known (unreachable, not an image). A build
# reads only this table: an image whose size is not here is left out.
image_sizes = sa.Table(
    "image_sizes",
    metadata,
    sa.Column("url", sa.String(2048), primary_key=True),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    sa.Column("checked_at", UTCDateTime, nullable=False),
)


subscribers = sa.Table(
    "subscribers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(320), nullable=False, unique=True),  # lower-cased
    sa.Column("name", sa.String(255), nullable=False, default=""),
    sa.Column("categories", sa.Text, nullable=False, default="[]"),  # JSON list; [] = all
    # pending | active | paused | unsubscribed | bounced | complained | removed;
    # unsubscribed, bounced and complained are permanent suppressions
    sa.Column("status", sa.String(16), nullable=False, default="active"),
    sa.Column("schedules", sa.Text, nullable=False, default="[]"),  # JSON list; [] = all
    # When the reader last chose categories and schedules themselves (preference centre,
    # signup form): a re-import then keeps them. None: the operator's choice so far.
    sa.Column("chosen_at", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

issue_variants = sa.Table(
    "issue_variants",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("issue_id", sa.ForeignKey("issues.id", ondelete="CASCADE"), nullable=False),
    sa.Column("variant", sa.String(1024), nullable=False),  # the category set, as a key
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("html", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.UniqueConstraint("issue_id", "variant", name="uq_variant"),
)

# Each variant's message body as it goes out, encoded once per issue: the MIME boundary and
# the quoted-printable pieces around the readers' token placeholders (digest/mail.py). Stored
# with the variant's rendering (its `html` is "" until then, and its deliveries are not
# claimable): a resumed send and every worker read it instead of rendering and encoding again.
variant_bodies = sa.Table(
    "variant_bodies",
    metadata,
    sa.Column("variant_id", sa.ForeignKey("issue_variants.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("boundary", sa.String(64), nullable=False),
    sa.Column("pieces", sa.Text, nullable=False),  # JSON list: fixed text, placeholder, fixed ...
)

# `--rate` over every worker together: one row per transport (its scheme, host and port),
# the wall-clock time (epoch seconds) of the next free slot; each message takes one in a
# short transaction of its own (storage/rates.py). A token bucket one message deep.
send_rates = sa.Table(
    "send_rates",
    metadata,
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("next_slot", sa.Float, nullable=False),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("issue_id", sa.ForeignKey("issues.id", ondelete="CASCADE"), nullable=False),
    sa.Column("subscriber_id", sa.ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
    sa.Column("variant_id", sa.ForeignKey("issue_variants.id", ondelete="CASCADE"), nullable=True),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    # pending | sending | sent | failed | unknown | skipped | suppressed | expired
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", sa.Text, nullable=False, default=""),
    sa.Column("claimed_at", UTCDateTime, nullable=True),  # when it went in flight
    # The claimer's own lease, stored with the claim: a resuming sender never guesses it.
    sa.Column("lease_until", UTCDateTime, nullable=True),
    # host:pid:start of the claiming process, so a dead one's rows are taken over at once.
    sa.Column("claimed_by", sa.String(255), nullable=True),
    sa.Column("not_before", UTCDateTime, nullable=True),  # retry backoff
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime, nullable=True),
    # <random.delivery-id@domain>, set by the first claim and kept: a retry of the delivery
    # sends the same Message-ID, and no other project or database ever makes it again.
    sa.Column("message_id", sa.String(320), nullable=True),
    sa.UniqueConstraint("issue_id", "subscriber_id", name="uq_delivery"),
    sa.Index("ix_deliveries_issue_status", "issue_id", "status"),
)


# -- related links: the similarity index kept in the store (newsletter/related/neighbours.py) ----------

# Each hashed term of the articles indexed so far: its document frequency and its newest
# postings, packed (newsletter/related/neighbours.py): the inverted index, one row per term, so a
# batch reads and writes the size of its vocabulary, never of the archive. On SQLite the
# term is the rowid (INTEGER PRIMARY KEY): a short key for rows that carry a blob.
similar_terms = sa.Table(
    "similar_terms",
    metadata,
    sa.Column(
        "term", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=False
    ),
    sa.Column("df", sa.Integer, nullable=False),
    sa.Column("postings", sa.LargeBinary, nullable=False),
)

# Each indexed article's terms as they were posted, packed: an edit takes them back.
similar_articles = sa.Table(
    "similar_articles",
    metadata,
    sa.Column("article_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("terms", sa.LargeBinary, nullable=False),
)

# Each article's most similar articles (both directions of every pair), with the score and
# when it was computed: a build reads its articles' rows with one indexed query.
neighbours = sa.Table(
    "neighbours",
    metadata,
    sa.Column("article_id", sa.ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True),
    # No foreign key: a delete would scan for it; the build's join drops a row whose article is gone.
    sa.Column("neighbour_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("computed_at", UTCDateTime, nullable=False),
    sqlite_with_rowid=False,
)

# The related links an issue went out with, card by card, in order: a rebuild shows them.
issue_links = sa.Table(
    "issue_links",
    metadata,
    sa.Column("issue_id", sa.ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("article_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("position", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("target_id", sa.ForeignKey("articles.id", ondelete="CASCADE"), nullable=False),
)


# -- bounces, complaints and mailto unsubscribes read from the bounce mailbox (delivery/bounces.py) --

# One row per mail acted on, keyed by a digest of its bytes: reading the same mail again
# changes nothing. `kind`: hard | soft | delayed | complaint | unsubscribe.
bounce_reports = sa.Table(
    "bounce_reports",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("mail_key", sa.String(64), nullable=False, unique=True),  # sha256 of the mail
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("delivery_id", sa.ForeignKey("deliveries.id", ondelete="SET NULL"), nullable=True, index=True),
    sa.Column(
        "subscriber_id", sa.ForeignKey("subscribers.id", ondelete="SET NULL"), nullable=True, index=True
    ),
    sa.Column("status_code", sa.String(16), nullable=False, default=""),  # 5.1.1; "" for complaints
    sa.Column("detail", sa.Text, nullable=False, default=""),  # the diagnostic, or what was done
    sa.Column("received_at", UTCDateTime, nullable=False),  # when it was processed
)


# -- signup, double opt-in and the preference centre (newsletter/web/signup.py, preferences.py) --

# One row per consent given on a form: what the person was shown and asked for, and when
# they confirmed it. `ip` is "" when [signup] store_ip is off. The choices (name, categories,
# schedules) take effect only at confirmation.
consents = sa.Table(
    "consents",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "subscriber_id", sa.ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    sa.Column("form", sa.String(64), nullable=False),  # which form: "subscribe", "embed", "import"
    sa.Column("consent_text", sa.Text, nullable=False),
    sa.Column("ip", sa.String(64), nullable=False, default=""),
    sa.Column("name", sa.String(255), nullable=False, default=""),
    sa.Column("categories", sa.Text, nullable=False, default="[]"),
    sa.Column("schedules", sa.Text, nullable=False, default="[]"),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("confirmed_at", UTCDateTime, nullable=True),
)

# Rate limits kept in the store, so they hold across restarts and workers: one row per
# counted event. `key` is a SHA-256 of the IP or address (no personal data kept for it).
# kind: ip | address | confirm-mail.
signup_events = sa.Table(
    "signup_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("key", sa.String(64), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Index("ix_signup_events_kind_key_at", "kind", "key", "at"),
)

# Mails a subscriber gets at most once: "welcome", "latest:<schedule>".
subscriber_notices = sa.Table(
    "subscriber_notices",
    metadata,
    sa.Column("subscriber_id", sa.ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("kind", sa.String(80), primary_key=True),
    sa.Column("sent_at", UTCDateTime, nullable=False),
)


# The outbox: the one-off mails of signup (confirmation, welcome, the latest issue), queued by
# `serve` in the request's own transaction and sent after the answer (newsletter/storage/outbox.py).
# What to say is rendered at sending time from the rows it names; the Message-ID is made at
# queueing and kept for every retry. kind: confirm | welcome | latest (detail: the schedule);
# and signup: a form's signup itself (email, payload), recorded by the drain, so that every
# address costs the request the same work. Its email and payload are blanked once recorded.
# status: queued | sending | sent | failed | unknown. `forget` deletes a subscriber's rows.
outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("detail", sa.String(64), nullable=False, default=""),
    sa.Column(
        "subscriber_id", sa.ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=True, index=True
    ),
    sa.Column("consent_id", sa.ForeignKey("consents.id", ondelete="CASCADE"), nullable=True),
    sa.Column("email", sa.String(320), nullable=False, default=""),  # signup: the address asked
    sa.Column("payload", sa.Text, nullable=False, default=""),  # signup: choices and consent, JSON
    sa.Column("message_id", sa.String(320), nullable=False, default=""),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("not_before", UTCDateTime, nullable=True),  # retry backoff
    sa.Column("lease_until", UTCDateTime, nullable=True),  # a claim a dead process left is taken over
    sa.Column("last_error", sa.Text, nullable=False, default=""),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime, nullable=True),
    sa.Index("ix_outbox_status_not_before", "status", "not_before"),
)


# -- data rights: addresses erased by `subscribers forget`, kept only as a keyed hash --------

# HMAC-SHA256 of the lower-cased address under a random key of this database (meta
# `suppression_key`, made at the first forget): such an address is never imported, signed
# up or mailed again, and the table alone does not say which addresses they were.
forgotten = sa.Table(
    "forgotten",
    metadata,
    sa.Column("address_hash", sa.String(64), primary_key=True),
    sa.Column("forgotten_at", UTCDateTime, nullable=False),
)
