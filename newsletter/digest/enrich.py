"""Enrichment: summaries, reading time and related links make a `Digest`.

Pure: the caller passes the moment, each card's related candidates (explicit
entries and similar articles with their scores) and the archive rows they
refer to; `assign` shows each card's own picks and shares the similar ones out so
that no similar article is linked twice in one issue.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING

from newsletter.core.models import (
    Article,
    Digest,
    DigestArticle,
    Link,
    LinkTarget,
    Period,
    Schedule,
    Section,
    StoredArticle,
)
from newsletter.digest import images

if TYPE_CHECKING:
    import pysbd

WORDS_PER_MINUTE = 230
# Scripts written without spaces between words are read in characters: about 450 a
# minute for Chinese and Japanese (kanji and kana), 500 for Korean hangul.
HAN_KANA = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
HANGUL = re.compile(r"[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]")
CJK_MARKS = re.compile(r"[\u3000-\u303f\uff00-\uffef]")  # 。、「」: not words
HAN_KANA_PER_MINUTE = 450
HANGUL_PER_MINUTE = 500
ELLIPSIS = "…"
EXPLICIT, SAME_CATEGORY, OTHER_CATEGORY = 0, 1, 2  # the tiers of a related candidate
SAFE_URL = re.compile(r"^https?://[^\s<>\"']+$", re.IGNORECASE)


@cache
def _segmenter() -> pysbd.Segmenter:
    """pysbd loads with the first summary made from a body, not with the module."""
    import pysbd

    return pysbd.Segmenter(language="en", clean=False)


def summarize(article: Article, length: int) -> str:
    """The standfirst, or else the body's leading sentences, within `length` characters."""
    if article.standfirst:
        return fit(article.standfirst, length)
    paragraphs = [b.text for b in article.body if b.kind == "paragraph"] or [b.text for b in article.body]
    return fit(" ".join(paragraphs[:2]), length)


def fit(text: str, length: int) -> str:
    """Whole sentences while they fit; a first sentence too long is cut on a word."""
    text = " ".join(text.split())
    if len(text) <= length:
        return text
    kept = ""
    for sentence in _segmenter().segment(text):
        candidate = f"{kept} {sentence.strip()}".strip()
        if len(candidate) > length:
            break
        kept = candidate
    return kept or _cut_on_word(text, length)


def _cut_on_word(text: str, length: int) -> str:
    cut = text[: length - 1]
    if " " in cut[length // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:-–—") + ELLIPSIS


def reading_minutes(article: Article) -> int:
    return minutes_to_read(article.text)


def minutes_to_read(text: str) -> int:
    """Words at 230 a minute; CJK characters by their own rate, whatever the site's
    language (a Japanese quote in an English article counts as Japanese)."""
    han_kana, hangul = len(HAN_KANA.findall(text)), len(HANGUL.findall(text))
    rest = CJK_MARKS.sub(" ", HANGUL.sub(" ", HAN_KANA.sub(" ", text)))
    minutes = (
        len(rest.split()) / WORDS_PER_MINUTE + han_kana / HAN_KANA_PER_MINUTE + hangul / HANGUL_PER_MINUTE
    )
    return max(1, math.ceil(minutes))


def safe_url(url: str) -> str:
    """Only absolute http(s) URLs reach a link; anything else (javascript:, data:) is dropped."""
    return url if SAFE_URL.match(url) else ""


@dataclass(frozen=True)
class Candidate:
    """A possible related link of one card: an explicit entry (tier 0, in the source's
    order), or a similar article of the same category (tier 1) or another (tier 2)."""

    target: int
    tier: int = EXPLICIT
    score: float = math.inf  # similarity; explicit entries outrank every score


def related_links(
    article_id: int,
    ranked: Sequence[int],
    in_issue: set[int],
    archive: Mapping[int, LinkTarget],
    at: datetime,
    limit: int,
) -> tuple[Link, ...]:
    """One card alone: the first `limit` usable targets of `ranked` (see `assign`)."""
    chosen = assign([article_id], {article_id: [Candidate(t) for t in ranked]}, in_issue, archive, at, limit)
    return chosen[article_id]


def assign(
    cards: Sequence[int],
    candidates: Mapping[int, Sequence[Candidate]],
    in_issue: set[int],
    archive: Mapping[int, LinkTarget],
    at: datetime,
    limit: int,
) -> dict[int, tuple[Link, ...]]:
    """Each card's links. A card's own picks (explicit entries, in the source's order) are
    always shown, up to `limit`, even when another card shows the same article: the site
    chose them. Similar articles fill the places left, each archive article at most once
    in the issue and never one a card shows as its own pick: same category first, best
    score first; two cards wanting one article: the higher score, else the earlier card
    gets it, and the other takes its next choice (deferred acceptance)."""
    wants = {card: _usable(card, candidates.get(card, ()), in_issue, archive, at) for card in cards}
    own = {card: [c for c in wants[card] if c.tier == EXPLICIT][:limit] for card in cards}
    picked = {c.target for chosen in own.values() for c in chosen}
    similar = {
        card: [c for c in wants[card] if c.tier != EXPLICIT and c.target not in picked] for card in cards
    }
    room = {card: limit - len(own[card]) for card in cards}
    held = _share(cards, similar, room)
    return {card: _links(wants[card], [*own[card], *held[card]], archive) for card in cards}


def _share(
    cards: Sequence[int], wants: Mapping[int, Sequence[Candidate]], room: Mapping[int, int]
) -> dict[int, list[Candidate]]:
    """Deferred acceptance: each card proposes its next wish while it has room; a target
    held by another card goes to the better claim (`_claim`), the loser proposes again."""
    order = {card: n for n, card in enumerate(cards)}
    held: dict[int, list[Candidate]] = {card: [] for card in cards}
    holder: dict[int, tuple[int, Candidate]] = {}
    tried = dict.fromkeys(cards, 0)
    queue = deque(cards)
    while queue:
        card = queue.popleft()
        while len(held[card]) < room[card] and tried[card] < len(wants[card]):
            wish = wants[card][tried[card]]
            tried[card] += 1
            owner = holder.get(wish.target)
            if owner is not None and _claim(owner[1], order[owner[0]]) >= _claim(wish, order[card]):
                continue
            if owner is not None:
                held[owner[0]].remove(owner[1])
                queue.append(owner[0])
            holder[wish.target] = (card, wish)
            held[card].append(wish)
    return held


def _usable(
    card: int,
    candidates: Sequence[Candidate],
    in_issue: set[int],
    archive: Mapping[int, LinkTarget],
    at: datetime,
) -> list[Candidate]:
    """Never the card itself, one in the issue, one published after `at`, or one without
    a title and a safe URL; each target once, by the card's preference."""
    usable: dict[int, Candidate] = {}
    ranked = sorted(enumerate(candidates), key=lambda p: (p[1].tier, -p[1].score, p[0]))
    for _, c in ranked:
        target = archive.get(c.target)
        if target is None or c.target == card or c.target in in_issue or c.target in usable:
            continue
        if target.published > at or not safe_url(target.url) or not target.title:
            continue
        usable[c.target] = c
    return list(usable.values())


def _claim(candidate: Candidate, card_order: int) -> tuple[bool, float, int]:
    return candidate.tier == EXPLICIT, candidate.score, -card_order


def _links(
    wants: Sequence[Candidate], held: Sequence[Candidate], archive: Mapping[int, LinkTarget]
) -> tuple[Link, ...]:
    kept = {c.target for c in held}
    links: list[Link] = []
    for c in wants:  # the card's own order of preference
        target = archive[c.target]
        url = safe_url(target.url)
        if c.target in kept and url not in {link.url for link in links}:
            links.append(Link(target.title, url, c.target))
    return tuple(links)


def enrich(
    schedule: Schedule,
    period: Period,
    at: datetime,
    sections: Sequence[tuple[str, Sequence[StoredArticle]]],
    candidates: Mapping[int, Sequence[Candidate]],
    archive: Mapping[int, LinkTarget],
    sizes: Mapping[str, tuple[int, int]] | None = None,
) -> Digest:
    """`candidates` lists each article's possible related links (explicit and similar);
    `sizes` the stored size of each picture (one not there is left out)."""
    in_issue = {c.id for _, chosen in sections for c in chosen}
    cards = [c.id for _, chosen in sections for c in chosen]
    related = assign(cards, candidates, in_issue, archive, at, schedule.related_per_article)

    def present(stored: StoredArticle) -> DigestArticle:
        article = stored.article
        return DigestArticle(
            id=stored.id,
            title=article.title,
            url=safe_url(article.url),
            published=article.published,
            category=article.category,
            summary=summarize(article, schedule.summary_length),
            reading_minutes=reading_minutes(article),
            related=related[stored.id],
            image=images.picture(article.image, article.title, (sizes or {}).get(article.image)),
        )

    built = tuple(Section(category, tuple(present(c) for c in chosen)) for category, chosen in sections)
    return Digest(schedule=schedule, period=period, at=at, sections=built)
