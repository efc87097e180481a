from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy

from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.digest import mail
from newsletter.digest.mail import (
    PREFERENCES_PLACEHOLDER,
    TOKEN_PLACEHOLDER,
    ListId,
    MessageTemplate,
    Recipient,
    address_header,
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


# Names and addresses near the To header's fast path: atoms and spaces, with now and then
# what takes them off it (two spaces, "=?", a quote, a tab, non-ASCII), at lengths either
# side of one line.
atext = "abcXYZ019!#$%&'*+/=?^_`{|}~- "
bits = st.sampled_from([*atext, "=?", "  ", '"', "\t", "é", "<", "@"])
near_plain = st.lists(bits, max_size=90).map("".join)
atoms = st.lists(st.text(alphabet=atext.strip(), min_size=1, max_size=12), min_size=1, max_size=12).map(
    " ".join
)


@settings(max_examples=500, deadline=None)
@given(
    name=st.one_of(atoms, near_plain, st.text(max_size=90)),
    email=st.one_of(
        st.from_regex(r"[a-z0-9.]{1,30}@example\.org", fullmatch=True), near_plain, st.text(max_size=60)
    ),
)
def test_the_to_header_of_a_plain_name_is_the_one_address_header_makes(name: str, email: str) -> None:
    assert mail._to_header(name, email) == address_header("To", name, email)


def test_a_stored_body_renders_the_same_bytes():
    html = f"<a href='u?t={TOKEN_PLACEHOLDER}'>x</a> <a href='p?t={PREFERENCES_PLACEHOLDER}'>y</a>"
    made = MessageTemplate("s", f"t {TOKEN_PLACEHOLDER}", html, FROM, DATE)
    again = MessageTemplate("s", "", "", FROM, DATE, encoded=made.encoded_body())
    reader = Recipient("Ann", "ann@example.org", "<1@example.org>", "T0K", "https://x/u?t=T0K", "", "PR3F")
    assert again.render(reader) == made.render(reader)
    assert again.encoded_body() == made.encoded_body()
    assert b"=\r\nT0K=\r\n" in made.render(reader) and b"=\r\nPR3F=\r\n" in made.render(reader)
