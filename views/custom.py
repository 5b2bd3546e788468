"""The Train page's custom runs are estimated before they queue, from the same timings as the presets' plans, and a
run longer than CONFIRM_AFTER_SECONDS waits for a confirmation that says how long it will take (a depth-2000 net on a
laptop CPU is hours, not "estimating…")."""
from __future__ import annotations

import streamlit as st

import ui
from resnet_viz.training.budget import PROCESS_START_S, estimate_run
from resnet_viz.config import CIFAR10_TRAIN_IMAGES
from resnet_viz.training.devices import resolve_device
from resnet_viz.errors import ResnetVizError
from resnet_viz.execution.jobs import app_reserved_cores
from resnet_viz.training.threads import threads_a_run_would_get
from views.presets import fmt_duration

CONFIRM_AFTER_SECONDS = 600.0
PENDING_KEY = "custom_pending"  # estimated runs waiting for "Queue anyway"


def _train_images() -> int:
    """The training images the data folder holds (a smaller folder trains fewer steps per epoch)."""
    from resnet_viz.datasets.cifar10 import load_cifar10
    try:
        return len(load_cifar10(ui.data_dir(), download=False, progress=False).train_labels)
    except ResnetVizError:
        return CIFAR10_TRAIN_IMAGES  # not there yet: it will be all of CIFAR-10, downloaded when the run starts


def estimate_custom(configs: list) -> list:
    """A budget.PlannedRun (steps, seconds) for each config, on the device it asks for."""
    images = _train_images()
    plans = []
    with st.spinner("Estimating how long these runs take on this machine…"):
        for config in configs:
            device = resolve_device(config.train.device)
            with threads_a_run_would_get(device.type, app_reserved_cores()):
                plans.append(estimate_run(config, device, images, PROCESS_START_S))
    return plans


def ask_to_confirm(plans: list) -> None:
    st.session_state[PENDING_KEY] = plans


def confirmed_runs() -> list | None:
    """Shows the runs waiting for confirmation with their estimates; returns them once the user confirms."""
    plans = st.session_state.get(PENDING_KEY)
    if not plans:
        return None
    if st.session_state.get("custom_confirm") or st.session_state.get("custom_cancel"):  # clicked: answered
        st.session_state.pop(PENDING_KEY, None)
        return plans if st.session_state.get("custom_confirm") else None
    total = sum(p.seconds for p in plans)
    longest = sorted(plans, key=lambda p: -p.seconds)[:4]
    st.warning(f"These {len(plans)} runs would take about **{fmt_duration(total)}** on this machine, one after "
               f"another — longest: " + ", ".join(f"{p.config.model.name} {p.steps:,} steps ≈ "
                                                  f"{fmt_duration(p.seconds)}" for p in longest)
               + ". Queue them anyway?")
    yes, no, _ = st.columns([1, 1, 3])
    yes.button(f"Queue anyway ({fmt_duration(total)})", key="custom_confirm", type="primary")
    no.button("Cancel", key="custom_cancel")  # either click reruns the page, which reads the answer above
    return None
