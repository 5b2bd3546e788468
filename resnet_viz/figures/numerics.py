"""The numbers behind the figures: smoothing, thinning, log scales, gradient ratios and schedule changes.

Pure numpy on run metrics; nothing here draws."""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

MAX_LINE_POINTS = 4000  # per-step curves are thinned to this many points after smoothing
MAX_HEATMAP_COLUMNS = 400


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


def thin_indices(n: int, max_points: int = MAX_LINE_POINTS) -> np.ndarray:
    """Evenly spaced indices into n points, at most about `max_points` of them, always keeping the last."""
    if n <= max_points:
        return np.arange(n)
    idx = np.arange(0, n, math.ceil(n / max_points))
    return idx if idx[-1] == n - 1 else np.append(idx, n - 1)


def metric_array(metrics: Mapping[str, Any] | None, key: str) -> np.ndarray | None:
    """metrics[key] as an array, or None when it is missing or empty."""
    v = metrics.get(key) if metrics is not None else None
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


SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def readable(x: float) -> str:
    """2.31, 840, 1.2×10⁵, 10⁷: large numbers in powers of ten, as a lecture slide would write them."""
    if x < 1e4:
        return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"
    exponent = math.floor(math.log10(x))
    mantissa = f"{x / 10 ** exponent:.2g}"
    if mantissa == "10":  # 9.96×10⁶ rounds up to the next power
        mantissa, exponent = "1", exponent + 1
    power = "10" + str(exponent).translate(SUPERSCRIPTS)
    return power if mantissa == "1" else f"{mantissa}×{power}"


def power_of_ten(exponent: int) -> str:
    """1, 10, 10², 10⁻³: a decade as a slide writes it."""
    return {0: "1", 1: "10"}.get(exponent, "10" + str(exponent).translate(SUPERSCRIPTS))


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
    return bool(len(values) and values.max() / values.min() >= 10 ** decades)


def lr_drop_steps(metrics: Mapping[str, Any], factor: float = 2.0) -> list[int]:
    """Steps where a constant learning rate falls by more than `factor` to a new constant (the step schedule's ÷10 at
    50% and 75%). The smooth fall at the end of a one-cycle or cosine schedule is not a drop."""
    steps, lr = metric_array(metrics, "step"), metric_array(metrics, "lr")
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


def _batch_loss_at(steps: np.ndarray, loss: np.ndarray, step: float) -> float | None:
    """The mean of the finite batch losses around `step` (the five up to it), or None when there are none (a diverged
    run's batches are NaN)."""
    at = int(np.clip(np.searchsorted(steps, step, side="right") - 1, 0, len(loss) - 1))
    around = loss[max(0, at - 4): at + 1].astype(float)
    around = around[np.isfinite(around)]
    return float(around.mean()) if around.size and around.mean() > 0 else None


def eval_spikes(metrics: Mapping[str, Any], split: str, factor: float = 10.0) -> np.ndarray | None:
    """Which evaluations on the `split` ("train" or "test") subset have a loss more than `factor` times the
    training batches' of the same moment (see `eval_loss_spike`): a boolean per evaluation, or None when the run has
    no such evaluations or no batch losses to compare with."""
    es, steps, loss = metric_array(metrics, "eval_step"), metric_array(metrics, "step"), metric_array(metrics, "loss")
    values = metric_array(metrics, f"{split}_loss")
    if es is None or steps is None or loss is None or values is None or len(steps) != len(loss) \
            or len(values) != len(es):
        return None
    spikes = np.zeros(len(es), dtype=bool)
    for i, (step, value) in enumerate(zip(es.tolist(), values.astype(float).tolist())):
        batch = _batch_loss_at(steps, loss, step)
        spikes[i] = batch is not None and math.isfinite(value) and value > factor * batch
    return spikes


def eval_loss_spike(metrics: Mapping[str, Any], factor: float = 10.0) -> dict | None:
    """The evaluation whose loss most exceeds the training-batch loss of the same moment, when it does so by more
    than `factor`: {"step", "split" ("train" or "test" subset), "eval_loss", "batch_loss"}; None when none does.

    Evaluations run in eval mode, where BatchNorm normalises with its running averages instead of the batch's own
    statistics; early in training those averages lag behind fast-changing weights, and in a deep plain net the
    mismatch compounds layer after layer into losses of 10³–10⁵ while the batches' loss is ordinary."""
    worst = None
    for split in ("train", "test"):
        spikes = eval_spikes(metrics, split, factor)
        if spikes is None:
            continue
        steps, loss = metric_array(metrics, "step"), metric_array(metrics, "loss")
        values = metric_array(metrics, f"{split}_loss").astype(float)
        for step, value in zip(metric_array(metrics, "eval_step")[spikes].tolist(), values[spikes].tolist()):
            batch = _batch_loss_at(steps, loss, step)
            if worst is None or value / batch > worst["eval_loss"] / worst["batch_loss"]:
                worst = {"step": int(step), "split": split, "eval_loss": value, "batch_loss": batch}
    return worst

