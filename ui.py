"""What the app's pages share: settings in st.session_state, the run store, run pickers, friendly errors.

This is the view layer's only common module; all the work happens in `resnet_viz`, which never imports streamlit.
"""
from __future__ import annotations

import os
import uuid
import warnings
from pathlib import Path

import streamlit as st

from resnet_viz.data import default_data_dir
from resnet_viz.errors import ResnetVizError
from resnet_viz.store import Run, RunStore, default_runs_dir

KEEP_PREFIX = "keep_"  # widgets whose value must survive page switches use keys with this prefix


def keep_widget_state() -> None:
    """Streamlit forgets a widget's value when the page that drew it is left; re-assigning keeps it."""
    for key in list(st.session_state.keys()):
        if isinstance(key, str) and key.startswith(KEEP_PREFIX):
            st.session_state[key] = st.session_state[key]


def session_id() -> str:
    if "session_id" not in st.session_state:
        st.session_state["session_id"] = uuid.uuid4().hex
    return st.session_state["session_id"]


def data_dir() -> str:
    return st.session_state.get("data_dir") or os.environ.get("RESNET_VIZ_DATA") or str(default_data_dir())


def runs_dir() -> str:
    return st.session_state.get("runs_dir") or str(default_runs_dir().resolve())


def store() -> RunStore:
    return RunStore(runs_dir())


def list_runs(with_metrics: bool = True) -> list[Run]:
    """Runs in the store, newest first. Unreadable directories are reported once, not raised; with_metrics keeps
    only the runs with at least one recorded step (a run whose metrics file is damaged is reported and left out)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            runs = store().list()
        except ResnetVizError as e:  # the store folder itself is unreadable or a file
            st.sidebar.error(str(e))
            return []
    skipped = [str(w.message) for w in caught if "Skipping" in str(w.message)]
    if skipped:
        with st.sidebar:
            st.warning(f"{len(skipped)} folder(s) in the run store could not be read and are skipped:\n\n"
                       + "\n".join(f"- {s.removeprefix('Skipping ')}" for s in skipped[:5]))
    return (with_curves(runs) if with_metrics else runs)[::-1]


def with_curves(runs: list[Run]) -> list[Run]:
    """The runs that recorded at least one training step. A damaged metrics file is reported in the sidebar and its
    run left out, so one torn file never stops a page."""
    kept = []
    for run in runs:
        try:
            if len(run.metrics.get("loss", ())) > 0:
                kept.append(run)
        except ResnetVizError as e:
            st.sidebar.warning(str(e))
    return kept


def run_name(run: Run) -> str:
    """The model label, plus the user's run name where it says something more."""
    return run.label if run.name in (run.label, "") else f"{run.label} · {run.name}"


def run_title(run: Run) -> str:
    return f"{run_name(run)} · {run.state} · {run.id[:15]}"


def pick_runs(key: str, runs: list[Run], label: str = "Runs", default_count: int = 2,
              need_checkpoint: bool = False) -> list[Run]:
    """A multiselect of runs that remembers its choice across pages."""
    if need_checkpoint:
        runs = [r for r in runs if r.has_checkpoint]
    by_id = {r.id: r for r in runs}
    state_key = KEEP_PREFIX + key
    if state_key in st.session_state:
        st.session_state[state_key] = [i for i in st.session_state[state_key] if i in by_id]
    else:
        st.session_state[state_key] = default_pair(runs, default_count)
    chosen = st.multiselect(label, list(by_id), key=state_key, format_func=lambda i: run_title(by_id[i]))
    return [by_id[i] for i in chosen]


def default_pair(runs: list[Run], count: int) -> list[str]:
    """The newest plain run and the newest residual run of the same depth, if there are such; else the newest."""
    for run in runs:
        twin = next((r for r in runs if r.config.model.depth == run.config.model.depth
                     and r.config.model.residual != run.config.model.residual), None)
        if twin is not None and count >= 2:
            return [run.id, twin.id]
    return [r.id for r in runs[:count]]


def settings_sidebar() -> None:
    """Data and run folders, editable from every page; a bad folder is explained, never raised."""
    with st.sidebar:
        with st.expander("Folders", expanded=False):
            new_data = st.text_input("CIFAR-10 data folder", value=data_dir(), key="data_dir_input",
                                     help="CIFAR-10's python batches (cifar-10-batches-py/) or an image folder with "
                                          "train/<class>/ and test/<class>/. Downloaded here if missing.")
            if new_data != data_dir():
                st.session_state["data_dir"] = new_data.strip()
            new_runs = st.text_input("Run store folder", value=runs_dir(), key="runs_dir_input")
            if new_runs != runs_dir():
                path = Path(new_runs.strip()).expanduser()
                if path.exists() and not path.is_dir():
                    st.error(f"{path} is a file, not a folder.")
                else:
                    st.session_state["runs_dir"] = str(path)


def page_setup(title: str, icon: str = "🧱") -> None:
    st.set_page_config(page_title=f"{title} · resnet_viz", page_icon=icon, layout="wide")
    keep_widget_state()
    session_id()
    settings_sidebar()


def plotly(fig, key: str | None = None) -> None:
    st.plotly_chart(fig, width="stretch", key=key,
                    config={"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2}})
