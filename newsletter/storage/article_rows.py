"""An article as the store keeps it, and back: the `articles` and `related_refs` rows,
the content hash an upsert compares, and the key a related entry's summary is matched
by. Pure: store.py runs the queries."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from newsletter.core.models import Article, Block, RelatedRef


def text_key(text: str) -> str:
    """Standfirsts match related summaries whatever their case and spacing."""
    normal = " ".join(text.casefold().split())
    return hashlib.blake2b(normal.encode(), digest_size=16).hexdigest()


def content_hash(article: Article, body: str | None = None) -> str:
    """`body`: the article's `body_json`, when the caller made it already."""
    fields = [
        article.title,
        article.standfirst,
        article.category,
        article.url,
        article.published.isoformat(),
        body_json(article.body) if body is None else body,
        json.dumps(article.tags),
        json.dumps([(r.category, r.summary, str(r.published)) for r in article.related]),
    ]
    # Appended only when set, so the hashes of articles stored before these fields stay the same.
    extra = (("image", article.image), ("author", article.author))
    fields += [f"{name}={value}" for name, value in extra if value]
    return hashlib.sha256("\x1f".join(fields).encode()).hexdigest()


def body_json(body: Sequence[Block]) -> str:
    return json.dumps([[b.kind, b.text] for b in body], ensure_ascii=False)


def article_row(a: Article, first_seen: datetime, now: datetime) -> dict[str, Any]:
    body = body_json(a.body)
    return {
        "key": a.key,
        "title": a.title,
        "standfirst": a.standfirst,
        "standfirst_key": text_key(a.standfirst) if a.standfirst else "",
        "category": a.category,
        "url": a.url,
        "published": a.published,
        "undated": a.undated,
        "backlog": a.backlog,
        "origin": a.origin,
        "image": a.image,
        "author": a.author,
        "source": a.source,
        "body": body,
        "tags": json.dumps(list(a.tags)),
        "content_hash": content_hash(a, body),
        "first_seen": first_seen,
        "updated_at": now,
    }


def ref_row(article_id: int, position: int, ref: RelatedRef, targets: dict[str, int]) -> dict[str, Any]:
    key = text_key(ref.summary)
    target = targets.get(key)
    return {
        "article_id": article_id,
        "position": position,
        "category": ref.category,
        "summary": ref.summary,
        "summary_key": key,
        "published": ref.published,
        "target_id": target if target != article_id else None,
    }


def article_from(row: Any, related: tuple[RelatedRef, ...]) -> Article:
    """The whole article: its card (`card_from`) and what only the archive's own uses read."""
    return replace(
        card_from(row),
        related=related,
        undated=row.undated,
        backlog=row.backlog,
        origin=row.origin,
        author=row.author,
        tags=tuple(json.loads(row.tags)),
    )


# What a build reads of a candidate: a card's text, link, date, picture, and the body its
# reading time (and a summary, without a standfirst) comes from.
CARD_FIELDS = ("id", "title", "published", "source", "standfirst", "category", "url", "key", "image", "body")


def card_from(row: Any) -> Article:
    """An article as a card needs it (`CARD_FIELDS`), the rest left at its defaults."""
    return Article(
        title=row.title,
        published=row.published,
        source=row.source,
        standfirst=row.standfirst,
        category=row.category,
        url=row.url,
        key=row.key,
        image=row.image,
        body=tuple(Block(kind, text) for kind, text in json.loads(row.body)),
    )
