"""The subscriber exports of other newsletter tools, read as they come: which tool wrote a
file (by its header row), and each row in our words: address, name, categories (their
tags or labels) and status. Someone who unsubscribed or bounced there is kept here as
unsubscribed or bounced, so they are never mailed. Pure: a row in, a reading out.

The columns are the tools' documented exports; tests/fixtures/imports/README.md says
where each came from.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from newsletter.core.models import SubscriberStatus as S

Fields = dict[str, str]  # a row by its header's names, lower-cased and stripped


@dataclass(frozen=True)
class Reading:
    email: str
    name: str = ""
    categories: tuple[str, ...] = ()
    status: str = S.ACTIVE
    skip: str = ""  # why the row is left out (a warning), if it is


@dataclass(frozen=True)
class Format:
    name: str
    emails: tuple[str, ...]  # the column with the address (one of them)
    detect: Callable[[set[str]], bool]
    read: Callable[[Fields], Reading]


def _ours(fields: Fields) -> Reading:
    return Reading(fields.get("email", ""), fields.get("name", ""), _split(fields.get("categories", ""), ";"))


def _mailchimp(fields: Fields) -> Reading:
    """An audience export is three files: subscribed, unsubscribed (UNSUB_TIME) and cleaned
    (CLEAN_TIME: addresses that bounced). TAGS is `"Tag one","Tag two"`."""
    name = " ".join(
        p for p in (fields.get("first name", "").strip(), fields.get("last name", "").strip()) if p
    )
    status = S.ACTIVE
    if "clean_time" in fields:
        status = S.BOUNCED
    elif "unsub_time" in fields:
        status = S.UNSUBSCRIBED
    return Reading(fields.get("email address", ""), name, _split(fields.get("tags", ""), ","), status)


def _substack(fields: Fields) -> Reading:
    """No names or tags; `email_disabled` true: the reader turned the emails off."""
    off = _true(fields.get("email_disabled", ""))
    return Reading(fields.get("email", ""), status=S.UNSUBSCRIBED if off else S.ACTIVE)


# Buttondown's subscriber types: who may be mailed, who is kept off, who is left out.
BUTTONDOWN_OFF = {"unsubscribed": S.UNSUBSCRIBED, "removed": S.UNSUBSCRIBED, "undeliverable": S.BOUNCED}
BUTTONDOWN_LEFT_OUT = {
    "unactivated": "never confirmed at Buttondown; left out (import it with --double-opt-in to ask)",
    "spammy": "marked spammy at Buttondown; left out",
}


def _buttondown(fields: Fields) -> Reading:
    kind = (fields.get("subscriber_type") or fields.get("type") or "regular").strip().lower()
    email = fields.get("email") or fields.get("email_address", "")
    tags = _split(fields.get("tags", ""), ",")
    return Reading(email, "", tags, BUTTONDOWN_OFF.get(kind, S.ACTIVE), BUTTONDOWN_LEFT_OUT.get(kind, ""))


def _listmonk(fields: Fields) -> Reading:
    """`status` enabled, disabled or blocklisted; lists are not in the export."""
    status = fields.get("status", "enabled").strip().lower()
    return Reading(
        fields.get("email", ""),
        fields.get("name", ""),
        (),
        S.ACTIVE if status == "enabled" else S.UNSUBSCRIBED,
    )


def _ghost(fields: Fields) -> Reading:
    """`subscribed_to_emails` false: the member turned newsletters off. Labels are categories."""
    off = not _true(fields.get("subscribed_to_emails", "true"))
    skip = "deleted at Ghost; left out" if fields.get("deleted_at", "").strip() else ""
    return Reading(
        fields.get("email", ""),
        fields.get("name", ""),
        _split(fields.get("labels", ""), ","),
        S.UNSUBSCRIBED if off else S.ACTIVE,
        skip,
    )


FORMATS = {
    "mailchimp": Format("mailchimp", ("email address",), lambda h: "email address" in h, _mailchimp),
    "substack": Format("substack", ("email",), lambda h: {"email", "active_subscription"} <= h, _substack),
    "buttondown": Format(
        "buttondown",
        ("email", "email_address"),
        lambda h: (
            bool({"subscriber_type", "type"} & h) and "tags" in h and bool({"email", "email_address"} & h)
        ),
        _buttondown,
    ),
    "listmonk": Format(
        "listmonk", ("email",), lambda h: {"uuid", "email", "attributes", "status"} <= h, _listmonk
    ),
    "ghost": Format("ghost", ("email",), lambda h: {"email", "subscribed_to_emails"} <= h, _ghost),
    "csv": Format("csv", ("email",), lambda h: "email" in h, _ours),
}
NAMES = tuple(FORMATS)


def detect(header: list[str]) -> Format | None:
    """The first format whose columns the header has; ours (`csv`) last."""
    names = set(header)
    return next((f for f in FORMATS.values() if f.detect(names)), None)


def _split(value: str, sep: str) -> tuple[str, ...]:
    """Tags as the tools write them: `a;b`, `a, b`, `"a","b"` or `['a', 'b']`."""
    text = value.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
            return tuple(str(i).strip() for i in items if str(i).strip()) if isinstance(items, list) else ()
        except ValueError:
            text = text.strip("[]")
    return tuple(t for t in (part.strip().strip("'\"").strip() for part in re.split(f"[{sep}]", text)) if t)


def _true(value: str) -> bool:
    return value.strip().lower() in ("true", "1", "yes", "t")
