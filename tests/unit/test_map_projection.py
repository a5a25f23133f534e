"""Map projections of the smallest and most degenerate point sets still give coordinates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


@pytest.mark.parametrize("seed", [0, 8, 10])
def test_three_different_points_are_three_places_on_a_tsne_map(seed: int) -> None:
    """t-SNE's default perplexity for three points was 2/3: two of these fell on one spot."""
    points = np.random.default_rng(seed).standard_normal((3, 384)).astype(np.float32)
    places = project(points, Projection(method="tsne"), lambda _: None)
    gaps = [np.linalg.norm(places[i] - places[j]) for i, j in ((0, 1), (0, 2), (1, 2))]
    assert min(gaps) > 1.0


def test_field_values_of_other_types_that_read_alike_stay_apart() -> None:
    """The text "1" and the number 1 were one group, an empty text had a blank name, a
    text "noise" was drawn grey as noise, and an object showed as Python's repr."""
    from embedserve.client.maps.labels import NO_VALUE, OTHER_COLOR, field_labels, groups
    from embedserve.client.maps.points import MapPoints

    values: list[Any] = ["1", 1, 1.0, "", "noise", "(no value)", None, {"b": 1, "a": [2]}, "x"]
    points = MapPoints(
        [str(i) for i in range(len(values))],
        np.zeros((len(values), 2)),
        [None] * len(values),
        [{"k": v} for v in values],
        total=len(values),
    )
    assert field_labels(points, "k") == [
        '"1"',
        "1",
        "1",
        '""',
        '"noise"',
        '"(no value)"',
        NO_VALUE,
        '{"a": [2], "b": 1}',
        "x",
    ]
    grey = {g.name for g in groups(field_labels(points, "k")) if g.color == OTHER_COLOR}
    assert grey == {NO_VALUE}


def test_the_html_map_shows_names_and_texts_as_text(tmp_path: Path) -> None:
    """Plotly reads a little HTML in its labels; a payload value, a text or a title that
    looks like markup is shown as written."""
    from embedserve.client.maps.html import write_html
    from embedserve.client.maps.labels import Group
    from embedserve.client.maps.points import MapPoints

    markup = "<b>bold</b> & <a href='x'>link</a>"
    points = MapPoints(["<i>id</i>"], np.zeros((1, 2)), [markup], [{"k": markup}], total=1)
    page = tmp_path / "map.html"
    with page.open("w", encoding="utf-8") as out:
        write_html(np.zeros((1, 2)), points, [Group(markup, "#123456", [0])], markup, out)
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
    with page.open("wb") as out:
        write_png(np.zeros((3, 2)), groups, "prices in $", out)
    assert page.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_a_long_text_without_spaces_shows_its_start_on_hover() -> None:
    """textwrap.shorten cuts at words: a text whose first word ran past the cut (Chinese,
    a long URL) showed nothing but "..."."""
    from embedserve.client.maps.html import HOVER_TEXT_CHARS, hover
    from embedserve.client.maps.points import MapPoints

    texts = ["这是一个很长的中文句子没有空格" * 40, "https://example.com/" + "a" * 400 + " tail"]
    points = MapPoints(["zh", "url"], np.zeros((2, 2)), texts, [{}, {}], total=2)
    for index, text in enumerate(texts):
        shown = hover(points, index).split("<br>")[1:]
        assert "".join(shown).startswith(text[:200]), shown
        assert sum(map(len, shown)) <= HOVER_TEXT_CHARS


def test_a_long_group_name_is_cut_in_the_legend_not_the_image_size(tmp_path: Path) -> None:
    """One long payload value coloured by made the PNG's legend, and so the image, 800,000
    pixels wide."""
    from PIL import Image

    from embedserve.client.maps.labels import LEGEND_CHARS, Group
    from embedserve.client.maps.png import write_png

    names = ["t0 " + "y" * 100_000, "t1 short"]
    groups = [Group(name, "#123456", [i]) for i, name in enumerate(names)]
    assert [len(g.legend_name) for g in groups] == [LEGEND_CHARS, len(names[1])]
    image = tmp_path / "map.png"
    with image.open("wb") as out:
        write_png(np.zeros((2, 2)), groups, "titles", out)
    with Image.open(image) as drawn:
        assert drawn.width < 2_000, drawn.size
