"""Home page of the resnet_viz app (app.py routes to it): the one-click experiments first, on the first screen; then
what residual learning is, the two block types, and this machine's setup.

Run with `streamlit run app.py`; the other pages live in pages/. Pages are views only: widgets, layout and calls into
resnet_viz.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import streamlit as st

import ui
from resnet_viz.training.devices import accelerator_found
from resnet_viz.figures import residual_block_diagram
from views.pages import HOME, PAGES, link_label

ui.page_setup("Home", "🧱")


@st.cache_resource(show_spinner=False)
def find_device() -> tuple[str, str]:
    """("CUDA" | "MPS" | "CPU", details), asked once per server (resnet_viz.training.devices)."""
    return accelerator_found()


def cifar_status(root: Path) -> str:
    candidates = [root, root / "cifar-10-batches-py"]
    if any((c / "test_batch").exists() or (c / "data_batch_1").exists() for c in candidates):
        return "CIFAR-10 found (python batches)"
    try:
        if root.is_dir() and any((c / "train").is_dir() for c in [root, *[p for p in root.iterdir() if p.is_dir()]]):
            return "CIFAR-10 found (image folder)"
    except OSError as e:  # a folder the server may not read
        return f"{root} cannot be read ({e.strerror or e})"
    return ("CIFAR-10 not here yet — training downloads it (about 170 MB), or point `RESNET_VIZ_DATA` at a folder "
            "that has it")


def runs_status(root: Path) -> str:
    if not root.is_dir():
        return "no runs yet"
    try:
        from resnet_viz.storage.store import RunStore
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            n = len(RunStore(root).list())
    except Exception:  # a listing problem must not take the home page down
        return "cannot be read"
    return f"{n} saved run{'s' if n != 1 else ''}" if n else "no runs yet"


st.title("Residual learning, seen from the inside")
# The first screen carries the first action: what one click shows, then the clicks; the theory follows below.
st.markdown("**One click trains plain networks and their ResNet twins on CIFAR-10, on this machine, in minutes: watch "
            "a deeper plain net train worse than a shallower one, and see what the shortcuts change.**")

from resnet_viz.lecture.presets import DEFAULT_MINUTES, PRESETS  # noqa: E402
from views.presets import select_preset  # noqa: E402

preset_cols = st.columns(len(PRESETS))
for col, preset in zip(preset_cols, PRESETS):
    with col:
        with st.container(border=True):
            st.markdown(f"**{preset.title}**")
            # the button before the description, so that every button sits on the first screen
            if st.button("Plan and train", key=f"home_preset_{preset.key}", icon=":material/play_arrow:",
                         type="primary" if preset.key == "degradation" else "secondary"):
                select_preset(preset.key)
                st.switch_page("pages/2_Train.py")
            st.caption(preset.description)
st.caption(f"Each experiment trains its nets one after another in the background, all for the same number of steps: "
           f"as many as fit in the minutes you choose (about {DEFAULT_MINUTES:g} by default) on this machine. The "
           f"Train page shows the plan and the estimated time before anything starts. An interactive companion to "
           f"He, Zhang, Ren & Sun, *Deep Residual Learning for Image Recognition* (2015).")

st.subheader("Why residual learning")

left, right = st.columns(2, gap="large")
with left:
    st.markdown(
        """
#### The degradation problem
Stack more layers on a plain convolutional network and, past some depth, it gets **worse — on the training set
too**. In the paper's Fig. 6 a plain 56-layer net has *higher training error* than a plain 20-layer net, so this is
not overfitting: the deeper net is simply harder to optimise. A deeper net could always copy the shallower one and
set its extra layers to the identity, yet SGD does not find that solution.

#### Not vanishing gradients
The paper argues the cause is not vanishing gradients: with batch normalisation the forward signals keep a healthy
variance and the backward gradients keep healthy norms. The deep plain nets still train, only much more slowly — the
paper conjectures their convergence rate is exponentially low. The *Gradient flow* page shows what your own runs'
gradients do, and says so where a brief run looks different from the paper's account.
"""
    )
with right:
    st.markdown(
        """
#### The fix: learn F(x) and add x back
Instead of asking a few stacked layers to fit a mapping H(x) directly, a **residual block** lets them fit the residual
F(x) = H(x) − x and adds the input back through a *shortcut*: the block outputs **F(x) + x**. If the identity is what
is needed, the layers only have to push F towards zero. The shortcut is free (no parameters) when the shapes match;
where a block halves the map and doubles the channels, the shortcut either zero-pads the new channels (option A) or
projects x with a 1×1 convolution (options B/C).
"""
    )

figure, caption = st.columns([1.7, 1], gap="large", vertical_alignment="center")
with figure:
    ui.plotly(residual_block_diagram(), key="home_block_diagram", toolbar=False)
with caption:
    st.markdown(
        """
**What you are looking at.** The two block types of ResNet-50, named as in *the seed article*: the ResNet-50
tutorial this app was first written to accompany, which builds the network from an *identity block* and a
*convolutional block* (names the app keeps; the paper itself only speaks of shortcuts). The orange boxes are
the residual function F(x): a 1×1 conv that narrows the channels, a 3×3 conv, a 1×1 conv that widens them again
(the CIFAR nets use two 3×3 convs instead). The blue arc is the shortcut, which meets F(x) at ⊕ before the last ReLU.

*Left*, the **identity block**: input and output have the same shape, so the shortcut is x itself.

*Right*, the **convolutional block**, first in each stage: the block halves the map (stride 2) and widens the
channels, so the shortcut needs a 1×1 conv with stride 2 and BN (W<sub>s</sub>x) to match the shape.
""", unsafe_allow_html=True)

with st.expander("Two slips in the seed article, and how this app builds it instead"):
    st.markdown(
        """
- **Stage-5 identity block filters.** The article writes them as "256x256x2048". The paper's Table 1 and
  torchvision's `resnet50` have **[512, 512, 2048]**: 1×1 conv to 512, 3×3 conv with 512, 1×1 conv to 2048 —
  the same 1 : 1 : 4 pattern as every other stage.
- **The pool before the classifier.** The article uses a 2×2 average pool; the paper uses a **global average pool**
  (one number per channel, over the whole 7×7 map), as torchvision does and as this app builds.
- Also worth knowing: like torchvision (ResNet "v1.5"), this app puts a bottleneck's stride on its 3×3 conv; the
  paper and the article put it on the first 1×1 conv.
"""
    )

st.subheader("Your setup")
device, detail = find_device()
data, runs = Path(ui.data_dir()).expanduser(), Path(ui.runs_dir()).expanduser()
c1, c2, c3 = st.columns(3)
with c1:
    st.metric("Device found", device, help="Training uses CUDA if present, then Apple's MPS, then the CPU.")
    st.caption(detail)
with c2:
    st.metric("CIFAR-10", "ready" if "found" in cifar_status(data) else "not yet",
              help="Change it in the sidebar (▸ Folders) or with the RESNET_VIZ_DATA environment variable.")
    st.caption(f"`{data}` — {cifar_status(data)}")
with c3:
    st.metric("Runs", runs_status(runs),
              help="Change it in the sidebar (▸ Folders) or with the RESNET_VIZ_RUNS environment variable.")
    st.caption(f"`{runs.resolve()}`")

st.subheader("Where to go next")
for page in PAGES:
    if page is not HOME:
        st.page_link(page.path, label=link_label(page), icon=page.icon)
