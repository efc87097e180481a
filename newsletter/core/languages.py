"""The languages the mails and public pages speak: a catalogue in newsletter/locale
for each. A BCP 47 tag (`pt-BR`, `zh-Hans`) picks the catalogue of its first subtag;
Babel formats dates and numbers for the whole tag."""

from __future__ import annotations

import re

SUPPORTED = ("en", "de", "fr", "es", "pt", "sv", "ru", "ja", "ko", "zh", "ar")
RIGHT_TO_LEFT = frozenset({"ar", "he", "fa", "ur"})
CJK = frozenset({"ja", "zh"})  # read in characters, not words
TAG = re.compile(r"^[A-Za-z]{2,3}(?:[_-][A-Za-z0-9]{2,8})*$")


def primary(tag: str) -> str:
    """`pt-BR` -> `pt`: which catalogue."""
    return re.split(r"[_-]", tag, maxsplit=1)[0].lower()


def check_language(value: str) -> str:
    """A tag whose catalogue ships with newsletter; ValueError lists them."""
    if not TAG.match(value) or primary(value) not in SUPPORTED:
        raise ValueError(f"a BCP 47 language tag of one of {', '.join(SUPPORTED)} (such as 'de' or 'pt-BR')")
    return value


def babel_locale(tag: str) -> str:
    """`pt-BR` -> `pt_BR`, as Babel names locales; unknown regions fall back to the language."""
    from babel import Locale, UnknownLocaleError

    try:
        return str(Locale.parse(tag, sep="-" if "-" in tag else "_"))
    except (ValueError, UnknownLocaleError):
        return primary(tag)


def direction(tag: str) -> str:
    return "rtl" if primary(tag) in RIGHT_TO_LEFT else "ltr"
