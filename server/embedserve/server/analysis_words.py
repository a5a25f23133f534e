"""Distinguishing words of clusters by class-based TF-IDF (c-TF-IDF, as in BERTopic).

All texts of a cluster form one document; a word scores high when it is frequent in that
cluster and rare across clusters: tf(word, cluster) * log(1 + mean words per cluster /
occurrences of word in all clusters).
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

# Chinese, Japanese, Thai, Lao, Khmer and Burmese write words without spaces between
# them: a run of their letters would be one "word" the length of a sentence. Such runs
# count by their pairs of neighbouring characters (as CJK search analyzers do), which
# hold most of their words.
UNSPACED = re.compile(
    r"[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff"
    r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+"
)


@functools.cache
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Words of three or more characters (a letter first; the marks count, so that
    Devanagari's two-consonant words are words), and the characters of an unspaced run,
    each with the combining marks that follow it (Devanagari's and Thai's vowel signs, Arabic's
    vowel marks, accents left uncomposed): Python's ``\\w`` leaves marks out, and cut
    such words apart. Words next to digits or underscores are not words here."""
    marks = "".join(f"{chr(a)}-{chr(b)}" for a, b in _mark_ranges())
    letter = r"[^\W\d_]"
    word = rf"(?<![\w{marks}]){letter}(?:{letter}|[{marks}]){{2,}}(?![\w{marks}])"
    return re.compile(word), re.compile(rf".[{marks}]*")


def _mark_ranges() -> list[tuple[int, int]]:
    """The code point ranges of Unicode's combining marks (categories Mn, Mc, Me)."""
    ranges: list[tuple[int, int]] = []
    for point in range(sys.maxunicode + 1):
        if unicodedata.category(chr(point))[0] == "M":
            if ranges and ranges[-1][1] == point - 1:
                ranges[-1] = (ranges[-1][0], point)
            else:
                ranges.append((point, point))
    return ranges


def words_of(text: str) -> list[str]:
    """The terms of one text: its words, and the character pairs of its unspaced runs."""
    word, character = _patterns()
    lowered = unicodedata.normalize("NFC", text.lower())
    runs = [character.findall(run) for run in UNSPACED.findall(lowered)]
    pairs = [run[i] + run[i + 1] for run in runs for i in range(len(run) - 1)]
    spaced = word.findall(UNSPACED.sub(" ", lowered))
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
