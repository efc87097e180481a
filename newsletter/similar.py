"""Similar articles by TF-IDF cosine similarity (scikit-learn).

The index is fitted over the whole archive once per store revision; queries
filter by publication time, so an as-of build never links to the future.

NumPy and scikit-learn (with SciPy) load when the first index is built, not with
the module: most commands never rank anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray


class SparseRows(Protocol):
    """What the index uses of the SciPy sparse matrix TfidfVectorizer makes (scipy has no types)."""

    @property
    def T(self) -> SparseRows: ...  # SciPy's name

    def __getitem__(self, rows: list[int]) -> SparseRows: ...

    def __matmul__(self, other: SparseRows) -> SparseRows: ...

    def toarray(self) -> NDArray[np.float32]: ...


class SimilarityIndex:
    """Cosine similarity between archive articles, same category first."""

    def __init__(self, corpus: Sequence[tuple[int, str, datetime, str]]) -> None:
        import numpy as np

        self.ids = np.array([row[0] for row in corpus], dtype=np.int64)
        self.categories = np.array([row[1] for row in corpus], dtype=object)
        self.published = np.array([row[2].timestamp() for row in corpus], dtype=np.float64)
        self.row_of = {id_: row for row, id_ in enumerate(self.ids.tolist())}
        self.matrix = _fit([row[3] for row in corpus])

    def similar(self, article_ids: Sequence[int], at: datetime, limit: int) -> dict[int, list[int]]:
        """For each article, up to `limit` others published by `at`, ordered
        same category first, then by similarity. Unknown ids get nothing."""
        known = [i for i in article_ids if i in self.row_of]
        if not known or self.matrix is None:
            return {i: [] for i in article_ids}
        rows = [self.row_of[i] for i in known]
        scores = (self.matrix[rows] @ self.matrix.T).toarray()
        visible = self.published <= at.timestamp()
        found = {
            i: self._ranked(row, scores[n], visible, limit)
            for n, (i, row) in enumerate(zip(known, rows, strict=True))
        }
        return {i: found.get(i, []) for i in article_ids}

    def _ranked(
        self, row: int, scores: NDArray[np.float32], visible: NDArray[np.bool_], limit: int
    ) -> list[int]:
        import numpy as np

        same = self.categories == self.categories[row]
        usable = visible & (scores > 0)
        usable[row] = False
        order = np.lexsort((-scores, ~same))  # same category first, then the best scores
        ranked: list[int] = self.ids[order[usable[order]][:limit]].tolist()
        return ranked


def _fit(texts: list[str]) -> SparseRows | None:
    if not texts:
        return None
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(
        stop_words="english", sublinear_tf=True, min_df=1, max_df=0.6, dtype=np.float32
    )
    try:
        matrix: SparseRows = vectorizer.fit_transform(texts)
    except ValueError:  # every document was empty or stop words only
        return None
    return matrix
