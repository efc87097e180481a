"""Editing an issue (issue 20): the editor's overrides of the issue going out at a send
time, saved as a new version by `newsletter edit` and the preview's "Edit this issue".

An article is named by its URL, its slug (the URL's last path segment) or its archive id,
and only among the articles selection picked for that issue. Saving a version withdraws
the issue's approval (storage/overrides.py): the desk and `status` then show it waiting.

Reaches no sending internals: the preview imports it (the web-sending contract).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from urllib.parse import urlsplit

from newsletter.core.errors import NewsletterError
from newsletter.core.models import Digest, DigestArticle, Schedule
from newsletter.core.text import plain_line, storable
from newsletter.digest import selection as select
from newsletter.digest.overrides import INTRO_LIMIT, SUBJECT_LIMIT, Overrides
from newsletter.project import Project
from newsletter.storage.overrides import IssueOverrides, Saved, SaveResult

log = logging.getLogger("newsletter.scheduler")  # where approvals are logged, and taken back


class BadOverrideError(NewsletterError):
    """An override that cannot be saved: an unknown article, an intro too long."""


@dataclass(frozen=True)
class Change:
    """What an editor asks for; None (or empty): as the last version had it."""

    intro: str | None = None
    subject: str | None = None  # "": the schedule's subject again
    pin: str | None = None  # an article; "": no pin
    exclude: tuple[str, ...] = ()
    include: tuple[str, ...] = ()  # excluded before, back in
    order: tuple[str, ...] | None = None  # these first in their sections, in this order
    reset: bool = False  # start from no overrides at all


@dataclass(frozen=True)
class EditedIssue:
    """An issue as the editor works on it: every article selection picked (`picked`, before
    any override), the digest as it goes out now, and the versions saved, newest first."""

    schedule: Schedule
    end: datetime
    picked: Digest
    edited: Digest
    history: list[Saved]

    @property
    def current(self) -> Overrides:
        return self.history[0].overrides if self.history else Overrides()


def edited_issue(project: Project, schedule: Schedule, at: datetime) -> EditedIssue:
    picked = project.digest(schedule, at, edited=False)
    end = picked.period.end
    history = IssueOverrides(project.store).history(schedule.name, end)
    return EditedIssue(schedule, end, picked, project.digest(schedule, at), history)


def edit(
    project: Project, schedule: Schedule, at: datetime, change: Change, editor: str, now: datetime
) -> SaveResult | None:
    """Save `change` over the latest version as a new version (raises BadOverrideError
    naming what is wrong, or IssueGoneOutError once the issue went out). None when it
    changes nothing: no version, and an approval stays."""
    issue = edited_issue(project, schedule, at)
    overrides = changed(issue, change)
    if overrides == issue.current:
        return None
    result = IssueOverrides(project.store).save(schedule.name, issue.end, overrides, editor, now)
    log.info(
        "%s: overrides version %d of the %s issue saved by %s%s",
        schedule.name,
        result.saved.version,
        local(schedule, issue.end),
        editor,
        "; its approval is withdrawn" if result.withdrawn else "",
    )
    return result


def changed(issue: EditedIssue, change: Change) -> Overrides:
    """The latest version with `change` made, every article named checked."""
    base = Overrides() if change.reset else issue.current

    def pick(key: str, ref: str) -> int:
        return find_article(issue, ref, key).id

    excluded = [*base.exclude, *(pick("--exclude", r) for r in change.exclude)]
    taken_back = {pick("--include", r) for r in change.include}
    return replace(
        base,
        intro=base.intro if change.intro is None else intro(change.intro),
        subject=base.subject if change.subject is None else subject(change.subject),
        pin=base.pin if change.pin is None else (pick("--pin", change.pin) if change.pin.strip() else 0),
        exclude=tuple(i for i in dict.fromkeys(excluded) if i not in taken_back),
        order=base.order if change.order is None else tuple(pick("--order", r) for r in change.order),
    )


def intro(text: str) -> str:
    cleaned = storable(text).replace("\r\n", "\n").strip()
    if len(cleaned) > INTRO_LIMIT:
        raise BadOverrideError(
            f"intro: {len(cleaned)} characters; at most {INTRO_LIMIT}",
            "An intro is a short note above the lead: shorten it.",
        )
    return cleaned


def subject(text: str) -> str:
    cleaned = plain_line(storable(text))
    if len(cleaned) > SUBJECT_LIMIT:
        raise BadOverrideError(
            f"subject: {len(cleaned)} characters; at most {SUBJECT_LIMIT}",
            "Inboxes show about 60: shorten it.",
        )
    return cleaned


def slug(article: DigestArticle) -> str:
    """The last segment of the article's URL path, without .html: how `--show` names it."""
    path = urlsplit(article.url).path.rstrip("/")
    last = path.rsplit("/", 1)[-1]
    return last.removesuffix(".html").removesuffix(".htm") or str(article.id)


def find_article(issue: EditedIssue, ref: str, key: str) -> DigestArticle:
    """The article of the issue that `ref` names: its URL, slug or id."""
    wanted = ref.strip()
    articles = issue.picked.articles
    found = [
        a
        for a in articles
        if wanted in (a.url, str(a.id), f"#{a.id}") or slug(a).casefold() == wanted.casefold()
    ]
    if len(found) == 1:
        return found[0]
    command = f"newsletter edit {issue.schedule.name} --at {issue.end.isoformat()} --show"
    if found:
        raise BadOverrideError(
            f"{key} {ref!r}: {len(found)} articles of this issue have that slug",
            f"Name it by its URL or its id instead (`{command}` lists them).",
        )
    raise BadOverrideError(
        f"{key} {ref!r}: no article of the {local(issue.schedule, issue.end)} issue has that URL, slug or id",
        f"`{command}` lists the issue's articles with their slugs and ids.",
    )


def local(schedule: Schedule, end: datetime) -> str:
    return f"{end.astimezone(schedule.zone):%Y-%m-%d %H:%M}"


def send_time(schedule: Schedule, at: datetime) -> datetime:
    """The send time of the issue going out after `at`: the one an edit at `at` changes."""
    return select.send_time(schedule, at)
