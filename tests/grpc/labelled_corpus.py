"""A small labelled corpus: short documents in five topics, and queries with their topic."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

TOPICS: dict[str, tuple[list[str], list[str], list[str]]] = {
    "cooking": (
        [
            "The chef",
            "My grandmother",
            "A home cook",
            "The baker",
            "Our neighbour",
            "The restaurant kitchen",
            "A food blogger",
            "The pastry student",
            "Dad",
        ],
        [
            "simmered a tomato sauce with garlic",
            "baked a loaf of sourdough bread",
            "roasted vegetables in olive oil",
            "whisked eggs for an omelette",
            "kneaded dough for fresh pasta",
        ],
        ["for dinner", "on a Sunday"],
    ),
    "astronomy": (
        [
            "The telescope",
            "An astronomer",
            "The space probe",
            "The observatory",
            "A stargazer",
            "The research team",
            "The satellite",
            "NASA",
            "The astrophysicist",
        ],
        [
            "photographed a distant spiral galaxy",
            "measured the orbit of a comet",
            "observed a supernova explosion",
            "mapped craters on the moon",
            "detected light from a faraway exoplanet",
        ],
        ["last night", "in deep space"],
    ),
    "football": (
        [
            "The striker",
            "The goalkeeper",
            "The home team",
            "The coach",
            "The midfielder",
            "The referee",
            "The captain",
            "The defender",
            "The young winger",
        ],
        [
            "scored a late goal in the match",
            "saved a penalty kick",
            "won the league championship",
            "trained the squad before the derby",
            "was shown a red card by the referee",
        ],
        ["at the stadium", "in the final"],
    ),
    "programming": (
        [
            "The developer",
            "A software engineer",
            "The intern",
            "The open source team",
            "Our backend service",
            "The compiler",
            "The programmer",
            "The test suite",
            "The CI job",
        ],
        [
            "fixed a memory leak in the code",
            "refactored the Python module",
            "deployed a new version of the API",
            "wrote unit tests for the parser",
            "debugged a race condition in threads",
        ],
        ["before the release", "on Friday"],
    ),
    "finance": (
        [
            "The central bank",
            "The investor",
            "The hedge fund",
            "The stock market",
            "The accountant",
            "The bond trader",
            "The pension fund",
            "The bank",
            "The analyst",
        ],
        [
            "raised interest rates to fight inflation",
            "bought shares of the company",
            "reported quarterly earnings and revenue",
            "lost money on risky bonds",
            "diversified the investment portfolio",
        ],
        ["this quarter", "after the crash"],
    ),
}

QUERIES: list[tuple[str, str]] = [
    ("how do I bake bread at home", "cooking"),
    ("recipe with tomato and garlic sauce", "cooking"),
    ("making fresh pasta dough", "cooking"),
    ("cooking eggs for breakfast", "cooking"),
    ("pictures of galaxies from a telescope", "astronomy"),
    ("exploding stars and supernovae", "astronomy"),
    ("planets orbiting other stars", "astronomy"),
    ("craters on the surface of the moon", "astronomy"),
    ("who scored the winning goal", "football"),
    ("goalkeeper stops a penalty", "football"),
    ("soccer team wins the title", "football"),
    ("player sent off with a red card", "football"),
    ("finding a memory leak in software", "programming"),
    ("writing unit tests for code", "programming"),
    ("deploying a web API", "programming"),
    ("bugs caused by concurrent threads", "programming"),
    ("interest rates and inflation", "finance"),
    ("buying stocks of a company", "finance"),
    ("quarterly revenue report", "finance"),
    ("investment portfolio diversification", "finance"),
]


def documents(per_topic: int = 45) -> list[dict[str, object]]:
    """``per_topic`` documents per topic, ids like ``cooking-7``, payload with the topic."""
    docs: list[dict[str, object]] = []
    for topic, (subjects, actions, tails) in TOPICS.items():
        combos = itertools.islice(itertools.product(subjects, actions, tails), per_topic)
        for index, (subject, action, tail) in enumerate(combos):
            docs.append(
                {
                    "id": f"{topic}-{index}",
                    "text": f"{subject} {action} {tail}.",
                    "payload": {"topic": topic, "n": index},
                }
            )
    return docs


def normalised(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def precision_at_10(docs: np.ndarray, queries: np.ndarray) -> float:
    """Share of each query's 10 nearest documents that are from the query's topic."""
    topics = np.array([str(d["payload"]["topic"]) for d in documents()])  # type: ignore[index]
    nearest = np.argsort(-(queries @ docs.T), axis=1)[:, :10]
    wanted = np.array([topic for _, topic in QUERIES])
    return float((topics[nearest] == wanted[:, None]).mean())


def embed_local(model: Any, texts: list[str]) -> list[np.ndarray]:
    """``texts`` through an ``EncoderModel`` in one batch, without a server."""
    from embedserve.server.tokenization import Overflow
    from embedserve.server.windows import Window

    encoded = model.tokenizer.encode(texts, "", Overflow.TRUNCATE_RIGHT)
    return model.compute([Window(t.windows[0], t.pool_start) for t in encoded])
