"""The public archive: `/issues/` lists the issues that went out, and Atom feeds of them.

Routes (registered by web/public.py):

- `GET /issues/` every schedule's sent issues, newest first, each linking to its
  browser copy (`/issues/SCHEDULE-YYYY-MM-DD.html`, the file `send` writes).
  `GET /issues` redirects there (relative links need the slash).
- `GET /issues/feed.atom` an Atom feed (RFC 4287) of them all;
  `GET /issues/SCHEDULE/feed.atom` of one schedule.

Only issues that went out are listed: status `sent`, or `sending` again after a
`--retry-*` (it has a `sent_at`), and whose browser copy is on disk. The browser
copy is always the full digest; its subject is read from the `.eml` written beside
it, never from a category variant (the issue row's subject is the first variant's).
Ids are URLs under `[web] public_url`: the same on every request, whatever the Host
header. Everything shown is escaped (subjects come from article titles).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from newsletter.core.errors import NewsletterError
from newsletter.core.models import IssueStatus, Schedule
from newsletter.core.translations import N_, day_date, translations
from newsletter.project import Project, issue_stem
from newsletter.storage.issues import IssueRecord, Issues

ATOM = "http://www.w3.org/2005/Atom"
ATOM_TYPE = "application/atom+xml; charset=utf-8"
SCHEDULE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Characters XML 1.0 cannot carry at all: a title with one would make the feed unparseable.
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
Render = Callable[..., Response]
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Entry:
    """One issue as the archive shows it."""

    schedule: Schedule
    stem: str
    subject: str
    published: datetime  # the period's end: when it was due to go out
    updated: datetime  # when its last delivery finished

    @property
    def day(self) -> str:
        """YYYY-MM-DD in the schedule's zone, as in the file name."""
        return f"{self.published.astimezone(self.schedule.zone):%Y-%m-%d}"

    @property
    def headline(self) -> str:
        """The subject without the schedule's title in front (the page's heading says it)."""
        title = self.schedule.title
        if title and self.subject.startswith(title):
            rest = self.subject[len(title) :].lstrip(" :·|-–—").strip()
            if rest:
                return rest
        return self.subject

    def shown_date(self, language: str = "en") -> str:
        return day_date(self.published.astimezone(self.schedule.zone), language)


@dataclass(frozen=True)
class Section:
    """A schedule's issues, newest first."""

    schedule: Schedule
    entries: tuple[Entry, ...]


def went_out(record: IssueRecord) -> bool:
    """Sent, or being sent again after it was (a `--retry-*` keeps its sent_at)."""
    return record.status == IssueStatus.SENT or (
        record.status == IssueStatus.SENDING and record.sent_at is not None
    )


def clean(text: str) -> str:
    """Text an XML document can hold, on one line."""
    return " ".join(NOT_XML.sub("", text).split())


def eml_subject(path: Path) -> str | None:
    """The Subject of the .eml beside a browser copy (the full digest's), or None."""
    try:
        with path.open("rb") as f:
            headers = BytesHeaderParser(policy=policy.default).parse(f)
    except OSError:
        return None
    subject = headers.get("subject")
    return clean(str(subject)) if subject else None


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Archive:
    """The archive's handlers over one project; `render` is the public app's page renderer."""

    def __init__(self, project: Project, render: Render, clock: Clock) -> None:
        self.project = project
        self.render = render
        self.clock = clock
        self.base = project.settings.public_url.rstrip("/")
        self.folder = project.root / "issues"
        self.language = project.settings.site.language

    def routes(self) -> list[Route]:
        return [
            Route("/issues", self.to_index, methods=["GET"]),
            Route("/issues/", self.index, methods=["GET"]),
            Route("/issues/feed.atom", self.feed, methods=["GET"]),
            Route("/issues/{schedule}/feed.atom", self.schedule_feed, methods=["GET"]),
        ]

    # -- what is listed ----------------------------------------------------

    def sections(self) -> list[Section]:
        """Each schedule with at least one issue out, by name; issues newest first."""
        found: dict[str, list[Entry]] = {}
        schedules: dict[str, Schedule | None] = {}
        for record in Issues(self.project.store).issues():  # newest period end first
            if not went_out(record):
                continue
            if record.schedule not in schedules:
                schedules[record.schedule] = self._schedule(record.schedule)
            schedule = schedules[record.schedule]
            entry = self._entry(schedule, record) if schedule is not None else None
            if entry is not None:
                found.setdefault(record.schedule, []).append(entry)
        return [Section(entries[0].schedule, tuple(entries)) for _, entries in sorted(found.items())]

    def _schedule(self, name: str) -> Schedule | None:
        """The schedule's settings; None once its file is gone or broken (its stem is unknown)."""
        try:
            return self.project.schedule(name)
        except NewsletterError:
            return None

    def _entry(self, schedule: Schedule, record: IssueRecord) -> Entry | None:
        stem = issue_stem(schedule, record.period)
        if not (self.folder / f"{stem}.html").is_file():
            return None  # nothing to link to
        subject = eml_subject(self.folder / f"{stem}.eml") or clean(record.subject) or schedule.title
        end = record.period.end
        return Entry(schedule, stem, subject, end, max(end, record.sent_at or end))

    # -- handlers ----------------------------------------------------------

    def to_index(self, request: Request) -> Response:
        return RedirectResponse("issues/", status_code=308)  # relative: any proxy prefix holds

    def index(self, request: Request) -> Response:
        sections = self.sections()
        response = self.render(
            "archive.html",
            title=N_("Past issues"),
            sections=sections,
            count=sum(len(s.entries) for s in sections),
        )
        response.headers["cache-control"] = "no-cache"
        return response

    def feed(self, request: Request) -> Response:
        entries = [e for s in self.sections() for e in s.entries]
        site = self.project.settings.site.name
        title = translations(self.language).gettext("%(site)s: past issues") % {"site": site}
        return self._atom(title, "issues/feed.atom", entries)

    def schedule_feed(self, request: Request) -> Response:
        name = request.path_params["schedule"]
        if not SCHEDULE_NAME.match(name) or self._schedule(name) is None:
            raise HTTPException(404)
        sections = [s for s in self.sections() if s.schedule.name == name]
        entries = list(sections[0].entries) if sections else []
        schedule = self._schedule(name)
        assert schedule is not None
        site = self.project.settings.site.name
        return self._atom(f"{site}: {schedule.title}", f"issues/{name}/feed.atom", entries)

    def _atom(self, title: str, path: str, entries: Sequence[Entry]) -> Response:
        entries = sorted(entries, key=lambda e: (e.published, e.schedule.name), reverse=True)
        body = atom_feed(
            title=clean(title),
            feed_url=f"{self.base}/{path}",
            archive_url=f"{self.base}/issues/",
            base=self.base,
            author=clean(self.project.settings.site.name),
            author_url=self.project.settings.site.base_url,
            entries=entries,
            now=self.clock(),
            language=self.language,
        )
        return Response(body, media_type=ATOM_TYPE, headers={"cache-control": "no-cache"})


def atom_feed(
    *,
    title: str,
    feed_url: str,
    archive_url: str,
    base: str,
    author: str,
    author_url: str,
    entries: Sequence[Entry],
    now: datetime,
    language: str = "en",
) -> bytes:
    """An Atom 1.0 document: ids are URLs, so they stay the same on every request.
    An empty feed is `updated` now (there is nothing else to date it by)."""
    feed = ET.Element("feed", {"xmlns": ATOM})
    _text(feed, "id", feed_url)
    _text(feed, "title", title)
    _text(feed, "updated", rfc3339(max((e.updated for e in entries), default=now)))
    _link(feed, "self", feed_url, "application/atom+xml")
    _link(feed, "alternate", archive_url, "text/html")
    person = ET.SubElement(feed, "author")
    _text(person, "name", author or "newsletter")
    if author_url.startswith(("http://", "https://")):
        _text(person, "uri", author_url)
    for entry in entries:
        _entry(feed, entry, base, language)
    document: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return document


def _entry(feed: ET.Element, entry: Entry, base: str, language: str) -> None:
    url = f"{base}/issues/{entry.stem}.html"
    item = ET.SubElement(feed, "entry")
    _text(item, "id", url)
    _text(item, "title", entry.subject)
    _text(item, "published", rfc3339(entry.published))
    _text(item, "updated", rfc3339(entry.updated))
    _link(item, "alternate", url, "text/html")
    _text(item, "summary", clean(f"{entry.schedule.title}, {entry.shown_date(language)}"))


def _text(parent: ET.Element, tag: str, text: str, **attributes: Any) -> ET.Element:
    element = ET.SubElement(parent, tag, {k: str(v) for k, v in attributes.items()})
    element.text = text
    return element


def _link(parent: ET.Element, rel: str, href: str, media_type: str) -> None:
    ET.SubElement(parent, "link", {"rel": rel, "href": href, "type": media_type})
