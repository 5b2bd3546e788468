"""One look across the app's figures: palette, font, base layout and the colour of each run.

Plain networks are drawn in warm colours (yellow → dark red as they get deeper), residual networks in cool colours
(light → dark blue); every figure has a left-aligned title, labelled axes and a legend whose groups toggle together.
"""
from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.colors import sample_colorscale

PLAIN_SCALE = "YlOrRd"  # warm: plain networks
RESIDUAL_SCALE = "Blues"  # cool: residual networks
PLAIN_COLOR = "#e6550d"  # a single plain run
RESIDUAL_COLOR = "#2171b5"  # a single residual run
PLAIN_FILL = "#fde6d2"
RESIDUAL_FILL = "#dbe9f6"
NEUTRAL_FILL = "#eeeeee"
NEUTRAL_LINE = "#777777"
PROJECTION_COLOR = "#08306b"
HEATMAP_SCALE = "Viridis"
STEP_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
FONT = dict(size=13)


def base_layout(fig: go.Figure, title: str, height: int | None = None, **kwargs) -> go.Figure:
    """The layout every figure starts from; extra keyword arguments go to `fig.update_layout`."""
    fig.update_layout(title=dict(text=title, x=0.0, xanchor="left"), font=FONT, margin=dict(l=60, r=20, t=70, b=50),
                      legend=dict(groupclick="togglegroup"), **({"height": height} if height else {}), **kwargs)
    return fig


class Family(Protocol):
    """What colouring needs to know about a run or a model: `RunSeries` and `AnalysisSeries` both qualify."""

    residual: bool
    depth: int | None


def run_colors(items: Sequence[Family]) -> list[str]:
    """Warm colours for plain runs, cool for residual ones; within each family deeper = darker."""
    colors: list[str] = [""] * len(items)
    for residual in (False, True):
        idx = sorted((i for i, r in enumerate(items) if bool(r.residual) == residual),
                     key=lambda i: (items[i].depth or 0, i))
        if not idx:
            continue
        if len(idx) == 1:
            picked = [RESIDUAL_COLOR if residual else PLAIN_COLOR]
        else:
            lo, hi = (0.45, 0.95) if residual else (0.4, 0.95)
            picked = sample_colorscale(RESIDUAL_SCALE if residual else PLAIN_SCALE, list(np.linspace(lo, hi, len(idx))))
        for i, c in zip(idx, picked):
            colors[i] = c
    return colors
