"""A model's summary in numbers: the rows and headline totals of `resnet_viz.nets.summary.model_summary`, as a table.

The summary dict comes in; torch is never imported here (the caller computed the summary)."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import plotly.graph_objects as go

from ..readable import human_count
from .style import base_layout


def shape_str(shape: Sequence[int]) -> str:
    """(16, 32, 32) -> "16×32×32"."""
    return "×".join(str(int(s)) for s in shape)


def is_weight_layer(row: Mapping[str, Any]) -> bool:
    """Conv and linear rows: the layers numbered in the tables and the gradient-norm charts."""
    return str(row.get("kind", "")).startswith(("conv", "fc"))


def summary_table(summary: Mapping[str, Any], weight_layers_only: bool = True,
                  twin: Mapping[str, Any] | None = None) -> list[dict]:
    """Rows for st.dataframe: #, layer, kind, output (C×H×W), params, MACs. By default only conv/linear layers;
    "#" counts the rows shown, so with weight_layers_only it is the layer number of the gradient-norm charts.

    twin: the plain twin's summary; adds a column "plain twin" that says which rows it shares ("same") and which
    only the ResNet has (its shortcuts) — so one table shows both nets."""
    shared = {r["name"] for r in twin["layers"]} if twin is not None else set()
    rows = []
    for r in summary["layers"]:
        if weight_layers_only and not is_weight_layer(r):
            continue
        row = {"#": len(rows) + 1, "layer": r["name"], "kind": r["kind"], "output": shape_str(r["output_shape"]),
               "params": int(r["params"]), "MACs": int(r["macs"])}
        if twin is not None:
            row["plain twin"] = "same" if r["name"] in shared else "— (shortcut)"
        rows.append(row)
    return rows


def summary_totals(summary: Mapping[str, Any]) -> dict:
    """The headline numbers of a model summary, raw and readable."""
    cfg = summary.get("config")
    return {
        "name": getattr(cfg, "name", ""),
        "params": int(summary["total_params"]),
        "macs": int(summary["total_macs"]),
        "flops": int(summary["total_flops"]),
        "weight_layers": int(summary["weight_layers"]),
        "input_size": int(summary.get("input_size", 0)),
        "params_h": human_count(summary["total_params"]),
        "macs_h": human_count(summary["total_macs"]),
        "flops_h": human_count(summary["total_flops"]),
        "classes": int(next((r["output_shape"][0] for r in summary["layers"] if r["kind"] == "fc"), 0)),
    }


def summary_table_figure(summary: Mapping[str, Any], weight_layers_only: bool = True) -> go.Figure:
    """`summary_table` as a plotly table, for places without st.dataframe."""
    rows = summary_table(summary, weight_layers_only)
    cols = ["#", "layer", "kind", "output", "params", "MACs"]
    fig = go.Figure(go.Table(header=dict(values=cols, align="left"),
                             cells=dict(values=[[r[c] for r in rows] for c in cols], align="left")))
    return base_layout(fig, f"{getattr(summary.get('config'), 'name', 'model')}: layers", height=600)
