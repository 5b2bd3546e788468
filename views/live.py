"""The live panel of the Train page: every queued and running job of this server, in any tab, after any reload.

Jobs belong to the server's one queue (resnet_viz.jobs), not to a browser tab: each card shows progress, queue
position, the time until that job ends (the queue ahead of it included) and a Stop button.
"""
from __future__ import annotations

import streamlit as st

import ui
from resnet_viz import figures
from resnet_viz.jobs import Job, job_queue
from views.presets import fmt_duration

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
    if not job.done:
        parts.append(f"ends in {fmt_duration(eta)}" if eta is not None else "ends: estimating…")
    return " · ".join(parts)


def _job_card(job: Job, position: int | None, eta: float | None) -> None:
    queue = job_queue()
    with st.container(border=True):
        top, stop = st.columns([5, 1])
        mine = " (this tab)" if job.owner == ui.session_id() else ""
        node = f" on `{job.node}`" if queue.executor == "ray" and job.node else ""
        top.markdown(f"**{job.label}**{mine} — {STATUS.get(job.state, job.state)}{node}")
        if not job.done and stop.button("Stop", key=f"stop_{job.id}",
                                        help="Stops within one step and keeps what was trained; a queued run is "
                                             "taken off the queue."):
            queue.stop(job.id)  # the card shows it at the next refresh, within a second
        p = job.progress
        text = _progress_text(job, position, eta)
        if p is not None:
            st.progress(min(1.0, p.fraction), text=text)
        elif text:
            st.caption(text)
        if job.message and job.state == "failed":
            st.error(job.message)
            if "CIFAR-10" in job.message:
                st.info("Set the **CIFAR-10 data folder** in the sidebar (▸ Folders) to a folder you already have, "
                        "then queue the run again.")
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
            _spike_note([run])


@st.fragment(run_every=1.0)
def live_jobs() -> None:
    queue = job_queue()
    jobs = queue.jobs()
    if not jobs:
        st.caption("Nothing queued. Pick an experiment above, or queue a custom run.")
        return
    etas = queue.queue_eta()
    pending = [j for j in jobs if not j.done]
    header, clear = st.columns([4, 1])
    total = etas.get(pending[-1].id) if pending else None
    header.subheader(f"Runs on this server ({len(pending)} active"
                     + (f", all done in {fmt_duration(total)})" if total is not None and pending else ")"))
    if len(pending) < len(jobs) and clear.button("Clear finished", key="clear_finished"):
        queue.clear_finished()
    positions = {j.id: i for i, j in enumerate(pending)}
    for job in jobs:
        _job_card(job, positions.get(job.id), etas.get(job.id))
    if ui.presentation():
        _one_chart(jobs)


def _one_chart(jobs: list[Job]) -> None:
    """Presentation mode: the nets' losses on one wide chart — a plain net and its twin side by side on one axis,
    readable from the back row — instead of two narrow charts per card."""
    drawn = [j for j in jobs if j.metrics is not None and len(j.metrics.get("loss", ())) > 1]
    if drawn:
        series = [figures.RunSeries.from_run(j) for j in drawn]
        ui.plotly(figures.training_curves(
            series, metric="loss", title="Loss",
            log_y=figures.spans_decades(j.metrics.get(k) for j in drawn for k in ("loss", "train_loss", "test_loss"))),
            key="loss_all")
        _spike_note(series)


def _spike_note(series: list) -> None:
    """Why an evaluation loss far above the batches' (a deep plain net early on) is not the net blowing up."""
    note = figures.eval_spike_note(series)
    if note:
        st.caption(note)
