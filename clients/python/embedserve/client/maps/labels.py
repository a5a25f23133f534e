"""What colours a map: each point's group, from a payload field or from the Cluster RPC
(so a map coloured by cluster shows what ``embedserve cluster`` reports), and the groups
in drawing order with their colours."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

from embedserve.client.maps.points import MapPoints

NO_VALUE = "(no value)"
NOISE = "noise"
# Groups drawn with a colour and a legend entry; the rarer rest share one grey group.
MAX_GROUPS = 20
OTHER_COLOR = "#b0b0b0"
# matplotlib's tab10, then tab20's lighter shades, the same in both outputs; its greys are
# swapped for tab20b's dark blue and olive, since grey means "no group" here.
PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#393b79", "#bcbd22", "#17becf",
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5",
    "#c49c94", "#f7b6d2", "#637939", "#dbdb8d", "#9edae5",
]  # fmt: skip


# Legend entries past this many characters are cut: one long value (a title, a URL) made
# the legend, and so the image, hundreds of thousands of pixels wide.
LEGEND_CHARS = 60


@dataclasses.dataclass(frozen=True)
class Group:
    name: str
    color: str
    members: list[int]

    @property
    def legend_name(self) -> str:
        return clip(self.name, LEGEND_CHARS)


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, the cut marked."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def field_labels(points: MapPoints, field: str) -> list[str]:
    """Each point's value of payload ``field`` as text; NO_VALUE where it has none."""
    values = [payload.get(field) for payload in points.payloads]
    if all(v is None for v in values):
        seen = sorted({key for payload in points.payloads for key in payload})
        fields = ", ".join(seen) if seen else "none"
        raise ValueError(
            f"--color-by {field}: no point has a payload field {field!r} (fields: {fields})"
        )
    shown = [None if v is None else _as_text(v) for v in values]
    # A text that reads as another value, as no value or noise (grey), or as nothing at
    # all is shown in quotes: "1" and 1 were one group, and a text "noise" was drawn grey.
    taken = {NO_VALUE, NOISE, ""} | {
        t for t, v in zip(shown, values, strict=True) if t is not None and not isinstance(v, str)
    }
    return [
        NO_VALUE
        if t is None
        else json.dumps(t, ensure_ascii=False)
        if isinstance(v, str) and t in taken
        else t
        for t, v in zip(shown, values, strict=True)
    ]


def cluster_labels(response: Any, ids: Sequence[str]) -> list[str]:
    """Labels of a ClusterResponse for ``ids``, named by the cluster's top words."""
    names = {c.label: _cluster_name(c) for c in response.clusters}
    by_id = dict(zip(response.ids, response.labels, strict=True))
    return [names[by_id[i]] if i in by_id else NO_VALUE for i in ids]


def groups(labels: Sequence[str]) -> list[Group]:
    """Largest group first; NO_VALUE, noise and the groups past MAX_GROUPS come last in grey."""
    counts = Counter(labels)
    grey = {NO_VALUE, NOISE}
    ranked = sorted((name for name in counts if name not in grey), key=lambda n: (-counts[n], n))
    shown, rest = ranked[:MAX_GROUPS], set(ranked[MAX_GROUPS:])
    members: dict[str, list[int]] = {name: [] for name in shown}
    other = f"other ({len(rest)} values)"
    for index, label in enumerate(labels):
        key = other if label in rest else label
        members.setdefault(key, []).append(index)
    colors = dict(zip(shown, PALETTE, strict=False))
    return [Group(name, colors.get(name, OTHER_COLOR), idx) for name, idx in members.items()]


def _cluster_name(summary: Any) -> str:
    if summary.label == -1:
        return NOISE
    words = ", ".join(w.word for w in summary.words)
    return f"cluster {summary.label}: {words}" if words else f"cluster {summary.label}"


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)
