"""CIFAR-10 as uint8 tensors, and the paper's augmentation as batched tensor ops on the training device.

Three sources, detected by layout: CIFAR-10's own python batches (what torchvision downloads), an image folder
`train/<class>/*` + `test/<class>/*`, or a torchvision download into the data folder. Decoding happens once; the
result is cached as safetensors so the next start is instant.
"""
from __future__ import annotations

import hashlib
import os
import pickle
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import DataError

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
BATCH_FILES = [f"data_batch_{i}" for i in range(1, 6)]
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}

HOW_TO_GET_DATA = (
    "Two ways to get CIFAR-10:\n"
    "  1. let resnet_viz download it (about 170 MB, needs internet) — just run again with network access; or\n"
    "  2. point it at a folder you already have with --data DIR (CLI), the data-folder box (app), or the "
    "RESNET_VIZ_DATA environment variable. The folder may hold CIFAR-10's python batches (cifar-10-batches-py/) "
    "or images laid out as train/<class>/*.jpg and test/<class>/*.jpg.")


def default_data_dir() -> Path:
    return Path(os.environ.get("RESNET_VIZ_DATA") or Path.home() / ".cache" / "resnet_viz" / "data").expanduser()


def default_cache_dir() -> Path:
    return Path(os.environ.get("RESNET_VIZ_CACHE") or Path.home() / ".cache" / "resnet_viz" / "tensors").expanduser()


@dataclass
class Cifar10Tensors:
    train_images: torch.Tensor  # uint8 [N,3,32,32]
    train_labels: torch.Tensor  # int64 [N]
    test_images: torch.Tensor  # uint8 [M,3,32,32]
    test_labels: torch.Tensor  # int64 [M]
    classes: tuple[str, ...]
    source: str


# --------------------------------------------------------------------------------------------------- layout ----
def _python_batches_dir(root: Path) -> Path | None:
    for candidate in (root, root / "cifar-10-batches-py"):
        if (candidate / "test_batch").exists() or (candidate / "data_batch_1").exists():
            return candidate
    return None


def _image_folder_dir(root: Path) -> Path | None:
    candidates = [root] + sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    for candidate in candidates:
        if (candidate / "train").is_dir() or (candidate / "test").is_dir():
            return candidate
    return None


# -------------------------------------------------------------------------------------------- python batches ----
def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DataError(f"{path.parent} looks like CIFAR-10's python format but {path.name} is missing.")
    try:
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="bytes")  # the dataset's own format (as torchvision reads it)
        data = np.asarray(entry[b"data"], dtype=np.uint8)
        labels = np.asarray(entry.get(b"labels", entry.get(b"fine_labels")), dtype=np.int64)
        images = data.reshape(-1, 3, 32, 32)
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError, AttributeError) as e:
        raise DataError(f"{path} is not a readable CIFAR-10 batch file (corrupt or truncated: {e}). Delete the "
                        f"folder and download again, or point --data at a good copy.") from e
    if len(labels) != len(images) or (len(labels) and (labels.min() < 0 or labels.max() > 9)):
        raise DataError(f"{path}: labels do not match the images (expected one label 0–9 per image).")
    return images, labels


def _read_python_batches(folder: Path) -> tuple[np.ndarray, ...]:
    train = [_read_batch(folder / name) for name in BATCH_FILES]
    test_images, test_labels = _read_batch(folder / "test_batch")
    return (np.concatenate([t[0] for t in train]), np.concatenate([t[1] for t in train]), test_images,
            test_labels)


# ------------------------------------------------------------------------------------------------ image folder ----
def _decode(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as img:
            if img.size != (32, 32):
                raise DataError(f"{path} is {img.size[0]}×{img.size[1]} pixels; CIFAR-10 images are 32×32.")
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise DataError(f"{path} is not a readable image ({e}).") from e


def _read_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    split_dir = folder / split
    if not split_dir.is_dir():
        raise DataError(f"{folder} has no {split}/ folder. An image folder needs both train/<class>/ and "
                        f"test/<class>/ with CIFAR-10's ten classes.")
    class_dirs = sorted(p for p in split_dir.iterdir() if p.is_dir())
    unknown = [p.name for p in class_dirs if p.name not in CIFAR10_CLASSES]
    if unknown:
        raise DataError(f"{split_dir} has folders that are not CIFAR-10 classes: {', '.join(unknown[:5])}. "
                        f"Expected: {', '.join(CIFAR10_CLASSES)}.")
    if not class_dirs:
        raise DataError(f"{split_dir} has no class folders (expected {', '.join(CIFAR10_CLASSES)}).")
    files, labels = [], []
    for class_dir in class_dirs:
        for p in sorted(class_dir.iterdir()):
            if p.is_file() and not p.name.startswith("."):
                if p.suffix.lower() not in IMAGE_SUFFIXES:
                    raise DataError(f"{p} is not an image file (expected .jpg or .png in the class folders).")
                files.append(p)
                labels.append(CIFAR10_CLASSES.index(class_dir.name))
    if not files:
        raise DataError(f"{split_dir} holds no images.")
    # PIL releases the GIL while decoding, so threads use every core.
    with ThreadPoolExecutor(max_workers=max(2, (os.cpu_count() or 1) * 2)) as pool:
        images = list(pool.map(_decode, files, chunksize=256))
    return np.stack(images).transpose(0, 3, 1, 2), np.asarray(labels, dtype=np.int64)


def _read_image_folder(folder: Path) -> tuple[np.ndarray, ...]:
    return (*_read_split(folder, "train"), *_read_split(folder, "test"))


# ------------------------------------------------------------------------------------------------------ cache ----
def _fingerprint(folder: Path) -> str:
    count = size = newest = 0
    for dirpath, _dirs, names in os.walk(folder):
        for name in names:
            st = os.stat(os.path.join(dirpath, name))
            count, size, newest = count + 1, size + st.st_size, max(newest, int(st.st_mtime))
    key = f"{folder.resolve()}|{count}|{size}|{newest}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _load_cache(path: Path) -> dict[str, torch.Tensor] | None:
    if not path.is_file():
        return None
    from safetensors.torch import load_file
    try:
        tensors = load_file(str(path))
        if {"train_images", "train_labels", "test_images", "test_labels"} <= tensors.keys():
            return tensors
    except Exception:  # a torn or foreign cache file is simply rebuilt
        pass
    return None


def _save_cache(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache folder only costs speed


_MEMO: dict[str, Cifar10Tensors] = {}


def _load_folder(folder: Path, reader, kind: str) -> Cifar10Tensors:
    key = _fingerprint(folder)
    if key in _MEMO:
        return _MEMO[key]
    cache_file = default_cache_dir() / f"cifar10-{key}.safetensors"
    tensors = _load_cache(cache_file)
    if tensors is None:
        train_x, train_y, test_x, test_y = reader(folder)
        tensors = {"train_images": torch.from_numpy(np.ascontiguousarray(train_x)),
                   "train_labels": torch.from_numpy(train_y),
                   "test_images": torch.from_numpy(np.ascontiguousarray(test_x)),
                   "test_labels": torch.from_numpy(test_y)}
        _save_cache(cache_file, tensors)
    data = Cifar10Tensors(tensors["train_images"], tensors["train_labels"].long(), tensors["test_images"],
                          tensors["test_labels"].long(), CIFAR10_CLASSES,
                          f"{kind} {folder} ({len(tensors['train_labels'])} train, "
                          f"{len(tensors['test_labels'])} test images)")
    _MEMO[key] = data
    return data


def load_cifar10(data_dir: str | Path | None = None, download: bool = True, progress: bool = True) -> Cifar10Tensors:
    """CIFAR-10 from a folder (python batches or image folder), downloading it there if it is missing."""
    root = Path(data_dir).expanduser() if data_dir else default_data_dir()
    if root.exists() and not root.is_dir():
        raise DataError(f"{root} is a file, not a folder. {HOW_TO_GET_DATA}")
    if root.is_dir():
        batches = _python_batches_dir(root)
        if batches is not None:
            return _load_folder(batches, _read_python_batches, "CIFAR-10 python batches")
        images = _image_folder_dir(root)
        if images is not None:
            return _load_folder(images, _read_image_folder, "image folder")
    if data_dir and not root.exists():
        raise DataError(f"The data folder {root} does not exist. {HOW_TO_GET_DATA}")
    if not download:
        raise DataError(f"No CIFAR-10 found in {root}, and downloading is switched off. {HOW_TO_GET_DATA}")
    _download(root, progress)
    return _load_folder(root / "cifar-10-batches-py", _read_python_batches, "CIFAR-10 python batches")


def _download(root: Path, progress: bool) -> None:
    import torchvision
    try:
        root.mkdir(parents=True, exist_ok=True)
        torchvision.datasets.CIFAR10(root=str(root), train=True, download=True)
    except Exception as e:  # URLError, socket errors, checksum failures, a full disk …
        raise DataError(f"CIFAR-10 is not in {root} and downloading it failed ({type(e).__name__}: {e}). "
                        f"{HOW_TO_GET_DATA}") from e


# ------------------------------------------------------------------------------------------ sampling, tensors ----
def stratified_subset(labels: torch.Tensor, k: int, seed: int = 0) -> torch.Tensor:
    """k indices with the classes as equally represented as possible; the same k and seed give the same subset."""
    n = len(labels)
    if k < 1:
        raise DataError(f"A subset needs at least one image, got {k}.")
    if k >= n:
        return torch.arange(n)
    g = torch.Generator().manual_seed(seed)
    classes = torch.unique(labels)
    shuffled = [torch.nonzero(labels == c).flatten()[torch.randperm(int((labels == c).sum()), generator=g)]
                for c in classes]
    # Round-robin over classes: take the i-th image of every class before any (i+1)-th.
    order = torch.cat([torch.stack([s[i] for s in shuffled if i < len(s)])
                       for i in range(max(len(s) for s in shuffled))])
    return order[:k].sort().values


def normalize(images_uint8: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(CIFAR10_MEAN, device=images_uint8.device).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD, device=images_uint8.device).view(1, 3, 1, 1)
    return (images_uint8.float() / 255 - mean) / std


def augment_batch(images_uint8: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """The paper's augmentation on the tensor's own device: 4-pixel zero padding, a random 32×32 crop (its own offset
    per image) and a horizontal flip with probability ½. One gather for the whole batch, no loop over images."""
    n, c, h, w = images_uint8.shape
    device = images_uint8.device
    padded = torch.nn.functional.pad(images_uint8, (4, 4, 4, 4))
    dy = torch.randint(0, 9, (n,), device=device, generator=generator)
    dx = torch.randint(0, 9, (n,), device=device, generator=generator)
    flip = torch.rand(n, device=device, generator=generator) < 0.5
    rows = (dy[:, None] + torch.arange(h, device=device)[None])  # [n, h]
    cols = torch.arange(w, device=device)[None].expand(n, w)
    cols = torch.where(flip[:, None], cols.flip(1), cols) + dx[:, None]  # flipping = reading columns backwards
    idx_rows = rows[:, None, :, None].expand(n, c, h, w + 8)
    out = padded.gather(2, idx_rows)
    return out.gather(3, cols[:, None, None, :].expand(n, c, h, w))
