"""Map projections of the smallest and most degenerate point sets still give coordinates."""

from __future__ import annotations

from pathlib import Path

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


def test_the_html_map_shows_names_and_texts_as_text(tmp_path: Path) -> None:
    """Plotly reads a little HTML in its labels; a payload value, a text or a title that
    looks like markup is shown as written."""
    from embedserve.client.maps.html import write_html
    from embedserve.client.maps.labels import Group
    from embedserve.client.maps.points import MapPoints

    markup = "<b>bold</b> & <a href='x'>link</a>"
    points = MapPoints(["<i>id</i>"], np.zeros((1, 2)), [markup], [{"k": markup}], total=1)
    page = tmp_path / "map.html"
    write_html(np.zeros((1, 2)), points, [Group(markup, "#123456", [0])], markup, str(page))
    escaped = "&lt;b&gt;bold&lt;/b&gt; &amp; &lt;a href='x'&gt;link&lt;/a&gt;"
    figure = page.read_text(encoding="utf-8").replace("\\u002f", "/")  # plotly's JSON
    assert figure.count(escaped) >= 3  # the legend's name, the title, the hover text
    assert "<b>bold</b>" not in figure and "&lt;i&gt;id&lt;/i&gt;" in figure


def test_the_png_map_shows_dollar_signs_as_written(tmp_path: Path) -> None:
    """matplotlib reads $...$ as math: a payload value "$\\frac$" failed the whole map, and
    "costs $5 and $10" lost its dollars and spaces."""
    from embedserve.client.maps.labels import Group
    from embedserve.client.maps.png import write_png

    names = ["costs $5 and $10", "$\\frac$", "$\\nosuchcommand$"]
    groups = [Group(name, "#123456", [i]) for i, name in enumerate(names)]
    page = tmp_path / "map.png"
    write_png(np.zeros((3, 2)), groups, "prices in $", str(page))
    assert page.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
