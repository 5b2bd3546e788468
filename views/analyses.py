"""The Analyses page's six sections: each a render function with its widgets, chart and prose, listed in SECTIONS.

Adding an analysis: a module in resnet_viz/analyses, a figure builder, and one `Section` entry here. Results are
computed once per model, parameters and images and kept in the shared `views.models.result_cache`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import streamlit as st
from PIL import Image

import ui
from resnet_viz import analyses as A
from resnet_viz import figures as AP
from resnet_viz.datasets.cifar10 import CIFAR10_CLASSES
from resnet_viz.errors import ResnetVizError
from resnet_viz.lecture.learning import learned, learning_phrase
from views.analysis_selection import K, Entry, Selection, analysed, each, load_entries, names
from views.models import budget_images, cached, random_lesion_images


# --------------------------------------------------------------------------------------------- 1. response std ----
def response_std_section(sel: Selection) -> None:
    st.subheader("Layer responses (He et al. 2015, Fig. 7)")
    t1, t2 = st.columns([1, 2])  # room for the second toggle's label in presentation mode's larger type
    log_y = t1.toggle("Log scale", False, key=K + "std_log")
    by_size = t2.toggle("Sort layers by std (the paper's lower panel)", False, key=K + "std_sorted")
    results = each("response_std", sel.entries, (sel.images_key,), lambda m: A.response_std(m, sel.images))
    if results:
        ui.plotly(AP.response_std_figure([e.series(r) for e, r in results], log_y=log_y,
                                         sort_by_magnitude=by_size), key="an_std")
    st.markdown(
        "**What this shows.** For every conv layer, the standard deviation of its response: the output of the BN "
        "that follows the conv, before the ReLU and (in a ResNet) before the shortcut is added, over "
        f"{sel.n_images:,} test images in eval mode. He et al. found that their trained ResNets respond more weakly "
        "than the plain nets, and deeper ResNets more weakly still — support for their argument that residual "
        "functions tend to be closer to zero than unreferenced ones. Whether your runs show it depends on how "
        "long they trained: the paper's nets trained for 64k iterations. "
        + ("**On fresh models** BN's statistics were just measured on these very images and its scale γ is 1, so "
           "every response has a std of about 1 by construction: nothing to compare until training has shaped "
           "BN's learned scale and shift." if sel.fresh else
           "A net trained without BN shows raw conv outputs here, on a different scale."))


# -------------------------------------------------------------------------------------------- 2. branch ratios ----
def branch_ratio_section(sel: Selection) -> None:
    st.subheader("Residual-branch ratio ‖F(x)‖ / ‖shortcut(x)‖")
    residual = [e for e in sel.entries if e.residual]
    plain = [e for e in sel.entries if not e.residual]
    if plain:
        st.info(f"{names(plain)} {'is a plain net' if len(plain) == 1 else 'are plain nets'}: a plain block has no "
                "shortcut, so there is no ‖F(x)‖/‖shortcut(x)‖ to measure — the ratio is defined for residual blocks "
                "only. "
                + ("Add a ResNet (e.g. the twin of the same depth) to see it." if not residual else
                   "The chart shows the residual model(s)."))
    if residual:
        log_br = st.toggle("Log scale", True, key=K + "branch_log",
                           help="Ratios can span orders of magnitude from block to block.")
        results = each("branch_ratios", residual, (sel.images_key,), lambda m: A.branch_ratios(m, sel.images))
        if results:
            ui.plotly(AP.branch_ratio_figure([e.series(r) for e, r in results], log_y=log_br), key="an_branch")
        recorded = 0
        for e in ([] if sel.fresh else residual):  # an untrained model has no training history
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
        if not recorded and not sel.fresh:
            st.caption("None of these runs recorded the ratios during training (runs trained with "
                       "`branch_ratio_every` = 0, or before it existed). Newer runs log them every 10 steps "
                       "and show them here, step by step.")
    st.markdown(
        "**What this shows.** For each residual block, ‖F(x)‖ — the residual branch's output after its last BN, "
        "before the addition — divided by ‖shortcut(x)‖, the norm of what arrives through the shortcut, per image "
        f"and then averaged over {sel.n_images:,} test images. At an identity block shortcut(x) is x itself; at a "
        "downsampling block it is x subsampled and zero-padded (option A), about half of ‖x‖ — so there the ratio "
        "is about twice ‖F(x)‖/‖x‖ and not directly comparable with the identity blocks'. He et al. argue that when "
        "an identity mapping is close to optimal, the solver can simply push F towards zero; a ratio well below 1 "
        "means the block makes a small correction to what passes through it, one near or above 1 that it rewrites "
        "it. Small ratios are what the argument predicts, not a guarantee: read what your "
        "runs show" + (" — and these are untrained nets, whose branches are as large as random weights make "
                       "them." if sel.fresh else "."))


# -------------------------------------------------------------------------------------------------- 3. lesions ----
def lesion_section(sel: Selection) -> None:
    st.subheader("Lesion study (Veit et al. 2016)")
    fixed = []
    for e in sel.entries:
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
    most = max(sum(1 for _ in e.model.blocks()) for e in sel.entries)
    k_max = l2.slider("Delete up to k blocks (random study)", 1, most, min(8, most), key=K + "lesion_k")
    draws = l3.slider("Draws per k", 1, 20, 5, key=K + "lesion_draws")
    max_images = int(lesion_images) or None

    def removable(e: Entry) -> int:
        return sum(1 for _, b in e.model.blocks() if b.shortcut is not None or not b.changes_shape)

    single_params = (sel.images_key, max_images)
    random_params = (sel.images_key, max_images, int(k_max), int(draws))
    b1, b2 = st.columns(2)
    go_single = b1.button("Compute: delete each block alone", key="an_lesion_single_go", type="primary")
    go_random = b2.button("Compute: delete k random blocks", key="an_lesion_random_go", type="primary")

    single = [(e, cached("lesion_single", e.key, single_params)) for e in sel.entries]
    if go_single:
        single = each("lesion_single", sel.entries, single_params,
                      lambda m: A.lesion_single(m, sel.images, sel.labels, max_images=max_images))
    single = [(e, r) for e, r in single if r is not None]
    if single:
        used = ", ".join(f"{e.label}: {r['images']}" for e, r in single)
        ui.plotly(AP.lesion_single_figure([e.series(r) for e, r in single]), key="an_lesion_single")
        st.caption(f"Images used per model — {used}.")
    else:
        st.caption("Press **Compute: delete each block alone** to run the single-block study.")

    def random_study(e: Entry):
        ks = range(0, min(int(k_max), removable(e)) + 1)
        return lambda m: A.lesion_random(m, sel.images, sel.labels, k_values=ks, draws=int(draws),
                                         max_images=max_images)

    randoms = [(e, cached("lesion_random", e.key, random_params)) for e in sel.entries]
    if go_random:
        randoms = []
        for e in sel.entries:
            try:
                randoms.append((e, analysed("lesion_random", e, random_params, random_study(e))))
            except ResnetVizError as err:
                st.error(f"{e.label}: {err}")
    randoms = [(e, r) for e, r in randoms if r is not None]
    intact = {e.label: r["baseline"] for e, r in single}
    intact.update({e.label: float(np.mean(r[0])) for e, r in randoms if r.get(0) and e.label not in intact})
    at_chance = [f"{label} ({learning_phrase(1 - acc).replace('training error', 'error on these images')})"
                 for label, acc in intact.items() if learned(1 - acc) is False]
    if at_chance and not sel.fresh:
        st.warning(f"{', '.join(at_chance)}: the intact net has not learned, so deleting blocks has nothing to "
                   "take away — the lesion study can only show something on a net that has learned. Train longer, "
                   "or pick another run.")
    if randoms:
        ui.plotly(AP.lesion_random_figure([e.series(r) for e, r in randoms]), key="an_lesion_random")
        short = [e for e, _ in randoms if removable(e) < k_max]
        if short:
            st.caption(" ".join(f"{e.label} has only {removable(e)} removable blocks, so its curve stops at "
                                f"k = {removable(e)}." for e in short))
        differing = []  # "plain-56: 14.2% on 32 images vs 19.0% on 64", where the two studies' k = 0 disagree
        for e, r in randoms:
            one = next((result for f, result in single if f.label == e.label), None)
            if one is None or not r.get(0) or abs(100 * (one["baseline"] - float(np.mean(r[0])))) < 0.05:
                continue
            ks = tuple(range(0, min(int(k_max), removable(e)) + 1))
            n = random_lesion_images(e.key, sel.images_key, ks, int(draws), max_images, e.model, sel.images)
            differing.append(f"{e.label}: {100 * one['baseline']:.1f}% on {one['images']} images vs "
                             f"{100 * float(np.mean(r[0])):.1f}% on {n}")
        if differing:
            st.caption(f"**Why the intact accuracies differ between the two charts** ({'; '.join(differing)}): each "
                       "study evaluates its own class-balanced subset of the test images, sized to its own time "
                       "budget, and on a few dozen images one image is a few points. Set **Images** above to one "
                       "number and both studies use the same images and agree at k = 0.")
    else:
        st.caption("Press **Compute: delete k random blocks** to run the random study.")
    st.markdown(
        "**What this shows.** Veit et al. deleted blocks from trained networks at test time. In a ResNet the "
        "shortcuts give every block's input another way forward, so the net behaves like a collection of many "
        "paths of different lengths: deleting one block removes only the paths through it, and accuracy falls "
        "smoothly as more blocks go (their Fig. 5) — except at some downsampling blocks, which hurt more. Deleting "
        "a layer of a plain net (VGG in their study) breaks its only path, and accuracy drops to about chance. "
        "Dashed lines are each model's intact accuracy; the dotted line is chance; a block that cannot be deleted "
        "has no bar, only a ✕ on the axis; error bars are ± one standard "
        "deviation over the random draws. Accuracies come from a small class-balanced subset, so differences of "
        "a few points are noise" + (". On untrained nets every variant is near chance; there is nothing to lose."
                                    if sel.fresh else "."))


# ------------------------------------------------------------------------------------------- 4. loss landscape ----
def landscape_section(sel: Selection) -> None:
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
    d1, d2, d3 = st.columns([1, 0.8, 1.6])  # the last holds two toggles with long labels
    seed = d1.number_input("Direction seed", 0, 10_000, 0, key=K + "land_seed",
                           help="Another seed draws other random directions: another slice of the landscape.")
    log_scale = d2.toggle("Log scale", True, key=K + "land_log")
    surface = d3.toggle("3-D surface", False, key=K + "land_surface", disabled=not two_d)
    shared = d3.toggle("One colour scale for all maps", True, key=K + "land_shared", disabled=not two_d,
                       help="Off: each map uses its own range, which shows a flat landscape's detail but makes "
                            "colours incomparable between models.")
    land_max = int(land_images) or None
    evaluations = grid * grid if two_d else grid
    sizes = {e.label: budget_images(e.key, sel.images_key, evaluations, land_max, e.model, sel.images)
             for e in sel.entries}
    st.caption(f"{evaluations} evaluations per model on "
               + ", ".join(f"{n} images ({label})" for label, n in sizes.items()) + ".")
    params = ("2d" if two_d else "1d", sel.images_key, int(grid), float(span), int(seed), land_max)
    kind = "landscape"
    done = [(e, cached(kind, e.key, params)) for e in sel.entries]
    if st.button("Compute the landscape", key="an_landscape_go", type="primary"):
        bar = st.progress(0.0, text="Starting…")
        done = []
        for i, e in enumerate(sel.entries):
            def progress(fraction, i=i, e=e):
                bar.progress(min(1.0, (i + fraction) / len(sel.entries)),
                             text=f"{e.label}: {round(fraction * evaluations)} of {evaluations} evaluations")

            if two_d:
                def compute(m, progress=progress):
                    a, b, z = A.loss_landscape_2d(m, sel.images, sel.labels, grid=int(grid), span=float(span),
                                                  seed=int(seed), progress=progress, max_images=land_max)
                    return {"alphas": a, "betas": b, "losses": z}
            else:
                def compute(m, progress=progress):
                    a, z, acc = A.loss_landscape_1d(m, sel.images, sel.labels, points=int(grid), span=float(span),
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
        # one map per row on a projector: two side by side shrink each square map far below its colour bar
        cols = st.columns(1 if ui.presentation() else min(2, len(done)))
        for i, (e, r) in enumerate(done):
            with cols[i % len(cols)]:
                ui.plotly(AP.landscape_2d_figure(r["alphas"], r["betas"], r["losses"], title=e.label,
                                                 log_z=log_scale, zmin=zmin, zmax=zmax, surface=surface,
                                                 origin_label="the initial weights" if sel.fresh
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
        + ("measured on these images" if sel.fresh else "trained") + "; every point is evaluated in eval mode on the "
        "same class-balanced test images. In their plots, ResNet-56's landscape is smooth and nearly convex, "
        "while the plain 56-layer net's is chaotic, with the difference growing with depth — at depth 20 both "
        "look fairly convex. A coarse grid, a few images and one pair of random directions show one rough slice, "
        "so expect a hint of the paper's picture rather than a copy of it; another seed gives another slice."
        + (" These are untrained nets: the centre is a random initialisation, not a minimum." if sel.fresh else ""))


# -------------------------------------------------------------------------------------- 5. shattered gradients ----
def shattering_section(sel: Selection) -> None:
    st.subheader("Shattered gradients (Balduzzi et al. 2017)")
    if ui.presentation():  # a projector's larger type: two rows, or the labels are cut ("At initi…")
        s0, s1, s2 = st.columns(3)
        s3, s4 = st.columns([1, 2])
    else:
        s0, s1, s2, s3, s4 = st.columns([1.4, 1, 1, 1, 2])
    # Balduzzi et al.'s result is about networks at initialisation: this tab starts there whatever the page shows.
    at_init = sel.fresh or s0.toggle("At initialisation", True, key=K + "shatter_at_init",
                                     help="Balduzzi et al. compare networks at initialisation: on (the default), the "
                                          "chosen runs' architectures freshly initialised (seed 0); off, their "
                                          "trained weights.")
    which = s1.number_input("Image", 0, sel.n_images - 1, 0, key=K + "shatter_image",
                            help="Which of the chosen test images the line of inputs goes through.")
    points = s2.select_slider("Points on the line", (16, 32, 64, 128, 256), value=64, key=K + "shatter_points")
    epsilon = s3.select_slider("Half-length ε", (0.1, 0.3, 1.0, 3.0, 10.0), value=1.0, key=K + "shatter_eps",
                               help="In normalised-input units (L2 distance): 1.0 moves each value by ~1/55 of a "
                                    "pixel's std.")
    view = s4.radio("Show", AP.SHATTER_VIEWS, horizontal=True, key=K + "shatter_view",
                    format_func={"autocorrelation": "autocorrelation vs lag", "cosine": "gradient cosine vs lag",
                                 "signal": "the gradient signal"}.get)
    entries = sel.entries if sel.fresh or not at_init else load_entries(
        [e.run for e in sel.entries], True, sel.images, sel.images_key)
    which = min(int(which), sel.n_images - 1)
    image = sel.images[which]
    params = (sel.images_key, which, int(points), float(epsilon))
    results = each("shattering", entries, params,
                   lambda m: A.gradient_shattering(m, image, points=int(points), epsilon=float(epsilon)))
    # a gradient that is zero all along the line has nothing to correlate: no numbers, no line on the chart
    numbers = [AP.shattering_numbers(r) if np.any(np.asarray(r["signal"]) != 0)
               or np.any(np.asarray(r["pixel_signal"]) != 0) else None for _, r in results]
    drawn = [(e, r, n) for (e, r), n in zip(results, numbers) if n is not None]
    if results:
        key = AP.shattering_headline([n for _, _, n in drawn])
        lag = max([n["far_lag"] for _, _, n in drawn], default=0)
        name, meaning = (t.format(lag=lag) for t in AP.SHATTER_MEASURES[key])
        p1, *metric_cols = st.columns(1 + len(results))
        p1.image(Image.fromarray(image.permute(1, 2, 0).numpy()).resize((96, 96), Image.Resampling.NEAREST),
                 caption=f"true: {CIFAR10_CLASSES[int(sel.labels[which])]}")
        for col, (e, r), n in zip(metric_cols, results, numbers):
            col.metric(e.label, "undefined" if n is None else f"{n[key]:.3f}", help=f"{name}: {meaning}.")
            col.caption(f"{name} · gradient of the “{CIFAR10_CLASSES[r['predicted_class']]}” logit (its "
                        "prediction)")
            if n is None:
                col.warning("The gradient is exactly zero all along the line: this model's output does not "
                            "depend on the input here (e.g. every unit of some layer is dead). There is nothing "
                            "to correlate — that is not the same as shattered. It is left out of the chart.")
        if drawn:
            ui.plotly(AP.shattering_figure([e.series(r) for e, r, _ in drawn], view=view), key="an_shatter")
            st.caption(f"The number above each model is its **{name}** ({meaning}): of the three summaries below, "
                       "the one on which these models differ most.")
            ui.small_table([{"model": e.label, **{AP.SHATTER_MEASURES[k][0].format(lag=lag): round(n[k], 4)
                                                  for k in AP.SHATTER_MEASURES}} for e, _, n in drawn])
    st.markdown(
        "**What this shows.** Balduzzi et al. found that as plain feedforward nets get deeper, the gradient with "
        "respect to the input, taken at nearby inputs, decorrelates until it looks like white noise — it "
        "“shatters”, and a gradient that carries so little structure is a poor guide for learning — while in "
        "ResNets the correlation decays far more slowly with depth. Here the inputs are "
        f"{int(points)} points on a straight line through one test image (x + t·d, |t| ≤ ε, d random); at each, "
        "the gradient of the logit of the class the model predicts for the image. Their analysis is about networks "
        "at initialisation — "
        + ("as here: fresh nets, seed 0, BN statistics measured on the chosen test images. At depth 56 a plain "
           "net's neighbouring gradients are already nearly unrelated (cosine ≈ 0), its twin's almost parallel."
           if at_init else
           "these are trained nets, which need not behave the same way: their whole gradients share a large common "
           "part, so neighbours' cosines sit near 1 for every net, and a trained plain net can even decorrelate "
           "more slowly than its twin.")
        + " One image and one line are one sample: try other images before drawing conclusions.")


# ----------------------------------------------------------------------------------------------- 6. dead ReLUs ----
def dead_relus_section(sel: Selection) -> None:
    st.subheader("Dead ReLUs")
    results = each("dead_relus", sel.entries, (sel.images_key,), lambda m: A.dead_relus(m, sel.images))
    if results:
        ui.plotly(AP.dead_relu_figure([e.series(r) for e, r in results]), key="an_dead")
        st.markdown(AP.dead_relu_takeaway([e.series(r) for e, r in results]))
        ui.small_table([{"model": e.label, "ReLU layers": len(r),
                         "dead units, mean %": round(100 * float(np.mean([v for _, v in r])), 2) if r else None,
                         "layers entirely dead": sum(1 for _, v in r if v >= 1.0)} for e, r in results])
    st.markdown(
        "**What this shows.** For each ReLU, the share of its units (channel × position) that output zero for "
        f"every one of the {sel.n_images:,} test images. A dead unit passes neither signal forward nor gradient "
        "back. In a plain net everything must pass through every layer, so dead units narrow the only path; in "
        "a ResNet a block's input also travels around it through the shortcut (a ResNet's block-output ReLU sits "
        "after the addition). How many units die depends on the net and its training; a layer that is almost "
        "entirely dead is a warning sign, as after a diverged run or a learning rate too high for the net. "
        "“Dead” is measured on these images only: more images can only lower it.")


# ------------------------------------------------------------------------------------------------ the registry ----
@dataclass(frozen=True)
class Section:
    """One tab of the page: its title and the function that draws it for the chosen models and images."""
    title: str
    render: Callable[[Selection], None]


SECTIONS = (
    Section("Response std", response_std_section),
    Section("Branch ratio", branch_ratio_section),
    Section("Lesion study", lesion_section),
    Section("Loss landscape", landscape_section),
    Section("Shattered gradients", shattering_section),
    Section("Dead ReLUs", dead_relus_section),
)
