"""The quality gate: what `newsletter check` and every build report about an issue.

A `Letter` is what is checked: the HTML, the text part and the headers when there is a
message. Each check returns `Finding`s: an error (exit 1), a warning (exit 1 with --strict),
a note (placeholder values in a built issue: `send` refuses them over SMTP) or a skipped
check (the data or tool it needs is missing: said, never passed silently).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Literal

Level = Literal["error", "warning", "note", "skipped"]


@dataclass(frozen=True)
class Finding:
    check: str
    level: Level
    message: str

    def __str__(self) -> str:
        return f"{self.level}: [{self.check}] {self.message}"

    def as_json(self) -> dict[str, str]:
        return {"check": self.check, "level": self.level, "message": self.message}


@dataclass
class Letter:
    """One email to check. `sent`: a message as it goes to a reader (DKIM-signed, or --sent),
    held to the bulk-sender rules; a built .eml or .html is not."""

    html: str
    text: str | None = None
    message: EmailMessage | None = None
    raw: bytes | None = None
    sent: bool = False
    subject: str = ""
    preheader: str | None = None


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)

    def of(self, level: Level) -> list[Finding]:
        return [f for f in self.findings if f.level == level]

    def passed(self, strict: bool = False) -> bool:
        return not self.of("error") and not (strict and self.of("warning"))

    def as_json(self) -> dict[str, object]:
        return {
            "passed": self.passed(),
            "errors": len(self.of("error")),
            "warnings": len(self.of("warning")),
            "findings": [f.as_json() for f in self.findings],
        }


def check_letter(letter: Letter, online: bool = False, spam: bool = True) -> Report:
    """Every check on one email; `online` adds HEAD requests, `spam` runs SpamAssassin."""
    from newsletter.digest.check import clients, html_checks, mail_checks, spam_score

    report = Report(html_checks.check_html(letter))
    report.findings += clients.check_clients(letter.html)
    report.findings += mail_checks.check_message(letter)
    if spam:
        report.findings += spam_score.check_spam(letter)
    if online:
        report.findings += html_checks.check_online(letter.html)
    return report


def read_letter(path: str, data: bytes, sent: bool | None = None) -> Letter:
    """An .eml (sent when DKIM-signed, unless `sent` says) or an .html file."""
    import email
    import email.policy

    if not path.lower().endswith(".eml"):
        return Letter(data.decode("utf-8", "replace"))
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    html = message.get_body(("html",))
    text = message.get_body(("plain",))
    return Letter(
        html.get_content() if html is not None else "",
        text.get_content() if text is not None else None,
        message,
        data,
        bool(message.get("DKIM-Signature")) if sent is None else sent,
        str(message.get("Subject", "")),
    )


def check_issue(subject: str, preheader: str, html: str, text: str) -> list[Finding]:
    """What a build (and the preview's issue page) reports: the HTML and text checks,
    without SpamAssassin (seconds per run: `newsletter check FILE.eml` runs it)."""
    from newsletter.digest.check import clients, html_checks

    letter = Letter(html, text, subject=subject, preheader=preheader)
    found = [*html_checks.check_html(letter), *clients.check_clients(html)]
    if not text.strip():
        found.append(Finding("structure", "error", "no text part"))
    return [f for f in found if f.level in ("error", "warning")]
