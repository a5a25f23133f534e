"""Synthetic vectors for the vector-store tests."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from embedserve.connectors import VectorStore

Array = np.ndarray[Any, Any]
# Opens a fresh store of a backend named in conftest.BACKENDS.
StoreFactory = Callable[[str], VectorStore]


def unit_vectors(rng: np.random.Generator, n: int, dim: int) -> Array:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    unit: Array = x / np.linalg.norm(x, axis=1, keepdims=True)
    return unit


def clustered(
    rng: np.random.Generator, topics: int, per_topic: int, dim: int, spread: float = 0.25
) -> tuple[Array, Array, Array]:
    """Unit vectors scattered around ``topics`` random unit centres.

    Returns (vectors, topic of each vector, centres).
    """
    centres = unit_vectors(rng, topics, dim)
    labels = np.repeat(np.arange(topics), per_topic)
    x = centres[labels] + spread * rng.standard_normal((len(labels), dim)) / np.sqrt(dim)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), labels, centres


class SmallDisk:
    """A tmpfs of a few MiB: a file system that really fills up."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def resize(self, size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], check=True)
