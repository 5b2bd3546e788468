"""Train: queue plain and residual nets, watch them train live, stop them when you like."""
import streamlit as st

import ui
from resnet_viz.config import DEVICES, SCHEDULES, ModelConfig, RunConfig, TrainConfig
from resnet_viz.errors import ResnetVizError
from resnet_viz.execution.jobs import ExecutorKind, job_queue
from resnet_viz.lecture.presets import BRIEF_LR, BRIEF_RUN_STEPS, brief_run_rule
from views.custom import CONFIRM_AFTER_SECONDS, ask_to_confirm, confirmed_runs, estimate_custom
from views.live import live_charts, live_jobs
from views.presets import preset_planner

ui.page_setup("Train", "🏋️")
st.title("Train")
queue = job_queue()
where = ("on the Ray cluster, side by side" if queue.executor is ExecutorKind.RAY else
         "in the background on this machine's one device")
st.caption(f"Queue one or more models. Training runs {where} — switch pages, reload, open another tab: it keeps "
           f"going, and every tab sees and can stop every run. Finished (and stopped) runs are saved to the run store.")


def submit(configs: list[RunConfig], plans: list | None = None) -> None:
    try:
        jobs = queue.submit(configs, owner=ui.session_id(), runs_dir=ui.runs_dir(), plans=plans)
    except ResnetVizError as e:
        st.error(str(e))
        return
    st.toast(f"Queued {len(jobs)} run(s).")


def estimate_then_submit(configs: list[RunConfig]) -> None:
    """Custom runs are estimated before they queue; anything longer than CONFIRM_AFTER_SECONDS asks first."""
    try:
        plans = estimate_custom(configs)
    except ResnetVizError as e:
        st.error(str(e))
        return
    if sum(p.seconds for p in plans) > CONFIRM_AFTER_SECONDS:
        ask_to_confirm(plans)
    else:
        submit(configs, plans)


# ------------------------------------------------------------------------------------------------------- presets ----
st.subheader("Experiments sized to your time")
preset_planner()

# ---------------------------------------------------------------------------------------------------------- live ----
live_jobs()
live_charts()

# -------------------------------------------------------------------------------------------------------- custom ----
# Defaults go into the session state, not the widgets: the state keeps them across pages (ui.keep_widget_state), and
# a widget given both logs a warning.
for name, default in (("train_depths", "20, 56"), ("train_archs", ["plain", "residual"]), ("train_bn", True),
                      ("train_width", 1.0), ("train_epochs", 1.0), ("train_subset", 0), ("train_batch", 128),
                      ("train_warmup", 0), ("train_seed", 0)):
    st.session_state.setdefault(ui.KEEP_PREFIX + name, default)
with st.expander("Custom run", expanded=False):
    with st.form("custom_run"):
        c1, c2, c3 = st.columns(3)
        with c1:
            st.markdown("**Model**")
            family = st.selectbox("Family", ("cifar", "imagenet"), key=ui.KEEP_PREFIX + "train_family",
                                  format_func=lambda f: "CIFAR (6n+2)" if f == "cifar" else "ImageNet-style (18…152)")
            depths_text = st.text_input("Depths (comma-separated)", key=ui.KEEP_PREFIX + "train_depths",
                                        help="CIFAR: 6n+2 (8, 14, 20, 32, 44, 56, 110 …). ImageNet-style: 18, 34, 50, "
                                             "101, 152 (trained with the CIFAR stem on 32×32 images).")
            archs = st.multiselect("Kinds", ("plain", "residual"), key=ui.KEEP_PREFIX + "train_archs")
            shortcut = st.selectbox("Shortcut", ("default", "A", "B", "C"), key=ui.KEEP_PREFIX + "train_shortcut",
                                    help="A: zero-padding identity (the paper's CIFAR choice); B: projection where "
                                         "the shape changes; C: projection everywhere.")
            batchnorm = st.checkbox("BatchNorm", key=ui.KEEP_PREFIX + "train_bn")
            width = st.number_input("Width multiplier", 0.125, 8.0, step=0.125, key=ui.KEEP_PREFIX + "train_width")
        with c2:
            st.markdown("**Training**")
            epochs = st.number_input("Epochs", 0.1, 500.0, step=0.5, key=ui.KEEP_PREFIX + "train_epochs")
            subset = st.number_input("Training images (0 = all 50,000)", 0, 50_000, step=1000,
                                     key=ui.KEEP_PREFIX + "train_subset")
            batch_size = st.number_input("Batch size", 1, 4096, key=ui.KEEP_PREFIX + "train_batch")
            lr = st.number_input("Learning rate (empty = automatic)", 1e-5, 10.0, None, format="%.4f",
                                 key=ui.KEEP_PREFIX + "train_lr", placeholder="automatic",
                                 help="Empty: the brief-run rule below picks it, as the command line does.")
        with c3:
            st.markdown("&nbsp;")
            schedule = st.selectbox("Schedule", ("automatic", *SCHEDULES), key=ui.KEEP_PREFIX + "train_schedule",
                                    help="automatic: the brief-run rule below. step: the paper's ÷10 at 50% and 75% "
                                         "of the run; onecycle/cosine suit brief runs.")
            warmup = st.number_input("Warm-up steps at lr/10", 0, 100_000, key=ui.KEEP_PREFIX + "train_warmup")
            seed = st.number_input("Seed", 0, 2**31 - 1, key=ui.KEEP_PREFIX + "train_seed")
            device = st.selectbox("Device", DEVICES, key=ui.KEEP_PREFIX + "train_device")
        st.caption(f"**Brief-run rule** (the same as the command line's): when you leave the schedule and the "
                   f"learning rate automatic, a run under {BRIEF_RUN_STEPS:,} steps gets a one-cycle schedule "
                   f"peaking at lr {BRIEF_LR:g}; a longer one the paper's step schedule from lr 0.1.")
        queued = st.form_submit_button("Queue these runs", type="primary", key="queue_custom")
    if queued:
        try:
            depths = [int(d) for d in depths_text.replace(";", ",").split(",") if d.strip()]
        except ValueError:
            depths = []
            st.error(f"Depths must be whole numbers separated by commas, e.g. “20, 56” — got “{depths_text}”.")
        if depths and not archs:
            st.error("Pick at least one kind: plain, residual or both.")
        elif depths:
            configs = []
            try:
                chosen_schedule, chosen_lr, note = brief_run_rule(
                    float(epochs), int(subset) or None, int(batch_size), None,
                    None if schedule == "automatic" else schedule, lr)
                for depth in depths:
                    for arch in archs:
                        model = ModelConfig(family=family, depth=depth, residual=arch == "residual",
                                            shortcut=None if shortcut == "default" else shortcut,
                                            batchnorm=batchnorm, width=float(width),
                                            stem="cifar" if family == "imagenet" else None)
                        train = TrainConfig(epochs=float(epochs), subset=int(subset) or None,
                                            batch_size=int(batch_size), lr=float(chosen_lr),
                                            schedule=chosen_schedule,
                                            warmup_steps=int(warmup), seed=int(seed), device=device)
                        configs.append(RunConfig(model=model, train=train, data_dir=ui.data_dir()).validate())
            except ResnetVizError as e:
                st.error(str(e))
            else:
                if note:
                    st.info(f"Recipe: {note}")
                estimate_then_submit(configs)
    confirmed = confirmed_runs()
    if confirmed:
        submit([p.config for p in confirmed], confirmed)



st.divider()
st.markdown("**What you are looking at.** Each run's faint line is the loss of every mini-batch, the solid line its "
            "running average; the markers are evaluations on fixed sets of training and test images (no "
            "augmentation). Run a plain and a residual net of the same depth, then open **Gradient flow** and "
            "**Compare runs**.")
