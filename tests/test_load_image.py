"""The image loader behind Grad-CAM's uploads (`resnet_viz.analyses.gradcam.load_image`): every mode, size and source, and
every way a file can fail to be an image."""
import io
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from resnet_viz.errors import ImageError
from resnet_viz.analyses.gradcam import load_image


def encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def gradient(w, h):
    return ((np.arange(w * h) * 7) % 256).reshape(h, w).astype(np.uint8)


@pytest.mark.parametrize("mode, size, fmt", [
    ("RGB", (640, 481), "JPEG"), ("RGB", (33, 1000), "PNG"), ("RGBA", (50, 91), "PNG"), ("L", (31, 33), "PNG"),
    ("L", (300, 17), "JPEG"), ("P", (200, 10), "PNG"), ("P", (45, 47), "GIF"), ("I;16", (64, 65), "PNG"),
    ("I;16", (37, 29), "TIFF"), ("LA", (41, 60), "PNG"), ("1", (90, 70), "PNG"), ("RGB", (32, 32), "BMP"),
    ("CMYK", (40, 44), "JPEG"), ("RGB", (7, 5), "WEBP"), ("F", (20, 20), "TIFF"),
])
def test_load_any_image(mode, size, fmt, tmp_path):
    arr = gradient(*size)
    if mode == "I;16":
        img = Image.fromarray(arr.astype(np.uint16) * 257)
    elif mode == "F":
        img = Image.fromarray(arr.astype(np.float32) / 255)
    else:
        img = Image.fromarray(arr).convert(mode)
    raw = encode(img, fmt)
    t = load_image(raw)
    assert t.shape == (3, 32, 32) and t.dtype == torch.uint8 and t.is_contiguous()
    assert int(t.max()) - int(t.min()) > 20  # the picture survived, not a blank
    path = tmp_path / f"x.{fmt.lower()}"
    path.write_bytes(raw)
    assert torch.equal(load_image(path), t) and torch.equal(load_image(str(path)), t)
    assert torch.equal(load_image(io.BytesIO(raw)), t)
    with open(path, "rb") as f:  # a plain file object: read(), no getvalue()
        assert torch.equal(load_image(f), t)


def test_sixteen_bit_images_keep_their_brightness():
    grey = np.full((40, 40), 0x8080, dtype=np.uint16)
    assert (load_image(encode(Image.fromarray(grey), "PNG")) == 128).all()
    assert (load_image(encode(Image.fromarray(grey * 0 + 65535), "PNG")) == 255).all()


def test_transparency_is_composited_on_white():
    assert (load_image(encode(Image.new("RGBA", (32, 32), (0, 0, 0, 0)), "PNG")) == 255).all()
    half = load_image(encode(Image.new("RGBA", (64, 64), (0, 0, 0, 128)), "PNG"))
    assert ((half >= 125) & (half <= 129)).all()
    p = Image.new("P", (40, 40), 0)
    p.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    p.paste(1, (0, 0, 40, 20))
    t = load_image(encode(p, "PNG", transparency=0))  # palette index 0 transparent: bottom half white
    assert (t[:, -1] == 255).all() and t[:, 0, 16].tolist() == [255, 0, 0]


def test_shorter_side_resized_then_centre_cropped():
    wide = np.zeros((32, 96, 3), np.uint8)
    wide[:, :32] = (255, 0, 0)
    wide[:, 32:64] = (0, 255, 0)
    wide[:, 64:] = (0, 0, 255)
    assert (load_image(encode(Image.fromarray(wide), "PNG")) == torch.tensor([0, 255, 0]).view(3, 1, 1)).all()
    tall = np.zeros((960, 320, 3), np.uint8)  # 320 wide: scaled by 1/10, the centre 320 rows kept
    tall[:200] = (255, 0, 0)
    tall[200:760] = (0, 255, 0)
    tall[760:] = (0, 0, 255)
    t = load_image(encode(Image.fromarray(tall), "PNG"))
    assert (t == torch.tensor([0, 255, 0]).view(3, 1, 1)).all()
    strip = np.zeros((10, 4000, 3), np.uint8)  # extreme aspect ratio: the middle 10×10 becomes the whole image
    strip[:, 1995:2005] = 255
    t = load_image(encode(Image.fromarray(strip), "PNG"))
    assert (t[:, :, 6:26] >= 240).all() and t.float().mean() > 200  # edges: Lanczos reaches into the black


def test_downscaling_is_antialiased():
    checker = (np.indices((320, 320)).sum(0) % 2 * 255).astype(np.uint8)  # 1-pixel checkerboard
    t = load_image(encode(Image.fromarray(checker), "PNG")).float()
    assert (t - 127.5).abs().max() < 10  # averaged to grey; point sampling would give pure black or white


def test_exif_orientation_is_applied():
    arr = np.zeros((32, 64, 3), np.uint8)
    arr[:, :32] = (255, 0, 0)  # left half red, right half blue
    arr[:, 32:] = (0, 0, 255)
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": the left half becomes the top
    t = load_image(encode(img, "JPEG", exif=exif.tobytes(), quality=95))
    assert t[0, 2, 28] > 200 and t[2, 2, 28] < 60  # top row red across
    assert t[2, 29, 3] > 200 and t[0, 29, 3] < 60  # bottom row blue


@pytest.mark.parametrize("raw, message", [
    (b"hello, this is text\n", "not an image PIL can read \\(got a text file\\?\\)"),
    ("caf\u00e9 na\u00efve r\u00e9sum\u00e9 ".encode() * 300, "text file"),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "got a PDF"),
    (b"PK\x03\x04\x14\x00\x06\x00" + bytes(100), "zip"),
    (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"),
    (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "PostScript"),
    (b"\x00\x00\x00\x18ftypheic" + bytes(64), "HEIC"),
    (bytes(range(256)) * 4, "not an image"),
    (b"", "empty"),
])
def test_non_images_are_refused_clearly(raw, message):
    with pytest.raises(ImageError, match=message):
        load_image(raw)


def test_truncated_oversized_and_odd_sources(tmp_path):
    raw = encode(Image.fromarray(np.random.default_rng(0).integers(0, 256, (100, 100, 3), dtype=np.uint8)), "PNG")
    with pytest.raises(ImageError, match="damaged|truncated"):
        load_image(raw[: len(raw) // 2])
    jpeg = encode(Image.fromarray(np.random.default_rng(0).integers(0, 256, (100, 100, 3), dtype=np.uint8)), "JPEG")
    with pytest.raises(ImageError):
        load_image(jpeg[: len(jpeg) // 3])
    with pytest.raises(ImageError, match="limit is"):
        load_image(raw, max_bytes=100)
    with pytest.raises(ImageError, match="limit is"):
        load_image(io.BytesIO(raw), max_bytes=100)
    path = tmp_path / "big.png"
    path.write_bytes(raw)
    with pytest.raises(ImageError, match="limit is"):
        load_image(path, max_bytes=100)
    with open(path, "rb") as f:
        with pytest.raises(ImageError, match="limit is"):
            load_image(f, max_bytes=100)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        load_image(tmp_path / "empty.png")
    with pytest.raises(ImageError, match="not a file"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="not a file"):
        load_image(tmp_path)
    with open(path, "r", encoding="latin-1") as f:
        with pytest.raises(ImageError, match="binary"):
            load_image(f)
    with pytest.raises(ImageError):
        load_image(12345)


def test_decompression_bombs_are_refused_without_warnings(monkeypatch):
    raw = encode(Image.new("L", (200, 150), 9), "PNG")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning escaping load_image fails the test
        with pytest.raises(ImageError, match="too large"):
            load_image(raw, max_pixels=5000)
        # PIL's own limits: above MAX_IMAGE_PIXELS it warns, above twice that it raises. Neither may escape.
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20_000)
        assert load_image(raw, max_pixels=10**9).shape == (3, 32, 32)  # 30 000 px: PIL only warns, we allow it
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
        with pytest.raises(ImageError, match="too large"):
            load_image(raw, max_pixels=10**9)
    # real bombs: tiny PNGs whose header claims 8 000 × 8 000 (over our limit) or 30 000 × 30 000 pixels (over PIL's)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1024 * 1024 * 1024 // 4 // 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for side in (8_000, 30_000):
            with pytest.raises(ImageError, match="too large"):
                load_image(png_claiming(side, side))


def png_claiming(width, height):
    """A 1×1 PNG whose header says width × height: what a decompression bomb looks like before decoding."""
    import struct
    import zlib
    raw = bytearray(encode(Image.new("L", (1, 1)), "PNG"))
    assert raw[12:16] == b"IHDR"
    raw[16:24] = struct.pack(">II", width, height)
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])))
    return bytes(raw)
