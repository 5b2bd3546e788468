"""The step-0 gradient profile of a plain net and its ResNet twin (`resnet_viz.analyses.init_gradients` computes it): every
weight layer's gradient norm against depth on one log scale, the seeds' min–max as a band around their median, the
first ÷ last conv ratio of each net in the legend — and `init_gradient_finding`, what those numbers show in one
sentence."""
from __future__ import annotations

import contextlib
import math
import warnings
from typing import Protocol, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.colors import hex_to_rgb

from .gradients import _log_axis, format_ratio
from .numerics import first_last_ratio, last_conv_index
from .style import NEUTRAL_LINE, PLAIN_COLOR, RESIDUAL_COLOR, base_layout

CHANCE_LOSS = math.log(10)  # cross-entropy of a uniform guess over CIFAR-10's ten classes
OFF_SCALE_LOSS = 10 * CHANCE_LOSS  # a step-0 loss this far above a guess: the outputs are far off scale
BAND_OPACITY = 0.2


class InitNet(Protocol):
    """One net's step-0 gradient norms; `resnet_viz.analyses.init_gradients.NetGradients` is one."""

    label: str
    residual: bool
    depth: int
    layer_names: Sequence[str]
    seeds: Sequence[int]
    norms: np.ndarray  # [seeds, layers]
    losses: np.ndarray  # [seeds]


def _main_path(names: Sequence[str]) -> list[int]:
    """The layers on the main path: projection shortcuts sit beside it, so twins line up layer for layer."""
    return [i for i, n in enumerate(names) if "shortcut" not in n]


def _finite(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    return np.where(np.isfinite(v) & (v > 0), v, np.nan)


def _ratios(net: InitNet) -> np.ndarray:
    """First layer ÷ last conv layer, one per seed (NaN where undefined)."""
    return first_last_ratio(np.atleast_2d(net.norms), list(net.layer_names))


def _stat(values: np.ndarray) -> dict:
    v = values[np.isfinite(values)]
    if not v.size:
        return {"median": None, "min": None, "max": None}
    return {"median": float(np.median(v)), "min": float(v.min()), "max": float(v.max())}


SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _number(x: float) -> str:
    """0.0021, 0.35, 12, 2,957, 1.1×10⁴: what a reader takes in at a glance."""
    if not math.isfinite(x):
        return str(x)
    if x == 0 or 1e-3 <= abs(x) < 1e4:
        return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.2g}"
    exponent = math.floor(math.log10(abs(x)))
    return f"{x / 10 ** exponent:.1f}×10{str(exponent).translate(SUPERSCRIPT)}"


def _times(x: float) -> str:
    """A factor: format_ratio's 250×, 3.6×, 1/140, and 5.2×10⁶× where the digits would run on."""
    return f"{_number(x)}×" if math.isfinite(x) and x >= 1e4 else format_ratio(x)


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = hex_to_rgb(hex_color)
    return f"rgba({r},{g},{b},{alpha})"


def _stage_starts(names: Sequence[str]) -> list[tuple[int, str]]:
    """(1-based layer number, stage) where each stage after the first begins."""
    starts, previous = [], None
    for i, name in enumerate(names, start=1):
        stage = name.split(".")[0]
        if stage.startswith("stage") and stage != previous:
            if previous is not None and previous.startswith("stage"):
                starts.append((i, stage))
            previous = stage
    return starts


def init_gradient_profile(plain: InitNet, resnet: InitNet, title: str | None = None) -> go.Figure:
    """Gradient norm of every main-path weight layer against its depth, both nets on one log scale: the median over
    the seeds as a line, their min–max as a band (with one seed, the line alone)."""
    fig = go.Figure()
    plotted: list[np.ndarray] = []
    meta: dict = {"ratios": {}, "seeds": len(plain.seeds)}
    for net, color in ((plain, PLAIN_COLOR), (resnet, RESIDUAL_COLOR)):
        keep = _main_path(net.layer_names)
        names = [net.layer_names[i] for i in keep]
        g = _finite(np.atleast_2d(net.norms)[:, keep])
        x = np.arange(1, len(keep) + 1)
        with _quiet_nan_warnings():
            median, lo, hi = np.nanmedian(g, 0), np.nanmin(g, 0), np.nanmax(g, 0)
        plotted.append(g)
        ratio = _stat(_ratios(net))
        meta["ratios"][net.label] = ratio
        several = g.shape[0] > 1
        if several:  # the band: the upper edge, then the lower edge filled up to it
            fig.add_trace(go.Scatter(x=x, y=hi, mode="lines", line=dict(width=0, color=color), hoverinfo="skip",
                                     showlegend=False, legendgroup=net.label))
            fig.add_trace(go.Scatter(x=x, y=lo, mode="lines", line=dict(width=0, color=color), fill="tonexty",
                                     fillcolor=_rgba(color, BAND_OPACITY), hoverinfo="skip", showlegend=False,
                                     legendgroup=net.label))
        spread = "<br>seeds: %{customdata[1]:.3g} – %{customdata[2]:.3g}" if several else ""
        fig.add_trace(go.Scatter(
            x=x, y=median, mode="lines", line=dict(color=color, width=2.5), legendgroup=net.label,
            name=f"{net.label} · first ÷ last conv {format_ratio(ratio['median'])}",
            customdata=np.column_stack([np.array(names, dtype=object), lo, hi]),
            hovertemplate=f"<b>{net.label}</b><br>%{{customdata[0]}}<br>gradient norm %{{y:.3g}}"
                          f"{' (median)' if several else ''}{spread}<extra></extra>"))
    for start, stage in _stage_starts([resnet.layer_names[i] for i in _main_path(resnet.layer_names)]):
        fig.add_vline(x=start - 0.5, line=dict(color=NEUTRAL_LINE, width=1, dash="dot"),
                      annotation_text=f"{stage} (/2)", annotation_position="top right",
                      annotation_font=dict(size=11, color=NEUTRAL_LINE))
    n = len(plain.seeds)
    what = (f"line = median over {n} seeds, band = their min–max" if n > 1 else f"seed {plain.seeds[0]}")
    default = (f"Gradient norm per layer at step 0, before any update<br><sup>{what}; each seed its own weights and "
               "batch; legend: first layer ÷ last conv layer</sup>")
    base_layout(fig, title or default, height=480, hovermode="closest")
    fig.update_layout(legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0),
                      margin=dict(l=60, r=20, t=120, b=50), meta=meta)
    fig.update_xaxes(title_text="layer number (input → output)")
    fig.update_yaxes(title_text="gradient norm ‖∇W‖₂ — log scale", type="log", exponentformat="power")
    _log_axis(fig, plotted)
    return fig


@contextlib.contextmanager
def _quiet_nan_warnings():
    """nanmedian & co. warn on an all-NaN column (a layer whose gradient overflowed in every seed): NaN is the answer
    there, and the finding says so."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _net_words(net: InitNet) -> dict:
    ratios = _ratios(net)
    stat = _stat(ratios)
    norms = np.atleast_2d(np.asarray(net.norms, dtype=float))
    bad = int((~np.isfinite(norms)).sum())
    zero = int((norms == 0).sum())
    with _quiet_nan_warnings():
        scale = float(np.nanmedian(_finite(norms))) if np.isfinite(_finite(norms)).any() else None
    losses = np.asarray(net.losses, dtype=float)
    loss = float(np.median(losses)) if losses.size else None
    return {"ratio": stat, "bad": bad, "zero": zero, "scale": scale, "loss": loss,
            "last_conv": net.layer_names[last_conv_index(list(net.layer_names), len(net.layer_names))]
            if len(net.layer_names) >= 2 else None}


def _ratio_clause(net: InitNet, words: dict) -> str:
    r = words["ratio"]
    if r["median"] is None:
        return f"{net.label} has no finite first ÷ last conv ratio"
    spread = (f" ({format_ratio(r['min'])} to {format_ratio(r['max'])} over {len(net.seeds)} seeds)"
              if len(net.seeds) > 1 and r["min"] != r["max"] else "")
    trend = ("larger at the input end: it grows on its way back" if r["median"] > 10 else
             "smaller at the input end: it shrinks on its way back" if r["median"] < 0.1 else
             "within a factor of ten from one end to the other")
    return f"{net.label}'s first-layer gradient is {format_ratio(r['median'])} its last conv layer's{spread}, {trend}"


def init_gradient_finding(plain: InitNet, resnet: InitNet) -> dict:
    """What the step-0 norms show, in numbers and one plain sentence (no claim beyond them): each net's first ÷ last
    conv ratio (median and range over the seeds), how far apart the two nets' gradients are overall, step-0 losses
    far above a guess's ln 10, and gradients that are not finite or exactly zero.

    Keys: plain and resnet (each: ratio {median, min, max}, bad (non-finite norms), zero, scale (median norm),
    loss (median over seeds), last_conv), scale_ratio (ResNet's median norm ÷ the plain net's) and sentence."""
    p, r = _net_words(plain), _net_words(resnet)
    clauses = [_ratio_clause(plain, p), _ratio_clause(resnet, r)]
    sentence = "At step 0, " + "; ".join(clauses) + "."
    scale_ratio = r["scale"] / p["scale"] if p["scale"] and r["scale"] else None
    extra = []
    if scale_ratio is not None and not 0.1 <= scale_ratio <= 10:
        bigger, smaller, factor = ((resnet.label, plain.label, scale_ratio) if scale_ratio > 1
                                   else (plain.label, resnet.label, 1 / scale_ratio))
        big, small = (r["scale"], p["scale"]) if scale_ratio > 1 else (p["scale"], r["scale"])
        extra.append(f"Layer for layer, {bigger}'s gradients are typically {_times(factor)} {smaller}'s "
                     f"(medians over all layers and seeds: {_number(big)} and {_number(small)}).")
    for net, words in ((plain, p), (resnet, r)):
        if words["loss"] is not None and (not math.isfinite(words["loss"]) or words["loss"] > OFF_SCALE_LOSS):
            extra.append(f"{net.label}'s loss on the batch is already {_number(words['loss'])} before any update "
                         f"(a uniform guess scores ln 10 ≈ {CHANCE_LOSS:.2f}): its outputs are far off scale.")
        if words["bad"]:
            extra.append(f"{words['bad']} of {net.label}'s gradient norms are not finite (they overflowed).")
        if words["zero"]:
            extra.append(f"{words['zero']} of {net.label}'s gradient norms are exactly zero.")
    if extra:
        sentence += " " + " ".join(extra)
    return {"plain": p, "resnet": r, "scale_ratio": scale_ratio, "sentence": sentence}
