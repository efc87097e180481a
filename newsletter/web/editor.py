"""The preview's "Edit this issue" panel (issue 20): the intro, the subject, a pinned lead,
articles left out and moved within their section, saved as a new version of the issue's
overrides (delivery/editing.py) with the editor's name; the page then shows it at once.

One form, no JavaScript needed: "Move up" and "Move down" are submit buttons of the same
form, so a move saves what was typed with it. The POST carries the desk's form token
(web/desk.py), bound to the page and the session.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from starlette.requests import Request

from newsletter.core.errors import NewsletterError
from newsletter.core.models import DigestArticle, Schedule
from newsletter.core.text import plain_line
from newsletter.core.translations import N_
from newsletter.delivery import editing
from newsletter.digest.overrides import INTRO_LIMIT, SUBJECT_LIMIT, Overrides, changes
from newsletter.project import Project
from newsletter.web.desk import EDITOR_LIMIT, Outcome, _moment, _refused, refusal, words
from newsletter.web.forms import Fields, capped_body, form_values

EDIT_BODY = 96 * 1024  # an intro of 5,000 characters in any script, url-encoded, and the rest
EDIT_FIELDS = 300  # a checkbox per article, and a dozen others


@dataclass(frozen=True)
class Row:
    """An article as the panel lists it: in the issue's order, or left out."""

    article: DigestArticle
    lead: bool
    excluded: bool
    first: bool  # first of its section: no "Move up"
    last: bool


@dataclass(frozen=True)
class Version:
    number: int
    editor: str
    saved_at: datetime
    what: tuple[str, ...]  # digest/overrides.py KINDS


@dataclass(frozen=True)
class EditPanel:
    """What the panel shows: the overrides now, every article selection picked, the versions."""

    at: datetime
    current: Overrides
    sections: tuple[tuple[str, tuple[Row, ...]], ...]
    history: tuple[Version, ...]
    shown: str  # the article ids in the order the panel lists them, for a move
    intro_limit: int = INTRO_LIMIT
    subject_limit: int = SUBJECT_LIMIT
    editor_limit: int = EDITOR_LIMIT


def edit_panel(project: Project, schedule: Schedule, at: datetime) -> EditPanel:
    issue = editing.edited_issue(project, schedule, at)
    current = issue.current
    rows = tuple((category, _rows(issue, category)) for category in _categories(issue))
    return EditPanel(
        at,
        current,
        rows,
        _versions(issue),
        ",".join(str(r.article.id) for _, found in rows for r in found),
    )


def _categories(issue: editing.EditedIssue) -> list[str]:
    """The sections as the edited issue orders them, then any left out whole."""
    edited = [s.category for s in issue.edited.sections]
    return [*edited, *(s.category for s in issue.picked.sections if s.category not in edited)]


def _rows(issue: editing.EditedIssue, category: str) -> tuple[Row, ...]:
    shown = next((s.articles for s in issue.edited.sections if s.category == category), ())
    picked = next((s.articles for s in issue.picked.sections if s.category == category), ())
    out = [a for a in picked if a.id not in {s.id for s in shown}]
    ordered = [*shown, *out]
    lead = issue.edited.lead
    return tuple(Row(a, a is lead, a in out, n == 0, n == len(ordered) - 1) for n, a in enumerate(ordered))


def _versions(issue: editing.EditedIssue) -> tuple[Version, ...]:
    history = issue.history
    before = [*(s.overrides for s in history[1:]), None]
    return tuple(
        Version(s.version, s.editor, s.saved_at, tuple(changes(b, s.overrides)))
        for s, b in zip(history, before, strict=False)
    )


async def read_edit(request: Request) -> Fields:
    """The panel's POST: larger than the other forms (an intro), still capped."""
    return Fields(await form_values(request, await capped_body(request, EDIT_BODY), EDIT_FIELDS))


def save(project: Project, schedule: Schedule, fields: Fields, bound_to: str, now: datetime) -> Outcome:
    """The panel's POST: its token first, then the form's whole state as a new version."""
    if refused := _refused(project, schedule.name, fields, bound_to, now, N_("Not saved: %(reason)s")):
        return refused
    _ = words(project)
    at = _moment(fields.one("at"))
    editor = plain_line(fields.one("editor", EDITOR_LIMIT))
    if at is None:
        return Outcome(400, _("Not saved: the form's moment is not a date and time. Reload the page."))
    if not editor:
        return Outcome(400, _("Not saved: say who you are (your name is kept with the version)."))
    try:
        editing.edit(project, schedule, at, _change(fields), editor, now)
    except NewsletterError as e:
        return Outcome(400, refusal(project, "Not saved: %(reason)s", e, e.hint))
    return Outcome(303, _("Saved."))  # the page shows it: preview.py redirects back to it


def _change(fields: Fields) -> editing.Change:
    """The form's state, as a change from nothing (`reset`): what it shows is what is saved."""
    order = [i for i in fields.one("order", 8192).split(",") if i]
    if move := fields.one("move", 64):
        order = moved([i for i in fields.one("shown", 8192).split(",") if i], move)
    return editing.Change(
        intro=fields.one("intro", INTRO_LIMIT * 4),
        subject=fields.one("subject", SUBJECT_LIMIT * 4),
        pin=fields.one("pin", 32),
        exclude=tuple(fields.many("exclude")),
        order=tuple(order),
        reset=True,
    )


def moved(shown: list[str], move: str) -> list[str]:
    """`ID:up` or `ID:down`: the article swapped with its neighbour in the list as shown
    (the panel lists a section's articles together, so the neighbour is in its section
    unless it is first or last, where the panel offers no such button)."""
    article, _, way = move.partition(":")
    if article not in shown or way not in ("up", "down"):
        return shown
    n = shown.index(article)
    other = n - 1 if way == "up" else n + 1
    if 0 <= other < len(shown):
        shown[n], shown[other] = shown[other], shown[n]
    return shown
