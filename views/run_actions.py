"""Actions on saved runs, as small self-contained boxes for the pages: train a run further, and carry runs between
machines as lecture packs (`resnet_viz.training.extend`, `resnet_viz.storage.packs`)."""
from __future__ import annotations

import streamlit as st

import ui
from resnet_viz.errors import ResnetVizError
from resnet_viz.training.extend import epochs_text
from resnet_viz.execution.jobs import job_queue
from resnet_viz.storage.packs import pack_bytes, unpack
from resnet_viz.storage.store import Run

IMPORT_RESULT = "import_pack_result"  # what the last import did, shown under the box


def extend_box(runs: list[Run]) -> None:
    """Pick a finished or stopped run and a number of epochs; queue "train N more epochs" on the app's job queue."""
    candidates = [r for r in runs if r.has_checkpoint and r.state != "running"]
    if not candidates:
        st.caption("No run has saved weights to continue from yet (finished and stopped runs keep them).")
        return
    by_id = {r.id: r for r in candidates}
    c1, c2 = st.columns([3, 1])
    run_id = c1.selectbox("Run", list(by_id), key="extend_pick", format_func=lambda i: ui.run_title(by_id[i]))
    epochs = c2.number_input("More epochs", min_value=0.1, max_value=1000.0, value=1.0, step=1.0,
                             key="extend_epochs")
    if st.button(f"Train {epochs_text(epochs)} more", key="extend_button", type="primary"):
        try:
            job_queue().submit_extension(run_id, float(epochs), owner=ui.session_id(), runs_dir=ui.runs_dir(),
                                         data_dir=ui.data_dir())
        except ResnetVizError as e:
            st.error(str(e))
        else:
            st.success(f"Queued {ui.run_name(by_id[run_id])} for {epochs_text(epochs)} more: watch it on the "
                       f"**Train** page. Its curves here grow once it has saved.")
    st.caption("The run goes on from its checkpoint — weights, BatchNorm statistics, momentum and data order — and "
               "its curves are appended to, steps numbered on. A constant learning rate simply goes on; with a "
               "step, cosine or one-cycle schedule the new steps keep the run's last learning rate.")


def export_pack_button(runs: list[Run]) -> None:
    """Download `runs` (those not training) as one lecture pack; the zip is built when the button is clicked."""
    packable = [r for r in runs if r.state != "running"]
    store, ids = ui.store(), [r.id for r in packable]  # taken now: the download runs outside this script
    st.download_button(f"Download {'these runs' if len(ids) != 1 else 'this run'} as a lecture pack (.zip)",
                       data=lambda: pack_bytes(store, ids), file_name="resnet_viz-lecture-pack.zip",
                       mime="application/zip", disabled=not ids, key="pack_download",
                       help="Config, status, curves and weights of each run, to unpack on another machine (the "
                            "import box on this page, or `python -m resnet_viz unpack FILE.zip`).")


def import_pack_box() -> None:
    """Upload a lecture pack and add its runs to the store; a run already here is never overwritten."""
    limit_mb = st.get_option("server.maxUploadSize")
    st.file_uploader(f"Lecture pack (up to {limit_mb:g} MB)", type=["zip"], key="import_pack",
                     on_change=lambda: st.session_state.pop(IMPORT_RESULT, None),
                     help="A .zip made by `python -m resnet_viz pack` or by this page's download button. A larger "
                          "pack is refused as it is dropped (a red “!”): add it with `python -m resnet_viz unpack "
                          "FILE.zip` instead.")
    st.checkbox("Keep both when a run with the same id is already here (the incoming one gets a new id)",
                key="import_keep_both")
    st.button("Import", key="import_button", on_click=_import,
              disabled=st.session_state.get("import_pack") is None)
    result = st.session_state.get(IMPORT_RESULT)
    if result:
        for kind, message in result:
            getattr(st, kind)(message)


def _import() -> None:
    """The Import button's callback: it runs before the page is drawn again, so the new runs are listed at once."""
    upload = st.session_state.get("import_pack")
    if upload is None:
        return
    try:
        result = unpack(ui.store(), upload, rename_clashes=st.session_state.get("import_keep_both", False))
    except ResnetVizError as e:
        st.session_state[IMPORT_RESULT] = [("error", str(e))]
        return
    messages = []
    if result.added:
        names = ", ".join(f"{ui.run_name(ui.store().get(new))} (`{new}`)" for _, new in result.added)
        messages.append(("success", f"Imported {len(result.added)} run(s) from {upload.name}: {names}."))
    if result.skipped:
        messages.append(("warning", f"Skipped {len(result.skipped)} run(s) already in this run store (nothing was "
                                    f"overwritten): {', '.join(result.skipped)}. Tick *Keep both* to import copies."))
    st.session_state[IMPORT_RESULT] = messages
