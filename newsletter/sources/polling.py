"""Polling the project's `[[sources]]` into the archive.

A poll reads one source, a feed URL (conditionally, with the validators the last
poll stored) or a feed file or folder of pages relative to the project, files its
entries under the site's categories (the source's map, then its default), and stores
them with ingest's rules. Its outcome is kept per source (polls.py): `newsletter
sources` shows it, and a failed poll changes nothing else, so the issue still goes
out with what is stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from newsletter.core.config import Settings, SourceSettings
from newsletter.core.errors import NewsletterError, SourceError
from newsletter.sources import fetching, ingest
from newsletter.sources.readers import ReadOptions
from newsletter.storage import polls
from newsletter.storage.polls import PollState
from newsletter.storage.store import Store

if TYPE_CHECKING:
    import httpx

ALL = "*"
SKIPPED = "skipped"  # polled less than its `every` ago: not polled, nothing recorded


@dataclass
class PollResult:
    """One poll's outcome, as `fetch` and `run` report it. `status` is a polls status,
    or SKIPPED."""

    name: str
    status: str
    message: str
    report: ingest.IngestReport | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.status == polls.FAILED


class UnknownSourceError(NewsletterError):
    def __init__(self, names: Iterable[str], known: Iterable[str]) -> None:
        shown = ", ".join(known) or "none ([[sources]] in newsletter.toml)"
        super().__init__(f"no source named {', '.join(names)}; known: {shown}")


def chosen(settings: Settings, names: Iterable[str]) -> list[SourceSettings]:
    """The sources named (all when none are), in newsletter.toml's order."""
    wanted = set(names)
    known = [s.name for s in settings.sources]
    if missing := sorted(wanted - set(known)):
        raise UnknownSourceError(missing, known)
    return [s for s in settings.sources if not wanted or s.name in wanted]


def feeding(store: Store, settings: Settings, categories: Iterable[str]) -> list[SourceSettings]:
    """The sources whose articles a schedule with these categories (as its file names
    them, "*" for all) may carry: they meet the sources' own (the default, the map,
    what they gave so far), or it takes all, or a source was never read (nobody knows
    yet what it holds)."""
    wanted = set(categories)
    stored = polls.categories_of(store)
    return [
        s
        for s in settings.sources
        if ALL in wanted or s.name not in stored or wanted & _categories(s, stored[s.name])
    ]


def _categories(source: SourceSettings, stored: set[str]) -> set[str]:
    return stored | set(source.categories.values()) | ({source.category} if source.category else set())


def poll_all(
    store: Store,
    settings: Settings,
    root: Path,
    sources: Iterable[SourceSettings],
    now: datetime,
    *,
    due_only: bool = False,
    transport: httpx.BaseTransport | None = None,
) -> list[PollResult]:
    """Poll each source in turn; `due_only` skips those polled within their `every`."""
    known = polls.states(store)
    results = []
    for source in sources:
        state = _state(known.get(source.name), source)
        if due_only and state.polled_at is not None and timedelta(0) <= now - state.polled_at < source.every:
            last = f"polled at {state.polled_at:%Y-%m-%d %H:%M} UTC"
            results.append(PollResult(source.name, SKIPPED, f"{last}, less than `every` ago"))
            continue
        results.append(poll(store, settings, root, source, state, now, transport))
    return results


def _state(stored: PollState | None, source: SourceSettings) -> PollState:
    """The stored row, unless newsletter.toml now names another place: then a fresh one
    (its validators, redirects and backlog belonged to the old place; its articles stay)."""
    if stored is not None and stored.configured == source.location:
        return stored
    return PollState(source.name, source.location, source.location)


def poll(
    store: Store,
    settings: Settings,
    root: Path,
    source: SourceSettings,
    state: PollState,
    now: datetime,
    transport: httpx.BaseTransport | None = None,
) -> PollResult:
    """Read one source and store what it gave; a failure is recorded, not raised."""
    origin = ingest.Origin(source.name, source.category, source.categories, state.first_read)
    try:
        if source.url:
            result, state = _poll_url(store, settings, state, origin, now, transport)
        else:
            result = _poll_path(store, settings, root, source, origin, now)
    except SourceError as e:
        result = PollResult(source.name, polls.FAILED, str(e))
    polls.save(store, _after(state, result, now))
    return result


def _after(state: PollState, result: PollResult, now: datetime) -> PollState:
    """The row after a poll: a failure keeps the validators and the last success."""
    read = result.status != polls.FAILED
    return replace(
        state,
        polled_at=now,
        succeeded_at=now if read else state.succeeded_at,
        status=result.status,
        message=result.message,
    )


def _poll_url(
    store: Store,
    settings: Settings,
    state: PollState,
    origin: ingest.Origin,
    now: datetime,
    transport: httpx.BaseTransport | None,
) -> tuple[PollResult, PollState]:
    validators = fetching.Validators(state.etag, state.last_modified)
    fetched = fetching.fetch(state.location, validators=validators, transport=transport)
    warnings = []
    if fetched.permanent_url and fetched.permanent_url != state.location:
        warnings.append(
            f"{origin.name}: {state.location} moved permanently to {fetched.permanent_url}; "
            "polling the new address (update url in newsletter.toml)"
        )
        state = replace(state, location=fetched.permanent_url)
    if fetched.status == "not-modified":
        return PollResult(origin.name, polls.NOT_MODIFIED, "not modified", warnings=warnings), state
    report = _store_feed(store, settings, fetched, origin, now)
    new = fetched.validators
    state = replace(state, etag=new.etag, last_modified=new.last_modified)
    return _outcome(origin.name, report, warnings), state


def _store_feed(
    store: Store, settings: Settings, fetched: fetching.Fetched, origin: ingest.Origin, now: datetime
) -> ingest.IngestReport:
    site = settings.site
    options = ReadOptions(site.zone, now, base_url=site.base_url, category=origin.category)
    read = ingest.read_fetched(fetched.url, fetched.data, fetched.content_type, options)
    report = ingest.IngestReport(sources=1)
    entries = ingest.completed(read, fetched.url, fetched.url, site, origin, report)
    if report.errors and not entries:
        raise report.errors[0]
    return ingest.store_entries(store, site, settings.related, entries, now, report)


def _poll_path(
    store: Store, settings: Settings, root: Path, source: SourceSettings, origin: ingest.Origin, now: datetime
) -> PollResult:
    place = root / source.path
    if not place.exists():
        raise SourceError(str(place), "no such file or folder (a source that vanished keeps its articles)")
    report = ingest.ingest(store, [str(place)], settings.site, settings.related, now, origin=origin)
    if report.sources == 0:
        raise SourceError(str(place), "a folder with no .md, .markdown, .txt or feed files")
    if report.errors and not report.articles:
        raise report.errors[0]
    return _outcome(source.name, report, [])


def _outcome(name: str, report: ingest.IngestReport, warnings: list[str]) -> PollResult:
    counts = report.counts
    message = f"{counts.added} added, {counts.updated} updated, {counts.unchanged} unchanged"
    status = polls.OK
    if report.errors:
        status, message = polls.PARTIAL, f"{message}; {len(report.errors)} failed: {report.errors[0]}"
    return PollResult(name, status, message, report, warnings + report.warnings)
