"""The live panel of the Train page: every queued and running job of this server, in any tab, after any reload.

Jobs belong to the server's one queue (resnet_viz.execution.jobs), not to a browser tab. The running job is on top with its
progress, the time until it ends and a Stop button; queued jobs and finished ones are one line each (a finished one
with its result), so the live run never ends up at the bottom of a long page.

Watching must be cheap — a tab that redraws charts takes CPU from the run it watches, and on a laptop that projects its
own browser that CPU is the training's: the cards refresh every CARD_SECONDS (text only), the charts every
CHART_SECONDS, and only the running job has charts. Almost all of a watching tab's cost is the browser redrawing plotly
charts (benchmarks/README.md): on a 2-core AMD EPYC (Zen 4) VM with Chromium on the same machine, charts every 2 s
cost plain-56 17% of its steps with one tab watching and 39% with three; charts every 6 s and cards every 3 s cost
6% and 15% (2026-12-07).
"""
from __future__ import annotations

import streamlit as st

import ui
from resnet_viz import figures
from resnet_viz.execution.jobs import ExecutorKind, Job, job_queue
from resnet_viz.lecture.learning import learning_phrase
from views.presets import fmt_duration

CARD_SECONDS = 3.0
CHART_SECONDS = 6.0
SLOWER_NOTE = 1.15  # a run this much slower than its plan says so on its card

# Material icons ship with Streamlit; emoji need a colour-emoji font that many machines lack.
STATUS = {"queued": ":material/schedule: queued", "loading data": ":material/download: loading data",
          "running": ":material/directions_run: training", "finished": ":green[:material/check_circle:] finished",
          "stopped": ":material/stop_circle: stopped", "diverged": ":red[:material/error:] diverged",
          "failed": ":red[:material/cancel:] failed", "cancelled": ":material/block: cancelled",
          "interrupted": ":red[:material/cancel:] interrupted"}


def _progress_text(job: Job, position: int | None, eta: float | None) -> str:
    p = job.progress
    parts = []
    if position is not None:
        parts.append("training now" if position == 0 or job.state == "running" else f"#{position + 1} in the queue")
    if p is not None:
        parts.append(f"step {p.step:,}/{p.total_steps:,} · epoch {p.epoch:.2f} · loss {p.loss:.3f} · "
                     f"{p.images_per_second:,.0f} img/s")
        if p.test_error is not None:
            parts.append(f"test error {100 * p.test_error:.1f}%")
    elif job.config.train.max_steps:
        parts.append(f"{job.config.train.max_steps:,} steps planned")
    if not job.done:
        parts.append(f"ends in {fmt_duration(eta)}" if eta is not None else "ends: estimating…")
    return " · ".join(parts)


def _slower_than_planned(job: Job) -> str | None:
    p = job.progress
    if p is None or not p.seconds_per_step or not job.planned_step_seconds or job.state != "running":
        return None
    ratio = p.seconds_per_step / job.planned_step_seconds
    if ratio < SLOWER_NOTE:
        return None
    return (f"Running {100 * (ratio - 1):.0f}% slower than planned: the machine is busier than when it was "
            f"measured. The steps stay as planned; the end time above already allows for it.")


def _stop_button(job: Job, column) -> None:
    if not job.done and column.button("Stop", key=f"stop_{job.id}",
                                      help="Stops within one step and keeps what was trained; a queued run is "
                                           "taken off the queue."):
        job_queue().stop(job.id)  # the card shows it at its next refresh


def _owner(job: Job) -> str:
    return " (this tab)" if job.owner == ui.session_id() else ""


def _active_card(job: Job, position: int, eta: float | None) -> None:
    queue = job_queue()
    with st.container(border=True):
        top, stop = st.columns([5, 1])
        node = f" on `{job.node}`" if queue.executor is ExecutorKind.RAY and job.node else ""
        top.markdown(f"**{job.label}**{_owner(job)} — {STATUS.get(job.state, job.state)}{node}")
        _stop_button(job, stop)
        text = _progress_text(job, position, eta)
        if job.progress is not None:
            st.progress(min(1.0, job.progress.fraction), text=text)
        else:
            st.caption(text)
        if note := _slower_than_planned(job):
            st.caption(note)


def _finished_line(job: Job) -> None:
    """One line: what the run reached, or why it ended."""
    result = ""
    if job.state in ("finished", "stopped") and job.metrics is not None:
        errors = job.metrics.get("train_error")
        steps = job.metrics.get("step")
        if errors is not None and len(errors):
            result = f" — {len(steps) if steps is not None else '?':,} steps, {learning_phrase(float(errors[-1]))}"
    st.markdown(f"**{job.label}**{_owner(job)} — {STATUS.get(job.state, job.state)}{result}")
    if job.message and job.state == "failed":
        st.error(job.message)
        if "CIFAR-10" in job.message:
            st.info("Set the **CIFAR-10 data folder** in the sidebar (▸ Folders) to a folder you already have, "
                    "then queue the run again.")
    elif job.message and job.state not in ("finished",):
        st.caption(job.message)


@st.fragment(run_every=CARD_SECONDS)
def live_jobs() -> None:
    queue = job_queue()
    jobs = queue.jobs()
    if not jobs:
        st.caption("Nothing queued. Pick an experiment above, or queue a custom run.")
        return
    etas = queue.queue_eta()
    pending = [j for j in jobs if not j.done]
    finished = [j for j in jobs if j.done]
    header, clear = st.columns([4, 1])
    total = etas.get(pending[-1].id) if pending else None
    header.subheader(f"Runs on this server ({len(pending)} active"
                     + (f", all done in {fmt_duration(total)})" if total is not None and pending else ")"))
    if finished and clear.button("Clear finished", key="clear_finished"):
        queue.clear_finished()
    for position, job in enumerate(pending):
        _active_card(job, position, etas.get(job.id))
    if finished:
        with st.container(border=True):
            for job in reversed(finished):  # the newest first
                _finished_line(job)


@st.fragment(run_every=CHART_SECONDS)
def live_charts() -> None:
    """The running job's loss and error; in presentation mode, one wide chart of it and the runs that finished
    before it in the queue (a plain net and its twin side by side on one axis, readable from the back row)."""
    jobs = job_queue().jobs()
    running = [j for j in jobs if j.state == "running" and _drawable(j)]
    if ui.presentation():
        drawn = [j for j in jobs if _drawable(j) and (j.state == "running" or j.state in ("finished", "stopped"))]
        if running and drawn:
            series = [figures.RunSeries.from_run(j) for j in drawn]
            ui.plotly(figures.training_curves(series, metric="loss", title="Loss", log_y=_log_y(drawn)),
                      key="loss_all")
            _spike_note(series)
        return
    for job in running:
        run = figures.RunSeries.from_run(job)
        st.markdown(f"**{job.label}** — live")
        left, right = st.columns(2)
        with left:
            ui.plotly(figures.training_curves([run], metric="loss", title="Loss", log_y=_log_y([job])),
                      key=f"loss_{job.id}")
        with right:
            ui.plotly(figures.training_curves([run], metric="error", title="Error (%)"), key=f"err_{job.id}")
        _spike_note([run])


def _drawable(job: Job) -> bool:
    return job.metrics is not None and len(job.metrics.get("loss", ())) > 1


def _log_y(jobs: list[Job]) -> bool:
    """Log when a spike would flatten the rest."""
    return figures.spans_decades(j.metrics.get(k) for j in jobs for k in ("loss", "train_loss", "test_loss"))


def _spike_note(series: list) -> None:
    """Why an evaluation loss far above the batches' (a deep plain net early on) is not the net blowing up."""
    note = figures.eval_spike_note(series)
    if note:
        st.caption(note)
