"""Grad-CAM (Selvaraju et al. 2017) through captum's LayerGradCam, for any stage or block of a model, and the image
loading that feeds it (CIFAR test images or a user's own file of any size and mode).

No Streamlit or plotting here: `overlay` colours a map with a jet-like colour map written in numpy. captum and PIL
are imported inside the functions that need them, so `import resnet_viz.analyses.gradcam` works without them."""
from __future__ import annotations

import io
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..datasets.batches import normalize
from ..errors import ConfigError, ImageError

MAX_UPLOAD_BYTES = 20 * 2**20  # the app's .streamlit/config.toml sets server.maxUploadSize to the same 20 MB
MAX_UPLOAD_PIXELS = 40_000_000
# Peak memory for decoding and shrinking one picture. Pixels alone do not bound it: a 300 KB 16-bit RGBA PNG of 40
# megapixels decodes to 160 MB and, converted full-size step by step, used to cost ~0.9 GB.
MAX_DECODE_BYTES = 256 * 2**20
CAM_SIZE = 32
# Raster formats a user is likely to upload. Restricting Image.open to these keeps PIL from handing a file to
# Ghostscript (EPS) or other exotic decoders; anything else gets a clear "not an image" message.
UPLOAD_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "DIB", "WEBP", "TIFF", "PPM", "ICO", "AVIF", "QOI", "JPEG2000")

# Models live in Streamlit's shared resource cache, so two sessions can ask for maps of the same model at once.
# captum puts hooks on the model and we switch it to eval mode for the duration: one Grad-CAM at a time.
_LOCK = threading.RLock()


def gradcam_targets(model: nn.Module) -> list[str]:
    """Stages and blocks, in depth order: what a user can ask Grad-CAM to explain.

    ["stage1", "stage1.block1", …, "stage3", …, "stage3.block3"] for a CIFAR net, "stage2", "stage2.res2a", … for
    the ImageNet family. The last entry, the last block of the last stage, is the default (`default_target`)."""
    targets = []
    for stage_name in getattr(model, "stage_names", []):
        targets.append(stage_name)
        targets.extend(f"{stage_name}.{block}" for block, _ in model.get_submodule(stage_name).named_children())
    return targets


def default_target(model: nn.Module) -> str:
    targets = gradcam_targets(model)
    if not targets:
        raise ConfigError("This model has no stages to explain.")
    return targets[-1]  # the last block: the highest-level maps, as in the Grad-CAM paper


# ------------------------------------------------------------------------------------------------------------ images

def _read_source(source, max_bytes: int) -> bytes:
    too_big = f"the limit is {max_bytes / 2**20:.3g} MB"
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"{path} is not a file.")
        size = path.stat().st_size
        if size > max_bytes:
            raise ImageError(f"{path.name} is {size / 2**20:.1f} MB; {too_big}.")
        try:
            return path.read_bytes()
        except OSError as e:
            raise ImageError(f"{path.name} cannot be read ({e.strerror or e}).") from e
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if hasattr(source, "getvalue"):  # BytesIO, Streamlit's UploadedFile: the whole file whatever the read position
        raw = source.getvalue()
    elif hasattr(source, "read"):
        raw = source.read(max_bytes + 1)  # never read more than the limit into memory
    else:
        raise ImageError(f"Cannot read an image from a {type(source).__name__}; give a path, bytes or an open file.")
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise ImageError("The file was opened as text; open it in binary mode ('rb').")
    return bytes(raw)


def _sniff(raw: bytes) -> str | None:
    """A guess at what a non-image file is, for the error message."""
    head = raw[:64]
    if head.startswith(b"%PDF"):
        return "a PDF"
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive or an Office document"
    if head.startswith(b"%!PS"):
        return "a PostScript/EPS file"
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypmsf1", b"ftyphevc"):
        return "a HEIC photo (convert it to JPEG first)"
    if head[4:8] == b"ftyp":
        return "a video or other media file"
    stripped = head.lstrip().lower()
    if stripped.startswith((b"<svg", b"<?xml")):
        return "an SVG or XML file (vector images cannot be read; export a PNG)"
    if stripped.startswith((b"<!doctype html", b"<html")):
        return "a web page (HTML), not the image itself"
    sample = raw[:1024]
    if b"\x00" not in sample:
        try:
            sample.decode("utf-8")
            return "a text file"
        except UnicodeDecodeError as e:
            if e.start >= len(sample) - 3:  # a multi-byte character cut off by the sample's end
                return "a text file"
    return None


def _to_8bit(img, sixteen_bit: bool):
    """Single-channel 16/32-bit integer and float images → 8-bit "L"; PIL's own conversion would clip them."""
    from PIL import Image
    arr = np.asarray(img).astype(np.float64)
    if arr.size == 0:
        raise ImageError("The image has no pixels.")
    lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
    if sixteen_bit or (img.mode == "I" and lo >= 0 and 255 < hi <= 65535):
        arr = arr / 257  # the full 16-bit range onto 0…255
    elif img.mode == "F" and lo >= 0 and hi <= 1:
        arr = arr * 255
    elif lo < 0 or hi > 255:  # unknown range: stretch what is there
        arr = (arr - lo) / max(hi - lo, 1e-12) * 255
    return Image.fromarray(np.nan_to_num(arr).round().clip(0, 255).astype(np.uint8), mode="L")


# Modes PIL's reduce() cannot shrink as they are (palette indices must not be averaged), and what they become first.
_BEFORE_SHRINK = {"1": "L", "P": "RGBA", "PA": "RGBA", "I;16": "I", "I;16B": "I", "I;16L": "I", "I;16N": "I"}
# Bytes per pixel of the full-size copies made on the way: that conversion, and reduce()'s premultiplied copy of an
# image with alpha.
_COPY_BYTES = {"1": 1, "P": 8, "PA": 8, "LA": 4, "RGBA": 4, "I;16": 4, "I;16B": 4, "I;16L": 4, "I;16N": 4}


def decode_cost(mode: str, width: int, height: int) -> int:
    """Bytes held at the peak of decoding and shrinking an image of this header-declared mode and size."""
    stored = 1 if mode in ("1", "L", "P") else 2 if mode.startswith("I;16") else 4  # PIL's storage per pixel
    return width * height * (stored + _COPY_BYTES.get(mode, 0))


def _shrink(img):
    """Reduce by a whole factor (box averaging) while the shorter side stays ≥ 4×CAM_SIZE, so every later step —
    rotation, compositing, colour conversion, the final Lanczos resize — works on a small image."""
    if img.mode in _BEFORE_SHRINK:
        target = _BEFORE_SHRINK[img.mode]
        if img.mode == "P" and "transparency" not in img.info:
            target = "RGB"
        img = img.convert(target)
    factor = min(img.size) // (4 * CAM_SIZE)
    return img.reduce(factor) if factor >= 2 else img


_ORIENTATION = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE", 6: "ROTATE_270",
                7: "TRANSVERSE", 8: "ROTATE_90"}  # EXIF orientation tag → the transpose that displays it upright


def _orientation(img):
    """The transpose the EXIF orientation tag asks for, or None. Read before shrinking: shrinking drops the tags."""
    from PIL import Image
    try:
        name = _ORIENTATION.get(img.getexif().get(0x0112))
    except Exception:  # a malformed EXIF block is no reason to refuse the picture: show it unrotated
        return None
    return getattr(Image.Transpose, name) if name else None


def load_image(source, max_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = MAX_UPLOAD_PIXELS,
               max_decode_bytes: int = MAX_DECODE_BYTES) -> torch.Tensor:
    """Any image file → uint8 [3,32,32] like a CIFAR-10 image.

    `source` is a path, bytes, or a file-like object (Streamlit's UploadedFile). Any size and mode: transparency is
    composited on white, grey and palette images become RGB, 16-bit images are scaled to 8 bits, EXIF rotation is
    applied; the shorter side is resized to 32 pixels with antialiasing (Lanczos) and the centre is cropped.
    Anything else — not an image, damaged, empty, over `max_bytes`, over `max_pixels` (decompression bombs), or
    costing more than `max_decode_bytes` to decode (judged from its header, before decoding) — raises ImageError
    with a message meant for the person who uploaded it."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    raw = _read_source(source, max_bytes)
    if not raw:
        raise ImageError("The file is empty (0 bytes).")
    if len(raw) > max_bytes:
        raise ImageError(f"The file is {len(raw) / 2**20:.1f} MB or more; the limit is {max_bytes / 2**20:.3g} MB.")
    Image.init()
    formats = [f for f in UPLOAD_FORMATS if f in Image.OPEN]
    too_large = ("The image is {w}×{h} = {mp:.0f} megapixels — too large to open safely (the limit is "
                 f"{max_pixels / 1e6:.3g} megapixels). Scale it down first.")
    try:
        # PIL warns (DecompressionBombWarning) and raises (DecompressionBombError) on its own, larger pixel limit;
        # keep its warnings from reaching the user, enforce our limits before decoding any pixel.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(raw), formats=formats)
            w, h = img.size
            if w * h > max_pixels:
                raise ImageError(too_large.format(w=w, h=h, mp=w * h / 1e6))
            if w < 1 or h < 1:
                raise ImageError("The image has no pixels.")
            if img.format == "JPEG":  # decode big JPEGs at a reduced scale (still ≥ 64 px a side): far less work
                img.draft(img.mode, (64, 64))
            cost = decode_cost(img.mode, *img.size)
            if cost > max_decode_bytes:
                raise ImageError(f"The image is {w}×{h} pixels in mode {img.mode}: decoding it would take about "
                                 f"{cost / 2**20:,.0f} MB of memory (the limit is {max_decode_bytes / 2**20:,.0f} MB). "
                                 f"Scale it down or save it as an 8-bit RGB PNG or a JPEG first.")
            img.load()
            orientation = _orientation(img)
            sixteen_bit = img.mode.startswith("I;16")
            img = _shrink(img)
            if orientation is not None:
                img = img.transpose(orientation)
            if img.mode in ("I", "F"):
                img = _to_8bit(img, sixteen_bit)
            if "A" in img.mode or "a" in img.mode or "transparency" in img.info:
                rgba = img.convert("RGBA")
                img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
            img = img.convert("RGB")
            # fit = centre crop to a square, then resize with antialiasing: the same as resizing the shorter side to
            # 32 and cropping the centre, without ever materialising a huge intermediate for very long images.
            img = ImageOps.fit(img, (CAM_SIZE, CAM_SIZE), method=Image.Resampling.LANCZOS)
    except ImageError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageError(f"The image is too large to open safely (a possible decompression bomb; the limit is "
                         f"{max_pixels / 1e6:.3g} megapixels). Scale it down first.") from e
    except UnidentifiedImageError as e:
        kind = _sniff(raw)
        raise ImageError(f"This file is not an image PIL can read{f' (got {kind}?)' if kind else ''}. "
                         f"Upload a PNG, JPEG, GIF, BMP, WebP or TIFF picture.") from e
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError, MemoryError) as e:
        raise ImageError(f"The image file is damaged, truncated or in an unsupported variant ({e}).") from e
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


# ----------------------------------------------------------------------------------------------------------- Grad-CAM

@dataclass
class GradCamResult:
    maps: torch.Tensor  # float32 [N,H,W] in [0,1]: each map min-max normalised (a constant map becomes all zero)
    predicted: torch.Tensor  # int64 [N]
    confidence: torch.Tensor  # float32 [N]: softmax probability of the predicted class
    target_class: torch.Tensor  # int64 [N]: the class each map explains
    layer: str


def _unknown_layer(layer: str, valid: list[str]) -> ConfigError:
    if not valid:
        return ConfigError(f"{layer!r} cannot be explained: Grad-CAM here works on the stages and blocks of a ResNet.")
    if len(valid) <= 16:
        choices = ", ".join(valid)
    else:
        stages = [t for t in valid if "." not in t]
        blocks = [t for t in valid if "." in t]
        choices = f"a stage ({', '.join(stages)}) or a block ({blocks[0]}, {blocks[1]} … {blocks[-1]})"
    return ConfigError(f"{layer!r} is not a stage or block of this model. Choose {choices}.")


def _targets(target_class, n: int, num_classes: int, device: torch.device) -> torch.Tensor:
    target = torch.as_tensor(target_class).long().flatten().to(device)
    if target.numel() == 1:
        target = target.expand(n)
    if target.numel() != n:
        raise ConfigError(f"target_class needs one class for every image ({n}) or a single class for all, got "
                          f"{target.numel()}.")
    if ((target < 0) | (target >= num_classes)).any():
        raise ConfigError(f"Target classes must be between 0 and {num_classes - 1}, got {target.tolist()}.")
    return target.contiguous()


def _normalise_maps(maps: torch.Tensor) -> torch.Tensor:
    """Min-max scaling of each map to [0,1]. A constant map — all zero (no positive evidence anywhere) or a 1×1
    layer output upsampled — has no "where" to show and comes back all zero; the relative tolerance keeps the
    rounding noise of bilinear upsampling from being blown up into a pattern."""
    flat = maps.flatten(1)
    lo = flat.min(dim=1).values.view(-1, 1, 1)
    hi = flat.max(dim=1).values.view(-1, 1, 1)
    span = hi - lo
    ok = span > (1e-5 * hi.abs()).clamp_min(1e-12)
    return torch.where(ok, (maps - lo) / torch.where(ok, span, torch.ones_like(span)), torch.zeros_like(maps))


def gradcam(model: nn.Module, images_uint8: torch.Tensor, layer: str, target_class=None,
            device: str | torch.device = "cpu") -> GradCamResult:
    """Grad-CAM maps of `layer` (a name from `gradcam_targets`) for uint8 images [N,3,H,W] (or one [3,H,W]).

    The images are normalised as in training, the model runs in eval mode, and captum's LayerGradCam (with ReLU on
    the weighted sum, as in the paper) gives one map per image for `target_class` (an int, one per image, or None
    for the predicted class). Maps are upsampled bilinearly to the input size and min-max normalised to [0,1].
    The model is left exactly as found: same train/eval mode per module, requires_grad flags, .grad and no hooks."""
    from captum.attr import LayerAttribution, LayerGradCam

    valid = gradcam_targets(model)
    if layer not in valid:
        raise _unknown_layer(layer, valid)
    module = model.get_submodule(layer)
    if not isinstance(images_uint8, torch.Tensor) or images_uint8.dtype != torch.uint8:
        raise ImageError("Grad-CAM expects uint8 images (0…255), as load_image and the CIFAR-10 loader return them.")
    if images_uint8.dim() == 3:
        images_uint8 = images_uint8.unsqueeze(0)
    if images_uint8.dim() != 4 or images_uint8.shape[1] != 3 or len(images_uint8) == 0:
        raise ImageError(f"Grad-CAM expects images shaped [N,3,H,W] with N ≥ 1, got {list(images_uint8.shape)}.")
    device = torch.device(device)
    param = next(model.parameters(), None)
    if param is not None and param.device.type != device.type:
        raise ConfigError(f"The model is on {param.device} but Grad-CAM was asked to run on {device}; move the "
                          f"model first (model.to({device.type!r})).")

    with _LOCK:
        modes = {m: m.training for m in model.modules()}
        params = list(model.parameters())
        requires = [p.requires_grad for p in params]
        grads = [p.grad for p in params]
        try:
            model.eval()
            with torch.inference_mode(False), torch.enable_grad():
                x = normalize(images_uint8.to(device))
                with torch.no_grad():
                    logits = model(x).float()
                probs = torch.softmax(logits, dim=1)
                confidence, predicted = probs.max(dim=1)
                target = predicted if target_class is None else _targets(target_class, len(x), logits.shape[1],
                                                                         x.device)
                x.requires_grad_(True)
                attributions = LayerGradCam(model, module).attribute(x, target=target, relu_attributions=True)
                maps = LayerAttribution.interpolate(attributions.detach().float(), tuple(x.shape[-2:]),
                                                    interpolate_mode="bilinear")
            maps = _normalise_maps(maps.squeeze(1).clamp_min(0))
        finally:
            for m, mode in modes.items():
                m.training = mode
            for p, r, g in zip(params, requires, grads):
                p.requires_grad_(r)
                p.grad = g
    return GradCamResult(maps=maps.cpu(), predicted=predicted.cpu(), confidence=confidence.cpu(),
                         target_class=target.cpu(), layer=layer)


# ----------------------------------------------------------------------------------------------------------- display

def _jet(values: np.ndarray) -> np.ndarray:
    """A jet-like colour map (dark blue → blue → cyan → yellow → red → dark red) in numpy: [0,1] → uint8 RGB."""
    v = np.clip(np.nan_to_num(values.astype(np.float32)), 0, 1)[..., None]
    r = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return (np.concatenate([r, g, b], axis=-1) * 255).round().astype(np.uint8)


def colour_scale(width: int = 256, height: int = 12) -> np.ndarray:
    """The overlay's colour map as a horizontal strip, 0 on the left to 1 on the right: uint8 height×width×3 RGB."""
    return np.repeat(_jet(np.linspace(0.0, 1.0, width))[None], height, axis=0)


def overlay(image_uint8_chw, cam_map, alpha: float = 0.45) -> np.ndarray:
    """The image with its Grad-CAM map blended on top, for display: uint8 H×W×3 RGB.

    `image_uint8_chw` is uint8 [3,H,W] (or [1,H,W]), tensor or array; `cam_map` [h,w] in [0,1] is resized to H×W
    (bilinear) when its size differs. alpha = 0 shows the image, 1 the map alone."""
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}.")
    image = torch.as_tensor(np.asarray(image_uint8_chw.cpu() if isinstance(image_uint8_chw, torch.Tensor)
                                       else image_uint8_chw))
    if image.dim() == 2:
        image = image.unsqueeze(0)
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"overlay expects an image shaped [3,H,W], got {list(image.shape)}.")
    image = image.expand(3, -1, -1)
    cam = torch.as_tensor(np.asarray(cam_map.detach().cpu() if isinstance(cam_map, torch.Tensor) else cam_map),
                          dtype=torch.float32)
    if cam.dim() != 2:
        raise ValueError(f"overlay expects one map shaped [H,W], got {list(cam.shape)}.")
    if tuple(cam.shape) != tuple(image.shape[1:]):
        cam = F.interpolate(cam[None, None], size=tuple(image.shape[1:]), mode="bilinear", align_corners=False)[0, 0]
    heat = _jet(cam.numpy()).astype(np.float32)
    base = image.permute(1, 2, 0).numpy().astype(np.float32)
    return ((1 - alpha) * base + alpha * heat).round().clip(0, 255).astype(np.uint8)


__all__ = ["gradcam_targets", "default_target", "load_image", "GradCamResult", "gradcam", "overlay", "colour_scale",
           "MAX_UPLOAD_BYTES", "MAX_UPLOAD_PIXELS"]
