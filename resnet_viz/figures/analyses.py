"""Figures for the six analyses of `resnet_viz.analyses`: data in, figure out.

Pure functions of the analysis results (lists of (layer name, value), dicts of numpy arrays): no Streamlit, no torch.
They share the run figures' look (`style`): plain networks warm, residual networks cool, titled figures, labelled
axes, and hover text that names the layer or block. Each model's result comes in as an `AnalysisSeries` (or the dict
{"label", "data", "residual", "depth"?}); `data` is what the analysis returned (see `AnalysisSeries`).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from .numerics import log_ticks, power_of_ten, readable
from .runs import AnalysisSeries, SeriesLike, as_analysis_series
from .style import HEATMAP_SCALE, NEUTRAL_LINE, RESIDUAL_SCALE, base_layout, legend_key, run_colors

CHANCE_COLOR = "#999999"
NOT_REMOVABLE_COLOR = "#bdbdbd"


def _pairs(data: Any) -> tuple[list[str], np.ndarray]:
    pairs = list(data or [])
    return [str(n) for n, _ in pairs], np.array([float(v) for _, v in pairs], dtype=float)


def _dash(s: AnalysisSeries) -> str:
    return "solid" if s.residual else "dash"


def _chance_line(fig: go.Figure, num_classes: int, **where) -> None:
    """A dotted line at chance accuracy, named in the legend: a label on the plot would sit on the bars."""
    if num_classes and num_classes > 1:
        fig.add_hline(y=100.0 / num_classes, line=dict(color=CHANCE_COLOR, width=1, dash="dot"), **where)
        legend_key(fig, f"chance ({num_classes} classes)", dict(width=1, dash="dot"))


def _empty(fig: go.Figure, message: str) -> go.Figure:
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font=dict(size=14, color="#666666"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


# ---------------------------------------------------------------------------------- 1. response std ----
def response_std_figure(series: Sequence[SeriesLike], log_y: bool = False, sort_by_magnitude: bool = False,
                        title: str = "Standard deviation of each layer's response (He et al. 2015, Fig. 7)"
                        ) -> go.Figure:
    """One line per model: x = layer index in depth order (or, with `sort_by_magnitude`, the rank by std, largest
    first — the paper's bottom panel), y = the std of the layer's response; hover names the layer."""
    items = as_analysis_series(series)
    fig = go.Figure()
    for s, color in zip(items, run_colors(items)):
        names, y = _pairs(s.data)
        if sort_by_magnitude:
            order = np.argsort(-y, kind="stable")
            names, y = [names[i] for i in order], y[order]
        x = np.arange(1, len(y) + 1)
        where = "rank %{x}" if sort_by_magnitude else "layer %{x}"
        fig.add_trace(go.Scatter(
            x=x, y=y, mode="lines+markers", name=s.label, customdata=names,
            line=dict(color=color, width=2, dash=_dash(s)), marker=dict(size=5, color=color),
            hovertemplate=f"<b>{s.label}</b><br>%{{customdata}} ({where})<br>response std %{{y:.3g}}<extra></extra>"))
    base_layout(fig, title, height=430, hovermode="closest", showlegend=True)
    fig.update_xaxes(title_text="layer index, sorted by std (largest first)" if sort_by_magnitude
                     else "layer index (1 = first conv, in depth order)", rangemode="tozero")
    fig.update_yaxes(title_text="std of the response (after BN, before addition and ReLU)"
                     + (" — log scale" if log_y else ""), type="log" if log_y else "linear",
                     rangemode="normal" if log_y else "tozero")
    return fig


# --------------------------------------------------------------------------------- 2. branch ratios ----
def branch_ratio_figure(series: Sequence[SeriesLike], log_y: bool = False,
                        title: str = "How much each residual block changes what passes through it: "
                                     "‖F(x)‖ / ‖shortcut(x)‖") -> go.Figure:
    """Grouped bars, one group per residual block (depth order), one bar per model; a dotted line at 1 marks a branch
    as large as its shortcut. The denominator is the shortcut's output: x itself at an identity block, x subsampled
    and zero-padded (option A: about half of ‖x‖) or projected at a downsampling block — one name,
    ‖F(x)‖ / ‖shortcut(x)‖, on every chart and axis. Plain models have no such ratio and should not be passed
    (their `data` would be empty)."""
    items = as_analysis_series(series)
    fig = go.Figure()
    for s, color in zip(items, run_colors(items)):
        names, y = _pairs(s.data)
        fig.add_trace(go.Bar(
            x=names, y=y, name=s.label, marker=dict(color=color),
            hovertemplate=f"<b>{s.label}</b><br>%{{x}}<br>‖F(x)‖ / ‖shortcut(x)‖ = %{{y:.3g}}<extra></extra>"))
    fig.add_hline(y=1.0, line=dict(color=NEUTRAL_LINE, width=1, dash="dot"))  # named in the legend, off the bars
    legend_key(fig, "branch as large as the shortcut (1)", dict(width=1, dash="dot"))
    base_layout(fig, title, height=430, barmode="group", bargap=0.25, showlegend=True)
    fig.update_xaxes(title_text="residual block (input → output)", type="category", tickangle=-45)
    fig.update_yaxes(title_text="‖F(x)‖ / ‖shortcut(x)‖, mean over images" + (" — log scale" if log_y else ""),
                     type="log" if log_y else "linear")
    return fig


def branch_ratio_training_figure(steps: Any, ratios: Any, block_names: Sequence[str] | None = None,
                                 label: str = "", log_y: bool = False) -> go.Figure:
    """Recorded ratios over training: `ratios` [S, B] at `steps` [S], one line per block coloured by depth (light =
    early blocks, dark = late ones)."""
    z = np.asarray(ratios, dtype=float)
    x = np.asarray(steps, dtype=float)
    if z.ndim == 1:
        z = z[:, None]
    if z.ndim != 2 or len(x) != z.shape[0]:
        raise ValueError(f"branch ratios must be [steps, blocks] with one step per row; got {z.shape} for "
                         f"{len(x)} steps.")
    names = list(block_names or [])
    if len(names) != z.shape[1]:
        names = [f"block {i + 1}" for i in range(z.shape[1])]
    colors = sample_colorscale(RESIDUAL_SCALE, list(np.linspace(0.35, 1.0, max(z.shape[1], 2))))[: z.shape[1]]
    fig = go.Figure()
    for j, (name, color) in enumerate(zip(names, colors)):
        fig.add_trace(go.Scatter(
            x=x, y=z[:, j], mode="lines", name=name, line=dict(color=color, width=1.6),
            hovertemplate=f"<b>{name}</b><br>step %{{x:,}}<br>‖F(x)‖ / ‖shortcut(x)‖ = %{{y:.3g}}<extra></extra>"))
    base_layout(fig, f"{label + ': ' if label else ''}‖F(x)‖ / ‖shortcut(x)‖ per block during training", height=430)
    fig.update_xaxes(title_text="iteration (SGD step)", rangemode="tozero")
    fig.update_yaxes(title_text="‖F(x)‖ / ‖shortcut(x)‖" + (" — log scale" if log_y else ""),
                     type="log" if log_y else "linear")
    return fig


# ------------------------------------------------------------------------------------------- 3. lesions ----
LESION_BARGAP = 0.2  # share of each block's slot left empty between groups of bars


def lesion_single_figure(series: Sequence[SeriesLike], num_classes: int = 10,
                         title: str = "Delete one block at test time (Veit et al. 2016)") -> go.Figure:
    """Grouped bars: accuracy with each block deleted, per model (`data` = `lesion_single`'s dict), blocks in depth
    order. A block that cannot be removed gets no bar — there is no accuracy to show — but a "✕" on the axis in its
    model's slot, named "✕ cannot be removed" in the legend, with the reason in its hover: words on the plot would
    run over the neighbouring bars. Each model's intact accuracy is a dashed line in its colour; chance is dotted."""
    items = as_analysis_series(series)
    order: list[str] = []  # every block in depth order, whichever model has it
    for s in items:
        order += [b["block"] for b in (s.data or {}).get("blocks", []) if b["block"] not in order]
    slot = (1 - LESION_BARGAP) / max(len(items), 1)  # each model's bar width, in category units
    fig = go.Figure()
    for i, (s, color) in enumerate(zip(items, run_colors(items))):
        result = s.data or {}
        base = 100.0 * float(result.get("baseline", float("nan")))
        blocks = list(result.get("blocks", []))
        names = [b["block"] for b in blocks]
        ok = [b for b in blocks if b.get("removable") and b.get("accuracy") is not None]
        bad = [b for b in blocks if not b.get("removable")]
        notes = [("<br>" + b["reason"]) if b.get("reason") else "" for b in ok]
        acc = np.array([100.0 * float(b["accuracy"]) for b in ok])
        fig.add_trace(go.Bar(
            x=[b["block"] for b in ok], y=acc, name=f"{s.label}: block deleted", marker=dict(color=color),
            offsetgroup=s.label, legendgroup=s.label,
            customdata=np.stack([acc - base, np.array(notes, dtype=object)], axis=1) if ok else None,
            hovertemplate=(f"<b>{s.label}</b>, %{{x}} deleted<br>accuracy %{{y:.1f}}% "
                           f"(intact {base:.1f}%, change %{{customdata[0]:+.1f}} points)%{{customdata[1]}}"
                           "<extra></extra>")))
        if bad:  # not an accuracy: words on the axis, in the model's slot, that no bar can be mistaken for
            fig.add_trace(go.Bar(  # zero height: its legend entry names the mark
                x=[b["block"] for b in bad], y=[0.0] * len(bad), name=f"{s.label}: ✕ cannot be removed",
                offsetgroup=s.label, legendgroup=s.label, marker=dict(color=NOT_REMOVABLE_COLOR),
                customdata=[b.get("reason") or "cannot be removed" for b in bad], hoverinfo="skip"))
            for b in bad:
                fig.add_annotation(
                    x=order.index(b["block"]) - (1 - LESION_BARGAP) / 2 + slot * (i + 0.5), y=0, yanchor="bottom",
                    text="✕", showarrow=False, font=dict(size=14, color="#555555"),
                    hovertext=f"<b>{s.label}</b>, {b['block']}: cannot be removed — it "
                              f"{b.get('reason') or 'has no path around it'}")
        if names:
            fig.add_trace(go.Scatter(
                x=names, y=[base] * len(names), mode="lines", name=f"{s.label}: intact ({base:.1f}%)",
                legendgroup=s.label, line=dict(color=color, width=2, dash="dash"),
                hovertemplate=f"<b>{s.label}</b> intact: {base:.1f}%<extra></extra>"))
    _chance_line(fig, num_classes)
    base_layout(fig, title, height=460, barmode="group", bargap=LESION_BARGAP)
    fig.update_xaxes(title_text="deleted block (input → output)", type="category", tickangle=-45,
                     categoryorder="array", categoryarray=order)
    fig.update_yaxes(title_text="test accuracy (%)", range=[0, 100])
    return fig


def lesion_random_figure(series: Sequence[SeriesLike], num_classes: int = 10, show_draws: bool = True,
                         title: str = "Delete k random blocks at once (Veit et al. 2016, Fig. 5)") -> go.Figure:
    """Accuracy against the number k of deleted blocks (`data` = `lesion_random`'s {k: [accuracies]}): the mean over
    draws as a line with error bars of ± one standard deviation, and each draw as a faint dot."""
    items = as_analysis_series(series)
    fig = go.Figure()
    for s, color in zip(items, run_colors(items)):
        result = {int(k): [100.0 * float(a) for a in v] for k, v in dict(s.data or {}).items() if len(v)}
        ks = sorted(result)
        mean = np.array([np.mean(result[k]) for k in ks])
        spread = np.array([np.std(result[k]) for k in ks])
        lo = np.array([np.min(result[k]) for k in ks])
        hi = np.array([np.max(result[k]) for k in ks])
        counts = np.array([len(result[k]) for k in ks])
        fig.add_trace(go.Scatter(
            x=ks, y=mean, mode="lines+markers", name=s.label, legendgroup=s.label,
            line=dict(color=color, width=2.5, dash=_dash(s)), marker=dict(size=7, color=color),
            error_y=dict(type="data", array=spread, visible=True, color=color, thickness=1.2, width=4),
            customdata=np.stack([spread, lo, hi, counts], axis=1) if ks else None,
            hovertemplate=(f"<b>{s.label}</b><br>%{{x}} blocks deleted<br>mean accuracy %{{y:.1f}}% "
                           "± %{customdata[0]:.1f}<br>range %{customdata[1]:.1f}–%{customdata[2]:.1f}% over "
                           "%{customdata[3]} draws<extra></extra>")))
        if show_draws and ks:
            xs = np.concatenate([[k] * len(result[k]) for k in ks])
            ys = np.concatenate([result[k] for k in ks])
            fig.add_trace(go.Scatter(
                x=xs, y=ys, mode="markers", name=f"{s.label}: each draw", legendgroup=s.label, showlegend=False,
                marker=dict(size=5, color=color, opacity=0.35),
                hovertemplate=f"<b>{s.label}</b><br>%{{x}} blocks deleted<br>one draw: %{{y:.1f}}%<extra></extra>"))
    _chance_line(fig, num_classes)
    base_layout(fig, title, height=430, hovermode="closest", showlegend=True)
    fig.update_xaxes(title_text="number of blocks deleted (k), chosen at random", dtick=1, rangemode="tozero")
    fig.update_yaxes(title_text="test accuracy (%)", range=[0, 100])
    return fig


# ----------------------------------------------------------------------------------- 4. loss landscape ----
def landscape_1d_figure(series: Sequence[SeriesLike], log_y: bool = False,
                        title: str = "Loss along one filter-normalised random direction (Li et al. 2018)"
                        ) -> go.Figure:
    """Two panels over α (θ + α·d): loss on the left, accuracy on the right, one line per model (`data` = dict with
    "alphas", "losses" and optionally "accuracies"). α = 0 is the model's own weights."""
    items = as_analysis_series(series)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"), horizontal_spacing=0.1)
    for s, color in zip(items, run_colors(items)):
        d = s.data or {}
        alphas = np.asarray(d.get("alphas", []), dtype=float)
        losses = np.asarray(d.get("losses", []), dtype=float)
        fig.add_trace(go.Scatter(
            x=alphas, y=losses, mode="lines+markers", name=s.label, legendgroup=s.label,
            line=dict(color=color, width=2.5, dash=_dash(s)), marker=dict(size=5, color=color),
            hovertemplate=f"<b>{s.label}</b><br>α = %{{x:.3g}}<br>loss %{{y:.4g}}<extra></extra>"), row=1, col=1)
        if d.get("accuracies") is not None:
            acc = 100.0 * np.asarray(d["accuracies"], dtype=float)
            fig.add_trace(go.Scatter(
                x=alphas, y=acc, mode="lines+markers", name=s.label, legendgroup=s.label, showlegend=False,
                line=dict(color=color, width=2.5, dash=_dash(s)), marker=dict(size=5, color=color),
                hovertemplate=f"<b>{s.label}</b><br>α = %{{x:.3g}}<br>accuracy %{{y:.1f}}%<extra></extra>"),
                row=1, col=2)
    for col in (1, 2):
        fig.add_vline(x=0, line=dict(color=NEUTRAL_LINE, width=1, dash="dot"), row=1, col=col)
    base_layout(fig, title, height=430, showlegend=True)
    fig.update_xaxes(title_text="α: step along the direction d (0 = the model's weights)")
    fig.update_yaxes(title_text="cross-entropy loss" + (" — log scale" if log_y else ""),
                     type="log" if log_y else "linear", row=1, col=1)
    fig.update_yaxes(title_text="accuracy (%)", range=[0, 100], row=1, col=2)
    return fig


def landscape_2d_figure(alphas: Any, betas: Any, losses: Any, title: str = "", log_z: bool = True,
                        zmin: float | None = None, zmax: float | None = None, surface: bool = False,
                        origin_label: str = "the model's weights") -> go.Figure:
    """Li et al. 2018's picture: loss on the plane θ + α·d₁ + β·d₂, `losses[j, i]` at (alphas[i], betas[j]) as
    returned by `loss_landscape_2d`. A filled contour map (or, with `surface`, a 3-D surface), coloured by log₁₀ of
    the loss with `log_z` (deep plain nets can reach losses thousands of times the minimum). `zmin`/`zmax` (real loss
    units) give several maps one colour scale. The origin is marked. Hover shows the real loss."""
    a = np.asarray(alphas, dtype=float)
    b = np.asarray(betas, dtype=float)
    loss = np.asarray(losses, dtype=float)
    if loss.shape != (len(b), len(a)):
        raise ValueError(f"losses must be [len(betas), len(alphas)] = [{len(b)}, {len(a)}], got {loss.shape}.")
    safe = np.where(np.isfinite(loss) & (loss > 0), loss, np.nan)
    z = np.log10(safe) if log_z else np.where(np.isfinite(loss), loss, np.nan)
    lo = None if zmin is None else (np.log10(max(zmin, 1e-12)) if log_z else zmin)
    hi = None if zmax is None else (np.log10(max(zmax, 1e-12)) if log_z else zmax)
    bar_title = "log₁₀ loss" if log_z else "loss"
    colorbar = dict(title=dict(text=bar_title, side="right"), thickness=14)
    if log_z:  # ticks at round losses (decades, or 1-2-5 steps), written as a slide would: 0.5, 2, 10⁷
        finite = z[np.isfinite(z)]
        top = hi if hi is not None else (float(finite.max()) if finite.size else 1.0)
        bottom = lo if lo is not None else (float(finite.min()) if finite.size else 0.0)
        ticks = log_ticks(bottom, top)[0] if top > bottom else [bottom]
        decades = len(ticks) > 1 and all(float(t).is_integer() for t in ticks)  # 10, 10³, 10⁵: one style
        colorbar.update(tickvals=list(ticks), ticktext=[power_of_ten(int(t)) if decades else readable(10 ** t)
                                                        for t in ticks])
        colorbar["title"]["text"] = "loss (log colour scale)"
    hover = "α = %{x:.3g}<br>β = %{y:.3g}<br>loss %{customdata:.4g}<extra></extra>"
    fig = go.Figure()
    if surface:
        fig.add_trace(go.Surface(x=a, y=b, z=z, customdata=loss, colorscale=HEATMAP_SCALE, cmin=lo, cmax=hi,
                                 colorbar=colorbar, hovertemplate=hover, name="loss"))
        centre = (np.argmin(np.abs(b)), np.argmin(np.abs(a)))
        fig.add_trace(go.Scatter3d(x=[a[centre[1]]], y=[b[centre[0]]], z=[z[centre]], mode="markers",
                                   marker=dict(size=5, color="#d62728"), name=origin_label,
                                   hovertemplate=f"{origin_label}<br>loss {loss[centre]:.4g}<extra></extra>"))
        base_layout(fig, title, height=520)
        fig.update_layout(scene=dict(xaxis_title="α (direction d₁)", yaxis_title="β (direction d₂)",
                                     zaxis_title=bar_title, **({"zaxis": dict(range=[lo, hi])}
                                                               if lo is not None and hi is not None else {})),
                          showlegend=False)
        return fig
    fig.add_trace(go.Contour(x=a, y=b, z=z, customdata=loss, colorscale=HEATMAP_SCALE, zmin=lo, zmax=hi,
                             zauto=lo is None or hi is None, ncontours=20, colorbar=colorbar,
                             contours=dict(coloring="heatmap", showlines=True), line=dict(width=0.6, color="white"),
                             hovertemplate=hover, name="loss"))
    fig.add_trace(go.Scatter(x=[0.0], y=[0.0], mode="markers", name=origin_label,
                             marker=dict(symbol="x", size=11, color="#d62728", line=dict(width=1, color="white")),
                             hovertemplate=f"{origin_label} (α = β = 0)<extra></extra>"))
    base_layout(fig, title, height=460, showlegend=False)
    fig.update_xaxes(title_text="α (direction d₁)", constrain="domain")
    fig.update_yaxes(title_text="β (direction d₂)", scaleanchor="x", scaleratio=1, constrain="domain")
    return fig


# ------------------------------------------------------------------------------- 5. shattered gradients ----
SHATTER_VIEWS = ("autocorrelation", "cosine", "signal")


def shattering_figure(series: Sequence[SeriesLike], view: str = "autocorrelation") -> go.Figure:
    """Balduzzi et al. 2017 on one line of inputs (`data` = `gradient_shattering`'s dict), per model:
      * "autocorrelation": the autocorrelation of the 1-D gradient signal against the lag (white noise drops to ~0
        at lag 1, a smooth signal stays near 1);
      * "cosine": the mean cosine similarity of whole input gradients `lag` points apart;
      * "signal": the gradient signal itself along the line, one panel per model, standardised (mean 0, std 1)
        so nets whose gradients differ in size can be compared by shape."""
    if view not in SHATTER_VIEWS:
        raise ValueError(f"view must be one of {SHATTER_VIEWS}, got {view!r}.")
    items = as_analysis_series(series)
    colors = run_colors(items)
    if view == "signal":
        fig = make_subplots(rows=max(len(items), 1), cols=1, shared_xaxes=True, vertical_spacing=0.06,
                            subplot_titles=[s.label for s in items] or None)
        for i, (s, color) in enumerate(zip(items, colors), start=1):
            d = s.data or {}
            sig = np.asarray(d.get("signal", []), dtype=float)
            sd = sig.std()
            standard = (sig - sig.mean()) / sd if sd > 0 else sig - sig.mean()
            fig.add_trace(go.Scatter(
                x=np.asarray(d.get("t", []), dtype=float), y=standard, mode="lines+markers", name=s.label,
                line=dict(color=color, width=1.5), marker=dict(size=3, color=color), customdata=sig,
                hovertemplate=(f"<b>{s.label}</b><br>t = %{{x:.3g}}<br>standardised %{{y:.2f}} "
                               "(raw slope %{customdata:.3g})<extra></extra>")), row=i, col=1)
            fig.update_yaxes(title_text="slope (std units)", row=i, col=1)
        base_layout(fig, "The gradient along a line of inputs: the slope of the predicted logit",
                     height=max(300, 190 * len(items) + 110), showlegend=False)
        fig.update_xaxes(title_text="t: position on the line x + t·d (normalised-input units)", row=len(items) or 1,
                         col=1)
        return fig
    key = "autocorrelation" if view == "autocorrelation" else "gradient_cosine"
    what = "autocorrelation" if view == "autocorrelation" else "mean cosine"
    fig = go.Figure()
    for s, color in zip(items, colors):
        d = s.data or {}
        lags = np.asarray(d.get("lags", []))
        y = np.asarray(d.get(key, []), dtype=float)
        fig.add_trace(go.Scatter(
            x=lags, y=y, mode="lines+markers", name=s.label, line=dict(color=color, width=2.5, dash=_dash(s)),
            marker=dict(size=6, color=color),
            hovertemplate=f"<b>{s.label}</b><br>lag %{{x}}<br>{what} %{{y:.3f}}<extra></extra>"))
    fig.add_hline(y=0, line=dict(color=NEUTRAL_LINE, width=1, dash="dot"))  # named in the legend, off the lines
    legend_key(fig, "uncorrelated (white noise)", dict(width=1, dash="dot"))
    if view == "autocorrelation":
        title, ytitle = "Autocorrelation of the gradient signal (Balduzzi et al. 2017)", "autocorrelation"
    else:
        title, ytitle = "Similarity of input gradients at nearby inputs", "mean cosine similarity of ∇ₓ"
    base_layout(fig, title, height=420, hovermode="closest", showlegend=True)
    fig.update_xaxes(title_text="lag (points apart on the line)", rangemode="tozero")
    fig.update_yaxes(title_text=ytitle, range=[-1.05, 1.05])
    return fig


# -------------------------------------------------------------------------------------- 6. dead ReLUs ----
def dead_relu_figure(series: Sequence[SeriesLike], title: str = "Dead ReLUs: units that never fire on these images"
                     ) -> go.Figure:
    """One line per model: x = ReLU index in the order they run, y = % of its units (channel × position) that output
    zero for every image; hover names the ReLU."""
    items = as_analysis_series(series)
    fig = go.Figure()
    for s, color in zip(items, run_colors(items)):
        names, y = _pairs(s.data)
        fig.add_trace(go.Scatter(
            x=np.arange(1, len(y) + 1), y=100.0 * y, mode="lines+markers", name=s.label, customdata=names,
            line=dict(color=color, width=2, dash=_dash(s)), marker=dict(size=5, color=color),
            hovertemplate=f"<b>{s.label}</b><br>%{{customdata}} (ReLU %{{x}})<br>dead: %{{y:.2f}}% of its units"
                          "<extra></extra>"))
    base_layout(fig, title, height=420, hovermode="closest", showlegend=True)
    fig.update_xaxes(title_text="ReLU index (in the order they run)", rangemode="tozero")
    fig.update_yaxes(title_text="dead units (%)", rangemode="tozero")
    return fig


def no_data_figure(message: str, title: str = "") -> go.Figure:
    """An empty figure that says why there is nothing to draw."""
    return _empty(base_layout(go.Figure(), title, height=260), message)

