"""A project on disk: settings, schedules, templates and the store, joined
into the operations the commands and the preview call.

Opening a project reads its settings and nothing else: each operation imports
the stages it runs (reading, selection with APScheduler, rendering with Jinja2,
mjml and premailer), so `newsletter articles` loads none of them."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from newsletter.core import config, schedules
from newsletter.core.models import Digest, Issue, IssueStatus, LinkTarget, Period, Schedule, StoredArticle
from newsletter.core.output import write_files
from newsletter.core.theme import contrast_warnings
from newsletter.digest import enrich
from newsletter.digest.check import check_issue
from newsletter.digest.enrich import Candidate
from newsletter.storage import image_sizes, neighbours
from newsletter.storage.issues import GONE_OUT, IssueRecord, Issues
from newsletter.storage.overrides import IssueOverrides
from newsletter.storage.store import Store

if TYPE_CHECKING:
    from newsletter.digest.render import Links, Renderer
    from newsletter.sources.ingest import IngestReport

# How many similar articles a card offers the issue's link sharing (`enrich.assign`):
# enough that 3 survive the filters (self, same issue, future) and the other cards.
SIMILAR_POOL = 40
ALL_CATEGORIES = "*"  # in a schedule: every category of the archive


@dataclass
class Build:
    """The outcome of building one schedule's issue as of a moment."""

    schedule: Schedule
    period: Period
    at: datetime
    digest: Digest
    issue: Issue | None
    files: dict[str, Path] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # about the schedule, not the email

    @property
    def skipped(self) -> bool:
        return self.issue is None


class Project:
    """One newsletter project directory."""

    def __init__(self, root: Path, environ: dict[str, str] | None = None) -> None:
        self.root = root.resolve()
        self.environ = dict(os.environ if environ is None else environ)
        self.settings = config.load_settings(self.root, self.environ)
        self._store: Store | None = None
        self._categories: tuple[int, tuple[str, ...]] | None = None

    @cached_property
    def renderer(self) -> Renderer:
        """The project's templates, then the bundled ones."""
        from newsletter.digest.render import Renderer, default_templates

        return Renderer([self.root / "templates", default_templates()])

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.database_url)
        return self._store

    @property
    def database_url(self) -> str:
        """SQLite paths are relative to the project, not to the working directory."""
        url = self.settings.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url[len(prefix) :].startswith(("/", ":memory:")):
            return prefix + str(self.root / url[len(prefix) :])
        return url

    def transport_url(self, override: str | None = None) -> str:
        """--transport, else [email] transport; a relative file: folder is in the project."""
        url = override or self.settings.email.transport
        if url.startswith("file:") and not url.startswith("file:/"):
            return f"file:{self.root / url[len('file:') :]}"
        return url

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    def schedules(self) -> list[Schedule]:
        return [self._resolved(s) for s in schedules.load_schedules(self.root)]

    def schedule(self, name: str) -> Schedule:
        return self._resolved(schedules.load_schedule(self.root, name))

    def _resolved(self, schedule: Schedule) -> Schedule:
        """`categories = ["*"]` is every category the archive has, after any named ones."""
        if ALL_CATEGORIES not in schedule.categories:
            return schedule
        named = [c for c in schedule.categories if c != ALL_CATEGORIES]
        every = dict.fromkeys([*named, *self.categories()])
        return replace(schedule, categories=tuple(every))

    def categories(self) -> tuple[str, ...]:
        """The archive's categories, read again only when the archive changed: every
        build, send and preview page asks (for "*" and for the warnings)."""
        revision = self.store.revision
        if self._categories is None or self._categories[0] != revision:
            self._categories = (revision, self.store.category_names())
        return self._categories[1]

    def _shown(self, schedule: Schedule) -> str:
        """The schedule's file as the project knows it: schedules/NAME.toml."""
        source = Path(schedule.source) if schedule.source else None
        if source is None or not source.is_relative_to(self.root):
            return schedule.source or schedule.name
        return str(source.relative_to(self.root))

    def category_warnings(self, schedule: Schedule) -> list[str]:
        """A named category with no article ever stored is almost always a typo, and
        makes the first real issue empty without a word: say so."""
        stored = self.categories()
        known = ", ".join(stored) or "none yet"
        return [
            f"{self._shown(schedule)}: category {c!r} has no articles in the archive (known: {known})"
            for c in schedule.categories
            if c not in stored
        ]

    def ingest(self, sources: Iterable[str], now: datetime, category: str | None = None) -> IngestReport:
        """A one-off import; stored, like every poll's articles, by `ingest.store_entries`."""
        from newsletter.sources.ingest import ingest

        warnings: list[str] = []
        if category is not None:
            category, warnings = as_stored(category, self.categories())
        report = ingest(self.store, sources, self.settings.site, self.settings.related, now, category)
        report.warnings += warnings
        return report

    def reindex(self, progress: neighbours.Progress | None = None) -> int:
        """Every article's neighbours again, with the settings' parameters."""
        return neighbours.reindex(self.store, self.settings.related, progress)

    def period(self, schedule: Schedule, at: datetime) -> Period:
        """The period of the issue going out at the next fire time: from the end of the
        schedule's last issue that went out, when sends were missed since."""
        from newsletter.digest import selection as select

        last_end = Issues(self.store).last_issue_end(schedule.name, select.send_time(schedule, at))
        return select.period_for(schedule, at, last_end)

    def left_out(self, schedule: Schedule, period: Period) -> str | None:
        """One line when the period, bounded by `catch_up` (or `lookback`), starts after the
        end of the schedule's last issue that went out: what it leaves out, and why."""
        from newsletter.digest import selection as select

        return select.left_out(schedule, period, Issues(self.store).last_issue_end(schedule.name, period.end))

    def digest(self, schedule: Schedule, at: datetime, edited: bool = True) -> Digest:
        """The issue going out after `at`, as it reads now: with the latest version of the
        editor's overrides of it (`edited=False`: as selection picked it, for the desk to
        offer every article). Only reads: whoever records the issue as gone out keeps its
        links (`keep_links`), so its rebuilds show them."""
        from newsletter.digest import overrides as edits
        from newsletter.digest import selection as select

        past = Issues(self.store).issue_history(schedule.name, select.send_time(schedule, at))
        period = select.period_for(schedule, at, past.last_end)
        candidates = self.store.candidates(
            schedule.name, schedule.categories, period, at, schedule.max_per_category
        )
        # The query already narrows to unsent articles (for speed); `pick_articles` is where
        # the rules live and are property-tested, so it gets the sent set too.
        sections = select.pick_articles(schedule, period, at, candidates, past.sent)
        saved = IssueOverrides(self.store).latest(schedule.name, period.end) if edited else None
        if saved is not None:
            sections = edits.arrange(sections, saved.overrides)
        cards = [c for _, chosen in sections for c in chosen]
        archive: dict[int, LinkTarget] = {}  # filled by the queries that find the candidates
        related = self.related_candidates(cards, at, past.links or {}, archive)
        missing = {c.target for found in related.values() for c in found} - archive.keys()
        archive.update(self.store.link_targets(missing) if missing else {})  # links kept by a sent issue
        sizes = image_sizes.known(self.store, {c.article.image for c in cards if c.article.image})
        digest = enrich.enrich(schedule, period, at, sections, related, archive, sizes)
        return digest if saved is None else edits.apply(digest, saved.overrides, saved.version)

    def related_candidates(
        self,
        cards: list[StoredArticle],
        at: datetime,
        kept: dict[int, list[int]],
        targets: dict[int, LinkTarget] | None = None,
    ) -> dict[int, list[Candidate]]:
        """Each card's related candidates: the links it went out with when its issue was
        sent; else its explicit entries, then its stored neighbours as of `at`. `targets`
        gets what a link shows of the explicit and similar ones (the same queries)."""
        fresh = [c.id for c in cards if c.id not in kept]
        explicit = self.store.related_targets(fresh, targets)
        similar = neighbours.read(self.store, fresh, at, self.settings.related.min_similarity, targets)
        found = {i: [Candidate(t) for t in targets] for i, targets in kept.items()}
        for card in cards:
            if card.id in kept:
                continue
            own = card.article.category
            tier = {True: enrich.SAME_CATEGORY, False: enrich.OTHER_CATEGORY}
            near = [
                Candidate(n.target, tier[n.category == own], n.score)
                for n in similar.get(card.id, [])[:SIMILAR_POOL]
            ]
            found[card.id] = [*(Candidate(t) for t in explicit.get(card.id, [])), *near]
        return found

    def keep_links(self, issue: IssueRecord | None, digest: Digest) -> bool:
        """Keep the related links of `digest`, if `issue` went out (is being sent or was
        sent), so its rebuilds show them: `send` calls it with the issue it records or
        resumes, `build` with the one it finds gone out (an older issue whose links were
        never kept). False when it did not go out or its links were kept already."""
        if issue is None or issue.status not in GONE_OUT:
            return False
        return Issues(self.store).keep_issue_links(issue.id, _link_ids(digest))

    def links(self, schedule: Schedule, period: Period) -> Links:
        from newsletter.digest.render import Links

        public = self.settings.public_url
        return Links(
            unsubscribe=f"{public}/unsubscribe",
            browser=f"{public}/issues/{issue_stem(schedule, period)}.html",
            preferences=f"{public}/preferences",
        )

    def build(
        self,
        name: str,
        at: datetime,
        now: datetime,
        out: Path | None = None,
        record: bool = True,
        digest: Digest | None = None,
    ) -> Build:
        """`digest`: what to build instead of the whole issue (the preview's variants)."""
        schedule = self.schedule(name)
        digest = self.digest(schedule, at) if digest is None else digest
        note = self.left_out(schedule, digest.period)
        warnings = [*self.category_warnings(schedule), *([note] if note else [])]
        warnings += contrast_warnings(self.settings.theme)
        if digest.is_empty and schedule.skip_if_empty:
            return Build(schedule, digest.period, at, digest, None, warnings=warnings)
        issue = self.renderer.render(digest, self.settings, self.links(schedule, digest.period))
        warnings += [
            f"check: {f}" for f in check_issue(issue.subject, issue.preheader, issue.html, issue.text)
        ]
        build = Build(schedule, digest.period, at, digest, issue, warnings=warnings)
        if out is not None:
            build.files = write_files(out, issue_stem(schedule, digest.period), self.parts(issue, now))
        if record:
            recorded = Issues(self.store).record_issue(
                schedule.name,
                digest.period,
                IssueStatus.BUILT,
                issue.subject,
                [a.id for a in digest.articles],
                now,
                digest.overrides_version or None,
            )
            self.keep_links(recorded, digest)  # a sent issue's row is kept as it was
        return build

    def parts(self, issue: Issue, now: datetime) -> dict[str, bytes]:
        """The issue's files: HTML, text, and an .eml addressed to the readers at large."""
        from newsletter.digest.mail import MessageTemplate, Recipient, archive_message_id

        template = MessageTemplate(issue.subject, issue.text, issue.html, self.settings.email.from_, now)
        origin = template.origin
        readers = Recipient(self.settings.site.name, origin.addr_spec, archive_message_id(origin.domain))
        eml = template.render(readers)
        return {"html": issue.html.encode(), "txt": issue.text.encode(), "eml": eml}


def issue_stem(schedule: Schedule, period: Period) -> str:
    """SCHEDULE-YYYY-MM-DD, the send date in the schedule's zone."""
    local = period.end.astimezone(schedule.zone)
    return f"{schedule.name}-{local:%Y-%m-%d}"


def find_root(project: str | None) -> Path:
    return Path(project or os.environ.get("NEWSLETTER_PROJECT") or ".")


def as_stored(category: str, known: tuple[str, ...]) -> tuple[str, list[str]]:
    """`--category`, spelled as the archive already spells it: `Anxiety  & Stress` finds
    `Anxiety & stress` (case and spacing ignored) rather than starting a second category.
    A name the archive does not have is kept, with a note (a typo shows at once)."""
    wanted = _folded(category)
    if match := next((name for name in known if _folded(name) == wanted), None):
        return match, []
    if not known or not wanted:
        return category, []
    listed = ", ".join(known[:10]) + (", ..." if len(known) > 10 else "")
    return category, [f"--category {category!r} is a new category (the archive has: {listed})"]


def _folded(name: str) -> str:
    return " ".join(name.split()).casefold()


def build_json(build: Build) -> dict[str, Any]:
    """The `build --json` shape: schedule, period, skipped, subject, preheader,
    sections, files, size; datetimes ISO 8601 with offsets in the schedule's zone."""
    zone = build.schedule.zone

    def iso(value: datetime) -> str:
        return value.astimezone(zone).isoformat()

    issue = build.issue
    return {
        "schedule": build.schedule.name,
        "period": {"start": iso(build.period.start), "end": iso(build.period.end)},
        "at": iso(build.at),
        "skipped": build.skipped,
        "subject": issue.subject if issue else None,
        "preheader": issue.preheader if issue else None,
        "sections": [
            {
                "category": s.category,
                "articles": [
                    {
                        "title": a.title,
                        "url": a.url,
                        "published": iso(a.published),
                        "summary": a.summary,
                        "reading_minutes": a.reading_minutes,
                        "related": [{"title": r.title, "url": r.url} for r in a.related],
                        "image": asdict(a.image) if a.image else None,
                    }
                    for a in s.articles
                ],
            }
            for s in build.digest.sections
        ],
        "files": {
            "html": _path(build.files.get("html")),
            "text": _path(build.files.get("txt")),
            "eml": _path(build.files.get("eml")),
        },
        "size": {"html": issue.html_size if issue else 0},
        "warnings": [*build.warnings, *(issue.warnings if issue else ())],
    }


def _path(path: Path | None) -> str | None:
    return str(path) if path else None


def _link_ids(digest: Digest) -> dict[int, list[int]]:
    """Each card's links as archive ids, in order."""
    found = {a.id: [link.target for link in a.related if link.target] for a in digest.articles}
    return {i: targets for i, targets in found.items() if targets}
