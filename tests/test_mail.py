from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy

from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.digest.mail import (
    PREFERENCES_PLACEHOLDER,
    TOKEN_PLACEHOLDER,
    ListId,
    MessageTemplate,
    Recipient,
)

DATE = datetime(2026, 11, 23, 8, tzinfo=UTC)
FROM = "Mind & Body <digest@example.org>"


def recipient(name: str = "Ann Example", token: str = "MQ.abc-DEF_123") -> Recipient:
    return Recipient(
        name,
        "ann@example.org",
        "<issue1.delivery1@example.org>",
        token,
        f"https://example.org/unsubscribe?token={token}",
        f"mailto:unsubscribe@example.org?subject=unsubscribe%20{token}",
    )


def parse(data: bytes):
    return message_from_bytes(data, policy=policy.default)


def test_message_is_multipart_alternative_with_every_header():
    template = MessageTemplate(
        "Weekly: café ☕", "Text body", "<p>HTML body</p>", FROM, DATE, ListId("Weekly", "w.example.org")
    )
    message = parse(template.render(recipient()))
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["Subject"] == "Weekly: café ☕"
    assert message["To"] == "Ann Example <ann@example.org>"
    assert message["Message-ID"] == "<issue1.delivery1@example.org>"
    assert message["List-Id"] == "Weekly <w.example.org>"
    assert message["List-Unsubscribe"] == (
        "<https://example.org/unsubscribe?token=MQ.abc-DEF_123>, "
        "<mailto:unsubscribe@example.org?subject=unsubscribe%20MQ.abc-DEF_123>"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["MIME-Version"] == "1.0"
    assert message["Date"]


def test_cr_lf_in_a_name_or_subject_never_adds_a_header():
    template = MessageTemplate("Hi\r\nBcc: victim@example.org", "t", "<p>h</p>", FROM, DATE)
    data = template.render(recipient(name="Eve\r\nBcc: victim@example.org"))
    message = parse(data)
    assert message["Bcc"] is None
    assert b"\r\nBcc:" not in data
    assert "victim@example.org" in message["Subject"]  # kept, harmlessly, as text


def test_non_ascii_names_are_encoded():
    data = MessageTemplate("s", "t", "h", FROM, DATE).render(recipient(name="Zoë Ünal"))
    assert parse(data)["To"] == "Zoë Ünal <ann@example.org>"
    assert all(b < 128 for b in data)


# Hypothesis draws string constants from the code under test too: a body holding the
# other placeholder (the preferences token's) is spliced as well, so none is drawn.
text_bodies = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\r"), max_size=400
).filter(lambda body: PREFERENCES_PLACEHOLDER not in body)
tokens = st.from_regex(r"[A-Za-z0-9_.-]{1,70}", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(st.lists(text_bodies, min_size=1, max_size=4), st.lists(text_bodies, min_size=1, max_size=4), tokens)
def test_splicing_equals_encoding_the_personalised_body(text_parts, html_parts, token):
    text, html = TOKEN_PLACEHOLDER.join(text_parts), TOKEN_PLACEHOLDER.join(html_parts)
    data = MessageTemplate("s", text, html, FROM, DATE).render(recipient(token=token))
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    body_lines = data.split(b"\r\n\r\n", 1)[1].split(b"\r\n")
    assert max(len(line) for line in body_lines) <= 78
    plain, rich = parse(data).iter_parts()
    # On the wire every line ends in CRLF; decoded, they are the template's lines.
    assert decoded(plain) == text.replace(TOKEN_PLACEHOLDER, token)
    assert decoded(rich) == html.replace(TOKEN_PLACEHOLDER, token)


def decoded(part) -> str:
    return part.get_payload(decode=True).decode().replace("\r\n", "\n")
