"""Bounces, complaints and mailto: unsubscribes, read from the bounce mailbox.

Every message goes out with its own return path, `bounces+<token>@domain` (VERP,
`[bounces] return_path`), the token naming the delivery and signed (tokens.py), so a
bounce names its delivery without guesswork. `newsletter bounces` (and `newsletter run`,
every `[bounces] every`) reads the mailbox, a Maildir or IMAP over TLS, and acts on each mail:

- a DSN (RFC 3464), or another common bounce shape (flufl.bounce's detectors), marks the
  delivery `bounced` with its status code. A hard bounce (5.x.x) suppresses the address at
  once, soft ones (4.x.x) after `[bounces] soft_limit` in a row across issues. A delay
  notice ("Action: delayed": the relay is still trying) is recorded and changes nothing.
- an ARF feedback report (RFC 5965: someone pressed "spam") suppresses the address as
  `complained`.
- a mail to the List-Unsubscribe `mailto:` address whose token (the subject
  "unsubscribe TOKEN", or an address unsubscribe+TOKEN@) checks out unsubscribes its
  subscriber.

Which delivery: only one the mail proves it is about. Anyone can write a DSN or an ARF
report naming any address, so the address in it proves nothing; what does is a
return-path token whose HMAC checks out (in the bounce's recipient headers, the DSN's
fields, the returned message), or else the returned message's Message-ID equal to the
one stored for a delivery, its 128 random bits included.

Each mail acted on is recorded by a digest of its bytes, in one transaction with what it
did (`Suppression.record_bounce`), and only then moved away (Maildir: into its `.Processed`
folder; IMAP: flagged \\Seen and `NewsletterProcessed`): reading a mail twice changes
nothing, and none is lost. A mail that is none of these, or proves nothing, is left
where it is and reported; so is one that cannot be read at all (raw bytes no parser or
detector copes with), and the mails after it are still read.

This module is that pass: matching and acting. What one mail says is bounce_reading.py;
listing and moving the mails of a Maildir or an IMAP folder is mailbox.py.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from newsletter.core.errors import ConfigError, NewsletterError
from newsletter.core.models import COMPLAINT, DELAYED, HARD, SOFT, UNSUBSCRIBE
from newsletter.core.tokens import BadToken, Tokens
from newsletter.delivery.bounce_reading import Reading, one_line, read_mail
from newsletter.delivery.mailbox import UNHANDLED, Mail, Mailbox, open_mailbox
from newsletter.storage.suppression import BounceRecord, BounceTarget, Suppression

if TYPE_CHECKING:
    from newsletter.project import Project

logger = logging.getLogger(__name__)


# -- which delivery ---------------------------------------------------------


def target_of(reading: Reading, ledger: Suppression, tokens: Tokens) -> BounceTarget | None:
    """The delivery a bounce or complaint proves it is about: a return-path token whose
    HMAC checks out, else a Message-ID equal to a stored one, random part and all. Never
    the recipient the mail names: anyone can write a DSN about anyone."""
    for token in reading.tokens:
        try:
            delivery_id = tokens.read_delivery(token)
        except BadToken:
            continue
        found = ledger.bounce_target(delivery_id)
        if found is not None:
            return found
    return ledger.delivery_by_message_id(reading.message_id) if reading.message_id else None


def unsubscriber_of(reading: Reading, ledger: Suppression, tokens: Tokens) -> int | None:
    try:
        subscriber_id = tokens.read(reading.unsubscribe_token)
    except BadToken:
        return None
    return subscriber_id if ledger.subscriber(subscriber_id) is not None else None


# -- one pass over the mailbox ----------------------------------------------


@dataclass
class Summary:
    mailbox: str
    counts: Counter[str] = field(default_factory=Counter)  # by kind; "seen": read before
    suppressed: list[str] = field(default_factory=list)  # "ann@example.org: bounced"
    left: list[str] = field(default_factory=list)  # mails this pass put aside, and why
    unhandled: int = 0  # all the mails put aside (this pass and before), for a person

    def as_json(self) -> dict[str, object]:
        return {
            "mailbox": self.mailbox,
            **self.counts,
            "suppressed": self.suppressed,
            "left": self.left,
            "unhandled": self.unhandled,
        }

    def line(self) -> str:
        kinds = (HARD, SOFT, DELAYED, COMPLAINT, UNSUBSCRIBE, "seen")
        shown = ", ".join(f"{self.counts[k]} {LABELS[k]}" for k in kinds if self.counts[k])
        return f"{self.mailbox}: {shown or 'nothing new'}; {len(self.suppressed)} suppressed" + (
            f", {self.unhandled} unhandled ({len(self.left)} new) put aside in {UNHANDLED}"
            if self.unhandled
            else ""
        )


LABELS = {
    HARD: "hard bounces",
    SOFT: "soft bounces",
    DELAYED: "delay notices",
    COMPLAINT: "complaints",
    UNSUBSCRIBE: "unsubscribes",
    "seen": "read before",
}


def process(mailbox: Mailbox, ledger: Suppression, tokens: Tokens, soft_limit: int, now: datetime) -> Summary:
    """Act on every mail in the mailbox that proves which delivery or subscriber it is
    about; move each one acted on, leave the others. Each mail on its own: one that cannot
    be read is left and reported, and the next is read. Acting is not guarded: a database
    error (StoreError) stops the pass, as nothing more could be recorded."""
    summary = Summary(mailbox.name)
    for mail in mailbox.mails():
        key = hashlib.sha256(mail.data).hexdigest()
        if ledger.bounce_seen(key):  # acted on, not moved (stopped in between): move it now
            mailbox.done(mail)
            summary.counts["seen"] += 1
            continue
        reading = _read(mail, summary)
        if reading is None:
            mailbox.put_aside(mail)
            continue
        record = _record(key, reading, ledger, tokens)
        if record is None:
            summary.left.append(f"{mail}: {_unproven(reading)}")
            mailbox.put_aside(mail)
            continue
        outcome = ledger.record_bounce(record, soft_limit, now)
        mailbox.done(mail)
        summary.counts["seen" if outcome.seen else reading.kind] += 1
        if outcome.suppressed is not None and record.subscriber_id is not None:
            subscriber = ledger.subscriber(record.subscriber_id)
            summary.suppressed.append(f"{subscriber.email if subscriber else '?'}: {outcome.suppressed}")
    summary.unhandled = mailbox.tally().unhandled
    return summary


def _read(mail: Mail, summary: Summary) -> Reading | None:
    """What a mail says, or None and the mail reported. The one guarded step: a stranger's
    bytes go through email's parser and flufl.bounce's detectors, which may raise anything
    on them; that mail is left, and the next one read."""
    try:
        reading = read_mail(mail.data)
    except Exception as e:  # noqa: BLE001 (see above; nothing is acted on yet)
        logger.debug("bounces: %s cannot be read", mail, exc_info=True)
        summary.left.append(f"{mail}: cannot be read ({_reason(e)})")
        return None
    if reading is None:
        summary.left.append(f"{mail}: not a bounce, complaint or unsubscribe that can be read")
    return reading


def _reason(error: Exception) -> str:
    """An exception in one printable line, short: it may quote the mail's own bytes."""
    text = "".join(c if c.isprintable() else "?" for c in one_line(str(error)))[:200]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _unproven(reading: Reading) -> str:
    if reading.kind == UNSUBSCRIBE:
        return "an unsubscribe whose token is not ours"
    return (
        f"a {LABELS[reading.kind][:-1]} with neither a valid return-path token of ours nor a "
        "Message-ID we sent (forged, or its return path rewritten); not acted on"
    )


def _record(key: str, reading: Reading, ledger: Suppression, tokens: Tokens) -> BounceRecord | None:
    if reading.kind == UNSUBSCRIBE:
        subscriber_id = unsubscriber_of(reading, ledger, tokens)
        if subscriber_id is None:
            return None
        return BounceRecord(key, UNSUBSCRIBE, None, subscriber_id, detail=f"mailto: from {reading.recipient}")
    target = target_of(reading, ledger, tokens)
    if target is None:
        return None
    return BounceRecord(
        key, reading.kind, target.delivery_id, target.subscriber_id, reading.status, reading.detail
    )


def read_mailbox(project: Project, spec: str | None, now: datetime) -> Summary:
    """`newsletter bounces`: the project's mailbox (or `spec`), read once."""
    from newsletter.core.tokens import secret_key

    chosen = spec or project.settings.bounces.mailbox
    if not chosen:
        raise ConfigError(
            str(project.root / "newsletter.toml"),
            "bounces.mailbox",
            "missing; expected a Maildir path or imaps://USER@HOST/FOLDER (or pass --mailbox)",
        )
    tokens = Tokens(secret_key(project.environ))
    with closing(open_mailbox(chosen, project.root, project.environ)) as mailbox:
        return process(mailbox, Suppression(project.store), tokens, project.settings.bounces.soft_limit, now)


def scheduled(root: Path, log: logging.Logger) -> Summary | None:
    """`newsletter run`'s job: read the mailbox, log one line (and each mail left)."""
    from newsletter.core.clock import utc_now
    from newsletter.project import Project

    try:
        with closing(Project(root)) as project:
            summary = read_mailbox(project, None, utc_now())
    except NewsletterError as e:
        log.error("bounces: %s%s", e, f" ({e.hint})" if e.hint else "")
        return None
    except Exception:  # a bug or a database outage: log it, keep the daemon alive
        log.exception("bounces: failed")
        return None
    for left in summary.left:
        log.warning("bounces: %s: %s; put aside in %s", summary.mailbox, left, UNHANDLED)
    log.info("bounces: %s", summary.line())
    return summary
