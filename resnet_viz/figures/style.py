"""One look across the app's figures: palette, font, base layout, the colour of each run, and the same figures
enlarged for a projector.

Plain networks are drawn in warm colours (yellow → dark red as they get deeper), residual networks in cool colours
(light → dark blue); every figure has a left-aligned title, labelled axes and a legend whose groups toggle together.
`legend_key` names a style shared by every run, or a reference line, in the legend rather than on the plot.
`for_projector(fig)` turns any of them into its presentation-mode version.
"""
from __future__ import annotations

import copy
import re
from typing import Any, Protocol, Sequence

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
PRESENTATION_SCALE = 1.6  # presentation mode: type this many times larger, lines and markers thicker
PRESENTATION_TICK_PX = 18  # presentation mode: the smallest tick label, in pixels (the back row reads 16 px and up)
PRESENTATION_INK = "#262730"  # presentation mode: text in dark grey, not the theme's light grey
FONT_KEYS = ("font", "tickfont", "textfont", "titlefont", "insidetextfont", "outsidetextfont", "hoverlabel")


def base_layout(fig: go.Figure, title: str, height: int | None = None, **kwargs) -> go.Figure:
    """The layout every figure starts from; extra keyword arguments go to `fig.update_layout`."""
    fig.update_layout(title=dict(text=title, x=0.0, xanchor="left"), font=FONT, margin=dict(l=60, r=20, t=70, b=50),
                      legend=dict(groupclick="togglegroup"), **({"height": height} if height else {}), **kwargs)
    return fig


KEY_COLOR = "#888888"


def legend_key(fig: go.Figure, name: str, line: dict | None = None, marker: dict | None = None) -> None:
    """A legend entry in grey that explains a line or marker style shared by every run, or a reference line; it
    draws nothing. Labels in the legend instead of on the plot cannot overlap the data."""
    mode = "+".join(m for m, style in (("lines", line), ("markers", marker)) if style is not None)
    # a group of its own: in a horizontal legend the entries of one group stack up instead of sitting in a row
    fig.add_trace(go.Scatter(x=[None], y=[None], mode=mode, name=name, legendgroup=f"key: {name}", hoverinfo="skip",
                             line=dict(color=KEY_COLOR, **(line or {})),
                             marker=dict(color=KEY_COLOR, **(marker or {}))))


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


def _enlarge(node: Any, scale: float, thicker: float) -> None:
    """Scale, in place, every font size set in a figure's JSON, and the line widths, marker sizes and colour-bar
    thicknesses of traces and shapes; sizes left unset inherit the (scaled) layout font."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in FONT_KEYS and isinstance(value, dict) and isinstance(value.get("size"), (int, float)):
                value["size"] = value["size"] * scale
            elif key in ("line", "marker", "colorbar") and isinstance(value, dict):
                if key == "colorbar":
                    value.setdefault("thickness", 30)  # plotly's default, which would not scale by itself
                for size_key in ("width", "size", "thickness"):
                    if isinstance(value.get(size_key), (int, float)) and not isinstance(value[size_key], bool):
                        value[size_key] = value[size_key] * thicker
            _enlarge(value, scale, thicker)
    elif isinstance(node, list) and node and isinstance(node[0], dict):
        for item in node:
            _enlarge(item, scale, thicker)


TRACE_STYLE_KEYS = ("line", "marker", "textfont", "colorbar", "insidetextfont", "outsidetextfont", "hoverlabel")


def _dark_and_large(font: dict, size: float) -> dict:
    return {**font, "size": max(font.get("size") or 0, size), "color": PRESENTATION_INK}


def _readable_axes(layout: dict, tick_px: float) -> None:
    """Every axis (2-D subplots, 3-D scenes) and colour bar with tick labels of at least `tick_px` in dark grey;
    axis titles likewise. Set explicitly, because Streamlit's chart theme otherwise gives ticks 12 px light grey."""
    axes = [v for k, v in layout.items() if re.fullmatch(r"[xy]axis\d*", k) and isinstance(v, dict)]
    for scene in (v for k, v in layout.items() if re.fullmatch(r"scene\d*", k) and isinstance(v, dict)):
        axes += [scene.setdefault(k, {}) for k in ("xaxis", "yaxis", "zaxis")]
    for axis in axes:
        axis["tickfont"] = _dark_and_large(axis.get("tickfont") or {}, tick_px)
        if axis.get("type") == "log":  # plotly writes the 2s and 5s between decades at 3/4 size: decades only
            axis["minorloglabels"] = "none"
        title = axis.get("title")
        title = {"text": title} if isinstance(title, str) else dict(title or {})
        title["font"] = _dark_and_large(title.get("font") or {}, tick_px)
        axis["title"] = title
    colorbars = [layout[k].get("colorbar") for k in layout if k.startswith("coloraxis") and isinstance(layout[k], dict)]
    for bar in (b for b in colorbars if isinstance(b, dict)):
        bar["tickfont"] = _dark_and_large(bar.get("tickfont") or {}, tick_px)


def _light_grey(color: Any) -> bool:
    """"#777777", "#999": a grey lighter than dark grey (colours that mean something, such as a run's, are not)."""
    if not isinstance(color, str) or not re.fullmatch(r"#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})", color):
        return False
    digits = color[1:] if len(color) == 7 else "".join(c * 2 for c in color[1:])
    r, g, b = (int(digits[i:i + 2], 16) for i in (0, 2, 4))
    return r == g == b and r > 0x50


def _legend_below(layout: dict) -> None:
    """A horizontal legend under the plot, so the plot keeps the full width (a legend at the side takes 40% of it
    on a projector)."""
    if layout.get("showlegend") is False:
        return
    legend = dict(layout.get("legend") or {})
    legend.update(orientation="h", x=0.0, xanchor="left", y=0.0, yanchor="bottom", yref="container",
                  font=_dark_and_large(legend.get("font") or {}, PRESENTATION_TICK_PX))
    layout["legend"] = legend


PRESENTATION_TITLE_CHARS = 58  # a title line at presentation size that fits a chart beside the sidebar at 1280 px


def wrap_title(text: str, limit: int = PRESENTATION_TITLE_CHARS) -> str:
    """A long title on two lines: broken after ": " or " — ", or before " (", when one falls between a third of the
    way and just past `limit` characters, else at the space nearest the middle. Plotly does not wrap titles; a long
    one is cut at the chart's edge."""
    if len(re.sub(r"<[^>]+>", "", text)) <= limit or "<br>" in text:
        return text
    for mark, keep in ((": ", 1), (" — ", 2), (" (", 0)):
        at = text.rfind(mark, len(text) // 3, limit + 8)
        if at >= 0:
            return text[:at + keep] + "<br>" + text[at + keep:].lstrip()
    spaces = [i for i, c in enumerate(text) if c == " "]
    if not spaces:
        return text
    at = min(spaces, key=lambda i: abs(i - len(text) / 2))
    return text[:at] + "<br>" + text[at + 1:]


TITLE_LINE_PX = 30  # presentation mode: a title's second line, in pixels
LEGEND_ENTRY_PX = 16  # presentation mode: height added per legend entry (in rows of two or three under the plot)
SLANTED_TICKS_PX = 60  # presentation mode: height added for slanted tick labels (long category names)


def _room_below(fig: go.Figure, layout: dict) -> int:
    """Pixels to add to a figure's height so that what goes under its plot on a projector — the legend's rows, tick
    labels written at a slant — does not take them from the plot itself."""
    entries = 0
    if layout.get("showlegend") is not False:
        entries = sum(1 for t in fig.data if t.showlegend is not False)
        entries = 0 if entries < 2 and layout.get("showlegend") is not True else min(entries, 15)
    slanted = any(isinstance(v, dict) and v.get("tickangle") not in (None, 0)
                  for k, v in layout.items() if re.fullmatch(r"xaxis\d*", k))
    return LEGEND_ENTRY_PX * entries + (SLANTED_TICKS_PX if slanted else 0)


def for_projector(fig: go.Figure, scale: float = PRESENTATION_SCALE) -> go.Figure:
    """The same figure, readable from the back of a lecture hall: all type `scale` times larger and dark grey, tick
    labels at least PRESENTATION_TICK_PX, a long title on two lines, lines and markers thicker, the legend under the
    plot instead of beside it, the figure taller and its margins wider. Returns a new figure; `fig` is left as it
    is."""
    thicker = scale ** 0.75
    big = go.Figure(fig)
    layout = copy.deepcopy(big.layout.to_plotly_json())
    layout.setdefault("font", {}).setdefault("size", 12)
    _enlarge(layout, scale, thicker)
    layout["font"]["color"] = PRESENTATION_INK
    title, title_lines = layout.get("title"), 1
    if isinstance(title, dict) and isinstance(title.get("text"), str):
        title["text"] = wrap_title(title["text"])
        title_lines = title["text"].count("<br>") + 1
    _readable_axes(layout, PRESENTATION_TICK_PX)
    _legend_below(layout)
    for note in layout.get("annotations") or []:  # grey notes on the plot (lr drop, reference lines) in dark grey
        font = note.get("font") or {}
        if _light_grey(font.get("color")):
            note["font"] = {**font, "color": PRESENTATION_INK}
    if isinstance(layout.get("height"), (int, float)):
        layout["height"] = int(layout["height"] * (1 + (scale - 1) / 2)) + _room_below(big, layout)
    margin = layout.get("margin") or {}
    layout["margin"] = {k: (v * scale if k in ("l", "r", "t", "b") and isinstance(v, (int, float)) else v)
                        for k, v in {"l": 60, "r": 20, "t": 70, "b": 50, **margin}.items()}
    layout["margin"]["t"] += TITLE_LINE_PX * (title_lines - 1)  # a wrapped title keeps clear of subplot titles
    if isinstance(layout.get("meta"), dict):
        layout["meta"] = {**layout["meta"], "presentation": True}
    big.layout = layout
    for trace in big.data:  # only the styling is rewritten: the data arrays stay as they are
        style = copy.deepcopy({k: v for k, v in trace.to_plotly_json().items() if k in TRACE_STYLE_KEYS})
        _enlarge(style, scale, thicker)
        if isinstance(style.get("colorbar"), dict):
            bar = style["colorbar"]
            bar["tickfont"] = _dark_and_large(bar.get("tickfont") or {}, PRESENTATION_TICK_PX)
        trace.update(style)
    return big
