"""Plotly figures for the app: data in, figure out.

Pure functions of numpy arrays, run metrics and model summaries: no Streamlit, no torch arithmetic. One look across
the app: plain networks in warm colours (yellow → dark red as they get deeper), residual networks in cool colours
(light → dark blue); every figure has a title, labelled axes, and hover text that names the layer or run.

A *run* is anything `as_run` understands: a `RunData`, a store `Run` (has `.label`, `.metrics`, `.layer_names`,
`.config.model`), a dict `{"label", "metrics", "layer_names", ...}` or a tuple `(label, metrics, layer_names)`.
Its metrics follow the run store's contract: "step", "loss", "batch_error" (fraction), "lr" per step;
"grad_norm_step" [G] and "grad_norms" [G, L] (row 0 = step 0, before any update); "eval_step", "train_loss",
"train_error", "test_loss", "test_error" per evaluation.
"""
from __future__ import annotations

import math
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from .config import PAPER_TABLE6_ERROR

# ----------------------------------------------------------------------------------------------------- look ----
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
MAX_HEATMAP_COLUMNS = 400
MAX_LINE_POINTS = 4000  # per-step curves are thinned to this many points after smoothing
AUTO_COLLAPSE_BLOCKS = 6  # stages with more blocks than this start collapsed in the architecture diagram
MAX_EXPANDED_BLOCKS = 40  # an expanded stage longer than this shows its first and last blocks around an ellipsis
FONT = dict(size=13)


def _base_layout(fig: go.Figure, title: str, height: int | None = None, **kwargs) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0.0, xanchor="left"), font=FONT, margin=dict(l=60, r=20, t=70, b=50),
                      legend=dict(groupclick="togglegroup"), **({"height": height} if height else {}), **kwargs)
    return fig


# ------------------------------------------------------------------------------------------------------ runs ----
@dataclass
class RunData:
    """One run as the figures see it. `residual` and `depth` are read from the label ("plain-56", "resnet-110 (…)")
    when not given."""

    label: str
    metrics: Mapping[str, Any]
    layer_names: list[str] = field(default_factory=list)
    residual: bool | None = None
    depth: int | None = None

    def __post_init__(self) -> None:
        residual, depth = _parse_label(self.label)
        if self.residual is None:
            self.residual = residual
        if self.depth is None:
            self.depth = depth if depth is not None else len(self.layer_names) or 0
        self.layer_names = list(self.layer_names or [])


_LABEL_RE = re.compile(r"(plain|resnet)[-_ ]?(\d+)", re.IGNORECASE)


def _parse_label(label: str) -> tuple[bool, int | None]:
    m = _LABEL_RE.search(label or "")
    if m:
        return m.group(1).lower() == "resnet", int(m.group(2))
    digits = re.search(r"(\d+)", label or "")
    return "plain" not in (label or "").lower(), int(digits.group(1)) if digits else None


def as_run(obj: Any) -> RunData:
    if isinstance(obj, RunData):
        return obj
    if isinstance(obj, Mapping):
        return RunData(label=str(obj.get("label", "run")), metrics=obj.get("metrics", {}),
                       layer_names=list(obj.get("layer_names", [])), residual=obj.get("residual"),
                       depth=obj.get("depth"))
    if isinstance(obj, tuple):
        return RunData(*obj)
    if hasattr(obj, "metrics"):  # a store Run
        model = getattr(getattr(obj, "config", None), "model", None)
        return RunData(label=str(getattr(obj, "label", getattr(obj, "name", "run"))), metrics=obj.metrics,
                       layer_names=list(getattr(obj, "layer_names", []) or []),
                       residual=getattr(model, "residual", None), depth=getattr(model, "depth", None))
    raise TypeError(f"Cannot read a run from {type(obj).__name__}.")


def as_runs(runs: Iterable[Any]) -> list[RunData]:
    out = [as_run(r) for r in runs]
    seen: dict[str, int] = {}
    for r in out:  # two runs with the same label would share a legend entry: number the repeats
        seen[r.label] = seen.get(r.label, 0) + 1
        if seen[r.label] > 1:
            r.label = f"{r.label} #{seen[r.label]}"
    return out


def run_colors(runs: Sequence[Any]) -> list[str]:
    """Warm colours for plain runs, cool for residual ones; within each family deeper = darker."""
    runs = [as_run(r) for r in runs]
    colors: list[str] = [""] * len(runs)
    for residual in (False, True):
        idx = sorted((i for i, r in enumerate(runs) if bool(r.residual) == residual),
                     key=lambda i: (runs[i].depth or 0, i))
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


# ------------------------------------------------------------------------------------------------- numerics ----
def ema(values: Sequence[float], smoothing: float) -> np.ndarray:
    """Exponential moving average with TensorBoard's bias correction; non-finite points stay gaps and are skipped."""
    v = np.asarray(values, dtype=float)
    if not 0 < smoothing < 1 or v.size == 0:
        return v.copy()
    out = np.full_like(v, np.nan)
    acc = weight = 0.0
    a, b = float(smoothing), 1.0 - float(smoothing)
    for i, x in enumerate(v.tolist()):
        if math.isfinite(x):
            acc = a * acc + b * x
            weight = a * weight + b
            out[i] = acc / weight
    return out


def _thin(n: int, max_points: int = MAX_LINE_POINTS) -> np.ndarray:
    if n <= max_points:
        return np.arange(n)
    idx = np.arange(0, n, math.ceil(n / max_points))
    return idx if idx[-1] == n - 1 else np.append(idx, n - 1)


def _arr(m: Mapping[str, Any], key: str) -> np.ndarray | None:
    v = m.get(key) if m is not None else None
    if v is None:
        return None
    v = np.asarray(v)
    return v if v.size else None


def log10_safe(values: Any) -> np.ndarray:
    """log10 of the positive finite values; zeros, negatives, NaN and inf become NaN."""
    v = np.asarray(values, dtype=float)
    out = np.full(v.shape, np.nan)
    ok = np.isfinite(v) & (v > 0)
    out[ok] = np.log10(v[ok])
    return out


def downsample_log_columns(grad_norms: Any, steps: Any, max_columns: int = MAX_HEATMAP_COLUMNS
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Average log10(grad_norms [G, L]) over consecutive steps so at most `max_columns` rows remain.

    Returns (log10 values [G', L], the mean step of each group [G'], steps per group [G']). Averaging in log space is
    the geometric mean: one huge spike does not paint a whole column."""
    z = log10_safe(grad_norms)
    if z.ndim != 2:
        raise ValueError(f"grad_norms must be 2-D [steps, layers], got shape {z.shape}.")
    g = z.shape[0]
    steps = np.arange(g) if steps is None else np.asarray(steps, dtype=float)
    if len(steps) != g:
        raise ValueError(f"{len(steps)} steps for {g} rows of gradient norms.")
    if g <= max_columns:
        return z, steps.astype(float), np.ones(g, dtype=int)
    edges = np.linspace(0, g, max_columns + 1).astype(int)[:-1]
    finite = np.isfinite(z)
    sums = np.add.reduceat(np.where(finite, z, 0.0), edges, axis=0)
    counts = np.add.reduceat(finite.astype(int), edges, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    sizes = np.diff(np.append(edges, g))
    x = np.add.reduceat(steps, edges) / sizes
    return means, x, sizes


def shared_color_range(*grad_norm_arrays: Any, percentiles: tuple[float, float] = (1.0, 99.0)
                       ) -> tuple[float, float]:
    """(zmin, zmax) in real units covering the given arrays, for heatmaps that must share one colour scale."""
    logs = []
    for a in grad_norm_arrays:
        if a is None:
            continue
        z = log10_safe(a).ravel()
        if z.size > 2_000_000:
            z = z[:: math.ceil(z.size / 2_000_000)]
        z = z[np.isfinite(z)]
        if z.size:
            logs.append(z)
    if not logs:
        return 1e-3, 1.0
    allz = np.concatenate(logs)
    lo, hi = np.percentile(allz, percentiles)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return float(10 ** lo), float(10 ** hi)


def _sci(v: float, digits: int = 0) -> str:
    mant, exp = f"{v:.{digits}e}".split("e")
    return f"{mant}e{int(exp)}"


def log_ticks(lo: float, hi: float, max_ticks: int = 8) -> tuple[list[float], list[str]]:
    """Tick positions (log10 units) between lo and hi with labels in real units: "1e-3", "2e-3", "1e-2" …"""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo], [_sci(10 ** lo, 1)]
    if hi - lo >= 2:
        k = np.arange(math.ceil(lo), math.floor(hi) + 1)
        step = max(1, math.ceil(len(k) / max_ticks))
        vals = [float(v) for v in k[::step]]
        return vals, [_sci(10 ** v) for v in vals]
    vals = sorted(math.log10(m) + e for e in range(math.floor(lo) - 1, math.ceil(hi) + 1) for m in (1, 2, 5)
                  if lo - 1e-9 <= math.log10(m) + e <= hi + 1e-9)
    if len(vals) < 2:
        vals = [lo, (lo + hi) / 2, hi]
        return vals, [_sci(10 ** v, 1) for v in vals]
    return vals, [_sci(10 ** v) for v in vals]


def last_conv_index(layer_names: Sequence[str] | None, n_layers: int) -> int:
    """Index of the last conv layer before the classifier: the last weight layer is the fc; shortcut (projection)
    convs sit beside the main path and are skipped."""
    if n_layers < 2:
        raise ValueError("Need at least two layers (a conv and the classifier).")
    names = list(layer_names or [])
    if len(names) == n_layers:
        for i in range(n_layers - 2, -1, -1):
            if "shortcut" not in names[i]:
                return i
    return n_layers - 2


def first_last_ratio(grad_norms: Any, layer_names: Sequence[str] | None = None) -> np.ndarray:
    """Per recorded step: ‖∇W first layer‖ / ‖∇W last conv layer before fc‖. Above 1: the input end gets the
    larger gradient; far below 1: the gradient has faded on its way back (vanishing). NaN where undefined."""
    g = np.asarray(grad_norms, dtype=float)
    if g.ndim != 2:
        raise ValueError(f"grad_norms must be 2-D [steps, layers], got shape {g.shape}.")
    last = last_conv_index(layer_names, g.shape[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        r = g[:, 0] / g[:, last]
    r[~np.isfinite(r)] = np.nan
    return r


def spans_decades(arrays: Iterable[Any], decades: float = 2.0) -> bool:
    """Do the finite positive values of these arrays span at least `decades` powers of ten? (A chart's log-scale
    default: one spike of a diverging run would otherwise flatten every other curve.)"""
    values = [np.asarray(a, dtype=float).ravel() for a in arrays if a is not None]
    values = np.concatenate(values) if values else np.zeros(0)
    values = values[np.isfinite(values) & (values > 0)]
    return bool(len(values)) and values.max() / values.min() >= 10 ** decades


def gradient_flow_finding(grad_norms: Any, layer_names: Sequence[str] | None, loss: Any = None) -> dict:
    """What one run's recorded gradients show, in numbers and one plain sentence — so the page's text follows the
    data instead of asserting the paper's result. Keys: ratio_start, ratio_end (first layer ÷ last conv; the end is the
    median over the last 10% of recorded steps), trend ("fades" below 0.1, "grows" above 10, else "even"), stuck
    (the last 10% of training losses average within 2% of ln 10: chance level for 10 classes) and sentence."""
    ratio = first_last_ratio(grad_norms, layer_names)
    finite = np.flatnonzero(np.isfinite(ratio))
    if not len(finite):
        return {"ratio_start": None, "ratio_end": None, "trend": None, "stuck": False,
                "sentence": "no finite gradient norms were recorded"}
    start = float(ratio[finite[0]])
    tail = ratio[finite[-max(1, len(finite) // 10):]]
    end = float(np.median(tail))
    trend = "fades" if end < 0.1 else "grows" if end > 10 else "even"
    losses = np.asarray(loss, dtype=float) if loss is not None else np.zeros(0)
    losses = losses[np.isfinite(losses)]
    stuck = bool(len(losses) and abs(losses[-max(1, len(losses) // 10):].mean() - np.log(10)) < 0.02 * np.log(10))

    def times(x: float) -> str:
        return f"{x:,.0f}×" if x >= 100 else f"{x:.2g}×" if x >= 0.01 else f"1/{1 / x:,.0f}"

    sentence = (f"the first layer's gradient is {times(start)} the last conv layer's at step {int(finite[0])} and "
                f"{times(end)} at the end — " + {
                    "fades": "at the end it fades on its way back to the input",
                    "grows": "at the end it grows on its way back to the input",
                    "even": "at the end it stays within a factor of ten across depth"}[trend])
    if start > 10:
        sentence += "; at initialisation it is far larger at the input end (it explodes, it does not vanish)"
    if stuck:
        sentence += "; its training loss ended at chance level (ln 10 ≈ 2.30): the net has stopped learning"
    return {"ratio_start": start, "ratio_end": end, "trend": trend, "stuck": stuck, "sentence": sentence}


def lr_drop_steps(metrics: Mapping[str, Any], factor: float = 2.0) -> list[int]:
    """Steps where a constant learning rate falls by more than `factor` to a new constant (the step schedule's ÷10 at
    50% and 75%). The smooth fall at the end of a one-cycle or cosine schedule is not a drop."""
    steps, lr = _arr(metrics, "step"), _arr(metrics, "lr")
    if steps is None or lr is None or len(lr) < 2 or len(lr) != len(steps):
        return []
    lr = lr.astype(float)
    flat = np.isclose(lr[1:], lr[:-1], rtol=1e-6, atol=0.0)  # flat[i]: lr[i + 1] == lr[i]
    drops = []
    for i in range(1, len(lr)):
        with np.errstate(divide="ignore", invalid="ignore"):
            falls = lr[i] > 0 and lr[i - 1] / lr[i] > factor
        flat_before = i < 2 or flat[i - 2]
        flat_after = i + 1 >= len(lr) or flat[i]
        if falls and flat_before and flat_after:
            drops.append(int(steps[i]))
    return drops


def _mark_lr_drops(fig: go.Figure, runs: Sequence[RunData], **where) -> None:
    drops = sorted({s for r in runs for s in lr_drop_steps(r.metrics)})
    for s in drops[:6]:
        fig.add_vline(x=s, line=dict(color="#999999", width=1, dash="dot"), annotation_text="lr drop",
                      annotation_position="top right", annotation_font=dict(size=10, color="#777777"), **where)


# ---------------------------------------------------------------------------------------- loss/error curves ----
def training_curves(runs: Sequence[Any], metric: str = "loss", smoothing: float = 0.9, log_y: bool = False,
                    show_raw: bool = True, show_eval: bool = True, mark_lr_drops: bool = True,
                    title: str | None = None) -> go.Figure:
    """Loss (or error) of several runs against iterations: per-batch values (faint) and their EMA (solid), and the
    evaluations on fixed train/test subsets (train = dotted with circles, test = solid with diamonds)."""
    if metric not in ("loss", "error"):
        raise ValueError("metric must be 'loss' or 'error'.")
    runs = as_runs(runs)
    colors = run_colors(runs)
    scale, fmt = (1.0, ".3f") if metric == "loss" else (100.0, ".1f")
    unit = "" if metric == "loss" else "%"
    step_key = "loss" if metric == "loss" else "batch_error"
    fig = go.Figure()
    for run, color in zip(runs, colors):
        m = run.metrics
        steps, y = _arr(m, "step"), _arr(m, step_key)
        if steps is not None and y is not None and len(steps) == len(y):
            y = y.astype(float) * scale
            keep = _thin(len(y))
            if show_raw and 0 < smoothing < 1:
                fig.add_trace(go.Scatter(
                    x=steps[keep], y=y[keep], mode="lines", line=dict(color=color, width=1), opacity=0.25,
                    name=f"{run.label} · batches", legendgroup=run.label, showlegend=False,
                    hovertemplate=f"<b>{run.label}</b><br>step %{{x:,}}<br>batch {metric} %{{y:{fmt}}}{unit}"
                                  "<extra></extra>"))
            smooth = ema(y, smoothing)
            fig.add_trace(go.Scatter(
                x=steps[keep], y=smooth[keep], mode="lines", line=dict(color=color, width=2),
                name=f"{run.label} · batches" + (f" (EMA {smoothing:g})" if 0 < smoothing < 1 else ""),
                legendgroup=run.label,
                hovertemplate=f"<b>{run.label}</b><br>step %{{x:,}}<br>batch {metric}"
                              f"{' (smoothed)' if 0 < smoothing < 1 else ''} %{{y:{fmt}}}{unit}<extra></extra>"))
        es = _arr(m, "eval_step")
        if show_eval and es is not None:
            for split, dash, symbol, width in (("train", "dot", "circle-open", 1.5), ("test", "solid", "diamond", 3)):
                v = _arr(m, f"{split}_{metric}")
                if v is None or len(v) != len(es):
                    continue
                fig.add_trace(go.Scatter(
                    x=es, y=v.astype(float) * scale, mode="lines+markers",
                    line=dict(color=color, width=width, dash=dash), marker=dict(symbol=symbol, size=7, color=color),
                    name=f"{run.label} · {split} set", legendgroup=run.label,
                    hovertemplate=f"<b>{run.label}</b><br>step %{{x:,}}<br>{split}-set {metric} %{{y:{fmt}}}{unit}"
                                  "<extra></extra>"))
    if mark_lr_drops:
        _mark_lr_drops(fig, runs)
    what = "Loss (cross-entropy)" if metric == "loss" else "Error (%)"
    _base_layout(fig, title or f"{what.split(' (')[0]} during training", height=480, hovermode="closest")
    fig.update_xaxes(title_text="iteration (SGD step)", rangemode="tozero")
    fig.update_yaxes(title_text=what + (" — log scale" if log_y else ""), type="log" if log_y else "linear")
    return fig


def fig6_error_curves(runs: Sequence[Any], log_y: bool = False, train_source: str = "eval", smoothing: float = 0.9,
                      show_paper: bool = True, title: str | None = None) -> go.Figure:
    """Paper Fig. 6 style: plain nets left, ResNets right; thin dashed = training error, bold = test error; colour =
    depth. The residual panel carries Table 6's test errors (full 64k-iteration training) as dotted reference lines
    for the depths shown.

    train_source: "eval" = error on the fixed training subset at each evaluation (falls back to the batches when a
    run has no evaluations), "batch" = EMA of the per-batch training error."""
    runs = as_runs(runs)
    colors = run_colors(runs)
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.05,
                        subplot_titles=("plain networks", "ResNets (residual networks)"))
    x_end = 0.0
    for run, color in zip(runs, colors):
        m, col = run.metrics, 2 if run.residual else 1
        es, tr, te = _arr(m, "eval_step"), _arr(m, "train_error"), _arr(m, "test_error")
        steps, be = _arr(m, "step"), _arr(m, "batch_error")
        for arr in (es, steps):
            if arr is not None:
                x_end = max(x_end, float(np.nanmax(arr)))
        if train_source == "eval" and es is not None and tr is not None and len(tr) == len(es):
            tx, ty, how = es, tr.astype(float) * 100, "on the training subset"
        elif steps is not None and be is not None and len(be) == len(steps):
            keep = _thin(len(be))
            tx, ty, how = steps[keep], ema(be.astype(float) * 100, smoothing)[keep], "of the batches, smoothed"
        else:
            tx = ty = None
        if tx is not None:
            fig.add_trace(go.Scatter(
                x=tx, y=ty, mode="lines", line=dict(color=color, width=1.3, dash="dash"),
                name=f"{run.label} train", legendgroup=run.label,
                hovertemplate=f"<b>{run.label}</b><br>iteration %{{x:,}}<br>training error ({how}) %{{y:.2f}}%"
                              "<extra></extra>"), row=1, col=col)
        if es is not None and te is not None and len(te) == len(es):
            fig.add_trace(go.Scatter(
                x=es, y=te.astype(float) * 100, mode="lines", line=dict(color=color, width=3.2),
                name=f"{run.label} test", legendgroup=run.label,
                hovertemplate=f"<b>{run.label}</b><br>iteration %{{x:,}}<br>test error %{{y:.2f}}%<extra></extra>"),
                row=1, col=col)
    if show_paper:
        depth_color: dict[int, str] = {}
        for run, color in zip(runs, colors):
            if run.residual and run.depth in PAPER_TABLE6_ERROR:
                depth_color.setdefault(run.depth, color)
        xs = np.linspace(0, max(x_end, 1.0), 60)
        for i, depth in enumerate(sorted(depth_color)):
            err = PAPER_TABLE6_ERROR[depth]
            text = f"paper ResNet-{depth}: {err:.2f}%"
            fig.add_trace(go.Scatter(
                x=xs, y=np.full(len(xs), err), mode="lines", line=dict(color=depth_color[depth], width=1.5, dash="dot"),
                name=text, legendgroup=f"paper-{depth}",
                hovertemplate=f"<b>{text}</b> test error<br>He et al. 2015, Table 6: full 64k-iteration training "
                              f"on all 50k images<extra></extra>"), row=1, col=2)
            # close values (6.43 … 8.75 %) would print on top of each other: stagger the labels along the line
            fig.add_annotation(x=float(xs[-1]) * (1 - 0.34 * (i % 3)), y=math.log10(err) if log_y else err,
                               text=text, showarrow=False, xanchor="right",
                               yanchor="bottom" if (i // 3) % 2 == 0 else "top",
                               font=dict(size=11, color=depth_color[depth]), row=1, col=2)
    _mark_lr_drops(fig, runs, row=1, col="all")
    _base_layout(fig, title or "Training error (dashed) and test error (bold) — paper Fig. 6 style", height=520,
                 hovermode="closest")
    fig.update_xaxes(title_text="iterations", rangemode="tozero")
    fig.update_yaxes(type="log" if log_y else "linear")
    fig.update_yaxes(title_text="error (%)" + (" — log scale" if log_y else ""), row=1, col=1)
    return fig


# ------------------------------------------------------------------------------------------ gradient norms ----
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
    _base_layout(fig, title or "Gradient norm per layer and step", height=height)
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


def grad_norm_profiles(runs: Sequence[Any], steps_to_show: Sequence[int] | None = None, log_y: bool = True,
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
        gsteps, g = _arr(run.metrics, "grad_norm_step"), _arr(run.metrics, "grad_norms")
        if gsteps is None or g is None or g.ndim != 2 or len(gsteps) != g.shape[0]:
            continue
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
    _base_layout(fig, title or f"Gradient norm by layer depth<br><sup>{dash_note}</sup>", height=480,
                 hovermode="closest")
    fig.update_xaxes(title_text="relative depth (0 = first layer, 1 = classifier)" if relative_depth
                     else "layer number (input → output)")
    fig.update_yaxes(title_text="gradient norm ‖∇W‖₂" + (" — log scale" if log_y else ""),
                     type="log" if log_y else "linear", exponentformat="power" if log_y else "B")
    if log_y:
        _log_axis(fig, plotted)
    return fig


def first_last_ratio_figure(runs: Sequence[Any], log_y: bool = True, smoothing: float = 0.0,
                            title: str | None = None) -> go.Figure:
    """‖∇W first layer‖ / ‖∇W last conv layer‖ over iterations for several runs, with the ratio 1 marked."""
    runs = as_runs(runs)
    colors = run_colors(runs)
    fig = go.Figure()
    plotted: list[np.ndarray] = []
    for run, color in zip(runs, colors):
        gsteps, g = _arr(run.metrics, "grad_norm_step"), _arr(run.metrics, "grad_norms")
        if gsteps is None or g is None or g.ndim != 2 or g.shape[1] < 2 or len(gsteps) != g.shape[0]:
            continue
        ratio = first_last_ratio(g, run.layer_names)
        y = ema(ratio, smoothing) if 0 < smoothing < 1 else ratio
        plotted.append(y)
        keep = _thin(len(y))
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
    _base_layout(fig, title or default_title, height=440, hovermode="closest")
    fig.update_xaxes(title_text="iteration", rangemode="tozero")
    fig.update_yaxes(title_text="ratio" + (" — log scale" if log_y else ""), type="log" if log_y else "linear")
    if log_y:
        _log_axis(fig, plotted)
    return fig


# ------------------------------------------------------------------------------------------- model summary ----
def _shape_str(shape: Sequence[int]) -> str:
    return "×".join(str(int(s)) for s in shape)


def is_weight_layer(row: Mapping[str, Any]) -> bool:
    return str(row.get("kind", "")).startswith(("conv", "fc"))


def summary_table(summary: Mapping[str, Any], weight_layers_only: bool = True) -> list[dict]:
    """Rows for st.dataframe: #, layer, kind, output (C×H×W), params, MACs. By default only conv/linear layers;
    "#" counts the rows shown, so with weight_layers_only it is the layer number of the gradient-norm charts."""
    rows = []
    for r in summary["layers"]:
        if weight_layers_only and not is_weight_layer(r):
            continue
        rows.append({"#": len(rows) + 1, "layer": r["name"], "kind": r["kind"], "output": _shape_str(r["output_shape"]),
                     "params": int(r["params"]), "MACs": int(r["macs"])})
    return rows


def _human(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f}{unit}"
    return f"{int(n)}"


def summary_totals(summary: Mapping[str, Any]) -> dict:
    """The headline numbers of a model summary, raw and readable."""
    cfg = summary.get("config")
    return {
        "name": getattr(cfg, "name", ""),
        "params": int(summary["total_params"]),
        "macs": int(summary["total_macs"]),
        "flops": int(summary["total_flops"]),
        "weight_layers": int(summary["weight_layers"]),
        "input_size": int(summary.get("input_size", 0)),
        "params_h": _human(summary["total_params"]),
        "macs_h": _human(summary["total_macs"]),
        "flops_h": _human(summary["total_flops"]),
    }


def summary_table_figure(summary: Mapping[str, Any], weight_layers_only: bool = True) -> go.Figure:
    rows = summary_table(summary, weight_layers_only)
    cols = ["#", "layer", "kind", "output", "params", "MACs"]
    fig = go.Figure(go.Table(header=dict(values=cols, align="left"),
                             cells=dict(values=[[r[c] for r in rows] for c in cols], align="left")))
    return _base_layout(fig, f"{getattr(summary.get('config'), 'name', 'model')}: layers", height=600)


# -------------------------------------------------------------------------------------- architecture layout ----
def _kernel(kind: str) -> str:
    # "conv 3×3/2" -> "3×3"
    return kind.split()[1].split("/")[0] if kind.startswith("conv ") else kind


def architecture_layout(summary: Mapping[str, Any]) -> dict:
    """Stem, stages of blocks and head of a model, read from its `model_summary` rows (names like
    `stage3.res3a.conv2`, `stage2.block1.shortcut`, `stage3.block1.shortcut.conv`)."""
    rows = list(summary["layers"])
    cfg = summary.get("config")
    size = int(summary.get("input_size") or 32)
    stem = [r for r in rows if r["name"].startswith("stem.")]
    stages: "OrderedDict[str, OrderedDict[str, list]]" = OrderedDict()
    head = [r for r in rows if not r["name"].startswith(("stem.", "stage"))]
    for r in rows:
        parts = r["name"].split(".")
        if parts[0].startswith("stage") and len(parts) >= 3:
            stages.setdefault(parts[0], OrderedDict()).setdefault(parts[1], []).append(r)
    prev = tuple(stem[-1]["output_shape"]) if stem else (3, size, size)
    stem_convs = [r for r in stem if r["kind"].startswith("conv")]
    stem_desc = ", ".join([f"{r['kind']}, {r['output_shape'][0]}" for r in stem_convs]
                          + [r["kind"] for r in stem if r["kind"].startswith("max-pool")])
    layout: dict = {
        "name": getattr(cfg, "name", ""),
        "family": getattr(cfg, "family", None),
        "input_shape": (3, size, size),
        "stem": {"label": f"stem · {stem_desc}", "out_shape": prev, "params": sum(r["params"] for r in stem),
                 "rows": [r["name"] for r in stem]},
        "stages": [],
    }
    any_shortcut = False
    for stage, blocks in stages.items():
        info = {"name": stage, "blocks": []}
        for bname, brs in blocks.items():
            convs = [r for r in brs if r["kind"].startswith("conv") and ".shortcut" not in r["name"]]
            sc = [r for r in brs if ".shortcut" in r["name"] or r["name"].endswith(".shortcut")]
            if not sc:
                kind = "none"
            elif any(r["kind"].startswith("conv") for r in sc):
                kind = "projection"
            elif any("zero-pad" in r["kind"] for r in sc):
                kind = "zero-pad"
            else:
                kind = "identity"
            any_shortcut |= kind != "none"
            out = tuple(brs[-1]["output_shape"])
            stride = int(prev[1] // out[1]) if len(prev) > 1 and len(out) > 1 and out[1] else 1
            info["blocks"].append({
                "name": bname, "stage": stage, "in_ch": int(prev[0]), "out_ch": int(out[0]), "stride": stride,
                "out_shape": out, "shortcut": kind,
                "article_kind": {"projection": "convolutional block", "none": "plain block"}.get(kind,
                                                                                              "identity block"),
                "convs": [(_kernel(r["kind"]), int(r["output_shape"][0])) for r in convs],
                "params": int(sum(r["params"] for r in brs)),
            })
            prev = out
        first = info["blocks"][0]
        info.update(in_ch=first["in_ch"], out_ch=prev[0], out_shape=prev, stride=first["stride"],
                    params=sum(b["params"] for b in info["blocks"]))
        layout["stages"].append(info)
    pool = next((r for r in head if "avg-pool" in r["kind"]), None)
    fc = next((r for r in head if r["kind"] == "fc"), None)
    layout["pool"] = {"label": f"global avg-pool → {prev[0]}" if pool else "pool", "out_shape": (prev[0],)}
    layout["fc"] = {"label": f"fc {prev[0]} → {fc['output_shape'][0]}" if fc else "fc",
                    "params": int(fc["params"]) if fc else 0, "classes": int(fc["output_shape"][0]) if fc else 0}
    layout["residual"] = bool(getattr(cfg, "residual", any_shortcut))
    weights = [r for r in rows if is_weight_layer(r)]
    layout["weight_layers"] = len(weights)
    layout["shortcut_convs"] = sum(1 for r in weights if ".shortcut" in r["name"])
    return layout


def stage_names(model: Any) -> list[str]:
    return [s["name"] for s in _layout_of(model)["stages"]]


def auto_collapsed_stages(model: Any, max_blocks: int = AUTO_COLLAPSE_BLOCKS) -> set[str]:
    """The stages the diagram collapses by default: those with more than `max_blocks` blocks."""
    return {s["name"] for s in _layout_of(model)["stages"] if len(s["blocks"]) > max_blocks}


def _layout_of(model: Any) -> dict:
    if isinstance(model, Mapping) and "stages" in model and "stem" in model:
        return dict(model)
    if isinstance(model, Mapping) and "layers" in model:
        return architecture_layout(model)
    if hasattr(model, "family") and hasattr(model, "depth"):  # a ModelConfig: summarise it (meta device, no math)
        from .models import model_summary
        return architecture_layout(model_summary(model))
    raise TypeError("architecture_diagram needs a ModelConfig, a model_summary() dict or an architecture_layout().")


def _resolve_collapsed(layout: dict, collapsed: set[str] | bool | None) -> set[str]:
    names = [s["name"] for s in layout["stages"]]
    if collapsed is None:
        return {s["name"] for s in layout["stages"] if len(s["blocks"]) > AUTO_COLLAPSE_BLOCKS}
    if collapsed is True:
        return set(names)
    if collapsed is False:
        return set()
    return set(collapsed) & set(names)


def _bezier_arc(y0: float, y1: float, x0: float = 0.0, bulge: float = 1.9, n: int = 24) -> tuple[list, list]:
    t = np.linspace(0.0, 1.0, n)
    x = (1 - t) ** 3 * x0 + 3 * (1 - t) ** 2 * t * bulge + 3 * (1 - t) * t ** 2 * bulge + t ** 3 * x0
    y = (1 - t) ** 3 * y0 + 3 * (1 - t) ** 2 * t * y0 + 3 * (1 - t) * t ** 2 * y1 + t ** 3 * y1
    return x.tolist(), y.tolist()


_SHORTCUT_STYLE = {
    "identity": dict(name="shortcut: identity (x)", color=RESIDUAL_COLOR, width=1.8, dash="solid"),
    "zero-pad": dict(name="shortcut: zero-pad identity (option A)", color=RESIDUAL_COLOR, width=1.8, dash="dash"),
    "projection": dict(name="shortcut: projection (1×1 conv + BN)", color=PROJECTION_COLOR, width=2.6,
                       dash="solid"),
}
_SHORTCUT_WORDS = {"identity": "identity: the input x itself", "zero-pad": "zero-pad identity (option A): x "
                   "subsampled, new channels filled with zeros, no parameters",
                   "projection": "projection: 1×1 conv (with the block's stride) + BN", "none": "none (plain block)"}


def _block_label(b: dict) -> str:
    spec = " → ".join(f"{k},{c}" for k, c in b["convs"])
    return f"{b['name']} · {spec}" + (f" · /{b['stride']}" if b["stride"] > 1 else "")


def _block_hover(b: dict) -> str:
    spec = " → ".join(f"{k} conv, {c}" for k, c in b["convs"])
    return (f"<b>{b['stage']}.{b['name']}</b> — {b['article_kind']}<br>{b['in_ch']} → {b['out_ch']} channels, "
            f"stride {b['stride']}, output {_shape_str(b['out_shape'])}<br>{spec}<br>"
            f"shortcut: {_SHORTCUT_WORDS[b['shortcut']]}<br>{b['params']:,} parameters")


def architecture_diagram(model: Any, collapsed_stages: set[str] | bool | None = None,
                         title: str | None = None) -> go.Figure:
    """Block diagram: input → stem → blocks (stage by stage) → global avg-pool → fc, top to bottom.

    model: a ModelConfig, its `model_summary()` (cheaper when the caller already has it) or `architecture_layout()`.
    Residual blocks get a curved skip arc from their input to the ⊕ after them: solid for an identity shortcut,
    dashed for option A's zero-pad identity, bold with a "1×1 conv" label for a projection. Plain models have none.
    collapsed_stages: stage names drawn as one box ("stage2: 18 blocks, 32 ch"); True = all, False = none,
    None = stages with more than AUTO_COLLAPSE_BLOCKS blocks. `fig.layout.meta` holds counts (nodes, arcs, …)."""
    layout = _layout_of(model)
    collapsed = _resolve_collapsed(layout, collapsed_stages)
    residual = layout["residual"]
    fill, line_color = (RESIDUAL_FILL, RESIDUAL_COLOR) if residual else (PLAIN_FILL, PLAIN_COLOR)

    nodes: list[dict] = [{"kind": "input", "label": f"input · {_shape_str(layout['input_shape'])} image"},
                         {"kind": "stem", "label": layout["stem"]["label"],
                          "hover": f"<b>stem</b><br>{layout['stem']['label'][7:]}<br>output "
                                   f"{_shape_str(layout['stem']['out_shape'])}<br>{layout['stem']['params']:,} "
                                   f"parameters"}]
    stage_spans: list[tuple[str, int, int, tuple]] = []
    for st in layout["stages"]:
        start = len(nodes)
        blocks = st["blocks"]
        if st["name"] in collapsed:
            kinds = [b["shortcut"] for b in blocks]
            names = f"{blocks[0]['name']} … {blocks[-1]['name']}" if len(blocks) > 1 else blocks[0]["name"]
            count = {k: kinds.count(k) for k in dict.fromkeys(kinds)}
            kinds_text = ", ".join(f"{n} {_SHORTCUT_WORDS[k].split(':')[0]}" for k, n in count.items())
            label = (f"{st['name']}: {len(blocks)} block{'s' if len(blocks) != 1 else ''}, {st['out_ch']} ch"
                     + (f", /{st['stride']}" if st["stride"] > 1 else ""))
            nodes.append({"kind": "stage", "label": label, "blocks": blocks, "stage": st["name"],
                          "hover": f"<b>{st['name']}</b> (collapsed): {names}<br>{len(blocks)} × "
                                   f"{blocks[-1]['article_kind'] if residual else 'plain block'}"
                                   f"{' (first: ' + blocks[0]['article_kind'] + ')' if residual else ''}<br>"
                                   f"{st['in_ch']} → {st['out_ch']} channels, output {_shape_str(st['out_shape'])}"
                                   f"<br>shortcuts: {kinds_text}<br>{st['params']:,} parameters"})
        else:
            shown = list(range(len(blocks)))
            if len(blocks) > MAX_EXPANDED_BLOCKS:
                shown = list(range(4)) + [None] + list(range(len(blocks) - 2, len(blocks)))
            for i in shown:
                if i is None:
                    hidden = blocks[4:-2]
                    nodes.append({"kind": "elide", "stage": st["name"],
                                  "label": f"… {len(hidden)} more {hidden[0]['article_kind']}s "
                                           f"({hidden[0]['name']} … {hidden[-1]['name']}) …",
                                  "hover": f"{len(hidden)} blocks not drawn, all like the one above"})
                else:
                    b = blocks[i]
                    nodes.append({"kind": "block", "label": _block_label(b), "block": b, "hover": _block_hover(b)})
        stage_spans.append((st["name"], start, len(nodes) - 1, st["out_shape"]))
    nodes.append({"kind": "pool", "label": layout["pool"]["label"],
                  "hover": "<b>global average pool</b><br>one number per channel: the mean over the whole map "
                           "(the seed article's 2×2 pool is a slip)"})
    nodes.append({"kind": "fc", "label": layout["fc"]["label"],
                  "hover": f"<b>fc</b> (classifier)<br>{layout['fc']['params']:,} parameters"})
    nodes.append({"kind": "output", "label": f"output · {layout['fc']['classes']} class scores"})

    fig = go.Figure()
    half_w, half_h = 0.9, 0.26
    ys = [-float(i) for i in range(len(nodes))]
    shapes: list[dict] = []
    # the main path: connectors between the boxes (boxes are shapes below the traces, so nothing crosses a label)
    def reach(node: dict) -> float:  # how far a node's box extends above/below its centre
        return 0.2 if node["kind"] in ("input", "output") else half_h

    px, py = [], []
    for i in range(len(nodes) - 1):
        top = nodes[i + 1]
        px.extend([0.0, 0.0, None])
        py.extend([ys[i] - reach(nodes[i]), ys[i + 1] + reach(top) + (0.1 if top["kind"] == "stage" else 0), None])
    fig.add_trace(go.Scatter(x=px, y=py, mode="lines", line=dict(color="#555555", width=1.5),
                             hoverinfo="skip", showlegend=False, name="main path"))
    text_x, text_y, text_s, hover_x, hover_y, hover_t = [], [], [], [], [], []
    for node, y in zip(nodes, ys):
        kind = node["kind"]
        if kind in ("input", "output"):
            text_x.append(0.0), text_y.append(y), text_s.append(f"<i>{node['label']}</i>")
            continue
        box_fill = {"block": fill, "stage": fill, "elide": "white"}.get(kind, NEUTRAL_FILL)
        box_line = {"block": line_color, "stage": line_color, "elide": NEUTRAL_LINE}.get(kind, NEUTRAL_LINE)
        if kind == "stage":  # a stack of cards
            for off in (0.1, 0.05):
                shapes.append(dict(type="rect", x0=-half_w + off, x1=half_w + off, y0=y - half_h + off,
                                   y1=y + half_h + off, line=dict(color=box_line, width=1), fillcolor=box_fill,
                                   layer="below"))
        shapes.append(dict(type="rect", x0=-half_w, x1=half_w, y0=y - half_h, y1=y + half_h, layer="below",
                           line=dict(color=box_line, width=1.5 if kind != "elide" else 1,
                                     dash="dot" if kind == "elide" else "solid"), fillcolor=box_fill))
        label = f"<b>{node['label']}</b>" if kind == "stage" else node["label"]
        text_x.append(0.0), text_y.append(y), text_s.append(label)
        for hx in (-0.7, -0.25, 0.25, 0.7):
            hover_x.append(hx), hover_y.append(y), hover_t.append(node.get("hover", node["label"]))
    # skip connections
    arcs = {k: ([], [], []) for k in _SHORTCUT_STYLE}
    adds_x, adds_y, adds_t = [], [], []
    arc_labels_x, arc_labels_y, arc_labels_t = [], [], []
    n_arcs = 0
    if residual:
        for node, y in zip(nodes, ys):
            if node["kind"] == "block" and node["block"]["shortcut"] != "none":
                kind, text, detail = node["block"]["shortcut"], "1×1 conv" if node["block"]["shortcut"] == \
                    "projection" else "", _SHORTCUT_WORDS[node["block"]["shortcut"]]
                who = f"{node['block']['stage']}.{node['block']['name']}"
            elif node["kind"] == "stage":
                kinds = [b["shortcut"] for b in node["blocks"]]
                kind = max(dict.fromkeys(kinds), key=kinds.count)
                counts = ", ".join(f"{kinds.count(k)} {_SHORTCUT_WORDS[k].split(':')[0].split(' (')[0]}"
                                   for k in dict.fromkeys(kinds))
                text = f"×{len(kinds)}"
                detail = f"{len(kinds)} shortcuts, one per block: {counts}"
                who = node["stage"]
            elif node["kind"] == "elide":
                kind, text, detail, who = "identity", "", "shortcuts of the blocks not drawn", node["stage"]
            else:
                continue
            y0 = y + half_h + (0.22 if node["kind"] == "stage" else 0.15)
            y1 = y - half_h - 0.15
            ax, ay = _bezier_arc(y0, y1, bulge=1.9 if node["kind"] != "stage" else 2.1)
            xs, yv, tv = arcs[kind]
            xs.extend(ax + [None]), yv.extend(ay + [None])
            tv.extend([f"<b>{who}</b> shortcut<br>{detail}"] * len(ax) + [None])
            adds_x.append(0.0), adds_y.append(y1), adds_t.append(f"<b>{who}</b>: add F(x) + shortcut, then ReLU")
            if text:
                arc_labels_x.append(1.5 if node["kind"] != "stage" else 1.65)
                arc_labels_y.append(y), arc_labels_t.append(text)
            n_arcs += 1
        for kind, (xs, yv, tv) in arcs.items():
            if xs:
                s = _SHORTCUT_STYLE[kind]
                fig.add_trace(go.Scatter(x=xs, y=yv, hovertext=tv, mode="lines", name=s["name"],
                                         line=dict(color=s["color"], width=s["width"], dash=s["dash"]),
                                         hovertemplate="%{hovertext}<extra></extra>", meta={"role": "shortcut",
                                                                                             "kind": kind}))
        if adds_x:
            fig.add_trace(go.Scatter(x=adds_x, y=adds_y, hovertext=adds_t, mode="markers", name="⊕ addition",
                                     marker=dict(symbol="circle-cross-open", size=11, color=RESIDUAL_COLOR,
                                                 line=dict(width=1.5)),
                                     hovertemplate="%{hovertext}<extra></extra>", showlegend=False))
        if arc_labels_x:
            fig.add_trace(go.Scatter(x=arc_labels_x, y=arc_labels_y, text=arc_labels_t, mode="text",
                                     textposition="middle right", textfont=dict(size=10, color=PROJECTION_COLOR),
                                     hoverinfo="skip", showlegend=False, name="shortcut labels"))
    fig.add_trace(go.Scatter(x=text_x, y=text_y, text=text_s, mode="text", textfont=dict(size=11, color="#111111"),
                             hoverinfo="skip", showlegend=False, name="labels"))
    fig.add_trace(go.Scatter(x=hover_x, y=hover_y, hovertext=hover_t, mode="markers",
                             marker=dict(size=18, color="rgba(0,0,0,0)"), hovertemplate="%{hovertext}<extra></extra>",
                             showlegend=False, name="boxes"))
    # stage brackets on the left
    for name, a, b, out_shape in stage_spans:
        ya, yb = ys[a] + half_h, ys[b] - half_h
        shapes.append(dict(type="line", x0=-1.08, x1=-1.08, y0=yb, y1=ya, line=dict(color="#999999", width=2)))
        fig.add_annotation(x=-1.13, y=(ya + yb) / 2, text=f"<b>{name}</b><br>{_shape_str(out_shape[1:])}",
                           showarrow=False, xanchor="right", font=dict(size=11, color="#444444"))
    n = len(nodes)
    main = layout["weight_layers"] - layout["shortcut_convs"]
    default_title = (f"{layout['name']} — {main} weight layers"
                     + (f" (+{layout['shortcut_convs']} 1×1 convs in shortcuts)" if layout["shortcut_convs"] else "")
                     + ("" if residual else ": no shortcuts"))
    fig.update_layout(
        shapes=shapes, title=dict(text=title or default_title, x=0.0, xanchor="left"), font=FONT,
        height=int(90 + 36 * n), margin=dict(l=10, r=10, t=50, b=10), plot_bgcolor="white", dragmode=False,
        hovermode="closest", showlegend=residual,
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0.0, xanchor="left", font=dict(size=10)),
        meta={"nodes": n, "arcs": n_arcs, "collapsed": sorted(collapsed), "residual": residual,
              "stages": [s["name"] for s in layout["stages"]]})
    fig.update_xaxes(visible=False, range=[-1.75, 2.05], fixedrange=True)
    fig.update_yaxes(visible=False, range=[ys[-1] - 0.6, 0.6], fixedrange=True)
    return fig


# ----------------------------------------------------------------------------------------- residual block ----
def residual_block_diagram() -> go.Figure:
    """The seed article's two block types side by side, drawn as ResNet-50's bottleneck (1×1 → 3×3 → 1×1):
    the identity block (shortcut = x) and the convolutional block (shortcut = 1×1 conv + BN, because the block
    changes the shape). Both output ReLU(F(x) + shortcut)."""
    fig = go.Figure()
    shapes: list[dict] = []
    half = 1.75
    for cx, title, sub, layers, projection in (
            (0.0, "identity block", "shape unchanged: the shortcut is x itself",
             ("1×1 conv · BN · ReLU", "3×3 conv · BN · ReLU", "1×1 conv · BN"), False),
            (6.9, "convolutional block", "shape changes (stride 2, more channels):<br>the shortcut is a 1×1 conv + BN",
             ("1×1 conv · BN · ReLU", "3×3 conv /2 · BN · ReLU", "1×1 conv (4× ch) · BN"), True)):
        fig.add_annotation(x=cx + 0.8, y=6.55, text=f"<b>{title}</b><br><span style='font-size:11px'>{sub}</span>",
                           showarrow=False, font=dict(size=14))
        fig.add_trace(go.Scatter(x=[cx, cx], y=[5.5, 0.75], mode="lines", line=dict(color="#444444", width=2),
                                 hoverinfo="skip", showlegend=False))
        fig.add_annotation(x=cx, y=5.6, text="<b>x</b>", showarrow=False, font=dict(size=16), yanchor="bottom")
        for y, text in zip((4.6, 3.65, 2.7), layers):
            shapes.append(dict(type="rect", x0=cx - half, x1=cx + half, y0=y - 0.3, y1=y + 0.3,
                               line=dict(color=PLAIN_COLOR, width=1.5), fillcolor=PLAIN_FILL, layer="above"))
            fig.add_annotation(x=cx, y=y, text=text, showarrow=False, font=dict(size=11))
        shapes.append(dict(type="line", x0=cx - half - 0.2, x1=cx - half - 0.2, y0=2.4, y1=4.9,
                           line=dict(color=PLAIN_COLOR, width=2)))
        fig.add_annotation(x=cx - half - 0.3, y=3.65, text="F(x)", showarrow=False, xanchor="right",
                           font=dict(size=14, color=PLAIN_COLOR))
        ax, ay = _bezier_arc(5.35, 1.7, x0=cx, bulge=cx + 3.8, n=40)
        fig.add_trace(go.Scatter(x=ax, y=ay, mode="lines", showlegend=False, hoverinfo="skip",
                                 line=dict(color=PROJECTION_COLOR if projection else RESIDUAL_COLOR, width=3)))
        if projection:
            shapes.append(dict(type="rect", x0=cx + 2.25, x1=cx + 3.45, y0=3.2, y1=4.1, layer="above",
                               line=dict(color=PROJECTION_COLOR, width=1.5), fillcolor=RESIDUAL_FILL))
            fig.add_annotation(x=cx + 2.85, y=3.65, text="1×1 conv<br>/2 · BN", showarrow=False, font=dict(size=11))
            fig.add_annotation(x=cx + 2.6, y=5.3, text="W<sub>s</sub>x", showarrow=False, xanchor="left",
                               font=dict(size=14, color=PROJECTION_COLOR))
        else:
            fig.add_annotation(x=cx + 2.6, y=5.3, text="x <span style='font-size:11px'>(identity)</span>",
                               showarrow=False, xanchor="left", font=dict(size=14, color=RESIDUAL_COLOR))
        fig.add_trace(go.Scatter(x=[cx], y=[1.7], mode="markers", showlegend=False, hoverinfo="skip",
                                 marker=dict(symbol="circle-cross-open", size=22, color="#222222",
                                             line=dict(width=2))))
        fig.add_annotation(x=cx - 0.3, y=1.2, text="ReLU", showarrow=False, xanchor="right", font=dict(size=11))
        fig.add_annotation(x=cx, y=0.65, text="<b>F(x) + W<sub>s</sub>x</b>" if projection else "<b>F(x) + x</b>",
                           showarrow=False, yanchor="top", font=dict(size=15))
    fig.update_layout(shapes=shapes, height=440, margin=dict(l=5, r=5, t=10, b=5), plot_bgcolor="white",
                      font=FONT, dragmode=False, showlegend=False)
    fig.update_xaxes(visible=False, range=[-2.9, 10.7], fixedrange=True)
    fig.update_yaxes(visible=False, range=[0.0, 7.1], fixedrange=True)
    return fig


__all__ = ["RunData", "as_run", "as_runs", "run_colors", "ema", "log10_safe", "downsample_log_columns",
           "shared_color_range", "log_ticks", "last_conv_index", "first_last_ratio", "lr_drop_steps",
           "training_curves", "fig6_error_curves", "grad_norm_heatmap", "grad_norm_profiles",
           "first_last_ratio_figure", "summary_table", "summary_totals", "summary_table_figure", "is_weight_layer",
           "architecture_layout", "architecture_diagram", "auto_collapsed_stages", "stage_names",
           "residual_block_diagram", "PLAIN_COLOR", "RESIDUAL_COLOR"]
