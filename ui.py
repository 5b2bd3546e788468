"""What the app's pages share: settings in st.session_state, the run store, run pickers, presentation mode, defaults
that follow the data, friendly errors.

The pages' larger shared parts live in `views/` (the table of pages, cached models, the Train page's planner and
live panel, the Analyses sections); all the work happens in `resnet_viz`, which never imports streamlit.
"""
from __future__ import annotations

import dataclasses
import gc
import os
import re
import uuid
import warnings
from pathlib import Path
from typing import Any, Callable

import streamlit as st


def _import_what_the_pages_need() -> None:
    """Every library a page uses, imported once here. app.py imports this module before any page runs, and Python
    makes a second session wait until a module's first import has finished; left to the pages, two sessions could
    import pandas (st.dataframe's lazy import) at the same moment, and one of them would see a partially initialised
    module."""
    import numpy  # noqa: F401
    import pandas  # noqa: F401
    import plotly.graph_objects as go
    import pyarrow  # noqa: F401
    import torch  # noqa: F401
    from PIL import Image  # noqa: F401
    from plotly.subplots import make_subplots  # noqa: F401

    import resnet_viz.analyses  # noqa: F401
    import resnet_viz.analyses.gradcam  # noqa: F401
    import resnet_viz.execution.jobs  # noqa: F401
    import resnet_viz.nets.models  # noqa: F401
    import resnet_viz.nets.summary  # noqa: F401
    import resnet_viz.training.trainer  # noqa: F401
    from resnet_viz import figures  # noqa: F401
    for name in ("Figure", "Scatter", "Heatmap", "Bar", "Contour", "Surface", "Scatter3d", "Table"):
        getattr(go, name)  # plotly loads these classes on first use, each its own import


_import_what_the_pages_need()
# Everything imported so far lives as long as the server: moved out of the collector's sight, a full collection (which
# Streamlit runs after every script run unless .streamlit/config.toml turns it off, as ours does) no longer walks
# torch's and plotly's millions of objects each time a watching tab refreshes.
gc.freeze()

from resnet_viz.datasets.cifar10 import default_data_dir  # noqa: E402
from resnet_viz.errors import ResnetVizError  # noqa: E402
from resnet_viz.figures import for_projector  # noqa: E402
from resnet_viz.storage.store import Run, RunStore, default_runs_dir  # noqa: E402

KEEP_PREFIX = "keep_"  # widgets whose value must survive page switches use keys with this prefix
PRESENTATION_KEY = "presentation"  # also the URL's query parameter: …/Gradient_flow?presentation=true


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


def final_train_error(run: Run) -> float | None:
    """The run's last evaluated training error (a fraction): what resnet_viz.lecture.learning judges "learned" by."""
    errors = run.metrics.get("train_error") if run.metrics is not None else None
    return float(errors[-1]) if errors is not None and len(errors) else None


def run_name(run: Run) -> str:
    """The model label, plus what the run's name says beyond it: "plain-20 · degradation", not
    "plain-20 · plain-20 · degradation" (preset runs are named "<label> · <preset>")."""
    extra = re.sub(rf"^{re.escape(run.label)}(\s*[·:|–-]\s*|\s+|$)", "", run.name or "").strip()
    return f"{run.label} · {extra}" if extra else run.label


def short_id(run_id: str) -> str:
    """A run's id, short but distinct from every other's: its time stamp and random suffix without the model name the
    title already gives ("20261207-005257 · 27f501"); a copy imported with "Keep both" says so and which ("… · copy
    3c9e1a"). An id of another shape is kept whole."""
    base, _, copy = run_id.partition("-copy-")
    stamped = re.fullmatch(r"(\d{8}-\d{6})-.+-([0-9a-f]{6})", base)
    short = f"{stamped[1]} · {stamped[2]}" if stamped else base
    return f"{short} · copy {copy}" if copy else short


def run_title(run: Run) -> str:
    return f"{run_name(run)} · {run.state} · {short_id(run.id)}"


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
    unequal_steps_note([by_id[i] for i in chosen])
    return [by_id[i] for i in chosen]


def steps_of(run: Run) -> int:
    """The steps a run trained (its status's count; what its curves span)."""
    return int(run.status.get("step") or 0)


def _batch(run: Run) -> tuple:
    """What runs trained together share: the name's suffix (a preset's key), the training settings (not how the
    machine ran them: threads and precision), the data."""
    suffix = run_name(run).removeprefix(run.label)
    recipe = dataclasses.replace(run.config.train, threads=0, precision="auto", device="auto")
    return suffix, repr(recipe), run.config.data_dir


def _twin_level(plain: Run, resnet: Run) -> int:
    """How closely a plain run and a residual run are twins: 3 = of one preset or sweep (same architecture apart from
    the shortcuts, same training, same name suffix), 2 = same architecture and training, 1 = same depth, 0 = not."""
    a, b = plain.config.model, resnet.config.model
    if a.residual or not b.residual or a.depth != b.depth or a.family != b.family:
        return 0
    same_net = (a.batchnorm, a.width, a.stem, a.num_classes) == (b.batchnorm, b.width, b.stem, b.num_classes)
    same_training = _batch(plain)[1:] == _batch(resnet)[1:]
    if same_net and same_training:
        return 3 if _batch(plain)[0] == _batch(resnet)[0] else 2
    return 1


def default_pair(runs: list[Run], count: int) -> list[str]:
    """The closest plain/residual twins (twins of one preset first, then twins trained for equal steps, then the
    newest such pair), followed — when more than two are wanted — by the other runs trained with them (same name
    suffix, training and data: a preset's or a sweep's runs); with no twins, the newest runs."""
    pairs = [(_twin_level(p, r), steps_of(p) == steps_of(r), max(p.created, r.created), p, r)
             for p in runs for r in runs]
    pairs = [pair for pair in pairs if pair[0] > 0]
    if count < 2 or not pairs:
        return [r.id for r in runs[:count]]
    *_, plain, resnet = max(pairs, key=lambda pair: pair[:3])
    picked = [plain.id, resnet.id]
    same_batch = [r for r in runs if _batch(r) == _batch(plain) and r.id not in picked]
    return picked + [r.id for r in same_batch[: count - 2]]


def unequal_steps_note(runs: list[Run]) -> None:
    """A chart of runs of unequal length says so: their curves and final numbers do not compare step for step."""
    steps = {run_name(r): steps_of(r) for r in runs}
    if len(set(steps.values())) > 1:
        st.caption(":orange[:material/warning:] These runs trained for different numbers of steps ("
                   + ", ".join(f"{name}: {n:,}" for name, n in steps.items())
                   + "), so they do not compare step for step. Runs planned together, or The fix matched to your "
                     "Degradation runs, train equal steps.")


def presentation() -> bool:
    """Is presentation mode on (the sidebar's toggle: larger type and charts, for a projector)?"""
    return bool(st.session_state.get(PRESENTATION_KEY, False))


def follow_data(key: str, value: Any) -> Callable[[], None]:
    """Give the widget under `key` a default worked out from the current data (a log scale when the curves span
    decades, relative depth when the runs differ in depth …) and keep it in step with the data — a new selection,
    new runs — until the user changes the widget; from then on the user's choice stays. Call before drawing the
    widget (without a `value`) and pass the returned callback as its on_change."""
    touched = f"{key}:set by the user"
    if not st.session_state.get(touched):
        st.session_state[key] = value
    return lambda: st.session_state.__setitem__(touched, True)


# Presentation mode: larger type; captions in dark grey, not faded to light grey; less blank space above the title,
# so a projector's 720 rows show more; tab strips that wrap onto a second row instead of scrolling their last tabs
# out of sight.
PRESENTATION_CSS = """<style>
html { font-size: 21px; }
[data-testid="stSidebar"] { font-size: 18px; }
[data-testid="stCaptionContainer"], [data-testid="stImageCaption"] { opacity: 0.9; }
[data-testid="stMainBlockContainer"] { padding-top: 3.5rem; }
[data-testid="stTabs"] [role="tablist"] { flex-wrap: wrap; row-gap: 0.25rem; }
</style>"""


def settings_sidebar() -> None:
    """Presentation mode, data and run folders, editable from every page; a bad folder is explained, never raised."""
    with st.sidebar:
        # Bound to the URL: it stays on across page switches and reloads, and a lecture's links can switch it on.
        st.toggle("Presentation mode", key=PRESENTATION_KEY, bind="query-params",
                  help="For a projector: larger type in dark grey, larger charts with their legends underneath, "
                       "heatmaps, landscape maps and Grad-CAM images one per row, and a plain net and its twin on "
                       "one live chart. Add ?presentation=true to a page's address to open it this way.")
        if presentation():
            st.html(PRESENTATION_CSS)
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


def small_table(rows: list[dict]) -> None:
    """A table of a few rows: on a projector a static one whose cells wrap, so that no column is cut at the right
    edge (st.dataframe scrolls it out of sight), otherwise st.dataframe."""
    if presentation():
        st.table(rows, hide_index=True)
    else:
        st.dataframe(rows, hide_index=True)


def plotly(fig, key: str | None = None, toolbar: bool = True) -> None:
    """A figure across the column, enlarged for a projector in presentation mode."""
    config = ({"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2}} if toolbar
              else {"displayModeBar": False})
    st.plotly_chart(for_projector(fig) if presentation() else fig, width="stretch", key=key, config=config)
