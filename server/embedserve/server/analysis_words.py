"""Distinguishing words of clusters by class-based TF-IDF (c-TF-IDF, as in BERTopic).

All texts of a cluster form one document; a word scores high when it is frequent in that
cluster and rare across clusters: tf(word, cluster) * log(1 + mean words per cluster /
occurrences of word in all clusters).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer

# Words of three or more letters; digits and underscores are not words here.
WORD_PATTERN = r"(?u)\b[^\W\d_]{3,}\b"


def distinguishing_words(
    texts_by_cluster: Mapping[int, Sequence[str]], top: int
) -> dict[int, list[tuple[str, float]]]:
    """The ``top`` words of each cluster with their c-TF-IDF scores, best first."""
    labels = [label for label, texts in texts_by_cluster.items() if texts]
    if not labels or top <= 0:
        return {}
    documents = [" ".join(texts_by_cluster[label]) for label in labels]
    vectorizer = CountVectorizer(stop_words="english", token_pattern=WORD_PATTERN)
    try:
        counts = vectorizer.fit_transform(documents).toarray().astype(np.float64)
    except ValueError:  # no words at all (only stop words, digits or symbols)
        return {}
    words = vectorizer.get_feature_names_out()
    per_cluster = counts.sum(axis=1, keepdims=True)
    tf = counts / np.where(per_cluster == 0, 1.0, per_cluster)
    idf = np.log(1.0 + counts.sum() / len(labels) / counts.sum(axis=0))
    scores = tf * idf
    result: dict[int, list[tuple[str, float]]] = {}
    for row, label in enumerate(labels):
        best = np.argsort(-scores[row], kind="stable")[:top]
        result[label] = [(str(words[i]), float(scores[row, i])) for i in best if scores[row, i] > 0]
    return result
