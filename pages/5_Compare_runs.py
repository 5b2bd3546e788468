"""Compare runs: error curves in the style of the paper's Fig. 6, final numbers, export, delete; train a run further;
lecture packs to carry runs between machines."""
import csv
import io

import streamlit as st

import ui
from resnet_viz import figures
from resnet_viz.errors import ResnetVizError
from views import run_actions

ui.page_setup("Compare runs", "📊")
st.title("Compare runs")

all_runs = ui.list_runs(with_metrics=False)
runs = ui.with_curves(all_runs)
with st.expander("Import runs from a lecture pack", expanded=not all_runs):
    run_actions.import_pack_box()
if not all_runs:
    st.info("The run store is empty. Train something on the **Train** page, import a lecture pack above, or point "
            f"the sidebar's run store folder at another place (now: `{ui.runs_dir()}`).")
    st.stop()

chosen = ui.pick_runs("compare_runs", runs, "Runs", default_count=4)
log_y = st.toggle("Log scale", False, key=ui.KEEP_PREFIX + "compare_log")
if chosen:
    series = [figures.RunSeries.from_run(r) for r in chosen]
    ui.plotly(figures.fig6_error_curves(series, log_y=log_y), key="fig6")
    st.markdown("**What you are looking at.** As in the paper's Fig. 6: plain nets on the left, ResNets on the "
                "right; thin dashed lines are training error, bold lines test error (both on fixed evaluation "
                "subsets). Colour marks the run: warm for plain nets, cool for ResNets, darker for deeper ones. "
                "The dotted lines are the paper's Table 6 test errors after the full "
                "64k-iteration schedule — a brief run will sit well above them; what matters is the order of the "
                "curves. Degradation shows as the deeper *plain* net having the higher **training** error.")
    # The chart's axis follows the batch curves (an evaluation far above them is marked on its top edge), so they
    # alone decide whether it needs a log scale.
    losses = [run.metrics.get("loss") for run in chosen]
    loss_log_key = ui.KEEP_PREFIX + "compare_loss_log"
    loss_log = st.toggle("Log scale for the loss", key=loss_log_key,
                         on_change=ui.follow_data(loss_log_key, figures.spans_decades(losses)),
                         help="On by default when the chosen runs' batch losses span two decades or more, e.g. a "
                              "run that diverged. An evaluation far above the batches (BatchNorm's running "
                              "statistics, early in a deep plain net) is marked ▲ on the chart's top edge instead. "
                              "It follows your selection until you set it yourself.")
    ui.plotly(figures.training_curves(series, metric="loss", log_y=loss_log, title="Training loss"), key="loss")
    spike_note = figures.eval_spike_note(series)
    if spike_note:
        st.markdown(spike_note)
    run_actions.export_pack_button(chosen)

with st.expander("Train a run further"):
    run_actions.extend_box(all_runs)

# ----------------------------------------------------------------------------------------------------- table ----
st.subheader("All runs")
summaries = []
for run in all_runs:
    try:
        summaries.append(run.summary())
    except ResnetVizError as e:
        st.warning(str(e))


def pct(v):
    return None if v is None else round(100 * v, 2)


table = [{"model": s["label"], "name": s["name"], "status": s["status"], "steps": s["steps_done"],
          "train loss": s["final_train_loss"], "train error %": pct(s["final_train_error"]),
          "test error %": pct(s["final_test_error"]), "seconds": s["seconds"] and round(s["seconds"]),
          "created": s["created"], "id": s["id"]} for s in summaries]
# On screen: the id short but distinct (ui.short_id: a copy says so), second; the name and the creation time, which
# the model and the id already carry, only in the CSV. On a projector, only the columns a lecture discusses, so that
# the table fits its width.
shown = [{**row, "id": ui.short_id(row["id"])} for row in table]
columns = ["model", "id", "steps", "train error %", "test error %"] if ui.presentation() else \
    ["model", "id", "status", "steps", "train loss", "train error %", "test error %", "seconds"]
st.dataframe(shown, hide_index=True, width="stretch", column_order=columns,
             column_config={"train loss": st.column_config.NumberColumn(format="%.3f")})
if ui.presentation():
    st.caption("Status, train loss and seconds: in the CSV, or with presentation mode off.")
buf = io.StringIO()
if table:
    writer = csv.DictWriter(buf, fieldnames=list(table[0]))
    writer.writeheader()
    writer.writerows(table)
c1, c2 = (st.container(), st.container()) if ui.presentation() else st.columns(2)  # a run's title needs the width
c1.download_button("Download this table (CSV)", buf.getvalue(), "resnet_viz_runs.csv", "text/csv",
                   disabled=not table)
by_id = {r.id: r for r in all_runs}
with c2:
    export_id = st.selectbox("Export one run's per-step metrics", list(by_id), key="export_pick",
                             format_func=lambda i: ui.run_title(by_id[i]))
    if export_id:
        try:
            st.download_button("Download its metrics (CSV)", ui.store().export(export_id, "csv"),
                               f"{export_id}.csv", "text/csv", key="export_button")
        except ResnetVizError as e:
            st.error(str(e))

# ---------------------------------------------------------------------------------------------------- delete ----
with st.expander("Delete runs"):
    doomed = st.multiselect("Runs to delete", list(by_id), key="delete_pick",
                            format_func=lambda i: ui.run_title(by_id[i]))
    sure = st.checkbox("Yes, delete these runs and their weights for good", key="delete_sure")
    if st.button("Delete", type="primary", disabled=not (doomed and sure), key="delete_button"):
        for run_id in doomed:
            try:
                ui.store().delete(run_id)
            except ResnetVizError as e:
                st.error(str(e))
        st.session_state.pop("delete_pick", None)
        st.session_state.pop("delete_sure", None)
        st.success(f"Deleted {len(doomed)} run(s).")
        st.rerun()
