"""Training curves: loss and error of several runs against iterations, the paper's Fig. 6 (plain nets left,
ResNets right), and `eval_spike_note`, which explains an evaluation loss far above the training loss. Runs come in as
`RunSeries`; colours follow `style.run_colors`."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..config import PAPER_TABLE6_ERROR
from .numerics import ema, eval_loss_spike, lr_drop_steps, metric_array, readable, thin_indices
from .runs import RunSeries, as_runs
from .style import base_layout, legend_key, run_colors


def _mark_lr_drops(fig: go.Figure, runs: Sequence[RunSeries], **where) -> None:
    drops = sorted({s for r in runs for s in lr_drop_steps(r.metrics)})
    for s in drops[:6]:
        fig.add_vline(x=s, line=dict(color="#999999", width=1, dash="dot"), annotation_text="lr drop",
                      annotation_position="top right", annotation_font=dict(size=10, color="#777777"), **where)


# ---------------------------------------------------------------------------------------- loss/error curves ----
EVAL_STYLE = {"train": (dict(width=1.5, dash="dot"), dict(symbol="circle-open", size=7)),
              "test": (dict(width=3, dash="solid"), dict(symbol="diamond", size=7))}


def training_curves(runs: Sequence[RunSeries], metric: str = "loss", smoothing: float = 0.9, log_y: bool = False,
                    show_raw: bool = True, show_eval: bool = True, mark_lr_drops: bool = True,
                    title: str | None = None) -> go.Figure:
    """Loss (or error) of several runs against iterations: per-batch values (faint) and their EMA (solid), and the
    evaluations on fixed train/test subsets (train = dotted with circles, test = solid with diamonds). The legend has
    one entry per run (a click hides all its lines) and a grey key to the line styles: a short legend, which leaves
    the plot its width.

    An evaluation loss far above the batches' (BatchNorm's running statistics early in a deep plain net's training:
    10⁵ against 2.3) would squash every curve into the bottom of the chart. The y-axis therefore stays within
    OFF_THE_CHART times the highest smoothed batch curve: an evaluation above that leaves through the top edge,
    where a ▲ marks it (its value in the hover and its largest in the legend)."""
    if metric not in ("loss", "error"):
        raise ValueError("metric must be 'loss' or 'error'.")
    runs = as_runs(runs)
    colors = run_colors(runs)
    scale, fmt = (1.0, ".3f") if metric == "loss" else (100.0, ".1f")
    unit = "" if metric == "loss" else "%"
    step_key = "loss" if metric == "loss" else "batch_error"
    fig = go.Figure()
    batches: list[np.ndarray] = []  # the smoothed batch curves: the y-axis always shows them
    evaluations: list[tuple[RunSeries, str, str, np.ndarray, np.ndarray]] = []  # (run, colour, split, steps, values)
    for run, color in zip(runs, colors):
        m = run.metrics
        steps, y = metric_array(m, "step"), metric_array(m, step_key)
        if steps is not None and y is not None and len(steps) == len(y):
            y = y.astype(float) * scale
            keep = thin_indices(len(y))
            batches.append(ema(y, smoothing)[keep])
            if show_raw and 0 < smoothing < 1:
                fig.add_trace(go.Scatter(
                    x=steps[keep], y=y[keep], mode="lines", line=dict(color=color, width=1), opacity=0.25,
                    name=f"{run.label} · batches", legendgroup=run.label, showlegend=False,
                    hovertemplate=f"<b>{run.label}</b><br>step %{{x:,}}<br>batch {metric} %{{y:{fmt}}}{unit}"
                                  "<extra></extra>"))
            smooth = ema(y, smoothing)
            fig.add_trace(go.Scatter(
                x=steps[keep], y=smooth[keep], mode="lines", line=dict(color=color, width=2), name=run.label,
                legendgroup=run.label,
                hovertemplate=f"<b>{run.label}</b><br>step %{{x:,}}<br>batch {metric}"
                              f"{' (smoothed)' if 0 < smoothing < 1 else ''} %{{y:{fmt}}}{unit}<extra></extra>"))
        es = metric_array(m, "eval_step")
        if show_eval and es is not None:
            for split, (line, marker) in EVAL_STYLE.items():
                v = metric_array(m, f"{split}_{metric}")
                if v is None or len(v) != len(es):
                    continue
                evaluations.append((run, color, split, es, v.astype(float)))
                fig.add_trace(go.Scatter(
                    x=es, y=v.astype(float) * scale, mode="lines+markers", line=dict(color=color, **line),
                    marker=dict(color=color, **marker),
                    name=f"{run.label} · {split} set", legendgroup=run.label, showlegend=False,
                    hovertemplate=f"<b>{run.label}</b><br>step %{{x:,}}<br>{split}-set {metric} %{{y:{fmt}}}{unit}"
                                  "<extra></extra>"))
    if batches:
        legend_key(fig, "batches" + (f" (EMA {smoothing:g})" if 0 < smoothing < 1 else ""), dict(width=2), None)
    for split in ("train", "test"):
        if any(e[2] == split for e in evaluations):
            legend_key(fig, f"{split} set (evaluations)", *EVAL_STYLE[split])
    if mark_lr_drops:
        _mark_lr_drops(fig, runs)
    what = "Loss (cross-entropy)" if metric == "loss" else "Error (%)"
    base_layout(fig, title or f"{what.split(' (')[0]} during training", height=480, hovermode="closest")
    fig.update_xaxes(title_text="iteration (SGD step)", rangemode="tozero")
    fig.update_yaxes(title_text=what + (" — log scale" if log_y else ""), type="log" if log_y else "linear")
    if metric == "loss":
        _keep_batches_readable(fig, batches, evaluations, log_y)
    return fig


OFF_THE_CHART = 1.5  # a loss chart's y-axis reaches at most this many times its highest smoothed batch curve


def _keep_batches_readable(fig: go.Figure, batches: list[np.ndarray], evaluations: list, log_y: bool) -> None:
    """When an evaluation exceeds OFF_THE_CHART times the highest smoothed batch curve, fit the y-axis to the
    smoothed curves and the other evaluations (the faint per-batch lines may leave it), and mark each such
    evaluation with a ▲ on the top edge, in its run's colour; the legend entry names the largest, the hover each
    one."""
    drawn = np.concatenate(batches) if batches else np.zeros(0)
    drawn = drawn[np.isfinite(drawn) & (drawn > 0)]
    if not drawn.size:
        return
    limit = OFF_THE_CHART * float(drawn.max())
    off = [(run, color, split, steps, values, np.isfinite(values) & (values > limit))
           for run, color, split, steps, values in evaluations]
    if not any(mask.any() for *_, mask in off):
        return
    inside = [values[np.isfinite(values) & (values > 0) & (values <= limit)] for *_, values, _ in off]
    inside = np.concatenate([drawn, *inside])
    top, bottom = float(inside.max()), float(inside.min())
    if log_y:
        y_range = [math.log10(bottom / 1.15), math.log10(top * 1.35)]
        edge = 10 ** y_range[1]
    else:  # from just below the lowest value, not from 0: the curves get the chart's height
        y_range = [max(0.0, bottom - 0.1 * (top - bottom)), top + 0.12 * (top - bottom)]
        edge = y_range[1]
    fig.update_yaxes(range=y_range, autorange=False)
    for run, color, split, steps, values, mask in off:
        if not mask.any():
            continue
        fig.add_trace(go.Scatter(
            x=steps[mask], y=np.full(int(mask.sum()), edge), mode="markers", cliponaxis=False,
            marker=dict(symbol="triangle-up", size=13, color=color, line=dict(color="white", width=1)),
            name=f"{run.label} · {split} set above the chart ▲ (up to {readable(float(values[mask].max()))})",
            legendgroup=run.label, showlegend=False, customdata=values[mask],
            hovertemplate=(f"<b>{run.label}</b><br>step %{{x:,}}<br>{split}-set loss %{{customdata:.4g}}: above the "
                           "top of this chart<extra></extra>")))
    highest = max(float(values[mask].max()) for *_, values, mask in off if mask.any())
    legend_key(fig, f"evaluation above the chart (up to {readable(highest)})", None,
         dict(symbol="triangle-up", size=13))
    fig.update_layout(meta={**(fig.layout.meta or {}), "off_the_chart": int(sum(m.sum() for *_, m in off))})


def fig6_error_curves(runs: Sequence[RunSeries], log_y: bool = False, train_source: str = "eval",
                      smoothing: float = 0.9, show_paper: bool = True, title: str | None = None) -> go.Figure:
    """Paper Fig. 6 style: plain nets left, ResNets right; thin dashed = training error, bold = test error; colour =
    the run (warm plain, cool residual, darker deeper). The residual panel carries Table 6's test errors (full
    64k-iteration training) as dotted reference lines for the depths shown. The legend: one entry per run and a grey
    key to the two line styles.

    train_source: "eval" = error on the fixed training subset at each evaluation (falls back to the batches when a
    run has no evaluations), "batch" = EMA of the per-batch training error."""
    runs = as_runs(runs)
    colors = run_colors(runs)
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.05,
                        subplot_titles=("plain networks", "ResNets (residual networks)"))
    x_end = 0.0
    for run, color in zip(runs, colors):
        m, col = run.metrics, 2 if run.residual else 1
        es, tr, te = metric_array(m, "eval_step"), metric_array(m, "train_error"), metric_array(m, "test_error")
        steps, be = metric_array(m, "step"), metric_array(m, "batch_error")
        for arr in (es, steps):
            if arr is not None:
                x_end = max(x_end, float(np.nanmax(arr)))
        if train_source == "eval" and es is not None and tr is not None and len(tr) == len(es):
            tx, ty, how = es, tr.astype(float) * 100, "on the training subset"
        elif steps is not None and be is not None and len(be) == len(steps):
            keep = thin_indices(len(be))
            tx, ty, how = steps[keep], ema(be.astype(float) * 100, smoothing)[keep], "of the batches, smoothed"
        else:
            tx = ty = None
        if tx is not None:
            fig.add_trace(go.Scatter(
                x=tx, y=ty, mode="lines", line=dict(color=color, width=1.3, dash="dash"),
                name=f"{run.label} train", legendgroup=run.label, showlegend=False,
                hovertemplate=f"<b>{run.label}</b><br>iteration %{{x:,}}<br>training error ({how}) %{{y:.2f}}%"
                              "<extra></extra>"), row=1, col=col)
        if es is not None and te is not None and len(te) == len(es):
            fig.add_trace(go.Scatter(
                x=es, y=te.astype(float) * 100, mode="lines", line=dict(color=color, width=3.2),
                name=run.label, legendgroup=run.label,
                hovertemplate=f"<b>{run.label}</b><br>iteration %{{x:,}}<br>test error %{{y:.2f}}%<extra></extra>"),
                row=1, col=col)
    if show_paper:
        depth_color: dict[int, str] = {}
        for run, color in zip(runs, colors):
            if run.residual and run.depth in PAPER_TABLE6_ERROR:
                depth_color.setdefault(run.depth, color)
        xs = np.linspace(0, max(x_end, 1.0), 60)
        for depth in sorted(depth_color):
            err = PAPER_TABLE6_ERROR[depth]
            text = f"paper ResNet-{depth}: {err:.2f}%"
            fig.add_trace(go.Scatter(
                x=xs, y=np.full(len(xs), err), mode="lines", line=dict(color=depth_color[depth], width=1.5, dash="dot"),
                name=text, legendgroup=f"paper-{depth}", showlegend=False,  # named by the label block instead
                hovertemplate=f"<b>{text}</b> test error<br>He et al. 2015, Table 6: full 64k-iteration training "
                              f"on all 50k images<extra></extra>"), row=1, col=2)
        if depth_color:
            # The marks lie within a few points of each other (6.43 … 8.75 %): one label block above the highest,
            # its lines in the same top-to-bottom order, cannot overlap as labels along the lines would.
            order = sorted(depth_color, key=lambda d: -PAPER_TABLE6_ERROR[d])
            lines = [f"<span style='color:{depth_color[d]}'>ResNet-{d}: {PAPER_TABLE6_ERROR[d]:.2f}%</span>"
                     for d in order]
            top = PAPER_TABLE6_ERROR[order[0]]
            fig.add_annotation(x=float(xs[-1]), y=math.log10(top) if log_y else top, xanchor="right",
                               yanchor="bottom", align="right", showarrow=False, yshift=4,
                               text="<br>".join(["paper, Table 6 (dotted):"] + lines), font=dict(size=11),
                               bgcolor="rgba(255,255,255,0.8)", row=1, col=2)
    legend_key(fig, "training error", dict(width=1.3, dash="dash"), None)
    legend_key(fig, "test error", dict(width=3.2), None)
    _mark_lr_drops(fig, runs, row=1, col="all")
    base_layout(fig, title or "Training error (dashed) and test error (bold) — paper Fig. 6 style", height=520,
                 hovermode="closest")
    fig.update_xaxes(title_text="iterations", rangemode="tozero")
    fig.update_yaxes(type="log" if log_y else "linear")
    fig.update_yaxes(title_text="error (%)" + (" — log scale" if log_y else ""), row=1, col=1)
    return fig


def eval_spike_note(runs: Sequence[RunSeries]) -> str | None:
    """One paragraph on the runs whose evaluation loss spikes far above their training loss (`eval_loss_spike`),
    saying why — or None when no run's does."""
    spikes = [(run.label, s) for run in as_runs(runs) if (s := eval_loss_spike(run.metrics)) is not None]
    if not spikes:
        return None
    which = "; ".join(f"**{label}**'s evaluation loss reaches {readable(s['eval_loss'])} on the {s['split']} subset "
                      f"at step {s['step']:,}, while its training batches are at {readable(s['batch_loss'])}"
                      for label, s in spikes)
    return (f"**Why the evaluation loss spikes.** {which}. The net has not blown up: evaluations run in eval mode, "
            "where BatchNorm normalises each layer with running averages of the batch statistics instead of the "
            "batch's own. Early in training those averages lag behind weights that change fast (each step moves them "
            "only 10% of the way), and in a deep plain net the mis-scaled activations compound layer after layer. "
            "The training batches, normalised with their own statistics, are unaffected; as the weights settle the "
            "averages catch up and the spike fades.")
