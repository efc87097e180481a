"""Enrichment: summaries, reading time and related links make a `Digest`.

Pure: the caller passes the moment, the explicit related targets, the
similar-article rankings and the archive rows they refer to.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING

from newsletter.models import (
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

if TYPE_CHECKING:
    import pysbd

WORDS_PER_MINUTE = 230
ELLIPSIS = "…"
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
    return max(1, math.ceil(len(article.text.split()) / WORDS_PER_MINUTE))


def safe_url(url: str) -> str:
    """Only absolute http(s) URLs reach a link; anything else (javascript:, data:) is dropped."""
    return url if SAFE_URL.match(url) else ""


def related_links(
    article_id: int,
    ranked: Sequence[int],
    in_issue: set[int],
    archive: Mapping[int, LinkTarget],
    at: datetime,
    limit: int,
) -> tuple[Link, ...]:
    """The first `limit` usable targets: never the article itself, one in the
    same issue, one published after `at`, or one without a title and URL."""
    links: list[Link] = []
    seen: set[str] = set()
    for target_id in ranked:
        target = archive.get(target_id)
        if target is None or target_id == article_id or target_id in in_issue:
            continue
        url = safe_url(target.url)
        if target.published > at or not url or not target.title or url in seen:
            continue
        seen.add(url)
        links.append(Link(target.title, url))
        if len(links) == limit:
            break
    return tuple(links)


def enrich(
    schedule: Schedule,
    period: Period,
    at: datetime,
    sections: Sequence[tuple[str, Sequence[StoredArticle]]],
    ranked_related: Mapping[int, Sequence[int]],
    archive: Mapping[int, LinkTarget],
) -> Digest:
    """`ranked_related` lists each article's candidates: explicit entries first, then similar."""
    in_issue = {c.id for _, chosen in sections for c in chosen}

    def present(stored: StoredArticle) -> DigestArticle:
        article = stored.article
        related = related_links(
            stored.id, ranked_related.get(stored.id, ()), in_issue, archive, at, schedule.related_per_article
        )
        return DigestArticle(
            id=stored.id,
            title=article.title,
            url=safe_url(article.url),
            published=article.published,
            category=article.category,
            summary=summarize(article, schedule.summary_length),
            reading_minutes=reading_minutes(article),
            related=related,
        )

    built = tuple(Section(category, tuple(present(c) for c in chosen)) for category, chosen in sections)
    return Digest(schedule=schedule, period=period, at=at, sections=built)
