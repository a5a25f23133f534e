"""Distinguishing words of clusters by class-based TF-IDF (c-TF-IDF, as in BERTopic).

All texts of a cluster form one document; a word scores high when it is frequent in that
cluster and rare across clusters: tf(word, cluster) * log(1 + mean words per cluster /
occurrences of word in all clusters).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

# Words of three or more letters; digits and underscores are not words here.
WORD = re.compile(r"\b[^\W\d_]{3,}\b")
# Chinese and Japanese write words without spaces between them: a run of Han or kana
# would be one "word" the length of a sentence. Such runs count by their pairs of
# neighbouring characters (as CJK search analyzers do), which hold most of their words.
UNSPACED = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")


def words_of(text: str) -> list[str]:
    """The terms of one text: its words, and the character pairs of its unspaced runs."""
    lowered = text.lower()
    pairs = [run[i : i + 2] for run in UNSPACED.findall(lowered) for i in range(len(run) - 1)]
    spaced = WORD.findall(UNSPACED.sub(" ", lowered))
    return [w for w in spaced if w not in ENGLISH_STOP_WORDS] + pairs


def distinguishing_words(
    texts_by_cluster: Mapping[int, Sequence[str]], top: int
) -> dict[int, list[tuple[str, float]]]:
    """The ``top`` words of each cluster with their c-TF-IDF scores, best first."""
    labels = [label for label, texts in texts_by_cluster.items() if texts]
    if not labels or top <= 0:
        return {}
    documents = [" ".join(texts_by_cluster[label]) for label in labels]
    vectorizer = CountVectorizer(analyzer=words_of)
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
