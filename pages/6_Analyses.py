"""Analyses: six measurements on trained (or fresh) plain nets and their ResNet twins that explain, each from its own
angle, why residual nets train better. The work is `resnet_viz.analysis`, the figures `resnet_viz.analysis_plots`."""
import copy
import os
import sys
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import streamlit as st  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

import ui  # noqa: E402
from resnet_viz import analyses as A  # noqa: E402
from resnet_viz import analysis_plots as AP  # noqa: E402
from resnet_viz.data import CIFAR10_CLASSES, load_cifar10, stratified_subset  # noqa: E402
from resnet_viz.errors import ResnetVizError  # noqa: E402
from resnet_viz.models import build_model  # noqa: E402

K = ui.KEEP_PREFIX + "an_"  # widget keys that survive page switches
IMAGE_COUNTS = (16, 32, 64, 128, 256, 512, 1000, 2000, 5000, 10000)
SECTIONS = ("Response std", "Branch ratio", "Lesion study", "Loss landscape", "Shattered gradients", "Dead ReLUs")

ui.page_setup("Analyses", "🔬")
st.title("Analyses: why do residual nets train better?")
st.caption("Six measurements on a plain net and its ResNet twin, each from a paper that asked the question from its "
           "own angle. The cheap ones run when you open their tab; the expensive ones wait for their **Compute** "
           "button. Results are kept, so coming back is instant.")


# ----------------------------------------------------------------------------------------------- caches ----
@st.cache_resource(max_entries=8, show_spinner="Loading the trained weights…")
def load_trained(runs_dir: str, run_id: str, stamp: float, device: str):
    from resnet_viz.store import RunStore
    return RunStore(runs_dir).load_model(run_id, device=device)


@st.cache_data(show_spinner="Reading CIFAR-10 test images…", max_entries=2)
def test_images(data_dir: str):
    data = load_cifar10(data_dir, download=False, progress=False)
    return data.test_images, data.test_labels


@st.cache_resource(max_entries=8, show_spinner="Building the fresh model and measuring its BN statistics…")
def fresh_model(config_key: str, images_key: tuple, device: str, _config, _images):
    """The architecture at initialisation (seed 0). A fresh model's BN running statistics are 0/1, which in eval
    mode makes a deep ResNet's activations grow block after block; measure them on the images instead, as BN's
    batch statistics would be at the start of training."""
    torch.manual_seed(0)
    model = build_model(_config).to(device).eval()
    return A.calibrate_bn(model, _images) if A.bn_never_updated(model) else model


@st.cache_data(max_entries=64, show_spinner=False)
def budget_images(model_key: tuple, images_key: tuple, evaluations: int, max_images: int | None, _model, _images
                  ) -> int:
    """How many images a multi-pass analysis will use (analysis.images_for_budget; counting MACs takes a second)."""
    return A.images_for_budget(_model, _images, evaluations, max_images)


class ResultCache:
    """Analysis results keyed by (analysis, model key, parameters); the model key holds the run store folder, the
    run id and the checkpoint's mtime (fresh models: the config and the images). Lives in st.cache_resource, so it
    is shared by all sessions and survives page switches; least recently used entries go first."""

    def __init__(self, max_entries: int = 256):
        self.max_entries = max_entries
        self.entries: OrderedDict = OrderedDict()
        self.lock = threading.Lock()
        self.compute_lock = threading.Lock()  # one analysis at a time: they share the CPU cores

    def get(self, key):
        with self.lock:
            if key in self.entries:
                self.entries.move_to_end(key)
                return self.entries[key]
        return None

    def put(self, key, value) -> None:
        with self.lock:
            self.entries[key] = value
            self.entries.move_to_end(key)
            while len(self.entries) > self.max_entries:
                self.entries.popitem(last=False)


@st.cache_resource
def result_cache() -> ResultCache:
    return ResultCache()


@contextmanager
def cpu_threads():
    """On a CPU whose cores are already busy (a training run), one torch thread is several times faster than
    fighting over them (resnet_viz.analysis module docstring); restore the setting afterwards."""
    before = torch.get_num_threads()
    try:
        busy = os.getloadavg()[0] >= (os.cpu_count() or 1) - 0.5
    except OSError:
        busy = False
    if busy and DEVICE == "cpu" and before > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class Entry:
    run: object
    label: str
    model: torch.nn.Module
    key: tuple
    residual: bool
    depth: int

    def series(self, data) -> dict:
        return {"label": self.label, "data": data, "residual": self.residual, "depth": self.depth}


def cached(kind: str, entry: Entry, params: tuple):
    return result_cache().get((kind, entry.key, params))


def analysed(kind: str, entry: Entry, params: tuple, compute, spinner: str | None = None):
    """The result of compute(model) for this entry and parameters, from the cache or computed now on a private copy
    of the model (the analyses switch modes, hook layers, lesion blocks and move weights while they run; a copy
    keeps other sessions' views of the cached model untouched)."""
    hit = cached(kind, entry, params)
    if hit is not None:
        return hit
    cache = result_cache()
    with st.spinner(spinner or f"{entry.label}: measuring…"):
        with cache.compute_lock, cpu_threads():
            hit = cached(kind, entry, params)  # another session may have finished it meanwhile
            if hit is not None:
                return hit
            value = compute(copy.deepcopy(entry.model))
    cache.put((kind, entry.key, params), value)
    return value


def each(kind: str, params: tuple, compute, only=None) -> list[tuple[Entry, object]]:
    """(entry, result) for every chosen model (or those in `only`); a failure is shown for that model, not raised."""
    out = []
    for e in (entries if only is None else only):
        try:
            out.append((e, analysed(kind, e, params, compute)))
        except ResnetVizError as err:
            st.error(f"{e.label}: {err}")
    return out


def names(items: list[Entry]) -> str:
    labels = [f"**{e.label}**" for e in items]
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]


# -------------------------------------------------------------------------------------------- selection ----
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

all_runs = ui.list_runs(with_metrics=False)
if not all_runs:
    st.info("The run store is empty, so there is nothing to analyse yet. Train a plain net and its ResNet twin on "
            "the **Train** page (the “All four” or “The fix” preset), then come back. (Run store: "
            f"`{ui.runs_dir()}` — change it in the sidebar under ▸ Folders.)")
    st.stop()

c1, c3 = st.columns([4, 1], vertical_alignment="bottom")
c2 = st.container()
with c2:
    fresh = st.toggle("Use fresh (untrained) models instead", False, key=K + "fresh",
                      help="The chosen runs' architectures, randomly initialised (seed 0) — the networks as they are "
                           "before any training. Their BN statistics are measured on the chosen test images.")
candidates = all_runs if fresh else [r for r in all_runs if r.has_checkpoint]
if not candidates:
    st.info("None of the runs has saved weights yet (a run keeps its weights when it finishes or is stopped). Wait "
            "for a run to finish, or switch on **Use fresh (untrained) models instead** to analyse the untrained "
            "architectures.")
    st.stop()
with c1:
    chosen = ui.pick_runs("analysis_runs", candidates,
                          "Runs to analyse (a plain/residual pair of equal depth is the classic comparison)")
with c3:
    n_wanted = st.select_slider("Test images", IMAGE_COUNTS, value=256, key=K + "images",
                                help="A class-balanced subset of the CIFAR-10 test set. The one-pass analyses use all "
                                     "of them; the lesion study and the loss landscape use a budget-sized part.")
if not chosen:
    st.info("Pick at least one run — ideally a plain net and its ResNet twin of the same depth.")
    st.stop()

try:
    all_images, all_labels = test_images(ui.data_dir())
except ResnetVizError as e:
    st.error(str(e))
    st.info("The analyses run on CIFAR-10 test images. Set the CIFAR-10 data folder in the sidebar (▸ Folders), or "
            "start the app with RESNET_VIZ_DATA pointing at it.")
    st.stop()
n_images = min(int(n_wanted), len(all_labels))
subset = stratified_subset(all_labels, n_images, seed=0)
images, labels = all_images[subset], all_labels[subset]
images_key = (ui.data_dir(), n_images)

entries: list[Entry] = []
for run in chosen:
    cfg = run.config.model
    label = ui.run_name(run) + (" · untrained" if fresh else "")
    try:
        if fresh:
            model = fresh_model(repr(cfg), images_key, DEVICE, cfg, images)
            key = ("fresh", repr(cfg), DEVICE) + images_key
        else:
            stamp = (run.path / "checkpoint.safetensors").stat().st_mtime
            model = load_trained(ui.runs_dir(), run.id, stamp, DEVICE)
            key = ("trained", ui.runs_dir(), run.id, stamp, DEVICE)
    except (ResnetVizError, OSError) as e:
        st.error(f"{label}: {e}")
        continue
    entries.append(Entry(run, label, model, key, bool(cfg.residual), int(cfg.depth)))
if not entries:
    st.stop()

depths = {e.depth for e in entries}
kinds = {e.residual for e in entries}
note = []
if kinds != {True, False}:
    note.append("all chosen models are " + ("residual" if True in kinds else "plain")
                + " — add the twin to compare")
elif len(depths) > 1:
    note.append("the chosen models differ in depth — a twin pair of one depth isolates the shortcuts' effect")
st.caption(f"{len(entries)} model(s) · {n_images:,} class-balanced CIFAR-10 test images · eval mode on {DEVICE}"
           + (" · untrained: seed-0 He initialisation, BN statistics measured on these images" if fresh else "")
           + (f" · note: {note[0]}" if note else ""))
st.info("**BatchNorm's part.** Every analysis here runs with the nets as built. To see what BN itself contributes, "
        "the **Train** page has a “Without BatchNorm” preset (plain-20 with BN on and off), and the **Gradient flow** "
        "page shows the BN-off run next to its BN-on twin; such runs can be analysed here too.", icon="ℹ️")

tabs = st.tabs([f"{i} · {s}" for i, s in enumerate(SECTIONS, start=1)], key="analysis", bind="query-params")


def is_open(i: int) -> bool:
    return tabs[i].open is not False  # None (no state tracking) means every tab runs


# ------------------------------------------------------------------------------------ 1. response std ----
if is_open(0):
    with tabs[0]:
        st.subheader("Layer responses (He et al. 2015, Fig. 7)")
        t1, t2 = st.columns(2)
        log_y = t1.toggle("Log scale", False, key=K + "std_log")
        by_size = t2.toggle("Sort layers by std (the paper's lower panel)", False, key=K + "std_sorted")
        results = each("response_std", (images_key,), lambda m: A.response_std(m, images))
        if results:
            ui.plotly(AP.response_std_figure([e.series(r) for e, r in results], log_y=log_y,
                                             sort_by_magnitude=by_size), key="an_std")
        st.markdown(
            "**What this shows.** For every conv layer, the standard deviation of its response: the output of the BN "
            "that follows the conv, before the ReLU and (in a ResNet) before the shortcut is added, over "
            f"{n_images:,} test images in eval mode. He et al. found that their trained ResNets respond more weakly "
            "than the plain nets, and deeper ResNets more weakly still — support for their argument that residual "
            "functions tend to be closer to zero than unreferenced ones. Whether your runs show it depends on how "
            "long they trained: the paper's nets trained for 64k iterations. "
            + ("**On fresh models** BN's statistics were just measured on these very images and its scale γ is 1, so "
               "every response has a std of about 1 by construction: nothing to compare until training has shaped "
               "BN's learned scale and shift." if fresh else
               "A net trained without BN shows raw conv outputs here, on a different scale."))

# ------------------------------------------------------------------------------------ 2. branch ratios ----
if is_open(1):
    with tabs[1]:
        st.subheader("Residual-branch ratio ‖F(x)‖ / ‖x‖")
        residual = [e for e in entries if e.residual]
        plain = [e for e in entries if not e.residual]
        if plain:
            st.info(f"{names(plain)} {'is a plain net' if len(plain) == 1 else 'are plain nets'}: a plain block has no "
                    "shortcut, so there is no ‖F(x)‖/‖x‖ to measure — the ratio is defined for residual blocks only. "
                    + ("Add a ResNet (e.g. the twin of the same depth) to see it." if not residual else
                       "The chart shows the residual model(s)."))
        if residual:
            log_br = st.toggle("Log scale", True, key=K + "branch_log",
                               help="Ratios can span orders of magnitude from block to block.")
            results = each("branch_ratios", (images_key,), lambda m: A.branch_ratios(m, images), only=residual)
            if results:
                ui.plotly(AP.branch_ratio_figure([e.series(r) for e, r in results], log_y=log_br), key="an_branch")
            recorded = 0
            for e in ([] if fresh else residual):  # an untrained model has no training history
                try:
                    m = e.run.metrics
                except ResnetVizError as err:
                    st.warning(f"{e.label}: {err}")
                    continue
                steps, ratios = m.get("branch_ratio_step"), m.get("branch_ratios")
                if steps is None or ratios is None or len(steps) == 0:
                    continue
                try:
                    fig = AP.branch_ratio_training_figure(steps, ratios, A.branch_ratio_names(e.model),
                                                          label=ui.run_name(e.run), log_y=log_br)
                except ValueError as err:
                    st.warning(f"{e.label}: the recorded branch ratios cannot be drawn ({err}).")
                    continue
                ui.plotly(fig, key=f"an_branch_hist_{e.run.id}")
                recorded += 1
            if not recorded and not fresh:
                st.caption("None of these runs recorded the ratios during training (runs trained with "
                           "`branch_ratio_every` = 0, or before it existed). Newer runs log them every 10 steps "
                           "and show them here, step by step.")
        st.markdown(
            "**What this shows.** For each residual block, ‖F(x)‖ — the residual branch's output after its last BN, "
            "before the addition — divided by ‖x‖, the norm of what arrives through the shortcut, per image and "
            f"then averaged over {n_images:,} test images. He et al. argue that when an identity mapping is close to "
            "optimal, the solver can simply push F towards zero; a ratio well below 1 means the block makes a small "
            "correction to what passes through it, one near or above 1 that it rewrites it. At a downsampling block "
            "the shortcut is the subsampled, zero-padded input (option A), so its ratio is not directly comparable "
            "with the identity blocks'. Small ratios are what the argument predicts, not a guarantee: read what your "
            "runs show" + (" — and these are untrained nets, whose branches are as large as random weights make "
                           "them." if fresh else "."))

# ------------------------------------------------------------------------------------------- 3. lesions ----
if is_open(2):
    with tabs[2]:
        st.subheader("Lesion study (Veit et al. 2016)")
        fixed = []
        for e in entries:
            stuck = [n for n, b in e.model.blocks() if b.shortcut is None and b.changes_shape]
            if stuck:
                fixed.append(f"In **{e.label}**, {', '.join(f'`{n}`' for n in stuck)} cannot be removed: "
                             f"{'each' if len(stuck) > 1 else 'it'} changes the shape (stride 2, twice the channels) "
                             "and a plain net has nothing else that carries its input on to the next layer.")
        if fixed:
            st.markdown(" ".join(fixed) + " Every other plain block can be deleted (its input passes on unchanged); "
                        "every residual block can be deleted (its shortcut remains — at a downsampling block only "
                        "the subsampled, zero-padded shortcut, or the projection).")
        l1, l2, l3 = st.columns(3)
        lesion_images = l1.number_input("Images (0 = automatic)", 0, 10_000, 0, step=16, key=K + "lesion_images",
                                        help="0 sizes a class-balanced subset of the chosen test images to a CPU "
                                             "budget of about 10–30 s per model and study.")
        most = max(sum(1 for _ in e.model.blocks()) for e in entries)
        k_max = l2.slider("Delete up to k blocks (random study)", 1, most, min(8, most), key=K + "lesion_k")
        draws = l3.slider("Draws per k", 1, 20, 5, key=K + "lesion_draws")
        max_images = int(lesion_images) or None

        def removable(e: Entry) -> int:
            return sum(1 for _, b in e.model.blocks() if b.shortcut is not None or not b.changes_shape)

        single_params = (images_key, max_images)
        random_params = (images_key, max_images, int(k_max), int(draws))
        b1, b2 = st.columns(2)
        go_single = b1.button("Compute: delete each block alone", key="an_lesion_single_go", type="primary")
        go_random = b2.button("Compute: delete k random blocks", key="an_lesion_random_go", type="primary")

        single = [(e, cached("lesion_single", e, single_params)) for e in entries]
        if go_single:
            single = each("lesion_single", single_params,
                          lambda m: A.lesion_single(m, images, labels, max_images=max_images))
        single = [(e, r) for e, r in single if r is not None]
        if single:
            used = ", ".join(f"{e.label}: {r['images']}" for e, r in single)
            ui.plotly(AP.lesion_single_figure([e.series(r) for e, r in single]), key="an_lesion_single")
            st.caption(f"Images used per model — {used}.")
        else:
            st.caption("Press **Compute: delete each block alone** to run the single-block study.")

        def random_study(e: Entry):
            ks = range(0, min(int(k_max), removable(e)) + 1)
            return lambda m: A.lesion_random(m, images, labels, k_values=ks, draws=int(draws),
                                             max_images=max_images)

        randoms = [(e, cached("lesion_random", e, random_params)) for e in entries]
        if go_random:
            randoms = []
            for e in entries:
                try:
                    randoms.append((e, analysed("lesion_random", e, random_params, random_study(e))))
                except ResnetVizError as err:
                    st.error(f"{e.label}: {err}")
        randoms = [(e, r) for e, r in randoms if r is not None]
        intact = {e.label: r["baseline"] for e, r in single}
        intact.update({e.label: float(np.mean(r[0])) for e, r in randoms if r.get(0) and e.label not in intact})
        at_chance = [label for label, acc in intact.items() if acc <= 1 / len(CIFAR10_CLASSES) + 0.05]
        if at_chance and not fresh:
            st.warning(f"{', '.join(at_chance)}: even the intact net is at about chance level on these images, so "
                       "deleting blocks has nothing to take away — the lesion study can only show something on a "
                       "net that has learned. Train longer, or pick another run.")
        if randoms:
            ui.plotly(AP.lesion_random_figure([e.series(r) for e, r in randoms]), key="an_lesion_random")
            short = [e for e, _ in randoms if removable(e) < k_max]
            if short:
                st.caption(" ".join(f"{e.label} has only {removable(e)} removable blocks, so its curve stops at "
                                    f"k = {removable(e)}." for e in short))
        else:
            st.caption("Press **Compute: delete k random blocks** to run the random study.")
        st.markdown(
            "**What this shows.** Veit et al. deleted blocks from trained networks at test time. In a ResNet the "
            "shortcuts give every block's input another way forward, so the net behaves like a collection of many "
            "paths of different lengths: deleting one block removes only the paths through it, and accuracy falls "
            "smoothly as more blocks go (their Fig. 5) — except at some downsampling blocks, which hurt more. Deleting "
            "a layer of a plain net (VGG in their study) breaks its only path, and accuracy drops to about chance. "
            "Dashed lines are each model's intact accuracy; the dotted line is chance; error bars are ± one standard "
            "deviation over the random draws. Accuracies come from a small class-balanced subset, so differences of "
            "a few points are noise" + (". On untrained nets every variant is near chance; there is nothing to lose."
                                        if fresh else "."))

# ------------------------------------------------------------------------------------ 4. loss landscape ----
if is_open(3):
    with tabs[3]:
        st.subheader("Loss landscape (Li et al. 2018)")
        m1, m2, m3, m4 = st.columns(4)
        mode = m1.radio("Landscape", ("2-D plane", "1-D line"), horizontal=True, key=K + "land_mode")
        two_d = mode == "2-D plane"
        if two_d:
            grid = m2.slider("Grid (points per side)", 3, 31, 11, step=2, key=K + "land_grid",
                             help="An odd grid has the model's own weights at its centre. Cost grows with its square.")
        else:
            grid = m2.slider("Points on the line", 3, 51, 21, step=2, key=K + "land_points")
        span = m3.select_slider("Span ±", (0.25, 0.5, 1.0, 1.5, 2.0), value=1.0, key=K + "land_span",
                                help="How far to walk: α = 1 moves every filter by its own norm.")
        land_images = m4.number_input("Images (0 = automatic)", 0, 10_000, 0, step=8, key=K + "land_images",
                                      help="Images per evaluation. 0 sizes a class-balanced subset to a CPU budget "
                                           "of about 10–30 s per model (at depth 56 and an 11×11 grid: 16 images).")
        d1, d2, d3 = st.columns(3)
        seed = d1.number_input("Direction seed", 0, 10_000, 0, key=K + "land_seed",
                               help="Another seed draws other random directions: another slice of the landscape.")
        log_scale = d2.toggle("Log scale", True, key=K + "land_log")
        surface = d3.toggle("3-D surface", False, key=K + "land_surface", disabled=not two_d)
        shared = d3.toggle("One colour scale for all maps", True, key=K + "land_shared", disabled=not two_d,
                           help="Off: each map uses its own range, which shows a flat landscape's detail but makes "
                                "colours incomparable between models.")
        land_max = int(land_images) or None
        evaluations = grid * grid if two_d else grid
        sizes = {e.label: budget_images(e.key, images_key, evaluations, land_max, e.model, images) for e in entries}
        st.caption(f"{evaluations} evaluations per model on "
                   + ", ".join(f"{n} images ({label})" for label, n in sizes.items()) + ".")
        params = ("2d" if two_d else "1d", images_key, int(grid), float(span), int(seed), land_max)
        kind = "landscape"
        done = [(e, cached(kind, e, params)) for e in entries]
        if st.button("Compute the landscape", key="an_landscape_go", type="primary"):
            bar = st.progress(0.0, text="Starting…")
            done = []
            for i, e in enumerate(entries):
                def progress(fraction, i=i, e=e):
                    bar.progress(min(1.0, (i + fraction) / len(entries)),
                                 text=f"{e.label}: {round(fraction * evaluations)} of {evaluations} evaluations")

                if two_d:
                    def compute(m, progress=progress):
                        a, b, z = A.loss_landscape_2d(m, images, labels, grid=int(grid), span=float(span),
                                                      seed=int(seed), progress=progress, max_images=land_max)
                        return {"alphas": a, "betas": b, "losses": z}
                else:
                    def compute(m, progress=progress):
                        a, z, acc = A.loss_landscape_1d(m, images, labels, points=int(grid), span=float(span),
                                                        seed=int(seed), progress=progress, max_images=land_max)
                        return {"alphas": a, "losses": z, "accuracies": acc}
                try:
                    done.append((e, analysed(kind, e, params, compute, spinner=f"{e.label}: walking the landscape…")))
                except ResnetVizError as err:
                    st.error(f"{e.label}: {err}")
            bar.empty()
        done = [(e, r) for e, r in done if r is not None]
        if not done:
            st.caption("Press **Compute the landscape** — on two CPU cores the defaults take well under a minute "
                       "for a depth-20 or depth-56 pair.")
        elif two_d:
            finite = np.concatenate([r["losses"][np.isfinite(r["losses"]) & (r["losses"] > 0)].ravel()
                                     for _, r in done])
            zmin, zmax = (float(finite.min()), float(finite.max())) if finite.size and shared else (None, None)
            cols = st.columns(min(2, len(done)))
            for i, (e, r) in enumerate(done):
                with cols[i % len(cols)]:
                    ui.plotly(AP.landscape_2d_figure(r["alphas"], r["betas"], r["losses"], title=e.label,
                                                     log_z=log_scale, zmin=zmin, zmax=zmax, surface=surface,
                                                     origin_label="the initial weights" if fresh
                                                     else "the trained weights"),
                              key=f"an_land2d_{i}")
            st.caption(("One colour scale for all maps, so colours compare across models." if shared else
                        "Each map has its own colour scale: compare shapes, not colours.") + " Hover for the loss.")
        else:
            ui.plotly(AP.landscape_1d_figure([e.series(r) for e, r in done], log_y=log_scale), key="an_land1d")
        st.markdown(
            "**What this shows.** Li et al. plot the loss around a net's weights θ along random directions d: "
            "θ + α·d₁ (1-D) or θ + α·d₁ + β·d₂ (2-D). Each filter of a direction is rescaled to the norm of the "
            "same filter of θ (“filter normalisation”), so that nets whose weights differ in scale can be compared. "
            "BatchNorm's parameters get a zero direction (they stay put) and BN's running statistics stay as "
            + ("measured on these images" if fresh else "trained") + "; every point is evaluated in eval mode on the "
            "same class-balanced test images. In their plots, ResNet-56's landscape is smooth and nearly convex, "
            "while the plain 56-layer net's is chaotic, with the difference growing with depth — at depth 20 both "
            "look fairly convex. A coarse grid, a few images and one pair of random directions show one rough slice, "
            "so expect a hint of the paper's picture rather than a copy of it; another seed gives another slice."
            + (" These are untrained nets: the centre is a random initialisation, not a minimum." if fresh else ""))

# -------------------------------------------------------------------------------- 5. shattered gradients ----
if is_open(4):
    with tabs[4]:
        st.subheader("Shattered gradients (Balduzzi et al. 2017)")
        s1, s2, s3, s4 = st.columns([1, 1, 1, 2])
        which = s1.number_input("Image", 0, n_images - 1, 0, key=K + "shatter_image",
                                help="Which of the chosen test images the line of inputs goes through.")
        points = s2.select_slider("Points on the line", (16, 32, 64, 128, 256), value=64, key=K + "shatter_points")
        epsilon = s3.select_slider("Half-length ε", (0.1, 0.3, 1.0, 3.0, 10.0), value=1.0, key=K + "shatter_eps",
                                   help="In normalised-input units (L2 distance): 1.0 moves each value by ~1/55 of a "
                                        "pixel's std.")
        view = s4.radio("Show", AP.SHATTER_VIEWS, horizontal=True, key=K + "shatter_view",
                        format_func={"autocorrelation": "autocorrelation vs lag", "cosine": "gradient cosine vs lag",
                                     "signal": "the gradient signal"}.get)
        which = min(int(which), n_images - 1)
        image = images[which]
        params = (images_key, which, int(points), float(epsilon))
        results = each("shattering", params, lambda m: A.gradient_shattering(m, image, points=int(points),
                                                                            epsilon=float(epsilon)))
        if results:
            p1, *metric_cols = st.columns(1 + len(results))
            p1.image(Image.fromarray(image.permute(1, 2, 0).numpy()).resize((96, 96), Image.Resampling.NEAREST),
                     caption=f"true: {CIFAR10_CLASSES[int(labels[which])]}")
            drawn = []
            for col, (e, r) in zip(metric_cols, results):
                flat = not np.any(np.asarray(r["signal"]) != 0) and not np.any(np.asarray(r["pixel_signal"]) != 0)
                if not flat:
                    drawn.append((e, r))
                col.metric(e.label, "undefined" if flat else f"{r['neighbour_correlation']:.3f}",
                           help="Mean cosine similarity of the input gradients at neighbouring points of the line.")
                col.caption(f"gradient of the “{CIFAR10_CLASSES[r['predicted_class']]}” logit (its prediction)")
                if flat:
                    col.warning("The gradient is exactly zero all along the line: this model's output does not "
                                "depend on the input here (e.g. every unit of some layer is dead). There is nothing "
                                "to correlate — that is not the same as shattered. It is left out of the chart.")
            if drawn:
                ui.plotly(AP.shattering_figure([e.series(r) for e, r in drawn], view=view), key="an_shatter")
        st.markdown(
            "**What this shows.** Balduzzi et al. found that as plain feedforward nets get deeper, the gradient with "
            "respect to the input, taken at nearby inputs, decorrelates until it looks like white noise — it "
            "“shatters”, and a gradient that carries so little structure is a poor guide for learning — while in "
            "ResNets the correlation decays far more slowly with depth. Here the inputs are "
            f"{int(points)} points on a straight line through one test image (x + t·d, |t| ≤ ε, d random); at each, "
            "the gradient of the logit of the class the model predicts for the image. The number above is the mean "
            "cosine similarity of neighbouring points' gradients: near 1 smooth, near 0 shattered. Their analysis "
            "is about networks at initialisation — "
            + ("as here." if fresh else "switch on **fresh models** to match it; trained nets need not behave the "
                                        "same way.")
            + " One image and one line are one sample: try other images before drawing conclusions.")

# ----------------------------------------------------------------------------------------- 6. dead ReLUs ----
if is_open(5):
    with tabs[5]:
        st.subheader("Dead ReLUs")
        results = each("dead_relus", (images_key,), lambda m: A.dead_relus(m, images))
        if results:
            ui.plotly(AP.dead_relu_figure([e.series(r) for e, r in results]), key="an_dead")
            st.dataframe([{"model": e.label, "ReLU layers": len(r),
                           "dead units, mean %": round(100 * float(np.mean([v for _, v in r])), 2) if r else None,
                           "layers entirely dead": sum(1 for _, v in r if v >= 1.0)} for e, r in results],
                         hide_index=True)
        st.markdown(
            "**What this shows.** For each ReLU, the share of its units (channel × position) that output zero for "
            f"every one of the {n_images:,} test images. A dead unit passes neither signal forward nor gradient "
            "back. In a plain net everything must pass through every layer, so dead units narrow the only path; in "
            "a ResNet a block's input also travels around it through the shortcut (a ResNet's block-output ReLU sits "
            "after the addition). How many units die depends on the net and its training; a layer that is almost "
            "entirely dead is a warning sign, as after a diverged run or a learning rate too high for the net. "
            "“Dead” is measured on these images only: more images can only lower it.")
