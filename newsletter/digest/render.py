"""Rendering: Jinja2 fills the MJML template, mjml-python makes the HTML,
premailer inlines the CSS; the text part has its own template.

mjml and premailer (with lxml and cssutils) load with the first issue rendered."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import jinja2

from newsletter.core import translations
from newsletter.core.errors import TemplateError
from newsletter.core.languages import direction
from newsletter.core.models import Digest, DigestArticle, Issue
from newsletter.core.resources import bundled
from newsletter.core.text import plain_line
from newsletter.digest.check.templates import TemplateProblem, blanked, check_rendered, check_source
from newsletter.digest.overrides import intro_html, intro_text

if TYPE_CHECKING:
    from newsletter.core.config import Settings

GMAIL_CLIP_BYTES = 102 * 1024
DOCTYPE = "<!doctype html>"
LONG_ISSUE = 6  # more articles than this: a "back to top" link at the end
PREHEADER_TITLES = 3


def default_templates() -> Path:
    return bundled("templates")


@dataclass(frozen=True)
class Links:
    """Where the footer points: per recipient once sending exists."""

    unsubscribe: str
    browser: str
    preferences: str = ""  # the preference centre ("" before sending: the page is the unsubscribe one)


class Renderer:
    """Renders digests with templates from `folders`, first match wins."""

    def __init__(self, folders: Sequence[Path]) -> None:
        self.folders = [str(f) for f in folders]
        loader = jinja2.FileSystemLoader(self.folders)
        common: dict[str, Any] = {
            "loader": loader,
            "undefined": jinja2.StrictUndefined,
            "trim_blocks": True,
            "lstrip_blocks": True,
            "auto_reload": True,
            # {% trans %} resolves gettext/ngettext from the context: one environment serves
            # every language, and a render never changes what another one sees.
            "extensions": ["jinja2.ext.i18n"],
        }
        # select_autoescape's defaults miss .mjml, so name every markup extension.
        self.markup = jinja2.Environment(
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html", "htm", "xml", "mjml", "mjml.j2", "html.j2"),
                default_for_string=False,
            ),
            **common,
        )
        self.plain = jinja2.Environment(autoescape=False, **common)
        self.template_warnings: dict[str, list[str]] = {}  # per template: unknown attributes, misplaced tags
        # per template: the sources its check read (itself and its includes), and its findings
        self._checked: dict[str, tuple[list[tuple[str, str]], list[str]]] = {}
        for env in (self.markup, self.plain):
            env.filters.update(longdate=_long_date_filter, shortdate=_short_date_filter)
            env.policies["ext.i18n.trimmed"] = True
        self.plain.filters["wordwrap"] = _wordwrap
        self._strings: dict[str, jinja2.Template] = {}  # a schedule's subject and preheader, compiled

    def render(self, digest: Digest, settings: Settings, links: Links) -> Issue:
        context = self.context(digest, settings, links)
        subject = self.subject(digest, context)
        context["subject"] = subject
        context["preheader"] = self.preheader(digest, context)
        name = digest.schedule.template
        html = self.html(f"{name}.mjml.j2", context)
        self.template_warnings[name] = self.template_warnings.pop(f"{name}.mjml.j2", [])
        text = self._template(self.plain, f"{name}.txt.j2", context)
        issue = Issue(digest, subject, context["preheader"], html, text, tuple(self.template_warnings[name]))
        return _with_warnings(issue)

    def notice(self, name: str, context: dict[str, Any]) -> tuple[str, str]:
        """A one-off mail (`confirm`, `welcome`): its HTML through MJML, and its text."""
        return self.html(f"{name}.mjml.j2", context), self._template(self.plain, f"{name}.txt.j2", context)

    def context(self, digest: Digest, settings: Settings, links: Links) -> dict[str, Any]:
        zone = digest.schedule.zone
        articles = digest.articles
        language = digest.schedule.language or settings.site.language
        return {
            **language_context(settings, language),
            "lead": digest.lead,
            # The editor's note above the lead (digest/overrides.py): safe HTML, and its text.
            "intro_html": intro_html(digest.intro),
            "intro_text": intro_text(digest.intro),
            "later_sections": later_sections(digest),
            "back_to_top": len(articles) > LONG_ISSUE,
            "site": settings.site,
            "schedule": digest.schedule,
            "digest": digest,
            "title": digest.schedule.title,
            "sections": digest.sections,
            "article_count": len(articles),
            "issue_date": long_date(digest.period.end, zone, language),
            "date": long_date(digest.period.end, zone, language),
            "preheader": "",  # made after the subject: it names the titles the subject does not
            "unsubscribe_url": links.unsubscribe,
            "browser_url": links.browser,
            "preferences_url": links.preferences or links.unsubscribe,
            "zone": zone,
            "subscribe_url": f"{settings.public_url}/subscribe",
            "archive_url": f"{settings.public_url}/issues/",
        }

    def preheader(self, digest: Digest, context: dict[str, Any]) -> str:
        """The schedule's `preheader` template, or the default: the next titles."""
        fields = preheader_fields(digest, context)
        if not digest.schedule.preheader:
            return default_preheader(digest, fields)
        where = f"{Path(digest.schedule.source).name or digest.schedule.name}: preheader"
        try:
            return plain_line(self._string(digest.schedule.preheader).render({**context, **fields}))
        except jinja2.TemplateError as e:
            raise TemplateError(where, _reason(e), getattr(e, "lineno", None)) from e

    def subject(self, digest: Digest, context: dict[str, Any]) -> str:
        """The editor's subject for this issue if there is one (taken as it is written),
        else the schedule's `subject` template."""
        if digest.subject.strip():
            return plain_line(digest.subject)
        where = f"{Path(digest.schedule.source).name or digest.schedule.name}: subject"
        try:
            raw = self._string(digest.schedule.subject).render(context)
        except jinja2.TemplateError as e:
            if not (digest.is_empty and isinstance(e, jinja2.UndefinedError)):
                raise TemplateError(where, _reason(e), getattr(e, "lineno", None)) from e
            raw = digest.schedule.title  # an empty issue has no lead to name
        return plain_line(raw)

    def _string(self, source: str) -> jinja2.Template:
        """A schedule's one-line template, compiled once (a build renders it every time)."""
        if source not in self._strings:
            if len(self._strings) >= COMPILED_STRINGS:
                self._strings.clear()
            self._strings[source] = self.plain.from_string(source)
        return self._strings[source]

    def html(self, name: str, context: dict[str, Any]) -> str:
        import mjml

        self.template_warnings[name] = self.validate(name)
        source = self._template(self.markup, name, context)
        _raise_first(check_rendered(name, source))
        try:
            html = mjml.mjml2html(source, fonts={})
        except ValueError as e:
            raise TemplateError(name, f"MJML: {e}") from e
        return inline_css(html)

    def validate(self, name: str) -> list[str]:
        """The template's MJML against MJML's components: an unknown or unclosed tag raises
        TemplateError (file and line); an unknown attribute or a misplaced tag is a warning."""

        checked = self._checked.get(name)
        if checked is not None and all(self._source(t) == s for t, s in checked[0]):
            return list(checked[1])  # no source it read has changed: the same findings
        read: list[tuple[str, str]] = []

        def load(template: str) -> str:
            source = self._source(template)
            read.append((template, source))
            return blanked(source, self.markup)

        problems = check_source(name, load)
        _raise_first(problems)
        self._checked[name] = (read, [str(p) for p in problems])
        return list(self._checked[name][1])

    def _source(self, template: str) -> str:
        try:
            source, _, _ = self.markup.loader.get_source(self.markup, template)  # type: ignore[union-attr]
        except jinja2.TemplateNotFound as e:
            raise TemplateError(template, f"not found (looked in {', '.join(self.folders)})") from e
        return source

    def _template(self, env: jinja2.Environment, name: str, context: dict[str, Any]) -> str:
        try:
            return env.get_template(name).render(context)
        except jinja2.TemplateNotFound as e:
            raise TemplateError(name, f"not found (looked in {', '.join(self.folders)})") from e
        except jinja2.TemplateSyntaxError as e:
            raise TemplateError(e.name or name, e.message or str(e), e.lineno) from e
        except jinja2.TemplateError as e:
            template, line = _failing_line(e, name, self.folders)
            raise TemplateError(template, _reason(e), line) from e


def _raise_first(problems: Sequence[TemplateProblem]) -> None:
    fatal = [p for p in problems if p.fatal]
    if fatal:
        first = fatal[0]
        more = f" (and {len(fatal) - 1} more)" if len(fatal) > 1 else ""
        raise TemplateError(first.template, first.message + more, first.line)


def _reason(error: jinja2.TemplateError) -> str:
    return getattr(error, "message", None) or str(error)


def _failing_line(error: BaseException, fallback: str, folders: Sequence[str] = ()) -> tuple[str, int | None]:
    """Jinja puts template frames into the traceback; the innermost names the line.
    The name is relative to its templates folder (partials/article.mjml.j2)."""
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        if frame.filename.endswith(".j2"):
            path = Path(frame.filename)
            for folder in map(Path, folders):
                if path.is_relative_to(folder):
                    return path.relative_to(folder).as_posix(), frame.lineno
            return path.name, frame.lineno
    return fallback, None


def inline_css(html: str) -> str:
    """premailer inlines the CSS; media queries stay in <style>; the doctype stays."""
    inlined: str = _inliner()(
        html,
        allow_network=False,
        strip_important=False,
        keep_style_tags=True,
        remove_classes=False,
        disable_validation=True,
        cssutils_logging_level=logging.CRITICAL,
        # An img keeps the width and height the template gives it (the layout before
        # it loads); CSS width:100% or height:auto must not overwrite them.
        disable_basic_attributes=["width", "height"],
    ).transform()
    if not inlined.lstrip().lower().startswith("<!doctype"):
        inlined = f"{DOCTYPE}\n{inlined}"
    return inlined


WRAPPED = 4096  # wrapped texts kept: a few issues' titles, summaries and links
COMPILED_STRINGS = 64  # schedules' subject and preheader templates kept compiled


@jinja2.pass_environment
def _wordwrap(
    env: jinja2.Environment,
    text: str,
    width: int = 79,
    break_long_words: bool = True,
    wrapstring: str | None = None,
    break_on_hyphens: bool = True,
) -> str:
    """Jinja's own `wordwrap`, each text wrapped once: a card's title, summary and links
    come back at every build, preview and variant, and textwrap was a quarter of a render."""
    return _wrapped(text, width, break_long_words, wrapstring or env.newline_sequence, break_on_hyphens)


@lru_cache(maxsize=WRAPPED)
def _wrapped(text: str, width: int, break_long_words: bool, wrapstring: str, break_on_hyphens: bool) -> str:
    from jinja2.filters import do_wordwrap

    # The environment only supplies a default wrapstring: this one is always given.
    return do_wordwrap(_bare(), text, width, break_long_words, wrapstring, break_on_hyphens)


@cache
def _bare() -> jinja2.Environment:
    return jinja2.Environment()


PARSED_SHEETS = 64  # style blocks whose parsed rules are kept: a few per theme and template


@cache
def _inliner() -> Any:
    """premailer's Premailer, keeping the rules it parsed from each style block: a
    template's blocks are the same text at every render (the theme's colours in them),
    and parsing them with cssutils was a third of premailer's time. Same options, same
    rules, so the same HTML."""
    import premailer

    parsed: dict[tuple[str, int], tuple[list[Any], list[Any]]] = {}

    class Inliner(premailer.Premailer):  # type: ignore[misc]
        def _parse_style_rules(self, css_body: str, ruleset_index: int) -> tuple[list[Any], list[Any]]:
            key = (css_body, ruleset_index)
            if key not in parsed:
                if len(parsed) >= PARSED_SHEETS:
                    parsed.clear()
                parsed[key] = super()._parse_style_rules(css_body, ruleset_index)
            rules, leftover = parsed[key]
            return list(rules), list(leftover)  # premailer extends and reads them: copies

    return Inliner


def later_sections(digest: Digest) -> list[tuple[str, list[DigestArticle]]]:
    """(category, articles) after the lead, leaving out a section it was alone in."""
    lead = digest.lead
    kept = [(s.category, [a for a in s.articles if a is not lead]) for s in digest.sections]
    return [(category, articles) for category, articles in kept if articles]


def language_context(settings: Settings, language: str) -> dict[str, Any]:
    """What every mail's template needs to speak `language` and wear the theme."""
    words = translations.translations(language)
    rtl = direction(language) == "rtl"
    return {
        "language": language,
        "lang": language,
        "dir": direction(language),
        "start": "right" if rtl else "left",
        "end": "left" if rtl else "right",
        "theme": settings.theme,
        "gettext": words.gettext,
        "ngettext": words.ngettext,
        "public_url": settings.public_url,
    }


def preheader_fields(digest: Digest, context: dict[str, Any]) -> dict[str, Any]:
    """`titles`: the next titles, leaving out any the subject already shows."""
    subject = context.get("subject", "")
    others = [a.title for a in digest.articles if a.title not in subject]
    return {
        "titles": " · ".join(others[:PREHEADER_TITLES]),
        "count": len(digest.articles),
        "more": len(others),
    }


def default_preheader(digest: Digest, fields: dict[str, Any]) -> str:
    """What the inbox shows beside the subject: two or three titles it does not show."""
    if not digest.articles:
        return plain_line(f"{digest.schedule.title}: nothing new this time")
    if not fields["titles"]:
        return plain_line(digest.articles[0].title)
    return plain_line(str(fields["titles"]))


@jinja2.pass_context
def _long_date_filter(context: Any, value: datetime) -> str:
    """Dates in templates are in the schedule's time zone (the context's `zone`), in its language."""
    return long_date(value, context["zone"], context.get("language", "en"))


@jinja2.pass_context
def _short_date_filter(context: Any, value: datetime) -> str:
    return short_date(value, context["zone"], context.get("language", "en"))


def long_date(value: datetime, zone: ZoneInfo, language: str = "en") -> str:
    return translations.long_date(value.astimezone(zone), language)


def short_date(value: datetime, zone: ZoneInfo, language: str = "en") -> str:
    return translations.short_date(value.astimezone(zone), language)


def _with_warnings(issue: Issue) -> Issue:
    warnings = list(issue.warnings)
    if issue.html_size > GMAIL_CLIP_BYTES:
        warnings.append(
            f"HTML is {issue.html_size / 1024:.1f} KB: Gmail clips messages over "
            f"{GMAIL_CLIP_BYTES // 1024} KB; lower max_per_category or "
            "related_per_article"
        )
    return Issue(issue.digest, issue.subject, issue.preheader, issue.html, issue.text, tuple(warnings))
