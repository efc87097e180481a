from __future__ import annotations

from datetime import UTC, datetime, timedelta

from newsletter.core.models import Article, Block, LinkTarget, Period, Schedule, StoredArticle
from newsletter.digest.enrich import (
    Candidate,
    assign,
    enrich,
    fit,
    reading_minutes,
    related_links,
    safe_url,
    summarize,
)

T0 = datetime(2026, 11, 16, tzinfo=UTC)


def stored(i: int, days: int = 0, url: str | None = None, **fields) -> StoredArticle:
    return StoredArticle(
        i,
        Article(
            title=f"Title {i}",
            published=T0 + timedelta(days=days),
            source="s",
            category="A",
            url=f"https://example.org/{i}" if url is None else url,
            **fields,
        ),
    )


def test_summary_is_the_standfirst_cut_on_a_sentence():
    article = stored(1, standfirst="First sentence here. Second one is longer than the rest.").article
    assert summarize(article, 300) == "First sentence here. Second one is longer than the rest."
    assert summarize(article, 30) == "First sentence here."


def test_summary_without_standfirst_uses_leading_body_sentences():
    body = (Block("subheading", "A heading."), Block("paragraph", "One. Two three four. " * 20))
    summary = summarize(stored(1, body=body).article, 40)
    assert summary == "One. Two three four. One."
    assert "heading" not in summary


def test_overlong_sentence_is_cut_on_a_word():
    text = "word " * 100
    cut = fit(text, 50)
    assert len(cut) <= 50
    assert cut.endswith("word…")


def test_reading_time_is_at_least_a_minute():
    assert reading_minutes(stored(1).article) == 1
    long_body = (Block("paragraph", "word " * 1000),)
    assert reading_minutes(stored(1, body=long_body).article) == 5


def target(i: int, days: int = 0, url: str | None = None) -> LinkTarget:
    return LinkTarget(
        i, f"Title {i}", f"https://example.org/{i}" if url is None else url, T0 + timedelta(days=days)
    )


def test_related_links_skip_self_issue_future_and_unsafe():
    archive = {i: target(i) for i in range(1, 7)}
    archive[4] = target(4, days=30)  # published after the moment
    archive[5] = target(5, url="javascript:alert(1)")
    links = related_links(1, [1, 2, 4, 5, 3, 6, 3], {1, 2}, archive, T0 + timedelta(days=1), 3)
    assert [link.url for link in links] == ["https://example.org/3", "https://example.org/6"]


def test_safe_url_only_allows_http():
    assert safe_url("https://example.org/a?b=c") == "https://example.org/a?b=c"
    for bad in ("javascript:alert(1)", "data:text/html,x", "//evil.example", "https://a b"):
        assert safe_url(bad) == ""


def test_enrich_builds_sections_with_links():
    schedule = Schedule(name="w", title="W", cron="0 8 * * mon", timezone="UTC", categories=("A",))
    period = Period(T0, T0 + timedelta(days=7))
    chosen = [stored(1, days=2), stored(2, days=1)]
    archive = {3: target(3, days=-3)}
    candidates = {1: [Candidate(2), Candidate(3)]}
    digest = enrich(schedule, period, T0 + timedelta(days=7), [("A", chosen)], candidates, archive)
    assert [a.id for a in digest.articles] == [1, 2]
    assert [link.url for link in digest.articles[0].related] == ["https://example.org/3"]


def test_assign_shares_targets_out_best_score_first():
    archive = {i: target(i, days=-i) for i in range(10, 15)}
    at = T0 + timedelta(days=1)
    candidates = {
        1: [Candidate(10, 1, 0.9), Candidate(11, 1, 0.5), Candidate(12, 2, 0.8)],
        2: [Candidate(10, 2, 0.95), Candidate(13, 1, 0.2), Candidate(11, 1, 0.6)],
        3: [Candidate(10), Candidate(14, 1, 0.3)],  # an explicit entry beats every score
    }
    links = assign([1, 2, 3], candidates, {1, 2, 3}, archive, at, 2)
    urls = {card: [link.url.rsplit("/", 1)[1] for link in found] for card, found in links.items()}
    assert urls == {1: ["12"], 2: ["11", "13"], 3: ["10", "14"]}
    assert urls[1] + urls[2] + urls[3] == list(dict.fromkeys(urls[1] + urls[2] + urls[3]))
