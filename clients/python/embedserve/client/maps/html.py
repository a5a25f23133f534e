"""A map as one self-contained HTML page: plotly's script is inlined, so the page opens
offline; hovering a point shows its id, text and payload."""

from __future__ import annotations

import html
import json
import textwrap
from collections.abc import Sequence
from typing import IO

import numpy as np

from embedserve.client.maps.labels import Group, clip
from embedserve.client.maps.points import MapPoints

# Past this many points the browser draws with WebGL; SVG markers get slow.
SVG_LIMIT = 5_000
HOVER_TEXT_CHARS = 300
HOVER_PAYLOAD_CHARS = 300


def write_html(
    coords: np.ndarray, points: MapPoints, groups: Sequence[Group], title: str, out: IO[str]
) -> None:
    import plotly.graph_objects as go

    trace = go.Scatter if len(coords) <= SVG_LIMIT else go.Scattergl
    figure = go.Figure()
    for group in groups:
        index = group.members
        figure.add_trace(
            trace(
                x=coords[index, 0],
                y=coords[index, 1],
                mode="markers",
                name=f"{html.escape(group.legend_name, quote=False)} ({len(index):,})",
                marker={"color": group.color, "size": 6 if len(coords) <= SVG_LIMIT else 3},
                hovertext=[hover(points, i) for i in index],
                hoverinfo="text",
            )
        )
    hidden = {"showticklabels": False, "showgrid": False, "zeroline": False, "title": None}
    figure.update_layout(
        title=html.escape(title, quote=False),
        template="plotly_white",
        xaxis=hidden,
        yaxis=hidden,
        legend={"itemsizing": "constant"},
        hoverlabel={"align": "left"},
        margin={"l": 20, "r": 20, "t": 60, "b": 20},
    )
    figure.write_html(out, include_plotlyjs=True, full_html=True, config={"displaylogo": False})


def hover(points: MapPoints, i: int) -> str:
    """Plotly's labels (hover, legend, title) take a little HTML: the data is escaped, lines
    break with <br>."""
    lines = [f"<b>{html.escape(points.ids[i], quote=False)}</b>"]
    text = points.texts[i]
    if text:
        # Cut by characters, not words: shorten() left only "..." of a text whose first
        # word is longer than the cut (Chinese, Japanese, a long URL).
        short = clip(" ".join(text.split()), HOVER_TEXT_CHARS)
        lines += [html.escape(line, quote=False) for line in textwrap.wrap(short, 80)]
    if points.payloads[i]:
        payload = json.dumps(points.payloads[i], ensure_ascii=False, default=str)
        lines.append(html.escape(clip(payload, HOVER_PAYLOAD_CHARS), quote=False))
    return "<br>".join(lines)
