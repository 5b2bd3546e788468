"""What two of the analyses' charts say, in numbers and sentences — so the Analyses page states a takeaway that
follows the data instead of the papers' expectations: which shattered-gradients number tells the chosen nets apart,
and what the dead-ReLU counts amount to."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from .analyses import _pairs
from .runs import SeriesLike, as_analysis_series


# ------------------------------------------------------------------------------------ shattered gradients ----
SHATTER_MEASURES = {  # key: (name, what it says)
    "autocorrelation_1": ("autocorrelation at lag 1",
                          "of the gradient signal along the line, its mean removed: 1 = smooth, 0 = white noise"),
    "neighbour_cosine": ("cosine of neighbours",
                         "mean cosine similarity of whole input gradients at neighbouring points of the line"),
    "far_cosine": ("cosine {lag} points apart",
                   "mean cosine similarity of whole input gradients {lag} points apart on the line"),
}


def shattering_numbers(data: Mapping[str, Any]) -> dict:
    """The three one-number summaries of a `gradient_shattering` result (see SHATTER_MEASURES), and the far lag."""
    lags = np.asarray(data.get("lags", []))
    auto = np.asarray(data.get("autocorrelation", []), dtype=float)
    cosine = np.asarray(data.get("gradient_cosine", []), dtype=float)
    at = lambda a, i: float(a[i]) if len(a) > abs(i) else float("nan")  # noqa: E731
    return {"autocorrelation_1": at(auto, 1), "neighbour_cosine": at(cosine, 1), "far_cosine": at(cosine, -1),
            "far_lag": int(lags[-1]) if len(lags) else 0}


def shattering_headline(numbers: Sequence[Mapping[str, float]]) -> str:
    """Which measure to headline for these models: the one on which they differ most. Whole gradients of trained
    nets share a large common part, so their neighbours' cosine is ≈ 1 for every net (0.999 against 0.998 says
    nothing) while the autocorrelation, which removes the mean, still tells them apart; at initialisation a deep
    plain net's neighbours' cosine drops to ≈ 0 while its twin's stays near 1. One model alone: the autocorrelation,
    what the default chart shows."""
    def spread(key: str) -> float:
        values = [n[key] for n in numbers if np.isfinite(n[key])]
        return max(values) - min(values) if len(values) > 1 else -1.0
    return max(SHATTER_MEASURES, key=lambda k: (spread(k), k == "autocorrelation_1"))


# -------------------------------------------------------------------------------------------- dead ReLUs ----
def dead_relu_takeaway(series: Sequence[SeriesLike]) -> str:
    """What the dead-ReLU chart says, in a sentence or two: per model the mean share of dead units, its worst ReLU and
    its entirely dead layers, and — for a plain net beside a ResNet — which has more and why that matters."""
    items = as_analysis_series(series)
    facts = []
    for s in items:
        names, dead = _pairs(s.data)
        if not len(dead):
            continue
        worst = int(np.argmax(dead))
        facts.append((s, 100 * float(dead.mean()), names[worst], 100 * float(dead[worst]), int((dead >= 1.0).sum())))
    if not facts:
        return "No ReLUs were measured."
    if all(mean < 1 and worst < 5 for _, mean, _, worst, _ in facts):
        return ("**Takeaway.** Almost every unit fires on some of these images in "
                + ("every model" if len(facts) > 1 else "this model")
                + f" (at most {max(f[3] for f in facts):.1f}% dead in any layer): dead ReLUs do not explain a "
                  "difference between these nets.")
    parts = []
    for s, mean, worst_name, worst, entire in facts:
        text = f"**{s.label}**: {mean:.1f}% of its units dead on average, most in `{worst_name}` ({worst:.0f}%)"
        if entire:
            text += (f"; {entire} ReLU layer{'s' if entire > 1 else ''} entirely dead — "
                     + ("the shortcuts carry the signal around them" if s.residual
                        else "nothing passes through, so the net's only path is cut"))
        parts.append(text)
    out = "**Takeaway.** " + "; ".join(parts) + "."
    plain = [f for f in facts if not f[0].residual]
    resnets = [f for f in facts if f[0].residual]
    if len(plain) == 1 and len(resnets) == 1:
        (_, pm, *_), (_, rm, *_) = plain[0], resnets[0]
        if pm > 1.5 * rm + 0.5:
            out += (f" The plain net has lost more of its units than its twin ({pm:.1f}% against {rm:.1f}%), and in "
                    "a plain net every lost unit narrows the one path that signal and gradient share.")
        elif rm > 1.5 * pm + 0.5:
            out += (f" Here the ResNet has more dead units than the plain net ({rm:.1f}% against {pm:.1f}%); its "
                    "shortcuts still carry each block's input past them, so they cost it less.")
        else:
            out += " The two nets lose about as many units: dead ReLUs do not separate them here."
    return out
