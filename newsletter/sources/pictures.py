"""Article pictures made ready for a build, at ingest: https only, and a known size.

Each picture the readers chose (already past `digest.images.refusal`) is asked for over
https: an http one is kept, as https, only when its host serves it there; the first
bytes of the file (at most `images.HEADER_BYTES`, a short timeout) give its size,
unless the source declared one. Sizes go to the store's `image_sizes` table once, so a
poll asks only for pictures it has not seen, and a build never goes to the network.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

from newsletter.core.errors import SourceError
from newsletter.core.models import Article
from newsletter.digest import images
from newsletter.sources import fetching
from newsletter.storage import image_sizes
from newsletter.storage.store import Store

# Pictures measured over the network per ingest at most: a first read of a large feed is
# not held up; the rest are measured at the next poll (their articles show none till then).
MAX_FETCHES = 100
TIMEOUT = 5.0

FirstBytes = Callable[[str], bytes]


def first_bytes(url: str) -> bytes:
    return fetching.first_bytes(url, images.HEADER_BYTES, timeout=TIMEOUT)


def settle(
    store: Store, articles: Sequence[Article], now: datetime, fetch: FirstBytes | None = first_bytes
) -> list[Article]:
    """The articles with their pictures as https URLs of known size, or none: what the
    source declared, the store knows, or (with `fetch`) the file's header says."""
    wanted = {a.image: images.https(a.image) for a in articles if a.image}
    sizes = image_sizes.known(store, wanted.values(), now)
    learned: dict[str, tuple[int, int]] = {}
    fetches = 0
    for article in articles:
        url = wanted.get(article.image)
        if url is None or url in sizes or url in learned:
            continue
        if article.image == url and article.image_width and article.image_height:
            learned[url] = (article.image_width, article.image_height)  # https already: trusted
        elif fetch is not None and fetches < MAX_FETCHES:
            fetches += 1
            learned[url] = measure(url, fetch)
    image_sizes.record(store, learned, now)
    sizes.update(learned)
    return [_settled(a, wanted, sizes) for a in articles]


def measure(url: str, fetch: FirstBytes) -> tuple[int, int]:
    """The picture's size from its first bytes; (0, 0) when it cannot be had."""
    try:
        return images.sniff_size(fetch(url)) or (0, 0)
    except SourceError:
        return 0, 0


def _settled(article: Article, wanted: dict[str, str], sizes: dict[str, tuple[int, int]]) -> Article:
    """An http picture whose https form was never reached is dropped: no mixed content."""
    if not article.image:
        return article
    url = wanted[article.image]
    if url != article.image and sizes.get(url, (0, 0))[0] <= 0:
        return replace(article, image="", image_width=0, image_height=0)
    return replace(article, image=url)
