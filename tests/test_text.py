"""The one cleaner of a person's name (CSV import, signup, preference centre) and the
header-safe line it builds on (newsletter/core/text.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from newsletter.audience.subscribers import parse_csv
from newsletter.core.text import CONTROL_CHARS, NAME_MAX, person_name, plain_line, storable

# Every code point, lone surrogates (JSON's "\ud800") and the characters that matter most.
ANY_TEXT = st.text(
    st.one_of(st.characters(codec=None), st.sampled_from("\x00\r\n\t\x0b\x0c\x85\u2028\u2029 "))
)


@given(ANY_TEXT)
def test_a_cleaned_name_is_one_short_line_and_stays_as_it_is(raw: str):
    name = person_name(raw)
    assert not CONTROL_CHARS.search(name)  # NUL, CR, LF, tabs, C1, U+2028/9
    assert "\x00" not in name and len(name.splitlines()) <= 1
    assert len(name) <= NAME_MAX and name == name.strip()
    name.encode("utf-8")  # no lone surrogate: every database can store it
    assert person_name(name) == name


@given(ANY_TEXT)
def test_storable_text_has_no_nul_and_encodes(raw: str):
    kept = storable(raw)
    assert "\x00" not in kept and len(kept) == len(raw)
    kept.encode("utf-8")


def test_the_csv_import_and_the_forms_clean_a_name_alike():
    raw = "  Ann\x00\x0b\x85  Bcc:\tx@example.org " + "é" * 300  # a CSV name never spans lines
    parsed = parse_csv("people.csv", f'email,name\nann@example.org,"{raw}"\n'.encode())
    [row] = parsed.rows
    assert row.name == person_name(raw) == plain_line(raw)[:NAME_MAX]
    assert row.name.startswith("Ann Bcc: x@example.org é")
