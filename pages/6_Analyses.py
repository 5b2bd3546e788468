"""Analyses: six measurements on trained (or fresh) plain nets and their ResNet twins that explain, each from its own
angle, why residual nets train better. The work is `resnet_viz.analyses`, the sections `views.analyses`."""

import streamlit as st

import ui
from resnet_viz.training.devices import analysis_device
from resnet_viz.errors import ResnetVizError
from views.analyses import SECTIONS
from views.analysis_selection import K, Selection, comparison_note, load_entries
from views.models import balanced_test_images

IMAGE_COUNTS = (16, 32, 64, 128, 256, 512, 1000, 2000, 5000, 10000)

ui.page_setup("Analyses", "🔬")
st.title("Analyses: why do residual nets train better?")
st.caption("Six measurements on a plain net and its ResNet twin, each from a paper that asked the question from its "
           "own angle. The cheap ones run when you open their tab; the expensive ones wait for their **Compute** "
           "button. Results are kept, so coming back is instant.")

all_runs = ui.list_runs(with_metrics=False)
if not all_runs:
    st.info("The run store is empty, so there is nothing to analyse yet. Train a plain net and its ResNet twin on "
            "the **Train** page (the “All four” or “The fix” preset), then come back. (Run store: "
            f"`{ui.runs_dir()}` — change it in the sidebar under ▸ Folders.)")
    st.stop()

# on a projector the run picker takes the whole width: beside the slider its second run's name was cut
c1, c3 = (st.container(), st.container()) if ui.presentation() else st.columns([4, 1], vertical_alignment="bottom")
c2 = st.container()
with c2:
    fresh = st.toggle("Use fresh (untrained) models instead", False, key=K + "fresh",
                      help="The chosen runs' architectures, randomly initialised (seed 0) — the networks as they are "
                           "before any training. Their BN statistics are measured on the chosen test images.")
candidates = all_runs if fresh else [r for r in all_runs if r.has_checkpoint]
if not candidates:
    st.info("None of the runs has saved weights yet (a run keeps its weights when it finishes or is stopped). Wait "
            "for a run to finish, or switch on **Use fresh (untrained) models instead** to analyse the untrained "
            "architectures.")
    st.stop()
with c1:
    chosen = ui.pick_runs("analysis_runs", candidates,
                          "Runs to analyse (a plain/residual pair of equal depth is the classic comparison)")
with c3:
    n_wanted = st.select_slider("Test images", IMAGE_COUNTS, value=256, key=K + "images",
                                help="A class-balanced subset of the CIFAR-10 test set. The one-pass analyses use all "
                                     "of them; the lesion study and the loss landscape use a budget-sized part.")
if not chosen:
    st.info("Pick at least one run — ideally a plain net and its ResNet twin of the same depth.")
    st.stop()

try:
    images, labels, images_key = balanced_test_images(ui.data_dir(), n_wanted)
except ResnetVizError as e:
    st.error(str(e))
    st.info("The analyses run on CIFAR-10 test images. Set the CIFAR-10 data folder in the sidebar (▸ Folders), or "
            "start the app with RESNET_VIZ_DATA pointing at it.")
    st.stop()

entries = load_entries(chosen, fresh, images, images_key)
if not entries:
    st.stop()
selection = Selection(entries, images, labels, images_key, fresh)

note = comparison_note(entries)
st.caption(f"{len(entries)} model(s) · {selection.n_images:,} class-balanced CIFAR-10 test images · eval mode on "
           f"{analysis_device()}"
           + (" · untrained: seed-0 He initialisation, BN statistics measured on these images" if fresh else "")
           + (f" · note: {note}" if note else ""))
st.info("**BatchNorm's part.** Every analysis here runs with the nets as built. To see what BN itself contributes, "
        "the **Train** page has a “Without BatchNorm” preset (plain-20 with BN on and off), and the **Gradient flow** "
        "page shows the BN-off run next to its BN-on twin; such runs can be analysed here too.", icon="ℹ️")

tabs = st.tabs([f"{i} · {s.title}" for i, s in enumerate(SECTIONS, start=1)], key="analysis", bind="query-params")
for tab, section in zip(tabs, SECTIONS):
    if tab.open is not False:  # None (no state tracking) means every tab runs
        with tab:
            section.render(selection)
