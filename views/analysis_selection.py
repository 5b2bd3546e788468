"""The Analyses page's selection: the chosen models (`Entry`) and test images (`Selection`) every section analyses,
and the cached, error-reporting way a section computes a result for each model."""
from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
import torch

import ui
from resnet_viz.training.devices import analysis_device
from resnet_viz.errors import ResnetVizError
from resnet_viz.storage.store import Run
from views.models import Loaded, computed, trained_model, untrained_model

K = ui.KEEP_PREFIX + "an_"  # widget keys that survive page switches


# ------------------------------------------------------------------------------------ the chosen models ----
@dataclass
class Entry:
    """One chosen model: its run, how the page names it, and its (cached, shared: do not modify) weights."""
    run: Run
    label: str
    loaded: Loaded
    residual: bool
    depth: int

    @property
    def model(self) -> torch.nn.Module:
        return self.loaded.model

    @property
    def key(self) -> tuple:
        return self.loaded.key

    def series(self, data) -> dict:
        return {"label": self.label, "data": data, "residual": self.residual, "depth": self.depth}


@dataclass
class Selection:
    """What every section analyses: the chosen models and the class-balanced test images."""
    entries: list[Entry]
    images: torch.Tensor
    labels: torch.Tensor
    images_key: tuple  # names the images for the result cache
    fresh: bool  # untrained models instead of the runs' weights

    @property
    def n_images(self) -> int:
        return len(self.labels)


def load_entries(runs: list[Run], fresh: bool, images: torch.Tensor, images_key: tuple) -> list[Entry]:
    """An Entry per run that loads; a run that does not is reported with st.error and left out."""
    device = analysis_device()
    entries = []
    for run in runs:
        cfg = run.config.model
        label = ui.run_name(run) + (" · untrained" if fresh else "")
        try:
            loaded = untrained_model(run, device, images, images_key) if fresh else trained_model(run, device)
        except (ResnetVizError, OSError) as e:
            st.error(f"{label}: {e}")
            continue
        entries.append(Entry(run, label, loaded, bool(cfg.residual), int(cfg.depth)))
    return entries


def comparison_note(entries: list[Entry]) -> str | None:
    """What keeps the chosen models from being a clean plain/residual twin pair, if anything."""
    kinds = {e.residual for e in entries}
    if kinds != {True, False}:
        return "all chosen models are " + ("residual" if True in kinds else "plain") + " — add the twin to compare"
    if len({e.depth for e in entries}) > 1:
        return "the chosen models differ in depth — a twin pair of one depth isolates the shortcuts' effect"
    return None


def analysed(kind: str, entry: Entry, params: tuple, compute, spinner: str | None = None):
    """compute(private copy of the model) for this entry and parameters, cached (`views.models.computed`)."""
    return computed(kind, entry.loaded, params, compute, spinner or f"{entry.label}: measuring…")


def each(kind: str, entries: list[Entry], params: tuple, compute) -> list[tuple[Entry, object]]:
    """(entry, result) for every entry; a failure is shown for that model, not raised."""
    out = []
    for e in entries:
        try:
            out.append((e, analysed(kind, e, params, compute)))
        except ResnetVizError as err:
            st.error(f"{e.label}: {err}")
    return out


def names(items: list[Entry]) -> str:
    labels = [f"**{e.label}**" for e in items]
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]
