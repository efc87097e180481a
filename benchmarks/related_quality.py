"""Quality of the related links: recall@3 against the site's own "Related Articles".

Seed-format pages name their related articles; those picks are the ground truth.
The pages are ingested into a fresh project; for every article with resolved
explicit entries, the similarity method (which never sees them) ranks the rest
of the archive the way a build does (same category first, then the rest,
best score first) and recall@3 = |top 3 ∩ picks| / min(3, |picks|).

    .venv/bin/python benchmarks/related_quality.py [FOLDER_OR_FILE ...]

Default: examples/articles (the demo's 32 pages). "before" is the old
whole-archive TF-IDF (scikit-learn), measured only when scikit-learn is installed.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from newsletter import scaffold
from newsletter.project import Project
from newsletter.storage import neighbours

NOW = datetime(2030, 1, 1, tzinfo=UTC)
Ranker = Callable[[int], list[int]]


def recall_at_3(truth: dict[int, list[int]], rank: Ranker) -> tuple[float, int]:
    scores = [len(set(rank(a)[:3]) & set(picks)) / min(3, len(picks)) for a, picks in truth.items()]
    return (statistics.mean(scores) if scores else 0.0), len(scores)


def neighbour_ranker(project: Project, category: dict[int, str], same_first: bool) -> Ranker:
    min_score = project.settings.related.min_similarity

    def rank(article: int) -> list[int]:
        found = neighbours.read(project.store, [article], NOW, min_score).get(article, [])
        if same_first:
            found = sorted(found, key=lambda n: n.category != category[article])  # stable: by score
        return [n.target for n in found]

    return rank


def tfidf_ranker(corpus: Sequence[tuple[int, str, str]], same_first: bool) -> Ranker | None:
    """The method before issue 10: TF-IDF over the whole archive, English stop words."""
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
    except ImportError:
        return None
    ids = [row[0] for row in corpus]
    vectorizer = TfidfVectorizer(stop_words="english", sublinear_tf=True, min_df=1, max_df=0.6)
    matrix = vectorizer.fit_transform([row[2] for row in corpus])
    scores = (matrix @ matrix.T).toarray()
    categories = {row[0]: row[1] for row in corpus}

    def rank(article: int) -> list[int]:
        row = ids.index(article)
        order = sorted(
            (i for i in range(len(ids)) if i != row and scores[row][i] > 0),
            key=lambda i: (same_first and categories[ids[i]] != categories[article], -scores[row][i]),
        )
        return [ids[i] for i in order]

    return rank


def main(paths: list[str]) -> int:
    sources = paths or [str(scaffold.demo_articles())]
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp) / "project"
        scaffold.init(root, name="Quality", base_url="https://example.org")
        project = Project(root, environ={})
        project.ingest(sources, NOW)
        stored = project.store.articles()
        truth = {k: v for k, v in project.store.related_targets([s.id for s in stored]).items() if v}
        category = {s.id: s.article.category for s in stored}
        corpus = [(s.id, s.article.category, s.article.text) for s in stored]
        print(f"{len(stored)} articles, {len(truth)} with resolved related entries ({', '.join(sources)})")
        for same_first in (True, False):
            label = "same category first" if same_first else "by score alone     "
            old = tfidf_ranker(corpus, same_first)
            before = f"{recall_at_3(truth, old)[0]:.3f}" if old else "n/a (scikit-learn not installed)"
            after, _ = recall_at_3(truth, neighbour_ranker(project, category, same_first))
            print(f"recall@3, {label}: before (TF-IDF) {before}, after (stored neighbours) {after:.3f}")
        project.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
