"""MIME: an Issue becomes a multipart/alternative email (text, then HTML).

A `MessageTemplate` encodes a rendered issue once; each recipient's message
is spliced from those encoded pieces and a few per-recipient ones (To,
Message-ID, List-Unsubscribe and the unsubscribe token in both bodies).
Rebuilding an EmailMessage per recipient costs about 10 ms; splicing costs
microseconds.
"""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from email import quoprimime
from email.headerregistry import Address
from email.utils import format_datetime, make_msgid

from newsletter.core.addresses import parse_mailbox
from newsletter.core.errors import ConfigError
from newsletter.core.text import plain_line

# Stands for the recipient's unsubscribe token in the rendered bodies. Letters
# only: autoescaping, premailer and quoted-printable all leave it whole.
TOKEN_PLACEHOLDER = "NLXUNSUBSCRIBETOKENX"
PREFERENCES_PLACEHOLDER = "NLXPREFERENCESTOKENX"  # the preference centre's token, likewise
PLACEHOLDERS = re.compile(f"({TOKEN_PLACEHOLDER}|{PREFERENCES_PLACEHOLDER})")
CRLF = "\r\n"
SOFT_BREAK = "=\r\n"
SOFT_BREAK_BYTES = SOFT_BREAK.encode("ascii")
MAX_LINE = 76
# Header lines: RFC 5322's 78 for plain words; RFC 2047 caps a line that holds an encoded-word
# at 76 and the encoded-word itself at 75. Only a word that cannot be split (a plain word of
# up to LONGEST_PLAIN_WORD, a display name's encoded-word) makes a longer line, never past 998.
PLAIN_LINE = 78
ENCODED_LINE = 76
ENCODED_WORD = 75
EW_OPEN, EW_CLOSE = "=?utf-8?q?", "?="
# Bytes an encoded-word may carry as they are: the set RFC 2047 (5.3) allows in a phrase,
# so one encoding serves Subject, display names and List-Id alike. The rest is =XX, a
# space is "_": every space of the text is *inside* an encoded-word, never between two.
Q_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
# RFC 5322 atext: words of these may stand in a phrase unquoted.
ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+")
PRINTABLE = re.compile(r"[ -~]*")
# A reader's To as most are: a name of atoms, an address of printable ASCII. Such a name and
# address are what `plain_line` leaves them, and `address_header` gives them on one line when
# the line fits, `To: name <address>` (tests/test_mail.py checks the two agree).
PLAIN_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
PLAIN_ADDRESS = re.compile(r"[!-~]+")
LONGEST_PLAIN_WORD = 900  # a longer unbroken word is encoded, so it can be split
# A display name in one encoded-word (see _display_name) is at most 4 bytes a character,
# 8/3 of that in base64: 150 characters stay under 830 octets, one line with its name.
MAX_NAME = 150


def sender(from_header: str) -> Address:
    """The [email] from setting as an Address; a bad one is a config error.

    Settings are checked with the same `parse_mailbox` when they load, so this
    only fails for a header that did not come from validated settings."""
    try:
        name, addr = parse_mailbox(from_header)
    except ValueError as e:
        raise ConfigError("newsletter.toml", "email.from", f"expected {e}, got {from_header!r}") from e
    username, domain = addr.rsplit("@", 1)
    return Address(header_name(name), username, domain)


# -- headers ------------------------------------------------------------------
#
# Headers are encoded here, not by the email package: Python 3.11's folder can end one
# encoded-word before a space and start the next after it, and RFC 2047 tells decoders to
# drop whitespace between adjacent encoded-words, so "pâtés et crêpes" came back as
# "pâtés etcrêpes". Here a value is either plain words (folded at its own spaces) or
# entirely encoded-words that carry every space inside them, separated only by folding.
# Every value first goes through `plain_line`: control characters, line breaks and runs
# of whitespace become one space, and the ends are trimmed (what the decoded header shows).


def header(name: str, value: str) -> str:
    """An unstructured header (Subject), folded and RFC 2047-encoded as needed."""
    return _fold(name, _unstructured(name, plain_line(value)))


def address_header(name: str, display_name: str, addr_spec: str) -> str:
    """From or To: `phrase <addr>`, the phrase plain, quoted or encoded as it needs."""
    phrase = header_name(display_name)
    address = plain_line(addr_spec)
    if not phrase:
        return _fold(name, [address])
    return _fold(name, [*_display_name(phrase), f"<{address}>"])


def header_name(text: str) -> str:
    """A display name as From and To carry it: `plain_line`, then cut to MAX_NAME
    characters, so that its longest encoded-word (below) still fits on one line."""
    return plain_line(text)[:MAX_NAME].rstrip(" ")


def list_id_header(title: str, list_id: str) -> str:
    """RFC 2919 List-Id: `title <id>`. Readers take it as unstructured text, so the title
    is never quoted: plain atoms, or encoded-words, which both read back the same."""
    phrase = plain_line(title)
    ident = f"<{plain_line(list_id)}>"
    if not phrase:
        return _fold("List-Id", [ident])
    words = phrase.split(" ")
    if "=?" in phrase or not all(ATOM.fullmatch(w) and len(w) <= LONGEST_PLAIN_WORD for w in words):
        words = encoded_words(phrase, _first_room("List-Id"))
    return _fold("List-Id", [*words, ident])


def _unstructured(name: str, text: str) -> list[str]:
    if _plain_words(text):
        return text.split(" ")
    return encoded_words(text, _first_room(name))


def _display_name(text: str) -> list[str]:
    """Atoms as they are; printable ASCII quoted; otherwise each run of words that are
    not atoms as ONE encoded-word, spaces inside, between plain atoms. Never two
    encoded-words side by side: RFC 2047 readers drop the space between them, Python's
    address parser (gh-128110, in 3.11) puts one in, so no split reads back the same in
    both. Such a word may pass RFC 2047's 75 characters; MAX_NAME keeps it on one line."""
    words = text.split(" ")
    if all(_atom(w) for w in words):
        return words
    if PRINTABLE.fullmatch(text) and "=?" not in text:  # Python decodes "=?" even in quotes
        escaped = text.replace("\\", "\\\\").replace('"', '\\"')
        return [f'"{escaped}"']  # one token: never folded inside the quotes
    tokens: list[str] = []
    run: list[str] = []
    for w in [*words, ""]:  # "" ends the last run
        if w and not _atom(w):
            run.append(w)
            continue
        if run:
            tokens.append(_one_encoded_word(" ".join(run)))
            run = []
        if w:
            tokens.append(w)
    return tokens


def _atom(word: str) -> bool:
    return bool(ATOM.fullmatch(word)) and "=?" not in word


def _one_encoded_word(text: str) -> str:
    """`text` in a single encoded-word, Q or B, whichever is shorter."""
    q = "".join(map(_q, text))
    b = base64.b64encode(text.encode("utf-8")).decode("ascii")
    return f"=?utf-8?q?{q}?=" if len(q) <= len(b) else f"=?utf-8?b?{b}?="


def _plain_words(text: str) -> bool:
    """Printable ASCII that no decoder could mistake for an encoded-word ("=?"), in words
    short enough to fold between: it goes out as it is, and reads back the same."""
    return (
        bool(PRINTABLE.fullmatch(text))
        and "=?" not in text
        and all(len(w) <= LONGEST_PLAIN_WORD for w in text.split(" "))
    )


def _first_room(name: str) -> int:
    """The first encoded-word shares its line with `Name: `."""
    return min(ENCODED_WORD, ENCODED_LINE - len(name) - 2)


def encoded_words(text: str, first_room: int = ENCODED_WORD) -> list[str]:
    """`text` as RFC 2047 Q encoded-words of UTF-8, each at most `first_room` (then 75)
    characters, split only between characters, never inside one's UTF-8 bytes."""
    words: list[str] = []
    room = first_room - len(EW_OPEN) - len(EW_CLOSE)
    current: list[str] = []
    used = 0
    for char in text:
        encoded = _q(char)
        if current and used + len(encoded) > room:
            words.append(f"{EW_OPEN}{''.join(current)}{EW_CLOSE}")
            current, used = [], 0
            room = ENCODED_WORD - len(EW_OPEN) - len(EW_CLOSE)
        current.append(encoded)
        used += len(encoded)
    words.append(f"{EW_OPEN}{''.join(current)}{EW_CLOSE}")
    return words


def _q(char: str) -> str:
    if char == " ":
        return "_"
    return "".join(chr(b) if b in Q_SAFE else f"={b:02X}" for b in char.encode("utf-8"))


def _fold(name: str, tokens: list[str]) -> str:
    """`Name: tokens`, one space between tokens, a line break before a token that would
    make its line too long. Unfolding removes only the CRLF, so a space between plain
    words stays a space, and one between encoded-words is dropped (RFC 2047, 6.2)."""
    lines = [f"{name}:"]
    for token in tokens:
        limit = ENCODED_LINE if token.startswith(EW_OPEN) else PLAIN_LINE
        if len(lines[-1]) + 1 + len(token) > limit and lines[-1] != f"{name}:":
            lines.append("")
        lines[-1] += f" {token}"
    return CRLF.join(lines) + CRLF


def feedback_id(issue_id: int, schedule: str, sender_id: str) -> str:
    """Gmail's Feedback-ID, `campaign:customer:type:sender`: complaints are reported per
    issue and schedule. Only what cannot hold a colon or a space goes in."""
    fields = [str(issue_id), schedule, "newsletter", sender_id]
    cleaned = [re.sub(r"[^A-Za-z0-9._-]", "-", f) for f in fields]
    return header("Feedback-ID", ":".join(cleaned))


def new_message_id(delivery_id: int, domain: str) -> str:
    """Globally unique (128 random bits), and naming its delivery for whoever reads logs.
    Made once per delivery and stored, so a retry sends the same one."""
    return f"<{secrets.token_hex(16)}.{delivery_id}@{domain}>"


@dataclass(frozen=True)
class ListId:
    """RFC 2919: the list's title, and its id (`schedule.domain`)."""

    title: str
    ident: str


@dataclass(frozen=True)
class Recipient:
    """Who one message goes to, and the pieces that make it theirs."""

    name: str
    email: str
    message_id: str
    token: str = ""
    unsubscribe_url: str = ""
    unsubscribe_mailto: str = ""
    preferences_token: str = ""


class MessageTemplate:
    """An issue encoded once: subject, bodies and fixed headers."""

    def __init__(
        self,
        subject: str,
        text: str,
        html: str,
        from_header: str,
        date: datetime,
        list_id: ListId | None = None,
        feedback: str = "",
        encoded: tuple[str, list[str]] | None = None,
    ) -> None:
        """`encoded`: the (boundary, body pieces) of an earlier template of the same text and
        html (`encoded_body`), kept so that no process encodes a variant twice."""
        self.origin = sender(from_header)
        self.boundary = encoded[0] if encoded else f"=_newsletter_{secrets.token_hex(12)}"
        fixed = [
            address_header("From", self.origin.display_name, self.origin.addr_spec),
            header("Subject", subject),
            header("Date", format_datetime(date)),
            "MIME-Version: 1.0\r\n",
        ]
        if list_id is not None:
            fixed.append(list_id_header(list_id.title, list_id.ident))
        if feedback:  # a Feedback-ID, from `feedback_id` (no Precedence: bulk, deprecated)
            fixed.append(feedback)
        fixed.append(f'Content-Type: multipart/alternative;{CRLF} boundary="{self.boundary}"{CRLF}')
        self.fixed_headers = "".join(fixed)
        self.head = f"{self.fixed_headers}{CRLF}".encode("ascii")
        # The body as the parts that are the same for every reader (`fixed`, bytes once for
        # every message: DKIM hashes them once) and the placeholders of theirs between them.
        pieces = (
            list(encoded[1])
            if encoded is not None
            else _body_pieces(self.boundary, _encoded_pieces(text), _encoded_pieces(html))
        )
        self.fixed = [piece.encode("ascii") for piece in pieces[::2]]
        self.slots = pieces[1::2]

    def encoded_body(self) -> tuple[str, list[str]]:
        """The boundary and the encoded body, to be kept (storage) and given back as `encoded`."""
        pieces = [self.fixed[0].decode("ascii")]
        for slot, piece in zip(self.slots, self.fixed[1:], strict=True):
            pieces += (slot, piece.decode("ascii"))
        return self.boundary, pieces

    def render(self, recipient: Recipient) -> bytes:
        """The whole message for one recipient, CRLF line endings, ready for SMTP: its own
        headers, then the bytes made once, the reader's tokens spliced between them. Soft
        line breaks around each token keep every line under 76 characters whatever the
        token's length (they are URL-safe: nothing in them needs quoting)."""
        heads = [_to_header(recipient.name, recipient.email), f"Message-ID: {recipient.message_id}{CRLF}"]
        if recipient.unsubscribe_url:
            heads.append(_list_unsubscribe(recipient))
        message = ["".join(heads).encode("ascii"), self.head, self.fixed[0]]
        tokens = _tokens(recipient)
        for slot, piece in zip(self.slots, self.fixed[1:], strict=True):
            message += (SOFT_BREAK_BYTES, tokens[slot], SOFT_BREAK_BYTES, piece)
        return b"".join(message)

    def fixed_body(self) -> list[bytes]:
        """The body's parts that are the same for every reader, in order; a reader's own
        (`readers_body`) go between them."""
        return list(self.fixed)

    def readers_body(self, recipient: Recipient) -> list[bytes]:
        """What goes between the fixed parts for one reader: each token on a line of its own."""
        tokens = _tokens(recipient)
        return [SOFT_BREAK_BYTES + tokens[slot] + SOFT_BREAK_BYTES for slot in self.slots]


def _to_header(name: str, email: str) -> str:
    """`address_header("To", ...)`, without its work for the plain names most readers have."""
    line = f"To: {name} <{email}>{CRLF}"
    fits = len(line) <= PLAIN_LINE + len(CRLF) and "=?" not in name
    if fits and PLAIN_NAME.fullmatch(name) and PLAIN_ADDRESS.fullmatch(email):
        return line
    return address_header("To", name, email)


def _list_unsubscribe(recipient: Recipient) -> str:
    """RFC 2369 with an https URL and a mailto, plus RFC 8058 one-click."""
    links = f"<{recipient.unsubscribe_url}>"
    if recipient.unsubscribe_mailto:
        links += f",{CRLF} <{recipient.unsubscribe_mailto}>"
    return f"List-Unsubscribe: {links}{CRLF}List-Unsubscribe-Post: List-Unsubscribe=One-Click{CRLF}"


def _part_headers(subtype: str) -> str:
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"{CRLF}'
        f"Content-Transfer-Encoding: quoted-printable{CRLF}{CRLF}"
    )


def _encoded_pieces(body: str) -> list[str]:
    """The body quoted-printable encoded around each token placeholder: encoded pieces at
    even positions, the placeholders between them (odd positions) as they are."""
    return [piece if i % 2 else _quoted_printable(piece) for i, piece in enumerate(PLACEHOLDERS.split(body))]


def _quoted_printable(text: str) -> str:
    # quoprimime works on characters < 256: hand it the UTF-8 bytes as latin-1.
    raw = text.replace("\r\n", "\n").encode("utf-8").decode("latin-1")
    return quoprimime.body_encode(raw, maxlinelen=MAX_LINE, eol=CRLF)


def _tokens(recipient: Recipient) -> dict[str, bytes]:
    return {
        TOKEN_PLACEHOLDER: recipient.token.encode("ascii"),
        PREFERENCES_PLACEHOLDER: recipient.preferences_token.encode("ascii"),
    }


def _body_pieces(boundary: str, text: list[str], html: list[str]) -> list[str]:
    """The multipart body as `_encoded_pieces` are: fixed text at even positions (adjacent
    ones joined), placeholders at odd ones."""
    pieces = [f"--{boundary}{CRLF}{_part_headers('plain')}"]
    for encoded, after in ((text, f"{CRLF}--{boundary}{CRLF}{_part_headers('html')}"), (html, "")):
        pieces[-1] += encoded[0]
        pieces.extend(encoded[1:])
        pieces[-1] += after
    pieces[-1] += f"{CRLF}--{boundary}--{CRLF}"
    return pieces


def archive_message_id(domain: str) -> str:
    return make_msgid("digest", domain=domain)
