"""Vectors to 2-D coordinates: UMAP, t-SNE or PCA, seeded. Before UMAP and t-SNE a PCA
reduces wide vectors to ``pca_dims`` dimensions: it keeps the structure their neighbour
searches see and makes them several times faster."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from embedserve.client.maps.progress import Progress

METHODS = ("umap", "tsne", "pca")
# Points mapped before sampling, by method: each keeps a 50,000-point source within a few
# minutes on two cores (t-SNE's gradient descent is the slowest per point).
DEFAULT_MAX_POINTS = {"umap": 50_000, "tsne": 10_000, "pca": 500_000}
# Fewer points than this give no meaningful neighbourhoods (and t-SNE needs perplexity < n).
MIN_POINTS = 3


@dataclasses.dataclass(frozen=True)
class Projection:
    method: str = "umap"
    seed: int = 0
    pca_dims: int = 50
    # UMAP's n_neighbors and t-SNE's perplexity; None: the library's default, lowered for
    # maps too small for it.
    neighbors: int | None = None
    perplexity: float | None = None

    def check(self) -> None:
        """Options that make no sense whatever the points, named by their flags."""
        if self.method not in METHODS:
            raise ValueError(f"--method {self.method}: choose one of {', '.join(METHODS)}")
        if self.pca_dims < 2:
            raise ValueError(f"--pca-dims {self.pca_dims}: must be at least 2")
        if self.neighbors is not None:
            if self.method != "umap":
                raise ValueError("--neighbors applies to --method umap only")
            if self.neighbors < 2:
                raise ValueError(f"--neighbors {self.neighbors}: must be at least 2")
        if self.perplexity is not None:
            if self.method != "tsne":
                raise ValueError("--perplexity applies to --method tsne only")
            if not 0 < self.perplexity < math.inf:  # NaN too
                raise ValueError(f"--perplexity {self.perplexity:g}: must be a positive number")

    def check_points(self, count: int) -> None:
        if count < MIN_POINTS:
            raise ValueError(f"a map needs at least {MIN_POINTS} points; there are {count}")
        if self.neighbors is not None and self.neighbors >= count:
            raise ValueError(f"--neighbors {self.neighbors}: must be below the {count} points")
        if self.perplexity is not None and self.perplexity >= count:
            raise ValueError(f"--perplexity {self.perplexity:g}: must be below the {count} points")


def project(vectors: np.ndarray, options: Projection, progress: Progress) -> np.ndarray:
    """An (n, 2) float array of map coordinates."""
    options.check()
    options.check_points(len(vectors))
    # Unit rows: Euclidean distances then order pairs as cosine similarity does.
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    x = (vectors / np.where(norms == 0, 1.0, norms)).astype(np.float32)
    if np.allclose(x, x[0], rtol=0, atol=1e-6):
        # Nothing to lay out; t-SNE's start (PCA scaled by its spread) would divide by zero
        # and its Barnes-Hut tree then crash the process.
        progress(f"all {len(x):,} points are the same vector: one spot on the map")
        return np.zeros((len(x), 2))
    from sklearn.decomposition import PCA

    if options.method == "pca":
        progress(f"PCA of {len(x):,} points to 2 dimensions")
        return np.asarray(PCA(2, random_state=options.seed).fit_transform(x))
    dims = min(options.pca_dims, len(x), x.shape[1])
    if dims < x.shape[1]:
        progress(f"PCA of {len(x):,} points from {x.shape[1]} to {dims} dimensions")
        x = PCA(dims, random_state=options.seed).fit_transform(x).astype(np.float32)
    if options.method == "umap":
        return _umap(x, options, progress)
    return _tsne(x, options, progress)


def _umap(x: np.ndarray, options: Projection, progress: Progress) -> np.ndarray:
    import umap

    neighbors = options.neighbors or min(15, len(x) - 1)
    progress(f"UMAP of {len(x):,} points ({neighbors} neighbours)")
    # UMAP starts from a spectral layout, which needs more points than dimensions + 1; a
    # smaller map starts from random positions. A seed makes UMAP single-threaded anyway;
    # saying so keeps its warning away.
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=neighbors,
        init="spectral" if len(x) > 3 else "random",
        random_state=options.seed,
        n_jobs=1,
    )
    return np.asarray(reducer.fit_transform(x))


def _tsne(x: np.ndarray, options: Projection, progress: Progress) -> np.ndarray:
    from sklearn.manifold import TSNE

    # Below 1 (three points gave 2/3) t-SNE's neighbourhoods hold one point: equal maps.
    perplexity = options.perplexity or max(1.0, min(30.0, (len(x) - 1) / 3))
    progress(f"t-SNE of {len(x):,} points (perplexity {perplexity:g})")
    tsne = TSNE(
        n_components=2, perplexity=perplexity, init="pca", random_state=options.seed, n_jobs=-1
    )
    return np.asarray(tsne.fit_transform(x))
