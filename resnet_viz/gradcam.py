"""Grad-CAM (Selvaraju et al. 2017) through captum's LayerGradCam, for any stage or block of a model, and the image
loading that feeds it (CIFAR test images or a user's own file of any size and mode)."""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .data import normalize
from .errors import ConfigError, ImageError
from .models import ResNet

MAX_UPLOAD_BYTES = 20 * 2**20
MAX_UPLOAD_PIXELS = 40_000_000


def gradcam_targets(model: ResNet) -> list[str]:
    """Stages and blocks, in depth order: what a user can ask Grad-CAM to explain."""
    targets = []
    for stage_name in model.stage_names:
        targets.append(stage_name)
        targets.extend(f"{stage_name}.{block}" for block, _ in getattr(model, stage_name).named_children())
    return targets


def default_target(model: ResNet) -> str:
    return gradcam_targets(model)[-1]  # the last block: the highest-level maps, as in the Grad-CAM paper


def load_image(source, max_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = MAX_UPLOAD_PIXELS) -> torch.Tensor:
    """Any image file (path, bytes or file-like) → uint8 [3,32,32]: shorter side resized to 32, centre-cropped."""
    from PIL import Image, ImageOps, UnidentifiedImageError
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"{path} does not exist.")
        if path.stat().st_size > max_bytes:
            raise ImageError(f"{path.name} is {path.stat().st_size / 2**20:.1f} MB; the limit is "
                             f"{max_bytes / 2**20:.0f} MB.")
        raw = path.read_bytes()
    elif isinstance(source, (bytes, bytearray)):
        raw = bytes(source)
    else:
        raw = source.getvalue() if hasattr(source, "getvalue") else source.read()
    if not raw:
        raise ImageError("The file is empty.")
    if len(raw) > max_bytes:
        raise ImageError(f"The file is {len(raw) / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(raw))
            if img.width * img.height > max_pixels:
                raise ImageError(f"The image is {img.width}×{img.height} pixels — too large to open safely (limit "
                                 f"{max_pixels / 1e6:.0f} megapixels).")
            img.load()
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        kind = _sniff(raw)
        raise ImageError(f"This file is not an image that can be read{f' (it looks like {kind})' if kind else ''}. "
                         f"Upload a PNG, JPEG, GIF, BMP or WebP picture.") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"The image file is damaged or truncated ({e}).") from e
    img = ImageOps.exif_transpose(img)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        span = max(arr.max() - arr.min(), 1)
        img = Image.fromarray(((arr - arr.min()) / span * 255).astype(np.uint8))
    img = img.convert("RGB")
    img = ImageOps.fit(img, (32, 32), method=Image.Resampling.LANCZOS)
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


def _sniff(raw: bytes) -> str | None:
    head = raw[:8]
    if head.startswith(b"%PDF"):
        return "a PDF"
    if head.startswith(b"PK"):
        return "a zip archive or office document"
    try:
        raw[:512].decode("utf-8")
        return "a text file"
    except UnicodeDecodeError:
        return None


@dataclass
class GradCamResult:
    maps: torch.Tensor  # float32 [N,H,W] in [0,1], each map scaled to its own maximum
    predicted: torch.Tensor  # int64 [N]
    confidence: torch.Tensor  # float32 [N]: softmax probability of the predicted class
    target_class: torch.Tensor  # int64 [N]: the class each map explains
    layer: str


def gradcam(model: nn.Module, images_uint8: torch.Tensor, layer: str, target_class=None,
            device: str | torch.device = "cpu") -> GradCamResult:
    from captum.attr import LayerAttribution, LayerGradCam
    valid = gradcam_targets(model) if isinstance(model, ResNet) else []
    try:
        module = model.get_submodule(layer)
    except AttributeError:
        module = None
    if module is None or (valid and layer not in valid):
        raise ConfigError(f"{layer!r} is not a stage or block of this model. Choose one of: "
                          f"{', '.join(valid[:6])} … {valid[-1] if valid else ''}")
    if images_uint8.dim() == 3:
        images_uint8 = images_uint8.unsqueeze(0)
    was_training = model.training
    requires = [p.requires_grad for p in model.parameters()]
    model.eval()
    try:
        x = normalize(images_uint8.to(device))
        with torch.no_grad():
            probs = torch.softmax(model(x).float(), dim=1)
        confidence, predicted = probs.max(dim=1)
        if target_class is None:
            target = predicted
        else:
            target = torch.as_tensor(target_class, device=x.device).long().expand(len(x))
        x.requires_grad_(True)
        attributions = LayerGradCam(model, module).attribute(x, target=target, relu_attributions=True)
        maps = LayerAttribution.interpolate(attributions, tuple(x.shape[-2:]), interpolate_mode="bilinear")
        maps = maps.squeeze(1).detach().float().clamp_min(0)
        peak = maps.flatten(1).max(dim=1).values.clamp_min(1e-12).view(-1, 1, 1)
        maps = torch.where(peak > 1e-12, maps / peak, torch.zeros_like(maps))
    finally:
        model.train(was_training)
        for p, r in zip(model.parameters(), requires):
            p.requires_grad_(r)
        model.zero_grad(set_to_none=True)
    return GradCamResult(maps=maps.cpu(), predicted=predicted.cpu(), confidence=confidence.cpu(),
                         target_class=target.cpu(), layer=layer)


def _jet(values: np.ndarray) -> np.ndarray:
    """A jet-like colour map (blue → cyan → yellow → red) in numpy, values in [0,1] → uint8 RGB."""
    v = np.clip(values, 0, 1)[..., None]
    r = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return (np.concatenate([r, g, b], axis=-1) * 255).astype(np.uint8)


def overlay(image_uint8_chw: torch.Tensor, cam_map: torch.Tensor, alpha: float = 0.45) -> np.ndarray:
    """The image with the Grad-CAM map blended on top: uint8 H×W×3."""
    image = image_uint8_chw.permute(1, 2, 0).cpu().numpy().astype(np.float32)
    heat = _jet(cam_map.cpu().numpy()).astype(np.float32)
    return ((1 - alpha) * image + alpha * heat).clip(0, 255).astype(np.uint8)
