"""The step-0 gradient view, shared by the Build page (for the architecture chosen there) and the Gradient flow page
(while the run store is empty): one real batch through a plain net and its ResNet twin at initialisation, as a
depth profile with a band over a few seeds, the first ÷ last conv ratios and what they show.

The numbers come from `resnet_viz.analyses.init_gradients` (cached there per net, seed and batch); the figure from
`figures.init_gradient_profile`."""
from __future__ import annotations

import dataclasses

import streamlit as st

import ui
from resnet_viz import figures
from resnet_viz.analyses import init_gradients as engine
from resnet_viz.config import ModelConfig
from resnet_viz.datasets.cifar10 import load_cifar10
from resnet_viz.training.devices import analysis_device
from resnet_viz.errors import ConfigError, ResnetVizError

SEEDS_KEY = ui.KEEP_PREFIX + "init_grad_seeds"  # shared by both pages: a choice made on one holds on the other
MAX_VIEW_SEEDS = 5
DEFAULT_VIEW_SEEDS = 3


@st.cache_resource(max_entries=1, show_spinner="Reading CIFAR-10's training images (once per data folder) …")
def training_data(data_dir: str):
    """CIFAR-10 from the app's data folder, never downloaded here; raises DataError with the fix. A resource, not
    data: the 150 MB of training images are shared, never copied per rerun."""
    return load_cifar10(data_dir, download=False, progress=False)


def _draw(result, key: str | None) -> None:
    ui.plotly(figures.init_gradient_profile(result.plain, result.resnet), key=key)


def heading() -> None:
    st.subheader("Gradients at step 0, before any training")
    st.markdown(
        "**What you are looking at.** One batch of real CIFAR-10 training images goes through both nets as they are "
        "initialised, BatchNorm in training mode — step 0 of a training run — and every conv and linear layer's "
        "weight gradient is measured (its L2 norm ‖∇W‖₂). Each seed gives other starting weights and another batch "
        "(the one a run with that seed trains on first), so the band shows what is the draw and the line what is "
        "the architecture. These are the numbers a run with the same seed records at its step 0 (in fp32, on one CPU "
        "thread).")


def init_gradients_view(model: ModelConfig, key: str, with_heading: bool = True) -> None:
    """The view for `model`'s plain twin and ResNet (its `residual` is ignored). `key` prefixes the chart's key."""
    if with_heading:
        heading()
    if model.family != "cifar":
        st.info("This view covers the CIFAR nets (depth 6n+2), the ones this app trains on CIFAR-10's 32×32 images: "
                "choose the CIFAR family to see it.")
        return
    st.session_state.setdefault(SEEDS_KEY, DEFAULT_VIEW_SEEDS)
    n_seeds = st.columns([1, 2])[0].slider("Seeds", 1, MAX_VIEW_SEEDS, key=SEEDS_KEY,
                        help="How many initialisations (seeds 0, 1, …) to draw. Seed 0 is a run's default. Each "
                             "seed costs one forward and backward pass per net; seen settings answer at once.")
    seeds = tuple(range(n_seeds))
    dev = analysis_device()
    try:
        engine.check_feasible(model, device=dev)
    except ConfigError as e:
        st.warning(str(e), icon=":material/hourglass_disabled:")
        return
    try:
        data = training_data(ui.data_dir())
    except ResnetVizError as e:
        first_line = str(e).split("\n")[0]
        st.info(f"This view needs CIFAR-10's training images, and there are none to read: {first_line} Set the "
                "CIFAR-10 data folder in the sidebar (▸ Folders), or train with downloading switched on once; "
                "nothing is drawn without real images.", icon=":material/image_not_supported:")
        return

    progress = st.empty()
    first_shown = False

    def on_progress(done: int, total: int, message: str) -> None:
        if done < total:
            then = "Seed 0 is drawn; the band of the other seeds follows. " if first_shown else ""
            progress.progress(done / max(1, total), text=then + message)
        else:
            progress.empty()

    chart = st.empty()
    try:
        if len(seeds) > 1 and not engine.is_cached(model, data, seeds, device=dev):
            with chart.container():  # the first seed's answer first; the band replaces it when the rest are in
                _draw(engine.init_gradients(model, data, seeds[:1], device=dev, on_progress=on_progress), None)
            first_shown = True
        result = engine.init_gradients(model, data, seeds, device=dev, on_progress=on_progress)
    except ConfigError as e:  # refused on second thought (the machine became busy), or memory ran short
        progress.empty()
        st.warning(str(e), icon=":material/hourglass_disabled:")
        return
    with chart.container():
        _draw(result, f"{key}_init_grad_profile")
    finding = figures.init_gradient_finding(result.plain, result.resnet)
    c_ratios, c_note = st.columns([2, 2.2])
    with c_ratios:
        st.markdown("**First layer ÷ last conv layer** (median over the seeds)")
        c_plain, c_res = st.columns(2)
    for col, net, words in ((c_plain, result.plain, finding["plain"]), (c_res, result.resnet, finding["resnet"])):
        r = words["ratio"]
        col.metric(net.label, figures.format_ratio(r["median"]),
                   help=f"‖∇W {net.layer_names[0]}‖ ÷ ‖∇W {words['last_conv']}‖, median over the seeds"
                        + (f"; range {figures.format_ratio(r['min'])} to {figures.format_ratio(r['max'])}"
                           if len(seeds) > 1 else ""))
    with c_note:
        st.markdown(f"**What the numbers show.** {finding['sentence']}")
    st.caption(f"Batch of {result.batch_size} images drawn from {result.images:,} training images, seeds "
               f"{', '.join(map(str, seeds))}, on the {result.device.upper()}"
               + (f"; computed in {result.seconds:.1f} s." if result.computed else "; from the cache.")
               + " These are gradients before any update: they show how each net passes a gradient back at the "
                 "start, not how well it will train. He et al. report that with BatchNorm their plain nets' "
                 "gradients stay healthy and call degradation an optimisation difficulty; switch BatchNorm off to "
                 "see what the gradients do without it.")


def build_config_model() -> ModelConfig:
    """The Build page's chosen architecture if it is a CIFAR net, else plain-56's and resnet-56's."""
    fields = st.session_state.get("build_config")
    if fields and fields.get("family") == "cifar":
        return ModelConfig(**fields)
    return ModelConfig(depth=56)


PAPER_DEPTHS = (8, 14, 20, 32, 44, 56, 110, 1202)


def standalone_view(key: str) -> None:
    """The view with its own depth and BatchNorm controls (starting from the Build page's choice), for pages without
    an architecture of their own."""
    heading()
    model = build_config_model()
    depth_key, bn_key = f"{ui.KEEP_PREFIX}{key}_depth", f"{ui.KEEP_PREFIX}{key}_bn"
    st.session_state.setdefault(depth_key, model.depth if model.depth in PAPER_DEPTHS else 56)
    st.session_state.setdefault(bn_key, model.batchnorm)
    c_depth, c_bn = st.columns([3, 1])
    depth = c_depth.select_slider("Depth", PAPER_DEPTHS, key=depth_key,
                                  help="The paper's CIFAR depths; the Build page takes any 6n+2, a shortcut option "
                                       "and a width.")
    batchnorm = c_bn.toggle("BatchNorm", key=bn_key)
    init_gradients_view(dataclasses.replace(model, depth=int(depth), batchnorm=bool(batchnorm)), key,
                        with_heading=False)
