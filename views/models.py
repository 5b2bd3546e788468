"""Models and images for the pages that look inside nets (Grad-CAM, Analyses), cached across reruns and sessions;
and a shared cache of results computed on those models.

Cached models are shared by every session: callers must not change them (the analyses work on a private copy,
see `computed`).
"""
from __future__ import annotations

import copy
import threading
from typing import Callable, NamedTuple

import streamlit as st
import torch
from torch import nn

import ui
from resnet_viz import analyses as A
from resnet_viz.datasets.cifar10 import load_cifar10
from resnet_viz.datasets.batches import stratified_subset
from resnet_viz.training.devices import analysis_device
from resnet_viz.nets.models import build_model
from resnet_viz.lru import LRUCache
from resnet_viz.storage.store import Run, RunStore
from resnet_viz.training.threads import threads_for_analysis


# ---------------------------------------------------------------------------------------------- models ----
class Loaded(NamedTuple):
    model: nn.Module
    key: tuple  # names these weights: results computed from them can be cached under it


@st.cache_resource(max_entries=8, show_spinner="Loading the trained weights…")
def load_trained(runs_dir: str, run_id: str, stamp: float, device: str = "cpu") -> nn.Module:
    """A run's trained model; `stamp` (the checkpoint's mtime) makes a rewritten checkpoint load afresh."""
    return RunStore(runs_dir).load_model(run_id, device=device)


@st.cache_resource(max_entries=8, show_spinner="Building the untrained model…")
def fresh_model(config_key: str, images_key: tuple | None, device: str, _config, _images=None) -> nn.Module:
    """The architecture at initialisation (seed 0), in eval mode. A fresh model's BN running statistics are 0/1,
    which in eval mode makes a deep ResNet's activations grow block after block; given `_images`, they are measured
    on those instead, as BN's batch statistics would be at the start of training (`analyses.calibrate_bn`)."""
    torch.manual_seed(0)
    model = build_model(_config).to(device).eval()
    if _images is not None and A.bn_never_updated(model):
        return A.calibrate_bn(model, _images)
    return model


def trained_model(run: Run, device: str = "cpu") -> Loaded:
    """The run's trained weights from the current run store. Raises OSError if the checkpoint is gone, or the
    store's ResnetVizError if it cannot be read."""
    stamp = run.checkpoint_path.stat().st_mtime
    return Loaded(load_trained(ui.runs_dir(), run.id, stamp, device), ("trained", ui.runs_dir(), run.id, stamp, device))


def untrained_model(run: Run, device: str = "cpu", images=None, images_key: tuple | None = None) -> Loaded:
    """The run's architecture at initialisation; BN statistics measured on `images` if given (`fresh_model`)."""
    cfg = run.config.model
    model = fresh_model(repr(cfg), images_key, device, cfg, images)
    return Loaded(model, ("fresh", repr(cfg), device) + (images_key or ()))


# ---------------------------------------------------------------------------------------------- images ----
@st.cache_data(show_spinner="Reading CIFAR-10 test images…", max_entries=2)
def test_images(data_dir: str):
    """(uint8 images [N,3,32,32], labels [N]) of the CIFAR-10 test set; raises DataError with the fix."""
    data = load_cifar10(data_dir, download=False, progress=False)
    return data.test_images, data.test_labels


def balanced_test_images(data_dir: str, n: int):
    """(images, labels, key) of a class-balanced subset of n test images (fewer if the set is smaller); the key
    names the subset for caches."""
    all_images, all_labels = test_images(data_dir)
    n = min(int(n), len(all_labels))
    subset = stratified_subset(all_labels, n, seed=0)
    return all_images[subset], all_labels[subset], (data_dir, n)


@st.cache_data(max_entries=64, show_spinner=False)
def budget_images(model_key: tuple, images_key: tuple, evaluations: int, max_images: int | None, _model, _images
                  ) -> int:
    """How many images a multi-pass analysis will use (analyses.images_for_budget; counting MACs takes a second)."""
    return A.images_for_budget(_model, _images, evaluations, max_images)


@st.cache_data(max_entries=64, show_spinner=False)
def random_lesion_images(model_key: tuple, images_key: tuple, k_values: tuple, draws: int, max_images: int | None,
                         _model, _images) -> int:
    """How many images the random lesion study evaluates (analyses.lesion_random_images)."""
    return A.lesion_random_images(_model, _images, k_values, draws, max_images=max_images)


# --------------------------------------------------------------------------------------------- results ----
class ResultCache(LRUCache):
    """Analysis results keyed by (analysis, model key, parameters); the model key holds the run store folder, the
    run id and the checkpoint's mtime (fresh models: the config and the images). Lives in st.cache_resource, so it
    is shared by all sessions and survives page switches; least recently used entries go first."""

    def __init__(self, max_entries: int = 256):
        super().__init__(max_entries)
        self.compute_lock = threading.Lock()  # one analysis at a time: they share the CPU cores


@st.cache_resource
def result_cache() -> ResultCache:
    return ResultCache()


def cached(kind: str, model_key: tuple, params: tuple):
    """The stored result of analysis `kind` on these weights with these parameters, or None."""
    return result_cache().get((kind, model_key, params))


def computed(kind: str, loaded: Loaded, params: tuple, compute: Callable[[nn.Module], object], spinner: str):
    """The result of compute(model) for these weights and parameters, from the cache or computed now — one analysis
    at a time, with `threads_for_analysis` — on a private copy of the model (the analyses switch modes, hook layers,
    lesion blocks and move weights while they run; a copy keeps other sessions' views of the cached model
    untouched)."""
    hit = cached(kind, loaded.key, params)
    if hit is not None:
        return hit
    cache = result_cache()
    with st.spinner(spinner):
        with cache.compute_lock, threads_for_analysis(analysis_device()):
            hit = cached(kind, loaded.key, params)  # another session may have finished it meanwhile
            if hit is not None:
                return hit
            value = compute(copy.deepcopy(loaded.model))
    cache.put((kind, loaded.key, params), value)
    return value
