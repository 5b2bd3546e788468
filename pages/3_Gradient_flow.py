"""Gradient flow: per-layer gradient norms of plain and residual twins, side by side."""

import numpy as np
import streamlit as st

import ui
from resnet_viz import figures
from views.init_gradients import standalone_view

ui.page_setup("Gradient flow", "🌊")
st.title("Gradient flow")

runs = [r for r in ui.list_runs() if len(r.metrics.get("grad_norms", ())) > 0]
if not runs:
    st.caption("The L2 norm of every conv and linear layer's weight gradient, recorded during training, in depth "
               "order.")
    st.info("No runs with recorded gradient norms yet. Train a plain net and its residual twin on the **Train** "
            "page (the Degradation or Fix preset), then come back. Meanwhile, here is what depth does to the "
            "gradients before any training:")
    standalone_view("gradflow")
    st.stop()

chosen = ui.pick_runs("grad_runs", runs, "Runs to compare (a plain/residual pair of equal depth is the classic view)")
if not chosen:
    st.info("Pick at least one run.")
    st.stop()
series = [figures.RunSeries.from_run(r) for r in chosen]  # what the run figures take
every = sorted({int(np.median(np.diff(r.metrics["grad_norm_step"]))) if len(r.metrics["grad_norm_step"]) > 1
                else 1 for r in chosen})
st.caption("The L2 norm of every conv and linear layer's weight gradient, in depth order, recorded from step 0 "
           "(before the first update) "
           + ("at every training step." if every == [1] else
              f"every {' or '.join(str(e) for e in every)} training steps."))

# -------------------------------------------------------------------------------------------------- heatmaps ----
st.subheader("Every layer at every step")
zmin, zmax = figures.shared_color_range(*(r.metrics["grad_norms"] for r in chosen))
cols = st.columns(1 if ui.presentation() else min(len(chosen), 2))  # a projector needs them full width
for i, run in enumerate(chosen):
    with cols[i % len(cols)]:
        heatmap = figures.grad_norm_heatmap(run.metrics["grad_norms"], run.metrics["grad_norm_step"],
                                            run.layer_names, title=ui.run_name(run), zmin=zmin, zmax=zmax)
        ui.plotly(heatmap, key=f"heat_{run.id}")
findings = [(run, figures.gradient_flow_finding(run.metrics["grad_norms"], run.layer_names, run.metrics.get("loss"),
                                                run.metrics["grad_norm_step"], ui.final_train_error(run)))
            for run in chosen]
st.markdown("**What you are looking at.** One row per layer (input at the top, classifier at the bottom), one "
            "column per recorded step, colour = log₁₀ of the gradient norm, on one shared colour scale so the "
            "panels compare colour for colour. Bright rows get large gradients, dark rows small ones. He et al. "
            "report that with BatchNorm their plain nets' gradients keep healthy norms: the degradation problem is "
            "an optimisation difficulty, not vanishing gradients. Read your runs against that — what they show "
            "(the ratio is defined below the ratio chart):")
st.markdown("\n".join(f"- **{ui.run_name(run)}**: {f['sentence']}." for run, f in findings))
if any(f["stuck"] and f["trend"] == "fades" for _, f in findings):
    st.caption("A brief run is not the paper's 64,000 iterations: a deep plain net that stalls early can end with "
               "faint early-layer gradients. That is a net that has not learned — compare its first column, "
               "where BatchNorm's gradients are large at the input end — not evidence that vanishing gradients "
               "caused the stall. The “Without BatchNorm” preset shows what gradients do without BN.")

# -------------------------------------------------------------------------------------------------- profiles ----
st.subheader("Depth profiles at chosen steps")
longest = max(int(r.metrics["grad_norm_step"][-1]) for r in chosen)
step_options = sorted({0, longest // 2, longest} | set(range(0, longest + 1, max(1, longest // 10))))
steps_key = ui.KEEP_PREFIX + "grad_steps"
if steps_key in st.session_state:  # a choice made for longer runs may not exist for these
    st.session_state[steps_key] = [s for s in st.session_state[steps_key] if s in step_options]
c1, c2, c3 = st.columns([2.4, 1, 1.3])
with c1:
    steps = st.multiselect("Steps", step_options, key=steps_key,
                           on_change=ui.follow_data(steps_key, sorted({0, longest // 2, longest})))
with c2:
    log_y = st.toggle("Log scale", True, key=ui.KEEP_PREFIX + "grad_log")
with c3:
    relative_key = ui.KEEP_PREFIX + "grad_relative"
    several_depths = len({r.config.model.depth for r in chosen}) > 1
    relative = st.toggle("Relative depth", key=relative_key, on_change=ui.follow_data(relative_key, several_depths),
                         help="Put depth on 0…1 so nets of different depth overlay.")
ui.plotly(figures.grad_norm_profiles(series, steps_to_show=steps or None, log_y=log_y, relative_depth=relative),
          key="profiles")
st.markdown("**What you are looking at.** Each line is one run at one step: gradient norm (y) against layer depth "
            "(x). Plain and residual nets are overlaid on one log scale. In a plain net every gradient must pass "
            "back through every layer; in a ResNet the shortcuts carry it past the blocks, so its profile is "
            "typically flatter across depth.")

# ----------------------------------------------------------------------------------------------------- ratio ----
st.subheader("First layer ÷ last conv layer")
ui.plotly(figures.first_last_ratio_figure(series, log_y=True), key="ratio")
st.markdown(figures.RATIO_DEFINITION)
ui.small_table([{"run": ui.run_name(run),
                 "start at step": f["start_step"], "ratio at the start": figures.format_ratio(f["ratio_start"]),
                 "end: steps": f"{f['end_steps'][0]:,}–{f['end_steps'][1]:,}" if f["end_steps"] else "—",
                 "ratio at the end": figures.format_ratio(f["ratio_end"])} for run, f in findings])
st.markdown("**What you are looking at.** The ratio per recorded step. A ratio far below 1 would mean the gradient "
            "fades on its way back to the input (vanishing gradients). He et al. argue that with BatchNorm this "
            "does not happen in their plain nets either — the degradation they see is an optimisation difficulty, "
            "not vanishing gradients — so read the numbers for what they show on *your* runs. Train the “Without "
            "BatchNorm” preset to see gradients that really do vanish or explode.")
