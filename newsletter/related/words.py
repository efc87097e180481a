"""Words for similarity: text → terms, in any script.

Latin, Cyrillic, Greek and other spaced scripts split on word boundaries, are
case-folded and lose their accents ("Café" and "cafe" are one term). Chinese,
Japanese and Korean have no spaces to split on: a run of those characters
becomes its overlapping character pairs (bigrams), the usual unit of CJK
search engines, which needs no dictionary. Stop words are python-stop-words'
lists: English always, plus the site's language when set.

Pure: text in, terms out.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from functools import cache

# Han (with extensions A and the compatibility block), Hiragana, Katakana, Hangul.
_CJK_CLASS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\u31f0-\u31ff"
CJK_RUN = re.compile(f"[{_CJK_CLASS}]+")
WORD = re.compile(f"[{_CJK_CLASS}]+|[^\\W\\d_{_CJK_CLASS}]+(?:['’][^\\W\\d_{_CJK_CLASS}]+)*")
ASCII_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")  # WORD on lower-cased ASCII text
MIN_LENGTH = 2  # a one-letter word (outside CJK) says nothing about a topic


def language_code(language: str) -> str:
    """Babel-style "pt_BR", "de-AT", "EN" → "pt", "de", "en"."""
    return re.split(r"[_-]", language.strip(), maxsplit=1)[0].lower()


@cache
def stop_words(language: str = "") -> frozenset[str]:
    """English always (quotes and product names cross languages), plus the language's own
    where python-stop-words has a list for it (33 languages; others: English only)."""
    import stop_words as lists  # data files read once, by the first index or build

    words = set(lists.get_stop_words("en"))
    code = language_code(language)
    if code and code in lists.LANGUAGE_MAPPING:
        words |= set(lists.get_stop_words(code))
    return frozenset(fold(w) for w in words)


def fold(word: str) -> str:
    """Case-folded, accents removed; CJK text passes through unchanged."""
    word = word.casefold()
    if word.isascii() or CJK_RUN.match(word):
        return word
    stripped = "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", stripped)


def terms(text: str, stop: frozenset[str] = frozenset()) -> Counter[str]:
    """Each term of `text` with how often it occurs."""
    text = unicodedata.normalize("NFKC", text)
    if text.isascii():  # most sites' text: one lower(), a simpler pattern, no per-word checks
        counted = Counter(ASCII_WORD.findall(text.lower()))
        for word in [w for w in counted if len(w) < MIN_LENGTH or w in stop]:
            del counted[word]
        return counted
    found: list[str] = []
    for token in WORD.findall(text):
        if token.isascii():
            word = token.lower()
        elif CJK_RUN.match(token):
            found += _bigrams(token)
            continue
        else:
            word = fold(token)
        if len(word) >= MIN_LENGTH and word not in stop:
            found.append(word)
    return Counter(found)


def _bigrams(run: str) -> list[str]:
    if len(run) == 1:
        return [run]
    return [run[i : i + 2] for i in range(len(run) - 1)]
