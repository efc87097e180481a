"""The editor's desk in the preview: the variants an issue goes out in, and "Send a test".

The one module of the preview that reaches sending, and only through `delivery/desk.py`:
its counts are `send`'s own (`plan_audience`), and its mail goes only to the addresses
of `[preview] test_recipients` (pyproject's import contracts name this exception).
Every POST carries a form token (core/tokens.py `Purposes`), bound to the page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from newsletter.core import translations
from newsletter.core.errors import NewsletterError
from newsletter.core.models import Schedule
from newsletter.core.text import plain_line
from newsletter.core.tokens import BadToken, Purposes, secret_key
from newsletter.core.translations import N_
from newsletter.delivery import approval
from newsletter.delivery.desk import (
    AudiencePlan,
    TestSend,
    UnknownVariant,
    audience_plan,
    send_test,
    variant_of,
)
from newsletter.digest import selection as select
from newsletter.project import Project
from newsletter.storage.approvals import Approval
from newsletter.web.forms import Fields

__all__ = ["AudiencePlan", "UnknownVariant", "audience_plan", "variant_of"]

FORM_LIFETIME = timedelta(hours=12)  # a page left open longer is reloaded before it sends
EDITOR_LIMIT = 100


def form_page(name: str) -> str:
    return f"desk:{name}"


@dataclass(frozen=True)
class DeskForm:
    """What the "Send a test" form needs: who may get one, and its token ("" = no secret
    key set, so no form: the page says why)."""

    recipients: tuple[str, ...]
    token: str


def desk_form(project: Project, name: str, bound_to: str, now: datetime) -> DeskForm:
    recipients = tuple(project.settings.preview.test_recipients)
    try:
        purposes = Purposes(secret_key(project.environ))
    except NewsletterError:
        return DeskForm(recipients, "")
    return DeskForm(recipients, purposes.make_form(form_page(name), bound_to, now))


@dataclass(frozen=True)
class Outcome:
    """A test send's answer: the status, what the page says, and to whom it went."""

    status: int
    message: str
    sent: tuple[str, ...] = ()
    approved: bool = False


def words(project: Project) -> Callable[[str], str]:
    """The desk's messages in the site's language ([site] language)."""
    return translations.translations(project.settings.site.language).gettext


def refusal(project: Project, refused: str, error: NewsletterError, hint: str = "") -> str:
    """`refused` ("Not sent: %(reason)s", translated) with the error, and its hint if any."""
    return words(project)(refused) % {"reason": f"{error}" + (f" {hint}" if hint else "")}


def _refused(
    project: Project, name: str, fields: Fields, bound_to: str, now: datetime, refused: str
) -> Outcome | None:
    """The form's token checked first: an Outcome that refuses, or None when it is good.
    `refused`: the message's msgid, such as "Not sent: %(reason)s"."""
    try:
        purposes = Purposes(secret_key(project.environ))
        purposes.read_form(fields.one("token", 2048), form_page(name), bound_to, now, FORM_LIFETIME)
    except BadToken as e:
        again = words(project)(N_("Reload the page and try again."))
        return Outcome(403, words(project)(refused) % {"reason": f"{e}. {again}"})
    except NewsletterError as e:
        return Outcome(400, refusal(project, refused, e))
    return None


def test_send(project: Project, name: str, fields: Fields, bound_to: str, now: datetime) -> Outcome:
    """The form's POST: its token checked first, then `send_test` (which refuses an address
    not listed, before anything goes out)."""
    if refused := _refused(project, name, fields, bound_to, now, N_("Not sent: %(reason)s")):
        return refused
    _ = words(project)
    at = _moment(fields.one("at"))
    if at is None:
        return Outcome(400, _("Not sent: the form's moment is not a date and time. Reload the page."))
    editor = plain_line(fields.one("editor", EDITOR_LIMIT))
    if not editor:
        return Outcome(400, _("Not sent: say who you are (your name goes in desk.log with the test)."))
    test = TestSend(name, at, fields.many("to"), editor, fields.one("variant", 2048) or None)
    try:
        sent = send_test(project, test, now)
    except NewsletterError as e:
        return Outcome(400, refusal(project, "Not sent: %(reason)s", e, e.hint))
    return Outcome(200, _("Test sent to %(addresses)s.") % {"addresses": ", ".join(sent)}, tuple(sent))


def _moment(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


@dataclass(frozen=True)
class ApprovalPanel:
    """What the issue page says of an approval-required schedule's issue: its send time,
    and who approved it when (None: waiting)."""

    end: datetime
    approval: Approval | None


def approval_panel(project: Project, schedule: Schedule, end: datetime) -> ApprovalPanel | None:
    if not schedule.needs_approval:
        return None
    return ApprovalPanel(end, approval.approved(project, schedule, end))


def approve(project: Project, schedule: Schedule, fields: Fields, bound_to: str, now: datetime) -> Outcome:
    """The "Approve" POST: its token checked first, then the approval recorded (and logged)."""
    if refused := _refused(project, schedule.name, fields, bound_to, now, N_("Not approved: %(reason)s")):
        return refused
    _ = words(project)
    at = _moment(fields.one("at"))
    editor = plain_line(fields.one("editor", EDITOR_LIMIT))
    if at is None or not schedule.needs_approval:
        return Outcome(
            400, _("Not approved: this issue needs no approval, or the form is old. Reload the page.")
        )
    if not editor:
        return Outcome(400, _("Not approved: say who you are (your name is kept with the approval)."))
    end = select.send_time(schedule, at)
    try:
        done = approval.approve(project, schedule, end, editor, now)
    except NewsletterError as e:
        return Outcome(400, refusal(project, "Not approved: %(reason)s", e, e.hint))
    said = _("Approved by %(editor)s at %(at)s: the issue goes out at %(end)s.")
    shown = {"at": _shown(project, schedule, done.approved_at), "end": _shown(project, schedule, end)}
    return Outcome(200, said % {"editor": done.editor, **shown}, approved=True)


def _shown(project: Project, schedule: Schedule, moment: datetime) -> str:
    """A moment as the desk shows it: in the schedule's zone and the site's language."""
    return translations.moment(moment.astimezone(schedule.zone), project.settings.site.language)
