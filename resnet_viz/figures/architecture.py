"""The architecture diagram: a model drawn as a column of boxes, input at the top, with the skip arcs of its residual
blocks.

Everything is read from the model *summary* (`resnet_viz.nets.summary.model_summary(config)`: layer rows named like
`stage3.res3a.conv2`, `stage2.block1.shortcut`), so no torch is needed to draw: the caller summarises the model."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Mapping

import numpy as np
import plotly.graph_objects as go

from .style import (FONT, NEUTRAL_FILL, NEUTRAL_LINE, PLAIN_COLOR, PLAIN_FILL, PROJECTION_COLOR, RESIDUAL_COLOR,
                    RESIDUAL_FILL)
from .summary import is_weight_layer, shape_str

AUTO_COLLAPSE_BLOCKS = 6  # stages with more blocks than this start collapsed in the architecture diagram
MAX_EXPANDED_BLOCKS = 40  # an expanded stage longer than this shows its first and last blocks around an ellipsis
HALF_W, HALF_H = 0.9, 0.26  # half the width and height of a box, in the diagram's units (one row = 1)


# ---------------------------------------------------------------------------------------------- layout ----
def _kernel(kind: str) -> str:
    # "conv 3×3/2" -> "3×3"
    return kind.split()[1].split("/")[0] if kind.startswith("conv ") else kind


def architecture_layout(summary: Mapping[str, Any]) -> dict:
    """Stem, stages of blocks and head of a model, read from its `model_summary` rows (names like
    `stage3.res3a.conv2`, `stage2.block1.shortcut`, `stage3.block1.shortcut.conv`)."""
    rows = list(summary["layers"])
    cfg = summary.get("config")
    size = int(summary.get("input_size") or 32)
    stem = [r for r in rows if r["name"].startswith("stem.")]
    stages: "OrderedDict[str, OrderedDict[str, list]]" = OrderedDict()
    head = [r for r in rows if not r["name"].startswith(("stem.", "stage"))]
    for r in rows:
        parts = r["name"].split(".")
        if parts[0].startswith("stage") and len(parts) >= 3:
            stages.setdefault(parts[0], OrderedDict()).setdefault(parts[1], []).append(r)
    prev = tuple(stem[-1]["output_shape"]) if stem else (3, size, size)
    stem_convs = [r for r in stem if r["kind"].startswith("conv")]
    stem_desc = ", ".join([f"{r['kind']}, {r['output_shape'][0]}" for r in stem_convs]
                          + [r["kind"] for r in stem if r["kind"].startswith("max-pool")])
    layout: dict = {
        "name": getattr(cfg, "name", ""),
        "family": getattr(cfg, "family", None),
        "input_shape": (3, size, size),
        "stem": {"label": f"stem · {stem_desc}", "out_shape": prev, "params": sum(r["params"] for r in stem),
                 "rows": [r["name"] for r in stem]},
        "stages": [],
    }
    any_shortcut = False
    for stage, blocks in stages.items():
        info = {"name": stage, "blocks": []}
        for bname, brs in blocks.items():
            convs = [r for r in brs if r["kind"].startswith("conv") and ".shortcut" not in r["name"]]
            sc = [r for r in brs if ".shortcut" in r["name"] or r["name"].endswith(".shortcut")]
            if not sc:
                kind = "none"
            elif any(r["kind"].startswith("conv") for r in sc):
                kind = "projection"
            elif any("zero-pad" in r["kind"] for r in sc):
                kind = "zero-pad"
            else:
                kind = "identity"
            any_shortcut |= kind != "none"
            out = tuple(brs[-1]["output_shape"])
            stride = int(prev[1] // out[1]) if len(prev) > 1 and len(out) > 1 and out[1] else 1
            info["blocks"].append({
                "name": bname, "stage": stage, "in_ch": int(prev[0]), "out_ch": int(out[0]), "stride": stride,
                "out_shape": out, "shortcut": kind,
                "article_kind": {"projection": "convolutional block", "none": "plain block"}.get(kind,
                                                                                              "identity block"),
                "convs": [(_kernel(r["kind"]), int(r["output_shape"][0])) for r in convs],
                "params": int(sum(r["params"] for r in brs)),
            })
            prev = out
        first = info["blocks"][0]
        info.update(in_ch=first["in_ch"], out_ch=prev[0], out_shape=prev, stride=first["stride"],
                    params=sum(b["params"] for b in info["blocks"]))
        layout["stages"].append(info)
    pool = next((r for r in head if "avg-pool" in r["kind"]), None)
    fc = next((r for r in head if r["kind"] == "fc"), None)
    layout["pool"] = {"label": f"global avg-pool → {prev[0]}" if pool else "pool", "out_shape": (prev[0],)}
    layout["fc"] = {"label": f"fc {prev[0]} → {fc['output_shape'][0]}" if fc else "fc",
                    "params": int(fc["params"]) if fc else 0, "classes": int(fc["output_shape"][0]) if fc else 0}
    layout["residual"] = bool(getattr(cfg, "residual", any_shortcut))
    weights = [r for r in rows if is_weight_layer(r)]
    layout["weight_layers"] = len(weights)
    layout["shortcut_convs"] = sum(1 for r in weights if ".shortcut" in r["name"])
    return layout


def stage_names(summary: Mapping[str, Any]) -> list[str]:
    return [s["name"] for s in _layout_of(summary)["stages"]]


def auto_collapsed_stages(summary: Mapping[str, Any], max_blocks: int = AUTO_COLLAPSE_BLOCKS) -> set[str]:
    """The stages the diagram collapses by default: those with more than `max_blocks` blocks."""
    return {s["name"] for s in _layout_of(summary)["stages"] if len(s["blocks"]) > max_blocks}


def _layout_of(summary: Mapping[str, Any]) -> dict:
    if isinstance(summary, Mapping) and "stages" in summary and "stem" in summary:
        return dict(summary)
    if isinstance(summary, Mapping) and "layers" in summary:
        return architecture_layout(summary)
    raise TypeError(f"The architecture figures take a model summary (resnet_viz.nets.summary.model_summary(config)) or "
                    f"its architecture_layout(), not {type(summary).__name__}.")


def _resolve_collapsed(layout: dict, collapsed: set[str] | bool | None) -> set[str]:
    names = [s["name"] for s in layout["stages"]]
    if collapsed is None:
        return {s["name"] for s in layout["stages"] if len(s["blocks"]) > AUTO_COLLAPSE_BLOCKS}
    if collapsed is True:
        return set(names)
    if collapsed is False:
        return set()
    return set(collapsed) & set(names)


def bezier_arc(y0: float, y1: float, x0: float = 0.0, bulge: float = 1.9, n: int = 24) -> tuple[list, list]:
    """A skip arc: a cubic Bézier curve from (x0, y0) out to x = bulge and back to (x0, y1)."""
    t = np.linspace(0.0, 1.0, n)
    x = (1 - t) ** 3 * x0 + 3 * (1 - t) ** 2 * t * bulge + 3 * (1 - t) * t ** 2 * bulge + t ** 3 * x0
    y = (1 - t) ** 3 * y0 + 3 * (1 - t) ** 2 * t * y0 + 3 * (1 - t) * t ** 2 * y1 + t ** 3 * y1
    return x.tolist(), y.tolist()


_SHORTCUT_STYLE = {
    "identity": dict(name="shortcut: identity (x)", color=RESIDUAL_COLOR, width=1.8, dash="solid"),
    "zero-pad": dict(name="shortcut: zero-pad identity (option A)", color=RESIDUAL_COLOR, width=1.8, dash="dash"),
    "projection": dict(name="shortcut: projection (1×1 conv + BN)", color=PROJECTION_COLOR, width=2.6,
                       dash="solid"),
}
_SHORTCUT_WORDS = {"identity": "identity: the input x itself", "zero-pad": "zero-pad identity (option A): x "
                   "subsampled, new channels filled with zeros, no parameters",
                   "projection": "projection: 1×1 conv (with the block's stride) + BN", "none": "none (plain block)"}


def _block_label(b: dict) -> str:
    spec = " → ".join(f"{k},{c}" for k, c in b["convs"])
    return f"{b['name']} · {spec}" + (f" · /{b['stride']}" if b["stride"] > 1 else "")


def _block_hover(b: dict) -> str:
    spec = " → ".join(f"{k} conv, {c}" for k, c in b["convs"])
    return (f"<b>{b['stage']}.{b['name']}</b> — {b['article_kind']}<br>{b['in_ch']} → {b['out_ch']} channels, "
            f"stride {b['stride']}, output {shape_str(b['out_shape'])}<br>{spec}<br>"
            f"shortcut: {_SHORTCUT_WORDS[b['shortcut']]}<br>{b['params']:,} parameters")


# --------------------------------------------------------------------------------------------- diagram ----
def _stem_node(layout: dict) -> dict:
    stem = layout["stem"]
    return {"kind": "stem", "label": stem["label"],
            "hover": f"<b>stem</b><br>{stem['label'][7:]}<br>output {shape_str(stem['out_shape'])}<br>"
                     f"{stem['params']:,} parameters"}


def _collapsed_stage_node(st: dict, residual: bool) -> dict:
    """A whole stage as one box: "stage2: 18 blocks, 32 ch, /2"."""
    blocks = st["blocks"]
    kinds = [b["shortcut"] for b in blocks]
    names = f"{blocks[0]['name']} … {blocks[-1]['name']}" if len(blocks) > 1 else blocks[0]["name"]
    count = {k: kinds.count(k) for k in dict.fromkeys(kinds)}
    kinds_text = ", ".join(f"{n} {_SHORTCUT_WORDS[k].split(':')[0]}" for k, n in count.items())
    label = (f"{st['name']}: {len(blocks)} block{'s' if len(blocks) != 1 else ''}, {st['out_ch']} ch"
             + (f", /{st['stride']}" if st["stride"] > 1 else ""))
    return {"kind": "stage", "label": label, "blocks": blocks, "stage": st["name"],
            "hover": f"<b>{st['name']}</b> (collapsed): {names}<br>{len(blocks)} × "
                     f"{blocks[-1]['article_kind'] if residual else 'plain block'}"
                     f"{' (first: ' + blocks[0]['article_kind'] + ')' if residual else ''}<br>"
                     f"{st['in_ch']} → {st['out_ch']} channels, output {shape_str(st['out_shape'])}"
                     f"<br>shortcuts: {kinds_text}<br>{st['params']:,} parameters"}


def _block_nodes(st: dict) -> list[dict]:
    """One box per block; a stage longer than MAX_EXPANDED_BLOCKS shows its first four and last two around an
    ellipsis box."""
    def box(b: dict) -> dict:
        return {"kind": "block", "label": _block_label(b), "block": b, "hover": _block_hover(b)}

    blocks = st["blocks"]
    if len(blocks) <= MAX_EXPANDED_BLOCKS:
        return [box(b) for b in blocks]
    hidden = blocks[4:-2]
    elide = {"kind": "elide", "stage": st["name"], "count": len(hidden),
             "label": f"… {len(hidden)} more {hidden[0]['article_kind']}s ({hidden[0]['name']} … "
                      f"{hidden[-1]['name']}) …",
             "hover": f"{len(hidden)} blocks not drawn, all like the one above"}
    return [box(b) for b in blocks[:4]] + [elide] + [box(b) for b in blocks[-2:]]


def _diagram_nodes(layout: dict, collapsed: set[str], residual: bool) -> tuple[list[dict], list[tuple]]:
    """The boxes top to bottom, and for each stage (name, first node, last node, output shape) for its bracket."""
    nodes = [{"kind": "input", "label": f"input · {shape_str(layout['input_shape'])} image"}, _stem_node(layout)]
    stage_spans: list[tuple[str, int, int, tuple]] = []
    for st in layout["stages"]:
        start = len(nodes)
        if st["name"] in collapsed:
            nodes.append(_collapsed_stage_node(st, residual))
        else:
            nodes.extend(_block_nodes(st))
        stage_spans.append((st["name"], start, len(nodes) - 1, st["out_shape"]))
    nodes.append({"kind": "pool", "label": layout["pool"]["label"],
                  "hover": "<b>global average pool</b><br>one number per channel: the mean over the whole map "
                           "(the seed article's 2×2 pool is a slip)"})
    nodes.append({"kind": "fc", "label": layout["fc"]["label"],
                  "hover": f"<b>fc</b> (classifier)<br>{layout['fc']['params']:,} parameters"})
    nodes.append({"kind": "output", "label": f"output · {layout['fc']['classes']} class scores"})
    return nodes, stage_spans


def _draw_main_path(fig: go.Figure, nodes: list[dict], ys: list[float]) -> None:
    """Connectors between consecutive boxes (the boxes are shapes below the traces, so nothing crosses a label)."""
    def reach(node: dict) -> float:  # how far a node's box extends above/below its centre
        return 0.2 if node["kind"] in ("input", "output") else HALF_H

    px, py = [], []
    for i in range(len(nodes) - 1):
        top = nodes[i + 1]
        px.extend([0.0, 0.0, None])
        py.extend([ys[i] - reach(nodes[i]), ys[i + 1] + reach(top) + (0.1 if top["kind"] == "stage" else 0), None])
    fig.add_trace(go.Scatter(x=px, y=py, mode="lines", line=dict(color="#555555", width=1.5),
                             hoverinfo="skip", showlegend=False, name="main path"))


def _boxes(nodes: list[dict], ys: list[float], residual: bool) -> tuple[list[dict], tuple, tuple]:
    """The box shapes (a collapsed stage is a stack of cards), the label texts (x, y, text) and the hover points
    (x, y, text): four invisible markers across each box, so hovering anywhere on it shows its details."""
    fill, line_color = (RESIDUAL_FILL, RESIDUAL_COLOR) if residual else (PLAIN_FILL, PLAIN_COLOR)
    shapes: list[dict] = []
    text_x, text_y, text_s, hover_x, hover_y, hover_t = [], [], [], [], [], []
    for node, y in zip(nodes, ys):
        kind = node["kind"]
        if kind in ("input", "output"):
            text_x.append(0.0), text_y.append(y), text_s.append(f"<i>{node['label']}</i>")
            continue
        box_fill = {"block": fill, "stage": fill, "elide": "white"}.get(kind, NEUTRAL_FILL)
        box_line = {"block": line_color, "stage": line_color, "elide": NEUTRAL_LINE}.get(kind, NEUTRAL_LINE)
        if kind == "stage":
            for off in (0.1, 0.05):
                shapes.append(dict(type="rect", x0=-HALF_W + off, x1=HALF_W + off, y0=y - HALF_H + off,
                                   y1=y + HALF_H + off, line=dict(color=box_line, width=1), fillcolor=box_fill,
                                   layer="below"))
        shapes.append(dict(type="rect", x0=-HALF_W, x1=HALF_W, y0=y - HALF_H, y1=y + HALF_H, layer="below",
                           line=dict(color=box_line, width=1.5 if kind != "elide" else 1,
                                     dash="dot" if kind == "elide" else "solid"), fillcolor=box_fill))
        label = f"<b>{node['label']}</b>" if kind == "stage" else node["label"]
        text_x.append(0.0), text_y.append(y), text_s.append(label)
        for hx in (-0.7, -0.25, 0.25, 0.7):
            hover_x.append(hx), hover_y.append(y), hover_t.append(node.get("hover", node["label"]))
    return shapes, (text_x, text_y, text_s), (hover_x, hover_y, hover_t)


def _shortcut_of(node: dict) -> tuple[str, str, str, str] | None:
    """(kind, arc label, hover detail, whose) of the skip arc beside a node, or None where there is none."""
    if node["kind"] == "block" and node["block"]["shortcut"] != "none":
        kind = node["block"]["shortcut"]
        return (kind, "1×1 conv" if kind == "projection" else "", _SHORTCUT_WORDS[kind],
                f"{node['block']['stage']}.{node['block']['name']}")
    if node["kind"] == "stage":  # one arc for the stage, drawn in its blocks' most common kind
        kinds = [b["shortcut"] for b in node["blocks"]]
        counts = ", ".join(f"{kinds.count(k)} {_SHORTCUT_WORDS[k].split(':')[0].split(' (')[0]}"
                           for k in dict.fromkeys(kinds))
        return (max(dict.fromkeys(kinds), key=kinds.count), f"×{len(kinds)}",
                f"{len(kinds)} shortcuts, one per block: {counts}", node["stage"])
    if node["kind"] == "elide":
        return "identity", "", "shortcuts of the blocks not drawn", node["stage"]
    return None


def _draw_shortcuts(fig: go.Figure, nodes: list[dict], ys: list[float]) -> int:
    """A curved arc from each residual block's input to the ⊕ after it, one trace per shortcut kind (so the legend
    names the kinds), the ⊕ markers and the arc labels. Returns the number of arcs."""
    arcs = {k: ([], [], []) for k in _SHORTCUT_STYLE}
    adds_x, adds_y, adds_t = [], [], []
    arc_labels_x, arc_labels_y, arc_labels_t = [], [], []
    n_arcs = 0
    for node, y in zip(nodes, ys):
        shortcut = _shortcut_of(node)
        if shortcut is None:
            continue
        kind, text, detail, who = shortcut
        y0 = y + HALF_H + (0.22 if node["kind"] == "stage" else 0.15)
        y1 = y - HALF_H - 0.15
        ax, ay = bezier_arc(y0, y1, bulge=1.9 if node["kind"] != "stage" else 2.1)
        xs, yv, tv = arcs[kind]
        xs.extend(ax + [None]), yv.extend(ay + [None])
        tv.extend([f"<b>{who}</b> shortcut<br>{detail}"] * len(ax) + [None])
        adds_x.append(0.0), adds_y.append(y1), adds_t.append(f"<b>{who}</b>: add F(x) + shortcut, then ReLU")
        if text:
            arc_labels_x.append(1.5 if node["kind"] != "stage" else 1.65)
            arc_labels_y.append(y), arc_labels_t.append(text)
        n_arcs += 1
    for kind, (xs, yv, tv) in arcs.items():
        if xs:
            s = _SHORTCUT_STYLE[kind]
            fig.add_trace(go.Scatter(x=xs, y=yv, hovertext=tv, mode="lines", name=s["name"],
                                     line=dict(color=s["color"], width=s["width"], dash=s["dash"]),
                                     hovertemplate="%{hovertext}<extra></extra>",
                                     meta={"role": "shortcut", "kind": kind}))
    if adds_x:
        fig.add_trace(go.Scatter(x=adds_x, y=adds_y, hovertext=adds_t, mode="markers", name="⊕ addition",
                                 marker=dict(symbol="circle-cross-open", size=11, color=RESIDUAL_COLOR,
                                             line=dict(width=1.5)),
                                 hovertemplate="%{hovertext}<extra></extra>", showlegend=False))
    if arc_labels_x:
        fig.add_trace(go.Scatter(x=arc_labels_x, y=arc_labels_y, text=arc_labels_t, mode="text",
                                 textposition="middle right", textfont=dict(size=10, color=PROJECTION_COLOR),
                                 hoverinfo="skip", showlegend=False, name="shortcut labels"))
    return n_arcs


def _draw_stage_brackets(fig: go.Figure, stage_spans: list[tuple], ys: list[float]) -> list[dict]:
    """A bracket left of each stage's boxes, named with its output size; returns the bracket shapes."""
    shapes = []
    for name, a, b, out_shape in stage_spans:
        ya, yb = ys[a] + HALF_H, ys[b] - HALF_H
        shapes.append(dict(type="line", x0=-1.08, x1=-1.08, y0=yb, y1=ya, line=dict(color="#999999", width=2)))
        fig.add_annotation(x=-1.13, y=(ya + yb) / 2, text=f"<b>{name}</b><br>{shape_str(out_shape[1:])}",
                           showarrow=False, xanchor="right", font=dict(size=11, color="#444444"))
    return shapes


def architecture_diagram(summary: Mapping[str, Any], collapsed_stages: set[str] | bool | None = None,
                         title: str | None = None) -> go.Figure:
    """Block diagram: input → stem → blocks (stage by stage) → global avg-pool → fc, top to bottom.

    summary: a `model_summary()` dict or its `architecture_layout()`.
    Residual blocks get a curved skip arc from their input to the ⊕ after them: solid for an identity shortcut,
    dashed for option A's zero-pad identity, bold with a "1×1 conv" label for a projection. Plain models have none.
    collapsed_stages: stage names drawn as one box ("stage2: 18 blocks, 32 ch"); True = all, False = none,
    None = stages with more than AUTO_COLLAPSE_BLOCKS blocks. An expanded stage of more than MAX_EXPANDED_BLOCKS
    blocks shows its first four and last two around one box for the rest. `fig.layout.meta` holds counts (nodes,
    arcs, elided_blocks = {stage: blocks not drawn} …)."""
    layout = _layout_of(summary)
    collapsed = _resolve_collapsed(layout, collapsed_stages)
    residual = layout["residual"]
    nodes, stage_spans = _diagram_nodes(layout, collapsed, residual)
    ys = [-float(i) for i in range(len(nodes))]

    fig = go.Figure()
    _draw_main_path(fig, nodes, ys)
    shapes, (text_x, text_y, text_s), (hover_x, hover_y, hover_t) = _boxes(nodes, ys, residual)
    n_arcs = _draw_shortcuts(fig, nodes, ys) if residual else 0
    fig.add_trace(go.Scatter(x=text_x, y=text_y, text=text_s, mode="text", textfont=dict(size=11, color="#111111"),
                             hoverinfo="skip", showlegend=False, name="labels"))
    fig.add_trace(go.Scatter(x=hover_x, y=hover_y, hovertext=hover_t, mode="markers",
                             marker=dict(size=18, color="rgba(0,0,0,0)"), hovertemplate="%{hovertext}<extra></extra>",
                             showlegend=False, name="boxes"))
    shapes += _draw_stage_brackets(fig, stage_spans, ys)

    n = len(nodes)
    main = layout["weight_layers"] - layout["shortcut_convs"]
    default_title = (f"{layout['name']} — {main} weight layers"
                     + (f" (+{layout['shortcut_convs']} 1×1 convs in shortcuts)" if layout["shortcut_convs"] else "")
                     + ("" if residual else ": no shortcuts"))
    fig.update_layout(
        shapes=shapes, title=dict(text=title or default_title, x=0.0, xanchor="left"), font=FONT,
        height=int(90 + 36 * n), margin=dict(l=10, r=10, t=50, b=10), plot_bgcolor="white", dragmode=False,
        hovermode="closest", showlegend=residual,
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0.0, xanchor="left", font=dict(size=10)),
        meta={"nodes": n, "arcs": n_arcs, "collapsed": sorted(collapsed), "residual": residual,
              "elided_blocks": {node["stage"]: node["count"] for node in nodes if node["kind"] == "elide"},
              "stages": [s["name"] for s in layout["stages"]]})
    fig.update_xaxes(visible=False, range=[-1.75, 2.05], fixedrange=True)
    fig.update_yaxes(visible=False, range=[ys[-1] - 0.6, 0.6], fixedrange=True)
    return fig
