"""Grad-CAM maps and the image loader behind uploads."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from resnet_viz.config import ModelConfig
from resnet_viz.errors import ConfigError, ImageError
from resnet_viz.gradcam import default_target, gradcam, gradcam_targets, load_image, overlay
from resnet_viz.models import build_model


def images(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)


@pytest.mark.parametrize("cfg", [ModelConfig(depth=8), ModelConfig(depth=8, residual=False),
                                 ModelConfig(family="imagenet", depth=18, width=0.125, stem="cifar")],
                         ids=lambda c: c.name)
def test_maps_for_stages_and_blocks(cfg):
    torch.manual_seed(0)
    model = build_model(cfg)
    targets = gradcam_targets(model)
    assert targets[0] == model.stage_names[0] and default_target(model) == targets[-1]
    for layer in (targets[0], targets[1], default_target(model)):
        result = gradcam(model, images(), layer)
        assert result.maps.shape == (3, 32, 32) and result.maps.dtype == torch.float32
        assert float(result.maps.min()) >= 0 and float(result.maps.max()) <= 1
        assert result.predicted.shape == (3,) and ((0 <= result.predicted) & (result.predicted < 10)).all()
        assert ((0 < result.confidence) & (result.confidence <= 1)).all()
        assert torch.equal(result.target_class, result.predicted)
    assert gradcam(model, images(), targets[1]).maps.amax(dim=(1, 2)).gt(0).any()  # non-trivial maps


def test_model_left_as_found():
    model = build_model(ModelConfig(depth=8)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    gradcam(model, images(2), "stage3.block1", target_class=4)
    assert model.training
    assert all(p.requires_grad and p.grad is None for p in model.parameters())
    hooks = [m for m in model.modules() if m._forward_hooks or m._backward_hooks or m._forward_pre_hooks]
    assert hooks == []
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])  # eval mode inside: BN statistics untouched


def test_explicit_target_class():
    model = build_model(ModelConfig(depth=8))
    result = gradcam(model, images(2), "stage2", target_class=7)
    assert result.target_class.tolist() == [7, 7]


def test_unknown_layer():
    with pytest.raises(ConfigError, match="not a stage or block"):
        gradcam(build_model(ModelConfig(depth=8)), images(1), "stage9.block1")
    with pytest.raises(ConfigError):
        gradcam(build_model(ModelConfig(depth=8)), images(1), "fc")


def encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("mode, size, fmt", [("RGB", (640, 480), "JPEG"), ("RGBA", (50, 90), "PNG"),
                                             ("L", (31, 33), "PNG"), ("P", (200, 10), "PNG"),
                                             ("I;16", (64, 64), "PNG"), ("RGB", (32, 32), "BMP"),
                                             ("CMYK", (40, 40), "JPEG")])
def test_load_any_image(mode, size, fmt, tmp_path):
    arr = (np.arange(size[0] * size[1]) % 256).reshape(size[1], size[0]).astype(np.uint8)
    img = Image.fromarray(arr).convert(mode) if mode != "I;16" else Image.fromarray(arr.astype(np.uint16) * 200)
    raw = encode(img, fmt)
    t = load_image(raw)
    assert t.shape == (3, 32, 32) and t.dtype == torch.uint8
    path = tmp_path / f"x.{fmt.lower()}"
    path.write_bytes(raw)
    assert torch.equal(load_image(path), t)
    assert torch.equal(load_image(io.BytesIO(raw)), t)


def test_transparent_pixels_become_white():
    img = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    assert (load_image(encode(img, "PNG")) == 255).all()


@pytest.mark.parametrize("raw, message", [(b"hello, this is text\n", "text file"),
                                          (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "PDF"),
                                          (b"", "empty")])
def test_non_images_are_refused_clearly(raw, message):
    with pytest.raises(ImageError, match=message):
        load_image(raw)


def test_truncated_too_big_and_bomb_images():
    raw = encode(Image.new("RGB", (100, 100), (10, 200, 30)), "PNG")
    with pytest.raises(ImageError):
        load_image(raw[: len(raw) // 2])
    with pytest.raises(ImageError, match="MB"):
        load_image(raw, max_bytes=100)
    with pytest.raises(ImageError, match="too large"):
        load_image(raw, max_pixels=5000)


def test_overlay():
    img = torch.zeros(3, 32, 32, dtype=torch.uint8)
    cam = torch.zeros(32, 32)
    cam[:16] = 1
    out = overlay(img, cam)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert out[0, 0, 0] > out[0, 0, 2]  # hot = red
    assert out[31, 0, 2] > out[31, 0, 0]  # cold = blue
