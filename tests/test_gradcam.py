"""Grad-CAM maps (checked against a hand-written Grad-CAM), the model left as found, and the overlay. The image loader
behind uploads: test_load_image.py."""
import io
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from resnet_viz.config import ModelConfig
from resnet_viz.datasets.batches import normalize
from resnet_viz.errors import ConfigError, ImageError
from resnet_viz.analyses.gradcam import GradCamResult, default_target, gradcam, gradcam_targets, overlay
from resnet_viz.nets.models import build_model

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny nets: see conftest.py
ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [ModelConfig(depth=8), ModelConfig(depth=8, residual=False),
           ModelConfig(family="imagenet", depth=18, width=0.125, stem="cifar"),
           ModelConfig(family="imagenet", depth=50, width=0.125, stem="cifar", residual=False)]


def images(n=3, seed=0, size=32):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)


def model_for(cfg, seed=0):
    torch.manual_seed(seed)
    return build_model(cfg).eval()


def reference_gradcam(model, imgs, layer, target=None):
    """Grad-CAM written out by hand (Selvaraju et al. 2017, eq. 1–2): channel weights are the spatially averaged
    gradients of the class score, the map is ReLU(Σ_k w_k A^k), then bilinear upsampling and min-max scaling."""
    saved = {}
    handle = model.get_submodule(layer).register_forward_hook(lambda m, i, o: saved.__setitem__("a", o))
    try:
        x = normalize(imgs)
        logits = model(x)
        target = logits.argmax(1) if target is None else target
        grads, = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), saved["a"])
    finally:
        handle.remove()
    cam = torch.relu((grads.mean((2, 3), keepdim=True) * saved["a"]).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=imgs.shape[-2:], mode="bilinear")[:, 0].detach()
    lo, hi = cam.amin((1, 2), keepdim=True), cam.amax((1, 2), keepdim=True)
    return torch.where(hi - lo > 1e-5 * hi, (cam - lo) / (hi - lo).clamp_min(1e-12), torch.zeros_like(cam))


# --------------------------------------------------------------------------------------------------------- targets

def test_targets_are_stages_and_blocks_in_depth_order():
    model = model_for(ModelConfig(depth=14))
    assert gradcam_targets(model) == ["stage1", "stage1.block1", "stage1.block2", "stage2", "stage2.block1",
                                      "stage2.block2", "stage3", "stage3.block1", "stage3.block2"]
    assert default_target(model) == "stage3.block2"
    with torch.device("meta"):
        r50 = build_model(ModelConfig(family="imagenet", depth=50))
    targets = gradcam_targets(r50)
    assert targets[:4] == ["stage2", "stage2.res2a", "stage2.res2b", "stage2.res2c"]
    assert default_target(r50) == "stage5.res5c" and len(targets) == 4 + 16
    assert all(isinstance(r50.get_submodule(t), nn.Module) for t in targets)


# -------------------------------------------------------------------------------------------------------- gradcam

@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.name)
def test_maps_for_stages_and_blocks(cfg):
    model = model_for(cfg)
    imgs = images()
    targets = gradcam_targets(model)
    for layer in (targets[0], targets[1], default_target(model)):
        result = gradcam(model, imgs, layer)
        assert isinstance(result, GradCamResult) and result.layer == layer
        assert result.maps.shape == (3, 32, 32) and result.maps.dtype == torch.float32
        assert float(result.maps.min()) >= 0 and float(result.maps.max()) <= 1
        assert result.predicted.shape == (3,) and result.predicted.dtype == torch.int64
        assert ((0 <= result.predicted) & (result.predicted < 10)).all()
        assert result.confidence.dtype == torch.float32
        assert ((0.1 - 1e-6 <= result.confidence) & (result.confidence <= 1)).all()  # max of 10 probabilities
        assert torch.equal(result.target_class, result.predicted)
        logits = model(normalize(imgs))
        assert torch.equal(result.predicted, logits.argmax(1))
        torch.testing.assert_close(result.confidence, logits.softmax(1).amax(1))
        for m in result.maps:  # min-max: every non-zero map spans exactly [0, 1]
            assert float(m.max()) == 0 or (float(m.min()) == 0 and float(m.max()) == pytest.approx(1))


@pytest.mark.parametrize("cfg", CONFIGS[:3], ids=lambda c: c.name)
def test_maps_match_a_hand_written_gradcam(cfg):
    model = model_for(cfg, seed=1)
    imgs = images(4, seed=1)
    for layer in (gradcam_targets(model)[1], default_target(model)):
        result = gradcam(model, imgs, layer)
        expected = reference_gradcam(model, imgs, layer)
        torch.testing.assert_close(result.maps, expected, atol=1e-4, rtol=1e-4)
        # the random net's output depends on the image, so are its maps: not flat, and not all the same
        assert all(float(m.max() - m.min()) > 0.5 for m in result.maps)
        assert not torch.allclose(result.maps[0], result.maps[1])


def test_map_follows_the_evidence():
    """A hand-wired net whose class-3 score is the brightness of the image, fed an image bright only in its top-left
    quarter: Grad-CAM for class 3 must light up that quarter and nothing else. Before the classifier is wired, no
    class depends on anything, and the all-zero map must stay zero."""
    model = model_for(ModelConfig(depth=8, batchnorm=False))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.stem.conv.weight[0, :, 1, 1] = 1.0  # channel 0 = the pixel's colour sum (after ReLU: bright pixels)
        model.stage1.block1.conv1.weight[0, 0, 1, 1] = 1.0  # the block doubles channel 0 (branch + identity)
        model.stage1.block1.conv2.weight[0, 0, 1, 1] = 1.0
    img = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
    img[:, :, :16, :16] = 255
    blank = gradcam(model, img, "stage1.block1", target_class=3)
    assert blank.maps.shape == (1, 32, 32) and float(blank.maps.abs().max()) == 0
    with torch.no_grad():
        model.fc.weight[3, 0] = 1.0
    result = gradcam(model, img, "stage1.block1", target_class=3)
    assert int(result.predicted) == 3
    cam = result.maps[0]
    assert float(cam[:16, :16].min()) == pytest.approx(1) and float(cam[16:].max()) == 0
    assert float(cam[:, 16:].max()) == 0


def test_input_size_and_imagenet_stem():
    """Maps come back at the input's size; an ImageNet-stem net shrinks 32×32 to 1×1 in its last stage, which gives
    a constant map — and a constant map is all zero after min-max scaling."""
    model = model_for(ModelConfig(family="imagenet", depth=18, width=0.125))
    result = gradcam(model, images(2, size=64), "stage3")
    assert result.maps.shape == (2, 64, 64) and float(result.maps.max()) == pytest.approx(1)
    flat = gradcam(model, images(2), default_target(model))
    assert flat.maps.shape == (2, 32, 32) and float(flat.maps.abs().max()) == 0


def test_single_image_and_explicit_targets():
    model = model_for(ModelConfig(depth=8))
    one = gradcam(model, images(1)[0], "stage2")
    assert one.maps.shape == (1, 32, 32)
    result = gradcam(model, images(2), "stage2", target_class=7)
    assert result.target_class.tolist() == [7, 7] and result.target_class.dtype == torch.int64
    torch.testing.assert_close(result.maps, reference_gradcam(model, images(2), "stage2", torch.tensor([7, 7])),
                               atol=1e-4, rtol=1e-4)
    assert gradcam(model, images(2), "stage2", target_class=[1, 2]).target_class.tolist() == [1, 2]
    assert gradcam(model, images(2), "stage2", target_class=torch.tensor(5)).target_class.tolist() == [5, 5]
    for bad in (10, -1, [1, 2, 3]):
        with pytest.raises(ConfigError, match="class"):
            gradcam(model, images(2), "stage2", target_class=bad)


def test_model_left_as_found():
    model = model_for(ModelConfig(depth=8)).train()
    model.stage1.block1.bn1.eval()  # mixed modes, e.g. frozen BN statistics, must come back exactly
    model.stem.conv.weight.requires_grad_(False)
    model(normalize(images(2))).sum().backward()  # gradients a training loop may still need
    modes = {name: m.training for name, m in model.named_modules()}
    grads = {name: p.grad.clone() if p.grad is not None else None for name, p in model.named_parameters()}
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    state = {k: v.clone() for k, v in model.state_dict().items()}

    gradcam(model, images(2), "stage3.block1", target_class=4)

    assert {name: m.training for name, m in model.named_modules()} == modes
    assert {name: p.requires_grad for name, p in model.named_parameters()} == flags
    for name, p in model.named_parameters():
        if grads[name] is None:
            assert p.grad is None, name
        else:
            torch.testing.assert_close(p.grad, grads[name])
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, state[k])  # eval mode inside: BN running statistics untouched
    for m in model.modules():
        for hooks in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
                      "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs"):
            assert not getattr(m, hooks, {}), (m, hooks)
    from torch.nn.modules import module as module_mod
    assert not module_mod._global_forward_hooks and not module_mod._global_backward_hooks


def test_works_under_no_grad_and_from_threads():
    model = model_for(ModelConfig(depth=8))
    expected = gradcam(model, images(2), "stage2.block1").maps
    with torch.no_grad():
        torch.testing.assert_close(gradcam(model, images(2), "stage2.block1").maps, expected)
    out, errors = [], []

    def work():
        try:
            out.append(gradcam(model, images(2), "stage2.block1").maps)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)
    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(out) == 3
    for maps in out:
        torch.testing.assert_close(maps, expected)
    assert not model.training


def test_unknown_layer_lists_the_valid_ones():
    model = model_for(ModelConfig(depth=8))
    with pytest.raises(ConfigError, match="not a stage or block") as info:
        gradcam(model, images(1), "stage9.block1")
    assert "stage1.block1" in str(info.value) and "stage3.block1" in str(info.value)
    for bad in ("fc", "stem.conv", "stage1.block1.conv1", ""):
        with pytest.raises(ConfigError, match="stage1"):
            gradcam(model, images(1), bad)
    with torch.device("meta"):
        deep = build_model(ModelConfig(depth=110))
    message = str(pytest.raises(ConfigError, gradcam, deep, images(1), "stage4").value)
    assert "stage1, stage2, stage3" in message and "stage3.block18" in message and len(message) < 300


def test_bad_image_tensors():
    model = model_for(ModelConfig(depth=8))
    with pytest.raises(ImageError, match="uint8"):
        gradcam(model, images(1).float(), "stage1")
    with pytest.raises(ImageError, match="N,3,H,W"):
        gradcam(model, torch.zeros(1, 1, 32, 32, dtype=torch.uint8), "stage1")


def test_import_needs_neither_captum_nor_streamlit():
    code = ("import sys; sys.modules['captum'] = None; sys.modules['captum.attr'] = None\n"
            "import resnet_viz.analyses.gradcam as g\n"
            "assert not {'streamlit', 'plotly', 'matplotlib'} & set(sys.modules)\n"
            "assert g.load_image(open(sys.argv[1], 'rb').read()).shape == (3, 32, 32)")
    buf = io.BytesIO()
    Image.new("RGB", (40, 40), (1, 2, 3)).save(buf, "PNG")
    import tempfile
    with tempfile.NamedTemporaryFile(suffix=".png") as f:
        f.write(buf.getvalue())
        f.flush()
        proc = subprocess.run([sys.executable, "-c", code, f.name], cwd=ROOT, capture_output=True, text=True,
                              timeout=120)
    assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------------------------------------------------- overlay

def test_overlay():
    img = torch.zeros(3, 32, 32, dtype=torch.uint8)
    cam = torch.zeros(32, 32)
    cam[:16] = 1
    out = overlay(img, cam)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert out[0, 0, 0] > 50 and out[0, 0, 1] < 10 and out[0, 0, 2] < 10  # hot = (dark) red
    assert out[31, 0, 2] > 50 and out[31, 0, 0] < 10 and out[31, 0, 1] < 10  # cold = (dark) blue
    grey = torch.full((3, 32, 32), 200, dtype=torch.uint8)
    assert (overlay(grey, cam, alpha=0) == 200).all()
    assert np.array_equal(overlay(grey, cam, alpha=1), overlay(img, cam, alpha=1))
    mid = overlay(img, torch.full((32, 32), 0.5), alpha=1)[0, 0]
    assert mid[1] > 200 and mid[0] < mid[1] and mid[2] < mid[1]  # the middle of jet is green-ish
    big = overlay(torch.zeros(3, 128, 128, dtype=torch.uint8), cam)  # a small map stretched onto a big image
    assert big.shape == (128, 128, 3) and big[0, 0, 0] > 50 and big[127, 0, 2] > 50
    assert overlay(img.numpy(), cam.numpy()).shape == (32, 32, 3)
    with pytest.raises(ValueError):
        overlay(img, cam, alpha=2)
