"""Train: queue plain and residual nets, watch them train live, stop them when you like."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the app's root, for `ui` (also under AppTest)

import streamlit as st  # noqa: E402

import ui  # noqa: E402
from resnet_viz import figures  # noqa: E402
from resnet_viz.config import DEVICES, SCHEDULES, ModelConfig, RunConfig, TrainConfig  # noqa: E402
from resnet_viz.errors import ResnetVizError  # noqa: E402
from resnet_viz.jobs import job_queue  # noqa: E402
from resnet_viz.presets import PRESETS, describe_training, preset_runs, training_for  # noqa: E402
from resnet_viz.trainer import resolve_device  # noqa: E402

ui.page_setup("Train", "🏋️")
st.title("Train")
st.caption("Queue one or more models. Training runs in the background on this machine's one device — switch pages "
           "freely, it keeps going. Finished (and stopped) runs are saved to the run store.")

queue = job_queue()
device_type = resolve_device("auto").type


def submit(configs: list[RunConfig]) -> None:
    try:
        jobs = queue.submit(configs, owner=ui.session_id(), runs_dir=ui.runs_dir())
    except ResnetVizError as e:
        st.error(str(e))
        return
    st.toast(f"Queued {len(jobs)} run(s).")


# ------------------------------------------------------------------------------------------------------- presets ----
st.subheader("One-click experiments")
st.caption(f"Sized for this machine ({device_type.upper()}): {describe_training(training_for(device_type))}.")
cols = st.columns(len(PRESETS))
for col, preset in zip(cols, PRESETS):
    with col:
        if st.button(preset.title, key=f"preset_{preset.key}", help=preset.description, width="stretch"):
            submit(preset_runs(preset, device_type, ui.data_dir()))

# -------------------------------------------------------------------------------------------------------- custom ----
with st.expander("Custom run", expanded=False):
    with st.form("custom_run"):
        c1, c2, c3 = st.columns(3)
        with c1:
            st.markdown("**Model**")
            family = st.selectbox("Family", ("cifar", "imagenet"), key=ui.KEEP_PREFIX + "train_family",
                                  format_func=lambda f: "CIFAR (6n+2)" if f == "cifar" else "ImageNet-style (18…152)")
            depths_text = st.text_input("Depths (comma-separated)", "20, 56", key=ui.KEEP_PREFIX + "train_depths",
                                        help="CIFAR: 6n+2 (8, 14, 20, 32, 44, 56, 110 …). ImageNet-style: 18, 34, 50, "
                                             "101, 152 (trained with the CIFAR stem on 32×32 images).")
            archs = st.multiselect("Kinds", ("plain", "residual"), default=["plain", "residual"],
                                   key=ui.KEEP_PREFIX + "train_archs")
            shortcut = st.selectbox("Shortcut", ("default", "A", "B", "C"), key=ui.KEEP_PREFIX + "train_shortcut",
                                    help="A: zero-padding identity (the paper's CIFAR choice); B: projection where "
                                         "the shape changes; C: projection everywhere.")
            batchnorm = st.checkbox("BatchNorm", True, key=ui.KEEP_PREFIX + "train_bn")
            width = st.number_input("Width multiplier", 0.125, 8.0, 1.0, 0.125, key=ui.KEEP_PREFIX + "train_width")
        with c2:
            st.markdown("**Training**")
            defaults = training_for(device_type)
            epochs = st.number_input("Epochs", 0.1, 500.0, float(defaults.epochs), 0.5,
                                     key=ui.KEEP_PREFIX + "train_epochs")
            subset = st.number_input("Training images (0 = all 50,000)", 0, 50_000, int(defaults.subset or 0), 1000,
                                     key=ui.KEEP_PREFIX + "train_subset")
            batch_size = st.number_input("Batch size", 1, 4096, 128, key=ui.KEEP_PREFIX + "train_batch")
            lr = st.number_input("Learning rate", 1e-5, 10.0, 0.1, format="%.4f", key=ui.KEEP_PREFIX + "train_lr")
        with c3:
            st.markdown("&nbsp;")
            schedule = st.selectbox("Schedule", SCHEDULES, key=ui.KEEP_PREFIX + "train_schedule",
                                    help="step: the paper's ÷10 at 50% and 75% of the run; onecycle/cosine suit "
                                         "brief runs.")
            warmup = st.number_input("Warm-up steps at lr/10", 0, 100_000, 0, key=ui.KEEP_PREFIX + "train_warmup")
            seed = st.number_input("Seed", 0, 2**31 - 1, 0, key=ui.KEEP_PREFIX + "train_seed")
            device = st.selectbox("Device", DEVICES, key=ui.KEEP_PREFIX + "train_device")
        queued = st.form_submit_button("Queue these runs", type="primary")
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
                for depth in depths:
                    for arch in archs:
                        model = ModelConfig(family=family, depth=depth, residual=arch == "residual",
                                            shortcut=None if shortcut == "default" else shortcut,
                                            batchnorm=batchnorm, width=float(width),
                                            stem="cifar" if family == "imagenet" else None)
                        train = TrainConfig(epochs=float(epochs), subset=int(subset) or None,
                                            batch_size=int(batch_size), lr=float(lr), schedule=schedule,
                                            warmup_steps=int(warmup), seed=int(seed), device=device)
                        configs.append(RunConfig(model=model, train=train, data_dir=ui.data_dir()).validate())
            except ResnetVizError as e:
                st.error(str(e))
            else:
                submit(configs)


# ---------------------------------------------------------------------------------------------------------- live ----
def fmt_eta(seconds) -> str:
    if seconds is None:
        return "estimating…"
    seconds = int(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


@st.fragment(run_every=1.0)
def live_jobs() -> None:
    mine = queue.jobs(ui.session_id())
    others = [j for j in queue.jobs() if j.owner != ui.session_id() and not j.done]
    if others:
        st.info(f"{len(others)} run(s) from another browser session are queued or training on this device; yours "
                f"follow in order.")
    if not mine:
        st.caption("Nothing queued yet from this browser session. Pick a preset above.")
        return
    active = [j for j in mine if not j.done]
    header, clear = st.columns([4, 1])
    header.subheader(f"Your runs ({len(active)} active)")
    if not active and clear.button("Clear finished", key="clear_finished"):
        queue.clear_finished(ui.session_id())
        st.rerun(scope="fragment")
    for job in mine:
        p = job.progress
        with st.container(border=True):
            top, stop = st.columns([5, 1])
            # Material icons ship with Streamlit; emoji need a colour-emoji font that many machines lack.
            status = {"queued": ":material/schedule: queued", "loading data": ":material/download: loading data",
                      "running": ":material/directions_run: training",
                      "finished": ":green[:material/check_circle:] finished",
                      "stopped": ":material/stop_circle: stopped", "diverged": ":red[:material/error:] diverged",
                      "failed": ":red[:material/cancel:] failed",
                      "cancelled": ":material/block: cancelled"}.get(job.state, job.state)
            top.markdown(f"**{job.label}** — {status}")
            if not job.done and stop.button("Stop", key=f"stop_{job.id}",
                                            help="Stops within one step and keeps what was trained."):
                queue.stop(job.id)
                st.rerun(scope="fragment")
            if p is not None:
                text = (f"step {p.step}/{p.total_steps} · epoch {p.epoch:.2f} · loss {p.loss:.3f} · "
                        f"{p.images_per_second:,.0f} img/s")
                if p.test_error is not None:
                    text += f" · test error {100 * p.test_error:.1f}%"
                if not job.done:
                    text += f" · ETA {fmt_eta(p.eta_seconds)}"
                st.progress(min(1.0, p.fraction), text=text)
            if job.message and job.state == "failed":
                st.error(job.message)
                if "CIFAR-10" in job.message:
                    st.info("Set the **CIFAR-10 data folder** in the sidebar (▸ Folders) to a folder you already "
                            "have, then queue the run again.")
            elif job.message:
                st.caption(job.message)
            if job.metrics is not None and len(job.metrics.get("loss", ())) > 1 and not ui.presentation():
                run = figures.RunSeries.from_run(job)
                left, right = st.columns(2)
                with left:
                    ui.plotly(figures.training_curves(
                        [run], metric="loss", title="Loss",  # log when a spike would flatten the rest
                        log_y=figures.spans_decades(job.metrics.get(k) for k in ("loss", "train_loss", "test_loss"))),
                        key=f"loss_{job.id}")
                with right:
                    ui.plotly(figures.training_curves([run], metric="error", title="Error (%)"), key=f"err_{job.id}")
    drawn = [j for j in mine if j.metrics is not None and len(j.metrics.get("loss", ())) > 1]
    if drawn and ui.presentation():  # a projector: the nets on one wide chart, not two narrow ones each
        ui.plotly(figures.training_curves(
            [figures.RunSeries.from_run(j) for j in drawn], metric="loss", title="Loss",
            log_y=figures.spans_decades(j.metrics.get(k) for j in drawn for k in ("loss", "train_loss", "test_loss"))),
            key="loss_all")


live_jobs()

st.divider()
st.markdown("**What you are looking at.** Each run's faint line is the loss of every mini-batch, the solid line its "
            "running average; the markers are evaluations on fixed sets of training and test images (no "
            "augmentation). Run a plain and a residual net of the same depth, then open **Gradient flow** and "
            "**Compare runs**.")
