"""Map projections of the smallest and most degenerate point sets still give coordinates."""

from __future__ import annotations

import numpy as np
import pytest

from embedserve.client.maps.projection import METHODS, MIN_POINTS, Projection, project

RNG = np.random.default_rng(0)
POINT_SETS = {
    "fewest": RNG.normal(size=(MIN_POINTS, 384)),
    "four": RNG.normal(size=(4, 384)),
    "all the same": np.ones((6, 384)),
    "two places": np.repeat(RNG.normal(size=(2, 384)), 4, axis=0),
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("points", POINT_SETS.values(), ids=list(POINT_SETS))
def test_every_method_maps_small_and_repeated_points(method: str, points: np.ndarray) -> None:
    coordinates = project(points.astype(np.float32), Projection(method=method), lambda _: None)
    assert coordinates.shape == (len(points), 2)
    assert np.isfinite(coordinates).all()
