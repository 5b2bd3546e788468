"""The preset planner: pick an experiment and the minutes you have, see what will run, then start it.

The plan comes from this machine's measured step times (resnet_viz.budget), so the estimate is shown before anything
starts; the first plan on a machine measures a few steps per model and caches them on disk.
"""
from __future__ import annotations

import streamlit as st

import ui
from resnet_viz.errors import ResnetVizError
from resnet_viz.jobs import app_reserved_cores, job_queue
from resnet_viz.presets import (DEFAULT_MINUTES, PRESETS, describe_training, plan_preset, preset_by_key,
                                preset_needs_measuring)
from resnet_viz.trainer import resolve_device

PRESET_KEY = ui.KEEP_PREFIX + "preset"
MINUTES_KEY = ui.KEEP_PREFIX + "preset_minutes"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "estimating…"
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def select_preset(key: str) -> None:
    """Called by the Home page's buttons: the Train page opens with this preset's plan."""
    st.session_state[PRESET_KEY] = key


def preset_planner() -> None:
    """Preset and budget pickers, the plan (steps per run, estimated time) and a Start button."""
    keys = [p.key for p in PRESETS]
    titles = {p.key: p.title for p in PRESETS}
    left, right = st.columns([3, 1])
    with left:
        key = st.pills("Experiment", keys, format_func=lambda k: titles[k], key=PRESET_KEY, wrap=True)
    with right:
        minutes = st.number_input("Minutes for the whole experiment", min_value=0.5, max_value=600.0,
                                  value=float(st.session_state.get(MINUTES_KEY, DEFAULT_MINUTES)), step=0.5,
                                  key=MINUTES_KEY, help="Every run of the experiment gets the same number of steps: "
                                                        "as many as fit in this time on this machine.")
    if not key:
        st.caption("Pick an experiment to see how many steps fit in your time on this machine.")
        return
    preset = preset_by_key(key)
    st.caption(preset.description)
    queue = job_queue()
    device, reserve = resolve_device("auto"), app_reserved_cores()
    if queue.busy() and preset_needs_measuring(preset, device, reserve):
        st.info("This machine's speed for these nets is measured once, with a few timed steps, when nothing else "
                "trains. Start this experiment after the runs above finish.")
        return
    try:
        with st.spinner("Measuring this machine: a few timed steps per net (once; cached afterwards)…"):
            plan = plan_preset(preset, float(minutes), device, ui.data_dir(), reserve=reserve)
    except ResnetVizError as e:
        st.error(str(e))
        return
    train = plan.runs[0].config.train
    rows = [{"run": r.config.model.name, "steps": r.steps, "precision": r.speed.precision,
             "seconds per step": round(r.speed.step_seconds, 3), "estimated time": fmt_duration(r.seconds)}
            for r in plan.runs]
    st.dataframe(rows, hide_index=True, width="stretch")
    threads = f", {plan.threads} CPU thread{'s' if plan.threads != 1 else ''}" if plan.threads else ""
    st.markdown(f"**Estimated total: {fmt_duration(plan.total_seconds)}** for {len(plan.runs)} runs of "
                f"{plan.steps:,} steps each — {describe_training(train)}{threads}.")
    if st.button("Start", key="preset_start", type="primary"):
        try:
            queue.submit([r.config for r in plan.runs], owner=ui.session_id(), runs_dir=ui.runs_dir(),
                         plans=plan.runs)
        except ResnetVizError as e:
            st.error(str(e))
        else:
            st.toast(f"Queued {len(plan.runs)} runs: about {fmt_duration(plan.total_seconds)} in all.")
