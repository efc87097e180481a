"""What the preview pages show, gathered from the project: no rendering here
beyond `Project.build`, and no HTTP either (preview.py turns these into pages)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from newsletter.core import clock
from newsletter.core.config import NAME
from newsletter.core.errors import ConfigError, NewsletterError, TemplateError, UnknownScheduleError
from newsletter.core.models import IssueStatus, Period, Schedule
from newsletter.core.schedules import schedule_names
from newsletter.core.translations import N_
from newsletter.digest import selection as select
from newsletter.digest.render import GMAIL_CLIP_BYTES
from newsletter.project import Build, Project, issue_stem
from newsletter.storage.issues import IssueRecord, Issues
from newsletter.web.builds import BuildKey, Shown
from newsletter.web.color_scheme import has_dark_styles
from newsletter.web.desk import (
    ApprovalPanel,
    AudiencePlan,
    DeskForm,
    approval_panel,
    audience_plan,
    desk_form,
    variant_of,
)
from newsletter.web.editor import EditPanel, edit_panel
from newsletter.web.workspace import Workspace

# Amber from 80% of Gmail's clip: a few more articles would cross it.
CLIP_AMBER = 0.8
# An issue's status as the index shows it (index.html translates it).
STATUS_WORDS = (N_("built"), N_("skipped"), N_("sending"), N_("sent"))
EXCERPT_CONTEXT = 2  # template lines shown either side of an error's line
TICK = timedelta(microseconds=1)
CHOICES = 4  # issues offered before and after the one shown


class BadMoment(ValueError):
    """An `at` that is not ISO 8601 or lies outside what a cron can compute."""


class ScheduleNotFound(LookupError):
    """No such schedule, or a name no schedule could have (paths, dots, slashes)."""


@dataclass(frozen=True)
class ErrorInfo:
    """A user-fixable error as the page shows it: never a stack trace."""

    kind: str
    message: str
    hint: str
    template: str | None = None
    line: int | None = None
    file: str | None = None
    excerpt: tuple[tuple[int, str, bool], ...] = ()
    in_project: bool = False  # fixed by editing a project file: the page will then update itself


@dataclass(frozen=True)
class Size:
    """The HTML's size against Gmail's clip, with a traffic-light level."""

    bytes: int
    clip: int = GMAIL_CLIP_BYTES

    @property
    def kb(self) -> str:
        return f"{self.bytes / 1024:.1f}"

    @property
    def level(self) -> str:
        if self.bytes > self.clip:
            return "over"
        return "near" if self.bytes > self.clip * CLIP_AMBER else "ok"


@dataclass
class ScheduleRow:
    """One schedule on the index: when it goes out next and what it would carry."""

    name: str
    schedule: Schedule | None = None
    period: Period | None = None
    counts: list[tuple[str, int]] = field(default_factory=list)
    last_sent: IssueRecord | None = None
    last_built: IssueRecord | None = None  # the newest record in any other state (built, sending...)
    error: ErrorInfo | None = None

    @property
    def total(self) -> int:
        return sum(n for _, n in self.counts)


@dataclass(frozen=True)
class InboxRow:
    """The issue as a phone's inbox lists it, read back from the .eml the frames download
    (the headers `send` encodes, decoded as a mail app does), and the preheader."""

    sender: str
    subject: str
    preheader: str
    received: datetime  # the issue's send time

    @classmethod
    def of(cls, eml: bytes, preheader: str, received: datetime) -> InboxRow:
        from email import message_from_bytes, policy

        message = message_from_bytes(eml, policy=policy.default)
        [origin] = message["From"].addresses
        return cls(origin.display_name or origin.addr_spec, str(message["Subject"]), preheader, received)


@dataclass
class IssuePage:
    """One schedule's issue as of a moment, or why there is none."""

    schedule: Schedule
    at: datetime
    at_given: bool
    now: datetime
    sender: str
    period: Period | None = None
    previous_at: datetime | None = None
    next_at: datetime | None = None
    build: Build | None = None
    error: ErrorInfo | None = None
    variant: str | None = None  # the variant shown (`?variant=`); None: the whole issue
    audience: AudiencePlan | None = None
    desk: DeskForm | None = None
    approval: ApprovalPanel | None = None  # only for an `approval = "required"` schedule
    edit: EditPanel | None = None  # "Edit this issue" (web/editor.py)
    scheme: str | None = None  # the frames' light/dark switch; None: the editor's own setting
    language: str = "en"  # the site's: the desk's dates and words
    choices: tuple[datetime, ...] = ()  # the send times the "Issue of" picker offers
    inbox: InboxRow | None = None
    header_checks: tuple[str, ...] = ()  # `newsletter check`'s header findings on the .eml

    @property
    def zone(self) -> ZoneInfo:
        return self.schedule.zone

    @property
    def size(self) -> Size | None:
        issue = self.build.issue if self.build else None
        return Size(issue.html_size) if issue else None

    @property
    def dark_styles(self) -> bool:
        issue = self.build.issue if self.build else None
        return bool(issue and has_dark_styles(issue.html))

    @property
    def stem(self) -> str:
        return issue_stem(self.schedule, self.period) if self.period else self.schedule.name


def check_name(name: str) -> str:
    """Schedule names are plain words: anything else (`..`, `a/b`, `%2f`) is no schedule."""
    if not NAME.match(name):
        raise ScheduleNotFound(name)
    return name


def parse_moment(value: str | None, zone: ZoneInfo, now: datetime) -> datetime:
    """`?at=`: see clock.parse_moment; a bad one is a BadMoment (a 400 page)."""
    try:
        return clock.parse_moment(value, zone, now)
    except ValueError as e:
        raise BadMoment(str(e)) from None


def navigation(project: Project, schedule: Schedule, at: datetime) -> tuple[Period, datetime, datetime]:
    """The period `at` falls in (as the build computes it: a catch-up reaches back to the
    last issue that went out), and the send times of the issues before and after it.

    Links use send times because a moment exactly at a fire time belongs to the
    issue going out then: the whole issue, as subscribers get it.
    """
    try:
        period = project.period(schedule, at)
        previous = select.previous_send_time(schedule, period.end)
        following = select.send_time(schedule, period.end + TICK)
    except (ValueError, OverflowError) as e:
        raise BadMoment(
            f"no issue of {schedule.name!r} can be computed around {at.isoformat()}: {e}"
        ) from None
    return period, previous, following


def load_schedule(project: Project, name: str) -> Schedule:
    try:
        return project.schedule(check_name(name))
    except UnknownScheduleError:
        raise ScheduleNotFound(name) from None


def issue_page(
    workspace: Workspace,
    name: str,
    at_text: str | None,
    variant: str | None = None,
    bound_to: str = "",
    revision: str = "",
) -> IssuePage:
    """Build the issue for the page; a build error becomes the page's error panel.
    `revision`: see `shown` (the same value the frames' requests pass).

    Raises ScheduleNotFound, BadMoment, or NewsletterError when the project or
    the schedule file itself is broken (then there is no schedule to show).
    """
    now = workspace.clock()
    with workspace.project() as project:
        schedule = load_schedule(project, name)
        at = parse_moment(at_text, schedule.zone, now)
        period, previous, following = navigation(project, schedule, at)
        page = IssuePage(
            schedule, at, at_text is not None, now, project.settings.email.from_, period, previous, following
        )
        page.variant = variant or None
        page.desk = desk_form(project, schedule.name, bound_to, now)
        page.approval = approval_panel(project, schedule, period.end)
        page.language = project.settings.site.language
        page.choices = send_times(schedule, period.end)
        try:
            seen = shown(workspace, project, schedule, at, now, page.variant, revision)
            page.audience, page.build = seen.plan, seen.build
            page.inbox = inbox_row(seen, project, now)
            page.header_checks = header_checks(seen, project, now)
            page.edit = edit_panel(project, schedule, at)
        except NewsletterError as e:
            page.error = describe(e, project)
    return page


def variant_build(
    project: Project, schedule: Schedule, at: datetime, now: datetime, variant: str | None
) -> tuple[AudiencePlan, Build]:
    """The audience as `send` plans it, and the build of the variant asked for (or the whole
    issue). Raises UnknownVariant for a variant nobody gets."""
    digest = project.digest(schedule, at)
    plan = audience_plan(project, digest)
    chosen = variant_of(plan, digest, variant)
    return plan, project.build(schedule.name, at, now, record=False, digest=chosen)


def send_times(schedule: Schedule, end: datetime) -> tuple[datetime, ...]:
    """The "Issue of" picker's choices: the send times of the issues around the one
    going out at `end`, and its own."""
    before, after = [end], [end]
    for _ in range(CHOICES):
        before.append(select.previous_send_time(schedule, before[-1]))
        after.append(select.send_time(schedule, after[-1] + TICK))
    return (*reversed(before[1:]), end, *after[1:])


def inbox_row(seen: Shown, project: Project, now: datetime) -> InboxRow | None:
    _, parts = shown_parts(seen, project, now)
    issue = seen.build.issue
    return InboxRow.of(parts["eml"], issue.preheader, seen.build.period.end) if issue else None


def header_checks(seen: Shown, project: Project, now: datetime) -> tuple[str, ...]:
    """What `newsletter check FILE.eml --built` adds to the build's own checks (which the
    page lists from its warnings): the headers and parts of the .eml, decoded back."""
    from newsletter.digest.check import read_letter
    from newsletter.digest.check.mail_checks import check_message

    _, parts = shown_parts(seen, project, now)
    if "eml" not in parts:
        return ()
    found = check_message(read_letter("issue.eml", parts["eml"], sent=False))
    return tuple(str(f) for f in found if f.level in ("error", "warning"))


def shown(
    workspace: Workspace,
    project: Project,
    schedule: Schedule,
    at: datetime,
    now: datetime,
    variant: str | None,
    revision: str = "",
) -> Shown:
    """`variant_build`, once per view (web/builds.py): the frames and the page share it.
    `revision`: whatever else changes the build and is not in `Workspace.version()`."""
    key = BuildKey(schedule.name, at, variant or "", workspace.version(), revision)
    return workspace.builds.get(key, lambda: Shown(*variant_build(project, schedule, at, now, variant)))


def issue_parts(
    workspace: Workspace, name: str, at_text: str | None, variant: str | None = None, revision: str = ""
) -> tuple[Build, dict[str, bytes]]:
    """The raw .html/.txt/.eml of an issue; raises NewsletterError when it cannot be built."""
    now = workspace.clock()
    with workspace.project() as project:
        schedule = load_schedule(project, name)
        at = parse_moment(at_text, schedule.zone, now)
        navigation(project, schedule, at)  # rejects moments no cron arithmetic can handle, as a 400
        return shown_parts(
            shown(workspace, project, schedule, at, now, variant or None, revision), project, now
        )


def shown_parts(seen: Shown, project: Project, now: datetime) -> tuple[Build, dict[str, bytes]]:
    """The build's files, encoded once for all the frames (none when the issue is skipped)."""
    if seen.parts is None:
        seen.parts = project.parts(seen.build.issue, now) if seen.build.issue else {}
    return seen.build, seen.parts


def schedule_rows(workspace: Workspace) -> list[ScheduleRow]:
    """Every schedule file, each on its own: one broken file does not hide the others."""
    now = workspace.clock()
    with workspace.project() as project:
        return [_row(project, name, now) for name in schedule_names(project.root)]


def _row(project: Project, name: str, now: datetime) -> ScheduleRow:
    row = ScheduleRow(name)
    try:
        row.schedule = project.schedule(name)
        digest = project.digest(row.schedule, now)
        row.period = digest.period
        found = {s.category: len(s.articles) for s in digest.sections}
        row.counts = [(c, found.get(c, 0)) for c in row.schedule.categories]
        records = Issues(project.store).issues(name)
        row.last_sent = next((r for r in records if r.status == IssueStatus.SENT), None)
        row.last_built = next((r for r in records if r.status != IssueStatus.SENT), None)
    except NewsletterError as e:
        row.error = describe(e, project)
    return row


def describe(error: NewsletterError, project: Project | None = None) -> ErrorInfo:
    """The error panel: message and hint, and for templates the file and the lines around it."""
    if isinstance(error, TemplateError):
        path = _template_file(project, error.template) if project else None
        excerpt = _excerpt(path, error.line) if path and error.line else ()
        where = _shown_path(project, path) if project and path else None
        return ErrorInfo(
            N_("Template error"),
            str(error),
            error.hint,
            error.template,
            error.line,
            where,
            excerpt,
            in_project=True,
        )
    kind = N_("Configuration error") if isinstance(error, ConfigError) else N_("Error")
    return ErrorInfo(kind, str(error), error.hint, in_project=True)


def _template_file(project: Project, name: str) -> Path | None:
    """The file Jinja would load for `name`: the project's templates first, then the defaults.
    Errors from a traceback carry only a base name, hence the search by name."""
    for folder in map(Path, project.renderer.folders):
        folder = folder.resolve()
        direct = (folder / name).resolve()
        if direct.is_file() and direct.is_relative_to(folder):
            return direct
        match = next((p for p in sorted(folder.rglob(Path(name).name)) if p.is_file()), None)
        if match is not None:
            return match
    return None


def _excerpt(path: Path, line: int) -> tuple[tuple[int, str, bool], ...]:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ()
    first, last = max(1, line - EXCERPT_CONTEXT), min(len(lines), line + EXCERPT_CONTEXT)
    return tuple((n, lines[n - 1], n == line) for n in range(first, last + 1))


def _shown_path(project: Project, path: Path) -> str:
    """Project files relative to the project; the package's defaults say so."""
    if path.is_relative_to(project.root):
        return str(path.relative_to(project.root))
    return f"{path.name} (the package's default templates)"


def explain(workspace: Workspace, error: NewsletterError) -> ErrorInfo:
    """describe() with the project when it opens (for template excerpts), without when it does not."""
    try:
        with workspace.project() as project:
            return describe(error, project)
    except NewsletterError:
        return describe(error)
