"""Grad-CAM: where do trained plain and residual nets look?"""
import io

import numpy as np
import streamlit as st
from PIL import Image

import ui
from resnet_viz.datasets.cifar10 import CIFAR10_CLASSES
from resnet_viz.datasets.batches import sample_images
from resnet_viz.errors import ResnetVizError
from resnet_viz.analyses.gradcam import MAX_UPLOAD_BYTES, colour_scale, gradcam, gradcam_targets, load_image, overlay
from views.models import test_images, trained_model, untrained_model

ui.page_setup("Grad-CAM", "🔥")
st.title("Grad-CAM")
st.caption("Grad-CAM (Selvaraju et al. 2017) weights a layer's feature maps by the gradient of the predicted class "
           "and shows where in the image that evidence sits. Computed with captum's LayerGradCam.")

LAST_BLOCK = "last block (default)"


runs = [r for r in ui.list_runs() if r.has_checkpoint]
if not runs:
    st.info("No trained runs with saved weights yet. Train a model on the **Train** page first.")
    st.stop()
chosen = ui.pick_runs("cam_runs", runs, "Trained runs")
untrained = st.toggle("Also show the same architectures untrained", False, key=ui.KEEP_PREFIX + "cam_untrained",
                      help="Randomly initialised twins: what the maps look like before any learning.")
if not chosen:
    st.info("Pick at least one run.")
    st.stop()

models = []
for run in chosen:
    try:
        models.append((ui.run_name(run), trained_model(run).model))
    except (ResnetVizError, OSError) as e:
        st.error(f"{run.name}: {e}")
    if untrained:
        models.append((f"{run.label} · untrained", untrained_model(run).model))
if not models:
    st.stop()

common = [t for t in gradcam_targets(models[0][1]) if all(t in gradcam_targets(m) for _, m in models[1:])]
layer_choice = st.selectbox("Layer", [LAST_BLOCK] + common, key=ui.KEEP_PREFIX + "cam_layer",
                            help="A stage or a block. Later layers give coarser, more semantic maps.")

source = st.radio("Images", ("CIFAR-10 test images of a class", "Random CIFAR-10 test images", "Upload an image"),
                  horizontal=True, key=ui.KEEP_PREFIX + "cam_source")
images, truths = None, None
if source == "Upload an image":
    limit_mb = min(MAX_UPLOAD_BYTES / 2**20, float(st.get_option("server.maxUploadSize")))
    upload = st.file_uploader(f"Any picture (PNG, JPEG, …) up to {limit_mb:g} MB: its centre square is scaled to "
                              "32×32 like CIFAR-10", key="cam_upload")
    # A larger file is refused in the browser before this page sees it; the uploader marks it only with a red "!"
    # whose reason shows on hover, so the reason is written here.
    st.caption(f"A file over {limit_mb:g} MB is refused as it is dropped (the uploader marks it with a red “!”): "
               "save the picture smaller, e.g. as a JPEG of a few megapixels, and drop it again.")
    if upload is not None:
        try:
            images, truths = load_image(upload).unsqueeze(0), [None]
        except ResnetVizError as e:
            st.error(str(e))
        else:
            picture = Image.open(io.BytesIO(upload.getvalue()))
            width, height = picture.size
            if picture.getexif().get(0x0112) in (5, 6, 7, 8):  # EXIF says: turned by 90°, as load_image shows it
                width, height = height, width
            side = min(width, height)
            st.caption(f"Your picture is {width}×{height}. The nets see 32×32 images, as in CIFAR-10, so "
                       + (f"its centre {side}×{side} square was cut out (the rest is not seen) and scaled down to "
                          "32×32 — nothing is squashed." if width != height else "it was scaled down to 32×32."))
else:
    try:
        all_images, all_labels = test_images(ui.data_dir())
    except ResnetVizError as e:
        st.error(str(e))
        st.info("Set the CIFAR-10 data folder in the sidebar (▸ Folders), or upload your own image.")
        all_images = None
    if all_images is not None:
        c1, c2, c3 = st.columns(3)
        count = c1.slider("How many", 1, 8, 4, key=ui.KEEP_PREFIX + "cam_count")
        seed = c3.number_input("Draw", 0, 10_000, 0, key=ui.KEEP_PREFIX + "cam_seed", help="Change for other images.")
        label = None
        if source.startswith("CIFAR-10 test images of"):
            cls = c2.selectbox("Class", CIFAR10_CLASSES, key=ui.KEEP_PREFIX + "cam_class")
            label = CIFAR10_CLASSES.index(cls)
        pick = sample_images(all_labels, count, seed, label)
        images, truths = all_images[pick], [CIFAR10_CLASSES[int(i)] for i in all_labels[pick]]

if images is None:
    st.stop()


THUMBNAIL = 288 if ui.presentation() else 128  # pixels a side: big enough for the back row in presentation mode


def big(arr_hwc: np.ndarray, size: int = THUMBNAIL) -> Image.Image:
    return Image.fromarray(arr_hwc).resize((size, size), Image.Resampling.NEAREST)


results = []
for name, model in models:
    layer = gradcam_targets(model)[-1] if layer_choice == LAST_BLOCK else layer_choice
    try:
        results.append((name, layer, gradcam(model, images, layer)))
    except ResnetVizError as e:
        st.error(f"{name}: {e}")

low, strip, high = st.columns([1, 3, 1], vertical_alignment="center")
low.markdown("<div style='text-align:right'>0 · no evidence</div>", unsafe_allow_html=True)
strip.image(colour_scale(512, 24), width="stretch")
high.markdown("1 · strongest evidence")
st.caption("Colour scale of the maps. Each map is scaled to its own 0…1, so colours compare *where* in one image "
           "the evidence is, not how much there is between images.")
header = st.columns(1 + len(results))
header[0].markdown("**Image**")
for col, (name, layer, _) in zip(header[1:], results):
    col.markdown(f"**{name}**  \n`{layer}`")
for i in range(len(images)):
    row = st.columns(1 + len(results))
    row[0].image(big(images[i].permute(1, 2, 0).numpy()),
                 caption=f"true: {truths[i]}" if truths[i] else "your image")
    for col, (_, _, res) in zip(row[1:], results):
        predicted = CIFAR10_CLASSES[int(res.predicted[i])]
        mark = "" if truths[i] is None else (" ✓" if predicted == truths[i] else " ✗")
        col.image(big(overlay(images[i], res.maps[i])),
                  caption=f"{predicted}{mark} · {100 * float(res.confidence[i]):.0f}%")

st.markdown("**What you are looking at.** Left, the 32×32 input (enlarged). Then, for each model, the same image "
            "with its Grad-CAM map on top — red where the chosen layer's features most support the predicted class, "
            "blue where they do not — with the predicted class and its softmax confidence (✓/✗ against the true "
            "label). Maps from the last block are 8×8 for CIFAR nets, upsampled, so they are coarse by nature. "
            "Briefly trained nets are often unsure; compare where the two nets look, not only what they say.")
