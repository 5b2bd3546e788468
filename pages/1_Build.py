"""Build: choose an architecture, see the ResNet and its plain twin side by side (totals, block diagram, layers)."""
from __future__ import annotations

import streamlit as st

import ui
from resnet_viz import figures
from resnet_viz.config import (CIFAR10_HEAD, IMAGENET_DEPTHS, IMAGENET_HEAD, PAPER_TABLE1_GMULT_ADDS,
                               PAPER_TABLE6_ERROR, PAPER_TABLE6_PARAMS_M, ModelConfig)
from resnet_viz.errors import ConfigError
from views.init_gradients import init_gradients_view

ui.page_setup("Build", "🧱")

PAPER_DEPTHS = (8, 14, 20, 32, 44, 56, 110, 1202)
FAMILY_LABELS = {"cifar": "CIFAR (depth 6n+2)", "imagenet": "ImageNet-style (ResNet-18 … 152)"}
SHORTCUT_LABELS = {"A": "A · zero-pad identity", "B": "B · projection where the shape changes",
                   "C": "C · projection everywhere"}
STEM_LABELS = {"imagenet": "ImageNet: 7×7/2 conv + max-pool (224×224 input)",
               "cifar": "CIFAR: 3×3 conv (32×32 input)"}
HEAD_LABELS = {IMAGENET_HEAD: "1000 classes (ImageNet, as torchvision)",
               CIFAR10_HEAD: "10 classes (CIFAR-10, as trained here)"}
# Every choice lives in st.session_state under a "keep_" key, which ui.page_setup carries across page switches.
K = ui.KEEP_PREFIX + "build_"
DEFAULTS = {"family": "cifar", "cifar_depth": 20, "imagenet_depth": 50, "shortcut": "A", "batchnorm": True,
            "width": 1.0, "stem": "imagenet", "classes": IMAGENET_HEAD, "all_layers": False}
for name, value in DEFAULTS.items():
    st.session_state.setdefault(K + name, value)


def on_family_change() -> None:
    # Each family starts with its paper default shortcut: A for the CIFAR nets, B for the ImageNet ones.
    st.session_state[K + "shortcut"] = "A" if st.session_state[K + "family"] == "cifar" else "B"


def on_depth_pick() -> None:
    if st.session_state.get("build_cifar_pick") is not None:
        st.session_state[K + "cifar_depth"] = int(st.session_state["build_cifar_pick"])


@st.cache_data(show_spinner="Counting layers, parameters and multiply-adds …", max_entries=64)
def cached_summary(family: str, depth: int, residual: bool, shortcut: str, batchnorm: bool, width: float,
                   stem: str, num_classes: int) -> dict:
    """model_summary for one configuration (shapes worked out on the meta device: under a second at depth 1202)."""
    from resnet_viz.nets.summary import model_summary
    return model_summary(ModelConfig(family=family, depth=depth, residual=residual, shortcut=shortcut,
                                     batchnorm=batchnorm, width=width, stem=stem, num_classes=num_classes))


st.title("Build a ResNet and its plain twin")
st.markdown(
    """
**What you are looking at.** Pick an architecture; the page builds it twice — once as a **ResNet** and once as its
**plain twin**, the very same layers without the shortcuts — and compares them: parameter and multiply-add counts,
a block diagram in which every shortcut is an arc around its block, and the table of every layer. With option A the
two nets have exactly the same parameters: the shortcuts cost nothing but an addition, which is why the paper can
compare them fairly.
"""
)

# ----------------------------------------------------------------------------------------------------- controls ----
with st.container(border=True):
    if ui.presentation():  # a projector's larger type needs two rows of two: four columns cut labels to "Batc…"
        c_family, c_depth = st.columns(2, gap="medium")
        c_shortcut, c_more = st.columns(2, gap="medium")
    else:
        c_family, c_depth, c_shortcut, c_more = st.columns([1.1, 1.4, 1.2, 1.1], gap="medium")
    with c_family:
        family = st.radio("Family", list(FAMILY_LABELS), format_func=FAMILY_LABELS.get, key=K + "family",
                          on_change=on_family_change,
                          help="CIFAR: the paper's §4.2 nets, three stages of n basic blocks (16/32/64 filters). "
                               "ImageNet-style: ResNet-18/34 (basic blocks) and 50/101/152 (bottlenecks).")
    with c_depth:
        if family == "cifar":
            depth_now = st.session_state.get(K + "cifar_depth")
            st.session_state["build_cifar_pick"] = depth_now if depth_now in PAPER_DEPTHS else None
            st.pills("Paper depths", PAPER_DEPTHS, key="build_cifar_pick", on_change=on_depth_pick, wrap=True,
                     help="The depths of the paper's Fig. 6 and Table 6 (8 and 14 are extra-small ones).")
            depth = st.number_input("Depth (6n + 2)", min_value=1, max_value=2000, step=6,
                                    key=K + "cifar_depth",
                                    help="Any depth 6n+2: n basic blocks per stage, 2 convs each, plus the first "
                                         "conv and the classifier. Type another number to see why it must be 6n+2.")
            if isinstance(depth, int) and depth >= 8 and (depth - 2) % 6 == 0:
                st.caption(f"n = {(depth - 2) // 6} blocks per stage × 3 stages")
        else:
            depth = st.selectbox("Depth", IMAGENET_DEPTHS, key=K + "imagenet_depth",
                                 format_func=lambda d: f"ResNet-{d}",
                                 help="18/34 use basic blocks (two 3×3 convs), 50/101/152 bottlenecks "
                                      "(1×1 → 3×3 → 1×1).")
    with c_shortcut:
        shortcut = st.radio("Shortcut (the ResNet's)", list(SHORTCUT_LABELS), format_func=SHORTCUT_LABELS.get,
                            key=K + "shortcut",
                            help="The paper's three options (§3.3, Table 3). A adds no parameters; B and C add "
                                 "1×1 convolutions. The plain twin has no shortcuts at all.")
    with c_more:
        batchnorm = st.toggle("BatchNorm", key=K + "batchnorm",
                              help="BN after every conv, as in the paper. Without it deep plain nets barely train.")
        width = st.number_input("Width ×", min_value=0.0, max_value=16.0, step=0.25, format="%.3f",
                                key=K + "width",
                                help="Multiplies every channel count (1 = the paper's 16/32/64 or 64…512).")
        if family == "imagenet":
            stem = st.radio("Stem", list(STEM_LABELS), format_func=STEM_LABELS.get, key=K + "stem")
            classes = st.radio("Classifier", list(HEAD_LABELS), format_func=HEAD_LABELS.get, key=K + "classes",
                               help="The fc layer's outputs. 1000 gives torchvision's exact parameter counts "
                                    "(ResNet-50: 25.6M); 10 is the head this app trains on CIFAR-10.")
        else:
            stem, classes = "cifar", CIFAR10_HEAD

# ------------------------------------------------------------------------------------------------ the models ----
fields = dict(family=family, depth=depth, shortcut=shortcut, batchnorm=bool(batchnorm),
              width=float(width) if width is not None else width, stem=stem, num_classes=int(classes))
error = None
try:
    if depth is None:
        raise ConfigError("Type a depth.")
    fields["depth"] = int(depth)
    for residual in (False, True):
        ModelConfig(residual=residual, **fields).validate()
except ConfigError as e:
    error = str(e)

if error:
    st.error(error, icon=":material/block:")
else:
    plain = cached_summary(residual=False, **fields)
    resnet = cached_summary(residual=True, **fields)
    st.session_state["build_config"] = dict(fields)  # the chosen architecture: where Gradient flow's step-0 view starts
    tp, tr = figures.summary_totals(plain), figures.summary_totals(resnet)

    # -- totals
    cols = st.columns(2, gap="large")
    for col, summary, totals, other in ((cols[0], plain, tp, tr), (cols[1], resnet, tr, tp)):
        with col:
            cfg = summary["config"]
            st.subheader(("Plain twin · " if not cfg.residual else "ResNet · ") + cfg.name)
            m1, m4 = st.columns(2)
            m2, m3 = st.columns(2)
            delta = totals["params"] - other["params"] if cfg.residual else 0
            m1.metric("Parameters", totals["params_h"], delta=f"{delta:+,}" if delta else None,
                      delta_color="off", help=f"{totals['params']:,} weights and biases (BN included)")
            m2.metric("Multiply-adds", totals["macs_h"],
                      help=f"{totals['macs']:,} multiply-accumulates (MACs) for one {totals['input_size']}×"
                           f"{totals['input_size']} image — what the paper's Table 1 calls FLOPs")
            m3.metric("FLOPs", totals["flops_h"], help="2 × multiply-adds: a multiply and an add each, the "
                                                       "convention of most tools today (torch's flop counter)")
            main = sum(1 for r in summary["layers"] if figures.is_weight_layer(r) and ".shortcut" not in r["name"])
            m4.metric("Weight layers", main, help="Conv and fc layers on the main path"
                      + (f"; plus {totals['weight_layers'] - main} 1×1 convs in the shortcuts"
                         if totals["weight_layers"] > main else ""))
    extra = tr["params"] - tp["params"]
    notes = []
    if extra == 0:
        notes.append("**Same parameter count:** the shortcuts are parameter-free (identity, and option A's zero "
                     "padding); each block only adds its input to its output.")
    else:
        notes.append(f"**The ResNet has {extra:,} more parameters** ({extra / tp['params']:.1%}): the 1×1 "
                     f"projection convs (and their BN) of shortcut option {shortcut}.")
    if family == "cifar" and fields["depth"] in PAPER_TABLE6_ERROR and fields["width"] == 1 and shortcut == "A":
        d = fields["depth"]
        notes.append(f"Paper Table 6 lists ResNet-{d} with {PAPER_TABLE6_PARAMS_M[d]}M parameters and "
                     f"{PAPER_TABLE6_ERROR[d]}% CIFAR-10 test error.")
    if family == "imagenet" and fields["width"] == 1 and stem == "imagenet":
        d = fields["depth"]
        notes.append(f"**Multiply-adds, not FLOPs.** The paper's Table 1 lists ResNet-{d} at "
                     f"{PAPER_TABLE1_GMULT_ADDS[d]}×10⁹ “FLOPs”, counting multiply-adds: compare it with this "
                     f"page's {tr['macs'] / 1e9:.2f}×10⁹ multiply-adds, not with its {tr['flops'] / 1e9:.2f}×10⁹ "
                     "FLOPs (2 per multiply-add)."
                     + (" The rest of the difference: as torchvision (ResNet v1.5), each bottleneck here strides in "
                        "its 3×3 conv, so its first 1×1 conv works on the larger map." if d >= 50 else ""))
        if classes != IMAGENET_HEAD:
            notes.append("With the 10-class CIFAR head the fc layer is smaller than torchvision's: choose the "
                         "1000-class classifier for its parameter counts.")
    if fields["depth"] >= 1000:
        notes.append("At this depth the paper's ResNet-1202 *overfits*: 7.93% test error against 6.43% for "
                     "ResNet-110, with lower training error.")
    st.info("  \n".join(notes))

    # -- what the depth does to the gradients at step 0, measured on one real batch (views/init_gradients.py)
    with st.container(border=True):
        init_gradients_view(ModelConfig(residual=True, **fields), key="build")

    # -- diagram and layer table
    tab_diagram, tab_layers = st.tabs(["Block diagram", "Layer table"])
    with tab_diagram:
        stages = figures.stage_names(resnet)
        collapse_key = f"{K}collapse_{family}_{fields['depth']}"
        st.session_state.setdefault(collapse_key, sorted(figures.auto_collapsed_stages(resnet)))
        longest = max(len(s["blocks"]) for s in figures.architecture_layout(resnet)["stages"])
        collapsed = st.multiselect(
            "Collapsed stages", stages, key=collapse_key,
            placeholder="none — every block is drawn" if longest <= figures.MAX_EXPANDED_BLOCKS else
            f"none — stages of more than {figures.MAX_EXPANDED_BLOCKS} blocks show their first 4 and last 2",
            help="A collapsed stage is drawn as one box (its blocks are all alike after the first). Stages with "
                 f"more than {figures.AUTO_COLLAPSE_BLOCKS} blocks start collapsed; an expanded stage of more than "
                 f"{figures.MAX_EXPANDED_BLOCKS} blocks shows its first four and last two around one box for the "
                 "rest.")
        st.markdown(
            "**What you are looking at.** Data flows from the top (the image) to the bottom (the class scores). "
            "Each box is a block; its label lists the convolutions (kernel, channels) and `/2` where it halves the "
            "map. In the ResNet every block has an arc from its input to the ⊕ below it: the shortcut. "
            "Solid arc = identity (x itself), dashed = option A's zero-padded identity, bold with *1×1 conv* = "
            "a projection (the seed article's *convolutional block*). The plain twin is the same column without "
            "arcs. Hover a box for its channels, stride and parameters.")
        # Side by side; on a projector one above the other, so the labels can grow and still fit their boxes.
        d_plain, d_res = (st.container(), st.container()) if ui.presentation() else st.columns(2, gap="large")
        for col, summary in ((d_plain, plain), (d_res, resnet)):
            diagram = figures.architecture_diagram(summary, set(collapsed))
            with col:
                ui.plotly(diagram, key=f"build_diagram_{summary['config'].residual}", toolbar=False)
        elided = diagram.layout.meta["elided_blocks"]  # the ResNet's, drawn last; the twin's are the same
        if elided:
            st.caption("Not drawn, to keep the column readable: "
                       + ", ".join(f"{n} blocks of {stage}" for stage, n in elided.items())
                       + " (each like its neighbours; the dotted box stands for them). Collapse the stage to see "
                         "it as one box, or hover the dotted box.")
    with tab_layers:
        all_layers = st.toggle("Show every layer (BN, ReLU, shortcuts, pools), not only conv and fc",
                               key=K + "all_layers")
        st.markdown(
            "**What you are looking at.** One row per layer in the order data passes through it: output shape "
            "(channels × height × width), parameters and multiply-accumulates for one image. The convs dominate "
            "both; BN adds 2 parameters per channel, ReLU and the identity shortcuts none.")
        number = st.column_config.NumberColumn
        column_config = {"#": number("#", width="small"), "layer": st.column_config.TextColumn("layer"),
                         "params": number("params", format="localized"),
                         "MACs": number("MACs", format="localized", help="Multiply-accumulates for one image"),
                         "plain twin": st.column_config.TextColumn(
                             "plain twin", help="“same”: the plain twin has this very layer; “— (shortcut)”: "
                                                "only the ResNet has it")}
        st.caption(f"{resnet['config'].name} and its plain twin {plain['config'].name}: the plain twin's table is "
                   "this one without the shortcut rows.")
        st.dataframe(figures.summary_table(resnet, weight_layers_only=not all_layers, twin=plain), hide_index=True,
                     height=460, width="stretch", column_config=column_config, key="build_table")
