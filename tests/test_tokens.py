"""Tokens are made with a key derived once (send makes two a message); they must be the
tokens itsdangerous made before, byte for byte, and read back, or every link in every
email already sent would stop working."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from itsdangerous import URLSafeSerializer

from newsletter.core.tokens import MIN_SECRET_LENGTH, PREFERENCES_SALT, SALT, BadToken, Tokens

SECRET = "a-secret-of-thirty-two-characters"
# Made by itsdangerous 2.2.0's URLSafeSerializer before the fast path: links in mail already sent.
SENT_BEFORE = {
    (SALT, 42): "NDI.JOSw-xcL7l_qcZhfrSRY8iy0a4k",
    (PREFERENCES_SALT, 42): "NDI.BL6j2Q0omUXiilXAy_TjTgov1Rg",
    (SALT, -9999999): "LTk5OTk5OTk.gQKzgY5D30E9PSB4T31M-OVxsV8",  # the fast path's edges
    (SALT, 99999999): "OTk5OTk5OTk.Q9hdiIj0h0SSpeetB1eaBpIlKqc",
}
RETURN_PATH_SENT_BEFORE = "42-e697a2893b3e54e83521"  # a delivery's VERP token, made before


@given(st.integers(min_value=-(2**63), max_value=2**63))
def test_tokens_are_the_ones_itsdangerous_makes(subscriber_id: int) -> None:
    tokens = Tokens(SECRET)
    unsubscribe = URLSafeSerializer(SECRET, salt=SALT)
    preferences = URLSafeSerializer(SECRET, salt=PREFERENCES_SALT)
    assert tokens.make(subscriber_id) == unsubscribe.dumps(subscriber_id)
    assert tokens.purposes.make_preferences(subscriber_id) == preferences.dumps(subscriber_id)
    assert tokens.read(unsubscribe.dumps(subscriber_id)) == subscriber_id
    assert unsubscribe.loads(tokens.make(subscriber_id)) == subscriber_id
    assert tokens.purposes.read_preferences(tokens.purposes.make_preferences(subscriber_id)) == subscriber_id


def test_a_token_sent_before_still_reads() -> None:
    tokens = Tokens(SECRET)
    for (salt, subscriber_id), token in SENT_BEFORE.items():
        made = tokens.make(subscriber_id) if salt == SALT else tokens.purposes.make_preferences(subscriber_id)
        assert made == token


# Ids around the fast path's bounds (JSON of 8 bytes or fewer) and past them, any secret.
ids = st.one_of(
    st.integers(-(10**7) - 2, 10**8 + 2), st.integers(), st.sampled_from([-(10**7), 10**8, 0, -1])
)


@given(
    secret=st.text(st.characters(blacklist_categories=["Cs"]), min_size=MIN_SECRET_LENGTH),
    subscriber_id=ids,
    purpose=st.sampled_from([SALT, PREFERENCES_SALT]),
)
def test_the_fast_path_makes_itsdangerous_own_tokens(secret: str, subscriber_id: int, purpose: str) -> None:
    tokens = Tokens(secret)
    make = tokens.make if purpose == SALT else tokens.purposes.make_preferences
    assert make(subscriber_id) == URLSafeSerializer(secret, salt=purpose).dumps(subscriber_id)


def test_a_return_path_sent_before_still_reads() -> None:
    tokens = Tokens(SECRET)
    assert tokens.for_delivery(42) == RETURN_PATH_SENT_BEFORE
    assert tokens.read_delivery(RETURN_PATH_SENT_BEFORE.upper()) == 42


def test_one_purpose_never_reads_another() -> None:
    tokens = Tokens(SECRET)
    with pytest.raises(BadToken):
        tokens.read(tokens.purposes.make_preferences(7))
