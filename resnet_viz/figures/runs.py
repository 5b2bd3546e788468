"""The typed inputs of the figures: one training run (`RunSeries`) and one model's analysis result
(`AnalysisSeries`). Whether a net is residual and how deep it is come from its config, never from its label.

A run's metrics follow the run store's contract: "step", "loss", "batch_error" (fraction), "lr" per step;
"grad_norm_step" [G] and "grad_norms" [G, L] (row 0 = step 0, before any update); "eval_step", "train_loss",
"train_error", "test_loss", "test_error" per evaluation.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping, TypeVar, Union


@dataclass
class RunSeries:
    """One training run as the run figures see it: its chart label, metrics, layer names in depth order, and the
    family and depth of its model (they pick the panel and the colour)."""

    label: str
    metrics: Mapping[str, Any]
    layer_names: list[str]
    residual: bool
    depth: int

    @classmethod
    def from_run(cls, run: Any) -> "RunSeries":
        """From a store `Run` or a training `Job`: anything with `.metrics`, `.layer_names` and `.config.model`."""
        model = run.config.model
        return cls(label=model.name, metrics=run.metrics if run.metrics is not None else {},
                   layer_names=list(run.layer_names or []), residual=bool(model.residual), depth=int(model.depth))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RunSeries":
        """From {"label", "metrics", "residual", "depth", "layer_names"?}; residual and depth are required."""
        missing = [k for k in ("label", "residual", "depth") if k not in d]
        if missing:
            raise ValueError(f"A run for the figures needs {', '.join(missing)}; got only {', '.join(d) or 'nothing'}.")
        return cls(label=str(d["label"]), metrics=d.get("metrics") or {}, layer_names=list(d.get("layer_names") or []),
                   residual=bool(d["residual"]), depth=int(d["depth"]))


@dataclass
class AnalysisSeries:
    """One model's result of an analysis of `resnet_viz.analyses`: `data` is what the analysis returned — a list of
    (name, value) pairs for `response_std`, `branch_ratios` and `dead_relus`; the dict of `lesion_single` or
    `gradient_shattering`; {k: [accuracies]} of `lesion_random`; {"alphas", "losses", "accuracies"} for the 1-D loss
    landscape."""

    label: str
    data: Any
    residual: bool
    depth: int | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "AnalysisSeries":
        """From {"label", "data", "residual", "depth"?}."""
        if "residual" not in d:
            raise ValueError(f"An analysis series needs 'residual' (plain or ResNet) besides its data; "
                             f"got {', '.join(d) or 'nothing'}.")
        return cls(label=str(d.get("label", "model")), data=d.get("data"), residual=bool(d["residual"]),
                   depth=d.get("depth"))


SeriesLike = Union[AnalysisSeries, Mapping[str, Any]]  # what the analysis figures accept
S = TypeVar("S", RunSeries, AnalysisSeries)


def numbered_labels(items: list[S]) -> list[S]:
    """Copies whose repeated labels get " #2", " #3" …: two series with one label would share a legend entry."""
    seen: dict[str, int] = {}
    out = []
    for item in items:
        seen[item.label] = seen.get(item.label, 0) + 1
        out.append(replace(item, label=f"{item.label} #{seen[item.label]}") if seen[item.label] > 1 else item)
    return out


def as_runs(runs: Iterable[RunSeries]) -> list[RunSeries]:
    """The runs of one figure, checked, with unique labels."""
    runs = list(runs)
    for r in runs:
        if not isinstance(r, RunSeries):
            raise TypeError(f"Run figures take RunSeries, not {type(r).__name__}: build one with "
                            f"RunSeries.from_run(run).")
    return numbered_labels(runs)


def as_analysis_series(items: Iterable[SeriesLike]) -> list[AnalysisSeries]:
    """The models of one analysis figure, as AnalysisSeries (dicts are converted), with unique labels."""
    out = []
    for s in items:
        if isinstance(s, AnalysisSeries):
            out.append(s)
        elif isinstance(s, Mapping):
            out.append(AnalysisSeries.from_dict(s))
        else:
            raise TypeError(f"Analysis figures take AnalysisSeries or dicts, not {type(s).__name__}.")
    return numbered_labels(out)
