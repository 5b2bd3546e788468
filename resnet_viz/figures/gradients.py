"""Gradient-flow figures: the per-layer gradient norms a run recorded, as a layers × steps heatmap, as depth
profiles at chosen steps, and as the ratio of the first layer's gradient to the last conv layer's over training —
plus `gradient_flow_finding`, the same ratio put into one plain sentence for the page's text."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import plotly.graph_objects as go

from ..lecture.learning import learned, learning_phrase
from .numerics import (MAX_HEATMAP_COLUMNS, downsample_log_columns, ema, first_last_ratio, last_conv_index,
                       log10_safe, log_ticks, metric_array, thin_indices)
from .runs import RunSeries, as_runs
from .style import HEATMAP_SCALE, STEP_DASHES, base_layout, run_colors


def recorded_grad_norms(run: RunSeries) -> tuple[np.ndarray, np.ndarray] | None:
    """(recorded steps [G], gradient norms [G, L]) of a run, or None where it recorded none or they do not match."""
    steps, norms = metric_array(run.metrics, "grad_norm_step"), metric_array(run.metrics, "grad_norms")
    if steps is None or norms is None or norms.ndim != 2 or len(steps) != norms.shape[0]:
        return None
    return steps, norms


def grad_norm_heatmap(grad_norms: Any, steps: Any, layer_names: Sequence[str] | None, title: str = "",
                      zmin: float | None = None, zmax: float | None = None,
                      max_columns: int = MAX_HEATMAP_COLUMNS, colorscale: str = HEATMAP_SCALE) -> go.Figure:
    """Layers (rows, input at the top) × iterations (columns), coloured by log10 of each weight's gradient norm.

    zmin/zmax are real gradient norms (e.g. 1e-4, 1e0); pass the same pair (see `shared_color_range`) to two
    heatmaps to compare them colour for colour. More than `max_columns` steps are averaged (in log space) into
    `max_columns` columns."""
    g = np.asarray(grad_norms, dtype=float)
    if g.ndim != 2:
        raise ValueError(f"grad_norms must be 2-D [steps, layers], got shape {g.shape}.")
    z, x, sizes = downsample_log_columns(g, steps, max_columns)
    n_layers = g.shape[1]
    names = list(layer_names or [])
    if len(names) != n_layers:
        names = [f"layer {i}" for i in range(n_layers)]
    finite = z[np.isfinite(z)]
    lo = math.log10(zmin) if zmin and zmin > 0 else (float(finite.min()) if finite.size else -3.0)
    hi = math.log10(zmax) if zmax and zmax > 0 else (float(finite.max()) if finite.size else 0.0)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    tickvals, ticktext = log_ticks(lo, hi)
    real = np.where(np.isfinite(z), 10.0 ** np.nan_to_num(z, nan=0.0), np.nan).astype(np.float32)
    grouped = int(sizes.max()) > 1
    hover = ("<b>%{y}</b><br>step %{x:,.0f}" + (" (mean of ~" + str(int(round(sizes.mean()))) + " steps)"
                                                if grouped else "")
             + "<br>gradient norm %{customdata:.3g}<extra></extra>")
    fig = go.Figure(go.Heatmap(
        z=z.T.astype(np.float32), x=x, y=names, customdata=real.T, zmin=lo, zmax=hi, colorscale=colorscale,
        hoverongaps=False, hovertemplate=hover,
        colorbar=dict(title=dict(text="‖∇W‖₂<br>(log scale)"), tickvals=tickvals, ticktext=ticktext)))
    height = int(min(900, max(380, 160 + 5 * n_layers)))
    base_layout(fig, title or "Gradient norm per layer and step", height=height)
    fig.update_yaxes(title_text="layer (input at the top → output at the bottom)", type="category",
                     autorange="reversed")
    fig.update_xaxes(title_text="iteration" + (" (columns averaged in log space)" if grouped else ""))
    fig.update_layout(meta={"log10": True, "columns": int(z.shape[0]), "zmin": 10 ** lo, "zmax": 10 ** hi})
    return fig


def _log_axis(fig: go.Figure, values: list[np.ndarray], **where) -> None:
    """On a log axis spanning two decades or more, label only the decades (no 2, 5 clutter)."""
    v = np.concatenate([log10_safe(a).ravel() for a in values]) if values else np.array([])
    v = v[np.isfinite(v)]
    if v.size and v.max() - v.min() >= 2:
        fig.update_yaxes(dtick=1, **where)


def _nearest_index(values: np.ndarray, target: float) -> int:
    return int(np.argmin(np.abs(values.astype(float) - float(target))))


def grad_norm_profiles(runs: Sequence[RunSeries], steps_to_show: Sequence[int] | None = None, log_y: bool = True,
                       exclude_shortcuts: bool = True, relative_depth: bool = False,
                       title: str | None = None) -> go.Figure:
    """Gradient norm of every layer against its depth, at a few steps (line style = step, colour = run).

    steps_to_show: iterations to show (the nearest recorded step is used); default: each run's first, middle and
    last recorded step. exclude_shortcuts drops projection-shortcut convs, which sit beside the main path, so plain
    and residual twins line up layer for layer. relative_depth puts depth on 0…1 to overlay different depths."""
    runs = as_runs(runs)
    colors = run_colors(runs)
    fig = go.Figure()
    plotted: list[np.ndarray] = []
    for run, color in zip(runs, colors):
        recorded = recorded_grad_norms(run)
        if recorded is None:
            continue
        gsteps, g = recorded
        names = run.layer_names if len(run.layer_names) == g.shape[1] else [f"layer {i}" for i in range(g.shape[1])]
        keep = [i for i, n in enumerate(names) if not (exclude_shortcuts and "shortcut" in n)]
        if steps_to_show is None:
            targets = [gsteps[0], gsteps[len(gsteps) // 2], gsteps[-1]]
        else:
            targets = list(steps_to_show)
        used: list[int] = []
        for j, target in enumerate(targets):
            idx = _nearest_index(gsteps, target)
            if idx in used:
                continue
            used.append(idx)
            x = np.arange(1, len(keep) + 1, dtype=float)
            if relative_depth and len(keep) > 1:
                x = (x - 1) / (len(keep) - 1)
            step = int(gsteps[idx])
            plotted.append(g[idx, keep])
            fig.add_trace(go.Scatter(
                x=x, y=g[idx, keep].astype(float), mode="lines", customdata=[names[i] for i in keep],
                line=dict(color=color, width=2, dash=STEP_DASHES[j % len(STEP_DASHES)]),
                name=f"{run.label} · step {step:,}", legendgroup=run.label,
                hovertemplate=f"<b>{run.label}</b>, step {step:,}<br>%{{customdata}}<br>gradient norm %{{y:.3g}}"
                              "<extra></extra>"))
    dash_note = "line style = step (solid = first shown, dashed, dotted …), colour = run"
    base_layout(fig, title or f"Gradient norm by layer depth<br><sup>{dash_note}</sup>", height=480,
                 hovermode="closest")
    fig.update_xaxes(title_text="relative depth (0 = first layer, 1 = classifier)" if relative_depth
                     else "layer number (input → output)")
    fig.update_yaxes(title_text="gradient norm ‖∇W‖₂" + (" — log scale" if log_y else ""),
                     type="log" if log_y else "linear", exponentformat="power" if log_y else "B")
    if log_y:
        _log_axis(fig, plotted)
    return fig


def first_last_ratio_figure(runs: Sequence[RunSeries], log_y: bool = True, smoothing: float = 0.0,
                            title: str | None = None) -> go.Figure:
    """‖∇W first layer‖ / ‖∇W last conv layer‖ over iterations for several runs, with the ratio 1 marked."""
    runs = as_runs(runs)
    colors = run_colors(runs)
    fig = go.Figure()
    plotted: list[np.ndarray] = []
    for run, color in zip(runs, colors):
        recorded = recorded_grad_norms(run)
        if recorded is None or recorded[1].shape[1] < 2:
            continue
        gsteps, g = recorded
        ratio = first_last_ratio(g, run.layer_names)
        y = ema(ratio, smoothing) if 0 < smoothing < 1 else ratio
        plotted.append(y)
        keep = thin_indices(len(y))
        names = run.layer_names if len(run.layer_names) == g.shape[1] else None
        first = names[0] if names else "first layer"
        last = names[last_conv_index(names, g.shape[1])] if names else "last conv layer"
        fig.add_trace(go.Scatter(
            x=gsteps[keep], y=y[keep], mode="lines", line=dict(color=color, width=2), name=run.label,
            hovertemplate=f"<b>{run.label}</b><br>step %{{x:,}}<br>‖∇ {first}‖ / ‖∇ {last}‖ = %{{y:.3g}}"
                          "<extra></extra>"))
    fig.add_hline(y=1, line=dict(color="#888888", width=1, dash="dot"), annotation_text="equal gradient size",
                  annotation_position="bottom right", annotation_font=dict(size=11, color="#666666"))
    default_title = ("Gradient at the input end relative to the output end<br><sup>‖∇W first layer‖ / ‖∇W last "
                     "conv layer before fc‖ — far below 1 means the gradient fades on its way back</sup>")
    base_layout(fig, title or default_title, height=440, hovermode="closest")
    fig.update_xaxes(title_text="iteration", rangemode="tozero")
    fig.update_yaxes(title_text="ratio" + (" — log scale" if log_y else ""), type="log" if log_y else "linear")
    if log_y:
        _log_axis(fig, plotted)
    return fig


END_FRACTION = 0.1  # "at the end" = the median over this last share of the recorded steps
RATIO_DEFINITION = ("**The ratio** is ‖∇W first layer‖ ÷ ‖∇W last conv layer‖. **At the start** is its value at the "
                    "first recorded step where both gradients are finite; **at the end** is its median over the last "
                    "10% of the recorded steps (one step's ratio jitters from batch to batch).")


def format_ratio(x: float | None) -> str:
    """One way to write a ratio everywhere on a page: 250×, 3.6×, 0.056×, 1/140 (below 0.01)."""
    if x is None or not math.isfinite(x):
        return "—"
    return f"{x:,.0f}×" if x >= 100 else f"{x:.2g}×" if x >= 0.01 else f"1/{1 / x:,.0f}"


def gradient_flow_finding(grad_norms: Any, layer_names: Sequence[str] | None, loss: Any = None,
                          steps: Any = None, train_error: float | None = None) -> dict:
    """What one run's recorded gradients show, in numbers and one plain sentence — so the page's text follows the
    data instead of asserting the paper's result, and quotes the same numbers as its table (`RATIO_DEFINITION`).

    steps: the training step of each row of grad_norms (the run's "grad_norm_step"; default: the row index).
    Keys: start_step and ratio_start (first layer ÷ last conv at the first row with a finite ratio), end_steps
    (first and last step of the last 10% of rows) and ratio_end (the median over them), trend ("fades" below 0.1,
    "grows" above 10, else "even"), stuck and sentence. stuck: the net has not learned by the app's one rule
    (resnet_viz.lecture.learning: final training error above 80%) when `train_error` (the last evaluation's, a fraction) is
    given; without it, the last 10% of training losses averaging within 2% of ln 10 (chance for 10 classes)."""
    ratio = first_last_ratio(grad_norms, layer_names)
    steps = np.arange(len(ratio)) if steps is None else np.asarray(steps)
    if len(steps) != len(ratio):
        raise ValueError(f"{len(steps)} steps for {len(ratio)} rows of gradient norms.")
    finite = np.flatnonzero(np.isfinite(ratio))
    if not len(finite):
        return {"start_step": None, "ratio_start": None, "end_steps": None, "ratio_end": None, "trend": None,
                "stuck": False, "sentence": "no finite gradient norms were recorded"}
    start, start_step = float(ratio[finite[0]]), int(steps[finite[0]])
    tail = finite[-max(1, math.ceil(len(finite) * END_FRACTION)):]
    end = float(np.median(ratio[tail]))
    end_steps = (int(steps[tail[0]]), int(steps[tail[-1]]))
    trend = "fades" if end < 0.1 else "grows" if end > 10 else "even"
    losses = np.asarray(loss, dtype=float) if loss is not None else np.zeros(0)
    losses = losses[np.isfinite(losses)]
    if learned(train_error) is not None:
        stuck = not learned(train_error)
    else:
        stuck = bool(len(losses) and abs(losses[-max(1, len(losses) // 10):].mean() - np.log(10)) < 0.02 * np.log(10))
    when = "at initialisation (step 0)" if start_step == 0 else f"at step {start_step:,}"
    sentence = (f"the first layer's gradient is {format_ratio(start)} the last conv layer's {when} and "
                f"{format_ratio(end)} at the end — " + {
                    "fades": "at the end it fades on its way back to the input",
                    "grows": "at the end it grows on its way back to the input",
                    "even": "at the end it stays within a factor of ten across depth"}[trend])
    if start > 10:
        sentence += (f"; {'at initialisation' if start_step == 0 else 'at the start'} it is far larger at the input "
                     "end (it explodes, it does not vanish)")
    if stuck and learned(train_error) is not None:
        sentence += f"; it has not learned: {learning_phrase(train_error)}"
    elif stuck:
        sentence += "; its training loss ended at chance level (ln 10 ≈ 2.30): the net has not learned"
    return {"start_step": start_step, "ratio_start": start, "end_steps": end_steps, "ratio_end": end, "trend": trend,
            "stuck": stuck, "sentence": sentence}
