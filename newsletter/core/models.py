"""The newsletter's own data types: small, immutable, and free of I/O.

Stages pass these to each other: readers yield `Article`, selection and
enrichment make a `Digest`, rendering turns it into an `Issue`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Literal
from zoneinfo import ZoneInfo

BlockKind = Literal["paragraph", "subheading"]


class IssueStatus(StrEnum):
    """An issue row: built (a preview or `build`), skipped (nothing new), being sent, sent."""

    BUILT = "built"
    SKIPPED = "skipped"
    SENDING = "sending"
    SENT = "sent"


class DeliveryStatus(StrEnum):
    """A delivery row; see ledger.FINAL and ledger.OPEN for which end an issue."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"  # refused for a reason about the recipient
    UNKNOWN = "unknown"  # the reply after the final dot was lost
    SKIPPED = "skipped"  # nothing in the issue for their categories
    SUPPRESSED = "suppressed"  # unsubscribed or bounced since the snapshot
    EXPIRED = "expired"  # the queue lifetime ran out on server-wide failures
    BOUNCED = "bounced"  # accepted, then a bounce came back (`newsletter bounces`)


class SubscriberStatus(StrEnum):
    PENDING = "pending"  # signed up, not confirmed yet (double opt-in): never mailed an issue
    ACTIVE = "active"
    PAUSED = "paused"  # by the reader, in the preference centre: no issue until resumed
    UNSUBSCRIBED = "unsubscribed"  # permanent
    BOUNCED = "bounced"  # permanent
    COMPLAINED = "complained"  # permanent: marked as spam (an ARF feedback report)
    REMOVED = "removed"  # taken off by the operator; an import brings them back


@dataclass(frozen=True)
class Block:
    """One block of an article body: a paragraph or a short subheading/pull quote."""

    kind: BlockKind
    text: str


@dataclass(frozen=True)
class RelatedRef:
    """An explicit "Related Articles" entry: it names no title or URL, only
    the target's category, its standfirst and its date."""

    category: str
    summary: str
    published: date | None = None


@dataclass(frozen=True)
class Article:
    """An article as a reader found it, ready for the store.

    `published` is timezone-aware (UTC). `category` is "" when the source
    names none and `url` is "" when the site's URL pattern must supply it;
    `ingest.complete` fills both. `undated` marks a first-seen time standing
    in for a missing date, so the store keeps the first one it saw.
    """

    title: str
    published: datetime
    source: str
    standfirst: str = ""
    category: str = ""
    url: str = ""
    body: tuple[Block, ...] = ()
    related: tuple[RelatedRef, ...] = ()
    tags: tuple[str, ...] = ()
    key: str = ""
    undated: bool = False
    # A feed entry's picture (media:content, enclosure, first <img>) and byline, for the template.
    image: str = ""
    # Its size as the source declares it (0: not said); ingest keeps it in the image_sizes table.
    image_width: int = 0
    image_height: int = 0
    author: str = ""
    # The source's own slug (Markdown `slug:`): used by the site's URL pattern instead of the title's.
    slug: str = ""
    # Undated and from a source's first read: the first-seen time is not news, so no issue picks it.
    backlog: bool = False
    # The [[sources]] name it came from; "" for a one-off `ingest`.
    origin: str = ""

    @property
    def text(self) -> str:
        """All prose of the article, for word counts and similarity."""
        return "\n".join([self.title, self.standfirst, *(b.text for b in self.body)])


@dataclass(frozen=True)
class StoredArticle:
    """An article as the store returns it: with its row id and resolved URL."""

    id: int
    article: Article


@dataclass(frozen=True)
class LinkTarget:
    """What a related link needs of an archive article, and no more."""

    id: int
    title: str
    url: str
    published: datetime


@dataclass(frozen=True)
class Link:
    """A related link as shown in the digest: always a title and an absolute URL."""

    title: str
    url: str
    target: int = 0  # the archive article it points at (0: not known), kept with a sent issue


@dataclass(frozen=True)
class Period:
    """What an issue covers: [start, end), end being the send time."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class Schedule:
    """One `schedules/NAME.toml`: what to send, to whom by category, and when."""

    name: str
    title: str
    cron: str
    timezone: str
    categories: tuple[str, ...]
    max_per_category: int = 5
    related_per_article: int = 3
    subject: str = "{{ title }}: {{ lead.title }}"
    template: str = "digest"
    skip_if_empty: bool = True
    lookback: timedelta | None = None
    summary_length: int = 280
    source: str = ""
    catch_up: timedelta | None = None  # None: four of its own periods (periods.CATCH_UP_PERIODS)
    language: str = ""  # BCP 47; "": the site's
    preheader: str = ""  # Jinja; "": render.preheader's default
    approval: str = "auto"  # "required": sent only once an editor approves the issue
    approve_ahead: timedelta = timedelta(hours=24)  # how early `run` builds it for approval

    @property
    def needs_approval(self) -> bool:
        return self.approval == "required"

    @property
    def zone(self) -> ZoneInfo:
        """The schedule's time zone (ZoneInfo caches one instance per key)."""
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class Picture:
    """An article's picture as a template gets it: an https URL, its alt text, and its
    display size (fitted to the email's column, ratio kept) beside the file's own."""

    url: str
    alt: str
    width: int
    height: int
    src_width: int
    src_height: int


@dataclass(frozen=True)
class DigestArticle:
    """An article as the digest presents it."""

    id: int
    title: str
    url: str
    published: datetime
    category: str
    summary: str
    reading_minutes: int
    related: tuple[Link, ...] = ()
    image: Picture | None = None  # None: the source has none, or none safe with a known size


@dataclass(frozen=True)
class Section:
    """One category's articles in a digest, newest first."""

    category: str
    articles: tuple[DigestArticle, ...]


@dataclass(frozen=True)
class Digest:
    """The content of one issue: a schedule's sections for one period, as of `at`."""

    schedule: Schedule
    period: Period
    at: datetime
    sections: tuple[Section, ...]
    # An editor's overrides for this issue (digest/overrides.py): a word of their own above
    # the lead (Markdown), a subject instead of the schedule's, and which version they are.
    intro: str = ""
    subject: str = ""
    overrides_version: int = 0  # 0: none saved

    @property
    def articles(self) -> tuple[DigestArticle, ...]:
        return tuple(a for s in self.sections for a in s.articles)

    @property
    def lead(self) -> DigestArticle | None:
        return self.articles[0] if self.articles else None

    @property
    def is_empty(self) -> bool:
        return not self.articles


@dataclass(frozen=True)
class Issue:
    """A rendered digest: subject, preheader, HTML and text, and what went wrong."""

    digest: Digest
    subject: str
    preheader: str
    html: str
    text: str
    warnings: tuple[str, ...] = field(default=())

    @property
    def html_size(self) -> int:
        return len(self.html.encode("utf-8"))


@dataclass(frozen=True)
class SubscriberRow:
    """One person as a subscribers file (or a test) gives them, before the ledger has them."""

    email: str  # lower-cased: duplicates differing only in case are one subscriber
    name: str = ""
    categories: tuple[str, ...] = ()  # empty: every category of a schedule
    # active, or unsubscribed/bounced as another tool's export said: kept, never mailed
    status: str = "active"


# What a mail of the bounce mailbox is (delivery/bounce_reading.py reads it, the
# suppression ledger acts on it).
HARD, SOFT, DELAYED, COMPLAINT, UNSUBSCRIBE = "hard", "soft", "delayed", "complaint", "unsubscribe"
