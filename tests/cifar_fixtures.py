"""Tiny CIFAR-10-shaped data sets written in the real on-disk layouts, so no test ever downloads CIFAR-10.

Train images are make_images(n_train_per_class, seed) and test images make_images(n_test_per_class, seed + 1), so a
test can rebuild exactly what a writer put on disk.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def make_images(n_per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [N,32,32,3] (HWC) and int64 labels [N], classes shuffled together.

    Each class has its own colour and stripe direction/frequency under heavy noise: weak enough that nothing is
    trivially separable pixel by pixel, strong enough that a tiny net learns a little in a few steps."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(len(CLASSES)), n_per_class))
    yy, xx = np.mgrid[0:32, 0:32] / 32.0
    images = np.empty((len(labels), 32, 32, 3), dtype=np.uint8)
    for i, label in enumerate(labels):
        colour = np.array([(label * 37) % 256, (label * 91 + 60) % 256, (label * 53 + 120) % 256], dtype=float)
        angle = np.pi * label / len(CLASSES)
        stripes = np.sin(2 * np.pi * (2 + label % 3) * (np.cos(angle) * xx + np.sin(angle) * yy))
        pixels = 0.5 * colour + 40 * stripes[..., None] + rng.normal(64, 40, (32, 32, 3))
        images[i] = np.clip(pixels, 0, 255).astype(np.uint8)
    return images, labels.astype(np.int64)


def _pickle(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def _batch(images: np.ndarray, labels: np.ndarray, name: str) -> dict:
    """One batch dict as in the real files: bytes keys, data [n, 3072] with each row channel-major (CHW)."""
    return {b"batch_label": name.encode(), b"labels": [int(v) for v in labels],
            b"data": np.ascontiguousarray(images.transpose(0, 3, 1, 2)).reshape(len(images), -1),
            b"filenames": [f"img_{i:05d}.png".encode() for i in range(len(images))]}


def write_python_batches(root: Path, n_train_per_class: int = 20, n_test_per_class: int = 10, seed: int = 0) -> Path:
    """root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta} in CIFAR-10's own format; returns root."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    train_x, train_y = make_images(n_train_per_class, seed)
    for i, part in enumerate(np.array_split(np.arange(len(train_y)), 5), start=1):
        _pickle(folder / f"data_batch_{i}", _batch(train_x[part], train_y[part], f"training batch {i} of 5"))
    test_x, test_y = make_images(n_test_per_class, seed + 1)
    _pickle(folder / "test_batch", _batch(test_x, test_y, "testing batch 1 of 1"))
    _pickle(folder / "batches.meta", {b"label_names": [c.encode() for c in CLASSES],
                                      b"num_cases_per_batch": len(train_y) // 5, b"num_vis": 3072})
    return Path(root)


def write_image_folder(root: Path, n_train_per_class: int = 20, n_test_per_class: int = 10, fmt: str = "png",
                       seed: int = 0) -> Path:
    """root/train/<class>/0000.<fmt> ... and root/test/<class>/...; files are numbered per class in the order
    make_images produced them. Returns root."""
    root = Path(root)
    for split, n, split_seed in (("train", n_train_per_class, seed), ("test", n_test_per_class, seed + 1)):
        images, labels = make_images(n, split_seed)
        for c, name in enumerate(CLASSES):
            class_dir = root / split / name
            class_dir.mkdir(parents=True, exist_ok=True)
            for j, image in enumerate(images[labels == c]):
                Image.fromarray(image).save(class_dir / f"{j:04d}.{fmt}")
    return root


def image_folder_order(labels: np.ndarray) -> np.ndarray:
    """The order an image-folder reader returns make_images' images in: class by class, file order within."""
    return np.argsort(labels, kind="stable")


def train_tiny_pair(root: Path, data_dir: Path, epochs: float) -> Path:
    """A plain/residual pair of tiny nets (depth 8, width 0.25), trained for real on `data_dir` into a store at
    `root`; returns `root`."""
    from resnet_viz.config import ModelConfig, RunConfig, TrainConfig
    from resnet_viz.storage.store import RunStore
    from resnet_viz.training.trainer import Trainer
    store = RunStore(root)
    for residual in (False, True):
        cfg = RunConfig(model=ModelConfig(depth=8, width=0.25, residual=residual),
                        train=TrainConfig(epochs=epochs, batch_size=32, eval_images=20, device="cpu", precision="fp32"),
                        data_dir=str(data_dir))
        Trainer(cfg, store=store).run()
    return root
