"""Every header we write reads back as what we meant, with the decoder mail clients
model best (`email.policy.default`), and the header rules providers check.

Python 3.11's own folder once turned "pâtés et crêpes" into "pâtés etcrêpes" (a space
left between two encoded-words, which decoders must drop): these tests are the guard."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from newsletter.core.text import plain_line
from newsletter.digest.mail import ListId, MessageTemplate, Recipient, feedback_id, header_name

DATE = datetime(2026, 11, 23, 8, tzinfo=UTC)
ADDRESS = "digest@news.example.net"

# Any Unicode but lone surrogates (not text), weighted towards what breaks folding:
# spaces and tabs between words, accents as combining marks, emoji, long runs.
any_char = st.characters(blacklist_categories=["Cs"])
word = st.one_of(
    st.text(any_char, min_size=1, max_size=12),
    st.sampled_from(
        ["pâtés", "et", "crêpes", "e\u0301", "👩\u200d🔬", "東京", "=?utf-8?q?x?=", '"', "\\", "a.b"]
    ),
    st.text(st.sampled_from("aé ☕\t"), min_size=1, max_size=300),
)
gap = st.sampled_from([" ", "  ", "\t", " \t ", "\u00a0", ""])
texts = st.one_of(
    st.text(any_char, max_size=400),
    st.lists(st.tuples(word, gap), max_size=60).map(lambda parts: "".join(w + g for w, g in parts)),
)


def parse(data: bytes) -> EmailMessage:
    return message_from_bytes(data, policy=policy.default)


def from_setting(name: str) -> str:
    """`[email] from` as a user would write it: the name on one line, in double quotes."""
    escaped = plain_line(name).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}" <{ADDRESS}>'


def display_name(message: EmailMessage, field: str) -> str:
    [address] = message[field].addresses
    assert address.addr_spec == (ADDRESS if field == "From" else "ann@example.org")
    return str(address.display_name)


@pytest.mark.slow
@settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject=texts, from_name=texts, to_name=texts, title=texts)
@example("Crème brûlée, pâtés et crêpes : le guide… le a Ünal Ünal crêpes crêpes le pâtés ß", "", "", "")
@example("x" * 2000, "y " * 500, "é" * 700, "👩\u200d🔬 " * 100)
def test_every_header_decodes_to_what_was_meant(subject: str, from_name: str, to_name: str, title: str):
    template = MessageTemplate(
        subject,
        "text",
        "<p>html</p>",
        from_setting(from_name),
        DATE,
        ListId(title, "weekly.news.example.net"),
    )
    data = template.render(Recipient(to_name, "ann@example.org", "<a1.1@news.example.net>"))
    header_block = data.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 998 for line in header_block.split(b"\r\n"))
    assert all(b < 128 for b in data)
    message = parse(data)
    assert message.defects == []
    assert message["Subject"] == plain_line(subject)
    # Display names are also cut to 150 characters (mail.header_name).
    assert display_name(message, "From") == template.origin.display_name == header_name(from_name)
    assert display_name(message, "To") == header_name(to_name)
    expected_title = plain_line(title)
    assert message["List-Id"] == (
        f"{expected_title} <weekly.news.example.net>" if expected_title else "<weekly.news.example.net>"
    )


def test_the_reported_subject_keeps_its_spaces():
    subject = "Crème brûlée, pâtés et crêpes : le guide de la cuisine française pour les débutants"
    data = MessageTemplate(subject, "t", "h", f"Chef <{ADDRESS}>", DATE).render(
        Recipient("Zoë Ünal", "ann@example.org", "<1@x.example>")
    )
    assert parse(data)["Subject"] == subject
    lines = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert all(len(line) <= 78 for line in lines)


def test_plain_ascii_stays_readable_on_the_wire():
    data = MessageTemplate("Mind & Body Weekly: sleep", "t", "h", f"Mind & Body <{ADDRESS}>", DATE).render(
        Recipient("Ann Example", "ann@example.org", "<1@x.example>")
    )
    assert b"\r\nSubject: Mind & Body Weekly: sleep\r\n" in data
    assert b"\r\nFrom: Mind & Body <digest@news.example.net>\r\n" in data
    assert data.startswith(b"To: Ann Example <ann@example.org>\r\n")


def test_feedback_id_reads_back_and_there_is_no_precedence_bulk():
    template = MessageTemplate(
        "s", "t", "h", f"News <{ADDRESS}>", DATE, feedback=feedback_id(42, "weekly", "news.example.net")
    )
    message = parse(template.render(Recipient("Ann", "ann@example.org", "<1@x.example>")))
    assert message["Feedback-ID"] == "42:weekly:newsletter:news.example.net"
    assert message["Precedence"] is None


def test_feedback_id_fields_hold_no_colon_or_space():
    assert feedback_id(7, "we:ek ly", "exämple.org") == "Feedback-ID: 7:we-ek-ly:newsletter:ex-mple.org\r\n"
