"""The preset planner: pick an experiment and the minutes you have, see what will run, then start exactly that.

The plan you see is the run you get: any measuring happens first, visibly, with a progress bar (every preset net at
once, so a second experiment needs none); the plan — steps per net, precision, threads, estimate — is then made once
and kept in the session, and Start queues that very plan. An experiment whose partner was trained already (The fix
after Degradation, or back) trains the same number of steps, so the two compare step for step.
"""
from __future__ import annotations

import streamlit as st

import ui
from resnet_viz.training.budget import PROCESS_START_S
from resnet_viz.config import MAX_SEED, TrainConfig
from resnet_viz.training.devices import resolve_device
from resnet_viz.errors import ResnetVizError
from resnet_viz.execution.jobs import ExecutorKind, app_reserved_cores, job_queue
from resnet_viz.lecture.presets import (DEFAULT_MINUTES, FIG6_MIN_STEPS, PRESETS, describe_training, measure_nets,
                                nets_to_measure, plan_preset, preset_by_key, steps_to_match)

PRESET_KEY = ui.KEEP_PREFIX + "preset"
MINUTES_KEY = ui.KEEP_PREFIX + "preset_minutes"
MATCH_KEY = ui.KEEP_PREFIX + "preset_match"
SEED_KEY = ui.KEEP_PREFIX + "preset_seed"
PLAN_KEY = "preset_plan"  # (what it was planned for, the Plan): Start queues this, never a fresh one


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "estimating…"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def select_preset(key: str) -> None:
    """Called by the Home page's buttons: the Train page opens with this preset's plan."""
    st.session_state[PRESET_KEY] = key


def trained_by_preset(queue) -> list[tuple[str | None, int | None]]:
    """(run name, planned steps) of the queue's jobs and the store's runs, newest first: what a plan can match."""
    jobs = [(j.config.name, j.config.train.max_steps) for j in reversed(queue.jobs()) if j.state != "cancelled"]
    try:
        runs = [(r.name, r.config.train.max_steps) for r in ui.list_runs(with_metrics=False)  # newest first
                if r.state in ("finished", "running", "stopped")]
    except ResnetVizError:
        runs = []
    return jobs + runs


def _measure_first(device, reserve: int) -> bool:
    """Time the preset nets this machine has no speed for, with a progress bar; False when it cannot now."""
    missing = nets_to_measure(device, reserve)
    if not missing:
        return True
    if job_queue().busy():
        st.info("This machine's speed for these nets is measured once, with a few timed steps, while nothing "
                "trains. Plan this experiment after the runs below finish.")
        return False
    bar = st.progress(0.0, text="Measuring this machine…")

    def on_net(i, model):
        bar.progress(i / len(missing), text=f"Measuring this machine once, then cached: a few timed steps of "
                                            f"{model.name} ({i + 1} of {len(missing)})…")
    measure_nets(missing, device, reserve, on_net)
    bar.empty()
    return True


def preset_planner() -> None:
    """Preset and budget pickers, the plan (steps per run, precision, threads, estimate) and a Start button."""
    keys = [p.key for p in PRESETS]
    titles = {p.key: p.title for p in PRESETS}
    st.session_state.setdefault(MINUTES_KEY, DEFAULT_MINUTES)
    st.session_state.setdefault(SEED_KEY, 0)
    left, right = st.columns([3, 1])
    with left:
        key = st.pills("Experiment", keys, format_func=lambda k: titles[k], key=PRESET_KEY, wrap=True)
    if not key:
        with right:
            st.number_input("Minutes for the whole experiment", min_value=0.5, max_value=600.0, step=0.5,
                            key=MINUTES_KEY)
        st.caption("Pick an experiment to see how many steps fit in your time on this machine.")
        return
    preset = preset_by_key(key)
    queue = job_queue()
    match = steps_to_match(preset, trained_by_preset(queue))
    use_match = bool(match) and st.toggle(
        f"Match your {match[0]} runs: {match[1]:,} steps per net" if match else "", value=True, key=MATCH_KEY,
        help="The same steps and recipe as the runs this experiment is compared with, so every chart compares "
             "them step for step.")
    with right:
        minutes = st.number_input("Minutes for the whole experiment", min_value=0.5, max_value=600.0, step=0.5,
                                  key=MINUTES_KEY, disabled=use_match,
                                  help="Every run of the experiment gets the same number of steps: as many as fit "
                                       "in this time on this machine.")
        seed = st.number_input("Seed", min_value=0, max_value=MAX_SEED, step=1, key=SEED_KEY,
                               help="Another seed draws other starting weights and another order of images. Try a "
                                    "second one to see that the gap between the nets is not luck.")
    st.caption(preset.description)
    device, reserve = resolve_device("auto"), app_reserved_cores()
    wanted = (preset.key, None if use_match else float(minutes), match[1] if use_match else None, ui.data_dir(),
              str(device), queue.executor, int(seed))
    kept = st.session_state.get(PLAN_KEY)
    if kept is None or kept[0] != wanted:
        if not _measure_first(device, reserve):
            return
        try:
            plan = plan_preset(preset, wanted[1], device, ui.data_dir(), base=TrainConfig(seed=int(seed)),
                               reserve=reserve, steps=wanted[2], run_overhead=_run_overhead(queue.executor))
        except ResnetVizError as e:
            st.error(str(e))
            return
        st.session_state[PLAN_KEY] = kept = (wanted, plan)
    plan = kept[1]
    _show_plan(plan, match if use_match else None)
    _warn_if_too_short(preset, plan, device, reserve, queue.executor)
    if st.button("Start", key="preset_start", type="primary"):
        try:
            queue.submit([r.config for r in plan.runs], owner=ui.session_id(), runs_dir=ui.runs_dir(),
                         plans=plan.runs)
        except ResnetVizError as e:
            st.error(str(e))
        else:
            st.session_state.pop(PLAN_KEY, None)  # the next plan is made afresh (and may match these runs)
            st.toast(f"Queued {len(plan.runs)} runs: about {fmt_duration(plan.total_seconds)} in all.")


def _run_overhead(executor: ExecutorKind) -> float:
    """Seconds each run costs beyond its steps that the plan must count: the local queue starts a process per run."""
    return PROCESS_START_S if executor is ExecutorKind.LOCAL else 0.0


def _show_plan(plan, match) -> None:
    train = plan.runs[0].config.train
    rows = [{"run": r.config.model.name, "steps": r.steps, "precision": r.speed.precision,
             "seconds per step": round(r.speed.step_seconds, 3), "estimated time": fmt_duration(r.seconds)}
            for r in plan.runs]
    st.dataframe(rows, hide_index=True, width="stretch")
    threads = f", {plan.threads} CPU thread{'s' if plan.threads != 1 else ''}" if plan.threads else ""
    seed = f", seed {train.seed}" if train.seed else ""
    matched = f" (matching your {match[0]} runs)" if match else ""
    st.markdown(f"**Estimated total: {fmt_duration(plan.total_seconds)}** for {len(plan.runs)} runs of "
                f"{plan.steps:,} steps each{matched} — {describe_training(train)}{threads}{seed}.")


def _warn_if_too_short(preset, plan, device, reserve: int, executor: ExecutorKind) -> None:
    """What a shorter budget risks, with the minutes that avoid it on this machine."""
    deep_plain = any(not r.config.model.residual and r.config.model.depth >= 56 for r in plan.runs)
    if not deep_plain or plan.steps >= FIG6_MIN_STEPS:
        return
    memo = st.session_state.get("preset_enough")
    if memo is None or memo[0] is not plan:  # once per plan: planning samples the CPU load
        memo = (plan, plan_preset(preset, None, device, ui.data_dir(), reserve=reserve, steps=FIG6_MIN_STEPS,
                                  run_overhead=_run_overhead(executor)))
        st.session_state["preset_enough"] = memo
    enough = memo[1]
    st.warning(f"Under {FIG6_MIN_STEPS:,} steps a deep plain net may still sit near chance when the time is up (it "
               f"did on one seed of three at 288 steps), and the comparison then shows a net that has not learned "
               f"rather than the paper's degradation. {FIG6_MIN_STEPS:,} steps showed Fig. 6's shape on every seed "
               f"tried; here they take about {fmt_duration(enough.total_seconds)}.")
