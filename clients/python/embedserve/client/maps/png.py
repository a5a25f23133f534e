"""A map as a PNG: one colour per group, a legend beside the plot, no axes (the
coordinates of a projection have no units worth reading)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO

import numpy as np

from embedserve.client.maps.labels import Group

# Marker area shrinks as maps grow, so dense regions stay readable.
LARGE_MAP = 5_000


def _plain(text: str) -> str:
    """``text`` as written: matplotlib reads $...$ as math (and fails on what it cannot
    parse, such as a payload value "$\\frac$")."""
    return text.replace("$", r"\$")


def write_png(coords: np.ndarray, groups: Sequence[Group], title: str, out: IO[bytes]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = 18.0 if len(coords) <= LARGE_MAP else 4.0
    figure, axes = plt.subplots(figsize=(10, 7), dpi=100)
    try:
        for group in groups:
            xy = coords[group.members]
            axes.scatter(
                xy[:, 0],
                xy[:, 1],
                s=size,
                color=group.color,
                label=f"{_plain(group.legend_name)} ({len(group.members):,})",
                alpha=0.8,
                linewidths=0,
            )
        axes.set_title(_plain(title), fontsize=13)
        axes.set_xticks([])
        axes.set_yticks([])
        for spine in axes.spines.values():
            spine.set_visible(False)
        legend = axes.legend(
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            frameon=False,
            fontsize=9,
            markerscale=max(1.0, 40 / size) ** 0.5,
        )
        for handle in legend.legend_handles:
            if handle is not None:
                handle.set_alpha(1.0)
        figure.savefig(out, format="png", bbox_inches="tight")
    finally:
        plt.close(figure)
