"""CIFAR-10 as uint8 tensors (what the loop then does with them — subsets, augmentation — is batches.py).

Three sources, detected by layout: CIFAR-10's own python batches (what torchvision downloads), an image folder
`train/<class>/*` + `test/<class>/*`, or a torchvision download into the data folder. Decoding an image folder is
slow, so its result is cached as safetensors and the next start is instant.

This module must stay importable without streamlit/plotly/captum: it runs on headless GPU machines.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import DataError
from .safe_pickle import RefusedPickle, load_batch_pickle

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

BATCHES_FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")

HOW_TO_GET_DATA = (
    "Two ways to get CIFAR-10:\n"
    "  1. let resnet_viz download it (about 170 MB, needs internet): run again with network access and "
    "downloading switched on; or\n"
    "  2. point --data DIR (CLI), the data-folder box (app) or the RESNET_VIZ_DATA environment variable at a "
    "folder you already have, holding either CIFAR-10's python format (data_batch_1..5 and test_batch, or a "
    "cifar-10-batches-py/ folder with them) or an image folder with train/<class>/*.png|jpg and "
    "test/<class>/*.png|jpg for the ten classes " + ", ".join(CIFAR10_CLASSES) + ".")


@dataclass
class Cifar10Tensors:
    train_images: torch.Tensor  # uint8 [N,3,32,32], CPU
    train_labels: torch.Tensor  # int64 [N]
    test_images: torch.Tensor  # uint8 [M,3,32,32]
    test_labels: torch.Tensor  # int64 [M]
    classes: tuple[str, ...]
    source: str  # human description, e.g. "image folder /x/cifar10-jpeg (50000 train, 10000 test)"


# A reader turns a source folder into (train images NCHW, train labels, test images NCHW, test labels).
Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
Reader = Callable[[Path, bool], Arrays]


def default_data_dir() -> Path:
    return Path(os.environ.get("RESNET_VIZ_DATA") or Path.home() / ".cache" / "resnet_viz" / "data").expanduser()


def default_cache_dir() -> Path:
    return Path(os.environ.get("RESNET_VIZ_CACHE") or Path.home() / ".cache" / "resnet_viz" / "tensors").expanduser()


def _say(progress: bool, message: str) -> None:
    if progress:
        print(f"resnet_viz: {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ layout ----
def _python_batches_dir(root: Path) -> Path | None:
    for candidate in (root, root / BATCHES_FOLDER):
        if any((candidate / name).exists() for name in (*TRAIN_BATCHES, TEST_BATCH)):
            return candidate
    return None


def _image_folder_dir(root: Path) -> Path | None:
    """root itself, or the first sub-folder, holding train/ or test/ (archives usually unpack one level down)."""
    candidates = [root] + sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for candidate in candidates:
        if (candidate / "train").is_dir() or (candidate / "test").is_dir():
            return candidate
    return None


# ---------------------------------------------------------------------------------------- python batches ----
def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DataError(f"{path.parent} looks like CIFAR-10's python format, but {path.name} is missing from it. "
                        f"Copy the complete folder again (data_batch_1..5 and test_batch), or delete it and let "
                        f"resnet_viz download CIFAR-10.")
    unreadable = (f"{path} is not a readable CIFAR-10 batch file (it may be truncated or corrupt). Delete the folder "
                  f"and download CIFAR-10 again, or point --data at a good copy.")
    try:
        with open(path, "rb") as f:
            # The dataset's own files are pickles of Python-2 dicts; bytes keys, exactly as torchvision reads them.
            entry = load_batch_pickle(f)
    except RefusedPickle as e:
        raise DataError(f"{path} is not a genuine CIFAR-10 batch file: {e}, which CIFAR-10's files never do, so it "
                        f"was refused (loading it could run code). Replace the folder with a real copy of "
                        f"CIFAR-10.") from e
    except Exception as e:  # a damaged pickle can fail in many ways (EOFError, UnpicklingError, ValueError, ...)
        raise DataError(f"{unreadable} ({type(e).__name__}: {e})") from e
    if not isinstance(entry, dict) or b"data" not in entry or b"labels" not in entry:
        raise DataError(f"{unreadable} (it does not hold CIFAR-10's 'data' and 'labels' entries)")
    data = np.asarray(entry[b"data"])
    labels = np.asarray(entry[b"labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise DataError(f"{unreadable} (expected uint8 data of shape [n, 3072] and n labels, got data "
                        f"{data.dtype} {list(data.shape)} and {len(labels)} labels)")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(CIFAR10_CLASSES)):
        raise DataError(f"{unreadable} (labels must be 0-9, found {labels.min()}..{labels.max()})")
    return data.reshape(-1, 3, 32, 32), labels  # rows are channel-major (all red, then green, then blue)


def _read_python_batches(folder: Path, progress: bool) -> Arrays:
    train = [_read_batch(folder / name) for name in TRAIN_BATCHES]
    test_images, test_labels = _read_batch(folder / TEST_BATCH)
    return (np.concatenate([images for images, _ in train]), np.concatenate([labels for _, labels in train]),
            test_images, test_labels)


# ------------------------------------------------------------------------------------------ image folder ----
def _decode(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path, formats=("JPEG", "PNG")) as img:
            if img.size != (32, 32):
                raise DataError(f"{path} is {img.size[0]}x{img.size[1]} pixels, but CIFAR-10 images are 32x32. "
                                f"Resize it or remove it from the folder.")
            return np.asarray(img if img.mode == "RGB" else img.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path} is not a readable JPEG or PNG image ({e}). Remove or replace it.") from e


def _list_split(folder: Path, split: str) -> tuple[list[Path], list[int]]:
    """Every image file of one split, class by class, with its label (the class's index in CIFAR-10)."""
    split_dir = folder / split
    if not split_dir.is_dir():
        raise DataError(f"{folder} has no {split}/ folder. An image folder needs both train/<class>/ and "
                        f"test/<class>/, with one folder per CIFAR-10 class: {', '.join(CIFAR10_CLASSES)}.")
    class_dirs = {p.name: p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")}
    unknown = sorted(set(class_dirs) - set(CIFAR10_CLASSES))
    if unknown:
        raise DataError(f"{split_dir} has folders that are not CIFAR-10 classes: {', '.join(unknown)}. Class folders "
                        f"must be named exactly (lower case): {', '.join(CIFAR10_CLASSES)}.")
    missing = [name for name in CIFAR10_CLASSES if name not in class_dirs]
    if missing:
        raise DataError(f"{split_dir} lacks the class folders {', '.join(missing)}; all ten CIFAR-10 classes "
                        f"({', '.join(CIFAR10_CLASSES)}) need a folder of images.")
    files: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(CIFAR10_CLASSES):
        class_files = sorted(p for p in class_dirs[name].iterdir() if p.is_file() and not p.name.startswith("."))
        for p in class_files:
            if not p.name.lower().endswith(IMAGE_SUFFIXES):
                raise DataError(f"{p} is not an image file. Class folders may hold only .jpg, .jpeg or .png images.")
        if not class_files:
            raise DataError(f"{class_dirs[name]} holds no images; every class needs at least one.")
        files += class_files
        labels += [label] * len(class_files)
    return files, labels


def _decode_all(files: list[Path]) -> np.ndarray:
    # One image after the other on purpose: for 32x32 images nearly all of PIL's time is Python-side header parsing
    # under the GIL; a thread pool measured 20-90% *slower* (2-core AMD EPYC VM, 2026-11-26). Cached: a one-off cost.
    images = np.empty((len(files), 32, 32, 3), dtype=np.uint8)
    for i, path in enumerate(files):
        images[i] = _decode(path)
    return images.transpose(0, 3, 1, 2)  # HWC -> CHW


def _read_image_folder(folder: Path, progress: bool) -> Arrays:
    train_files, train_labels = _list_split(folder, "train")
    test_files, test_labels = _list_split(folder, "test")  # list both first: a missing test/ fails before decoding
    n = len(train_files) + len(test_files)
    _say(progress, f"decoding {n} images in {folder} (first time only, cached afterwards) ...")
    start = time.perf_counter()
    arrays = (_decode_all(train_files), np.asarray(train_labels, dtype=np.int64),
              _decode_all(test_files), np.asarray(test_labels, dtype=np.int64))
    _say(progress, f"decoded {n} images in {time.perf_counter() - start:.1f} s")
    return arrays


# ------------------------------------------------------------------------------------------------- cache ----
TENSOR_NAMES = ("train_images", "train_labels", "test_images", "test_labels")


def _cache_key(folder: Path) -> str:
    """Short hash of the folder's path and a cheap fingerprint: any added, removed or rewritten file changes it."""
    count = size = newest = 0
    for dirpath, _dirs, names in os.walk(folder):
        for name in names:
            st = os.stat(os.path.join(dirpath, name))
            count, size, newest = count + 1, size + st.st_size, max(newest, st.st_mtime_ns)
    return hashlib.sha256(f"{folder.resolve()}|{count}|{size}|{newest}".encode()).hexdigest()[:16]


def _cache_file(key: str) -> Path:
    return default_cache_dir() / f"cifar10-{key}.safetensors"


def _load_cache(path: Path) -> dict[str, torch.Tensor] | None:
    from safetensors.torch import load_file
    if not path.is_file():
        return None
    try:
        tensors = load_file(str(path))
    except Exception:  # a torn or foreign file is rebuilt, never trusted
        return None
    ok = (set(TENSOR_NAMES) <= tensors.keys()
          and all(tensors[k].dtype == torch.uint8 and tensors[k].shape[1:] == (3, 32, 32)
                  for k in ("train_images", "test_images"))
          and len(tensors["train_images"]) == len(tensors["train_labels"])
          and len(tensors["test_images"]) == len(tensors["test_labels"])
          and all(_labels_ok(tensors[k]) for k in ("train_labels", "test_labels")))
    return tensors if ok else None


def _labels_ok(labels: torch.Tensor) -> bool:
    """Whole-number class indices 0-9, one per image: anything else would fail deep inside the loss."""
    return (labels.dim() == 1 and not labels.dtype.is_floating_point and not labels.dtype.is_complex
            and labels.dtype != torch.bool
            and (len(labels) == 0 or (int(labels.min()) >= 0 and int(labels.max()) < len(CIFAR10_CLASSES))))


def _save_cache(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Write the decoded images beside the others; a cache that cannot be written (a full disk, a read-only home)
    is skipped with a warning: it only costs decoding again next time."""
    from safetensors.torch import save_file

    from ..storage.files import os_error_of
    from ..readable import human_bytes
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
        os.replace(tmp, path)  # atomic: a reader sees the old file or the whole new one, never half
    except Exception as e:  # safetensors reports a full disk as a SafetensorError, not an OSError
        cause = os_error_of(e)
        if cause is None:
            raise
        size = sum(t.nbytes for t in tensors.values())
        warnings.warn(f"The decoded images ({human_bytes(size)}) could not be cached in {path.parent} "
                      f"({cause.strerror or cause}); the next start decodes them again.", stacklevel=2)
    finally:
        tmp.unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------------- loading ----
_MEMO: dict[str, Cifar10Tensors] = {}
_MEMO_SIZE = 2  # each entry is ~180 MB, so remember only the latest sources
_LOCK = threading.Lock()  # two app sessions asking at once should decode once, not twice


def _load_folder(folder: Path, reader: Reader, kind: str, use_disk_cache: bool, progress: bool) -> Cifar10Tensors:
    key = _cache_key(folder)
    if key in _MEMO:
        return _MEMO[key]
    tensors = _load_cache(_cache_file(key)) if use_disk_cache else None
    if tensors is None:
        arrays = reader(folder, progress)
        tensors = {name: torch.from_numpy(np.ascontiguousarray(a)) for name, a in zip(TENSOR_NAMES, arrays)}
        if use_disk_cache:
            _save_cache(_cache_file(key), tensors)
    data = Cifar10Tensors(tensors["train_images"], tensors["train_labels"].long(), tensors["test_images"],
                          tensors["test_labels"].long(), CIFAR10_CLASSES,
                          f"{kind} {folder} ({len(tensors['train_labels'])} train, {len(tensors['test_labels'])} test)")
    _MEMO[key] = data
    while len(_MEMO) > _MEMO_SIZE:
        _MEMO.pop(next(iter(_MEMO)))
    return data


def _load_python_batches(folder: Path, progress: bool) -> Cifar10Tensors:
    # The pickles already hold raw pixels and read in well under a second: a second copy on disk would not pay.
    return _load_folder(folder, _read_python_batches, "CIFAR-10 python batches", False, progress)


def _download(root: Path, progress: bool) -> None:
    import torchvision
    _say(progress, f"CIFAR-10 not found in {root}; downloading it there (about 170 MB) ...")
    try:
        root.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as quiet:
            if not progress:  # torchvision prints its progress bar and notes unconditionally
                quiet.enter_context(contextlib.redirect_stdout(io.StringIO()))
                quiet.enter_context(contextlib.redirect_stderr(io.StringIO()))
            torchvision.datasets.CIFAR10(root=str(root), train=True, download=True)
    except Exception as e:  # URLError, socket errors, a checksum mismatch, a full disk ...
        raise DataError(f"CIFAR-10 is not in {root}, and downloading it failed ({type(e).__name__}: {e}).\n"
                        f"{HOW_TO_GET_DATA}") from e


def _check_root(root: Path, explicit: bool) -> None:
    if root.is_file():
        hint = (" It looks like an archive: unpack it and point --data at the unpacked folder."
                if root.name.lower().endswith(ARCHIVE_SUFFIXES) else "")
        raise DataError(f"{root} is a file, not a folder.{hint}\n{HOW_TO_GET_DATA}")
    # A typo in --data should not silently download 170 MB into a new folder; the default folder may be created.
    if explicit and not root.exists():
        raise DataError(f"The data folder {root} does not exist. Check the path (or create the folder to have "
                        f"CIFAR-10 downloaded into it).\n{HOW_TO_GET_DATA}")


def load_cifar10(data_dir: str | Path | None = None, download: bool = True, progress: bool = True) -> Cifar10Tensors:
    """CIFAR-10 from a folder (python batches or image folder), downloading it into the folder if it is missing.

    Raises DataError, with a message naming the problem and the fix, for anything that stops the data loading.
    """
    root = Path(data_dir).expanduser() if data_dir else default_data_dir()
    _check_root(root, explicit=bool(data_dir) and root != default_data_dir())
    try:
        with _LOCK:
            return _load_from(root, download, progress)
    except OSError as e:  # unreadable folders, broken links, permissions: still a message, not a traceback
        raise DataError(f"Could not read {e.filename or root}: {e.strerror or e}. Check that the folder and its "
                        f"files are readable.") from e


def _load_from(root: Path, download: bool, progress: bool) -> Cifar10Tensors:
    if root.is_dir():
        batches = _python_batches_dir(root)
        if batches is not None:
            return _load_python_batches(batches, progress)
        images = _image_folder_dir(root)
        if images is not None:
            return _load_folder(images, _read_image_folder, "image folder", True, progress)
    if not download:
        raise DataError(f"No CIFAR-10 found in {root} (neither python batches nor train/ and test/ image "
                        f"folders), and downloading is switched off.\n{HOW_TO_GET_DATA}")
    _download(root, progress)
    return _load_python_batches(root / BATCHES_FOLDER, progress)
