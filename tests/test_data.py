"""CIFAR-10 loading (python batches, image folders, cache, errors), subsets, normalisation and augmentation.

Everything runs offline on tiny data written by cifar_fixtures; torchvision's download is always faked.
"""
import os
import pickle
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from cifar_fixtures import CLASSES, image_folder_order, make_images, write_image_folder, write_python_batches
from resnet_viz.datasets import batches as batches_module
from resnet_viz.datasets import cifar10 as data_module
from resnet_viz.datasets.cifar10 import (CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD, Cifar10Tensors, default_data_dir,
                                         load_cifar10)
from resnet_viz.datasets.batches import augment_batch, normalize, stratified_subset
from resnet_viz.errors import DataError


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """A private cache folder and an empty in-process memo for every test, so no test sees another's data."""
    monkeypatch.setenv("RESNET_VIZ_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("RESNET_VIZ_DATA", raising=False)
    monkeypatch.setattr(data_module, "_MEMO", {})


def chw(images_hwc: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images_hwc.transpose(0, 3, 1, 2)))


def cache_files(tmp_path):
    return sorted((tmp_path / "cache").glob("cifar10-*.safetensors"))


# ---------------------------------------------------------------------------------------------- readers ----
def test_fixture_classes_are_cifar10s():
    assert CLASSES == CIFAR10_CLASSES


def test_python_batches_round_trip(tmp_path):
    root = write_python_batches(tmp_path / "d", n_train_per_class=7, n_test_per_class=3)
    data = load_cifar10(root, download=False, progress=False)
    train_x, train_y = make_images(7, 0)
    test_x, test_y = make_images(3, 1)
    assert isinstance(data, Cifar10Tensors) and data.classes == CIFAR10_CLASSES
    assert data.train_images.dtype == torch.uint8 and data.train_images.shape == (70, 3, 32, 32)
    assert data.train_labels.dtype == torch.int64 and data.test_labels.dtype == torch.int64
    assert torch.equal(data.train_images, chw(train_x)) and torch.equal(data.train_labels, torch.from_numpy(train_y))
    assert torch.equal(data.test_images, chw(test_x)) and torch.equal(data.test_labels, torch.from_numpy(test_y))
    assert "python batches" in data.source and "(70 train, 30 test)" in data.source


def test_python_batches_folder_itself(tmp_path):
    root = write_python_batches(tmp_path / "d", n_train_per_class=2, n_test_per_class=1)
    data = load_cifar10(root / "cifar-10-batches-py", download=False, progress=False)
    assert len(data.train_labels) == 20 and len(data.test_labels) == 10


def test_image_folder_round_trip(tmp_path):
    root = write_image_folder(tmp_path / "imgs", n_train_per_class=4, n_test_per_class=2, fmt="png")
    data = load_cifar10(root, download=False, progress=False)
    train_x, train_y = make_images(4, 0)
    test_x, test_y = make_images(2, 1)
    order, test_order = image_folder_order(train_y), image_folder_order(test_y)
    assert torch.equal(data.train_images, chw(train_x[order]))
    assert torch.equal(data.train_labels, torch.from_numpy(train_y[order]))
    assert torch.equal(data.test_images, chw(test_x[test_order]))
    assert torch.equal(data.test_labels, torch.from_numpy(test_y[test_order]))
    assert data.source == f"image folder {root} (40 train, 20 test)"


def test_image_folder_one_level_down_with_jpegs_and_odd_modes(tmp_path):
    inner = write_image_folder(tmp_path / "outer" / "cifar10-jpeg", n_train_per_class=2, n_test_per_class=1,
                               fmt="jpg")
    Image.new("L", (32, 32), 128).save(inner / "train" / "cat" / "9999.jpeg")  # greyscale is converted to RGB
    data = load_cifar10(tmp_path / "outer", download=False, progress=False)
    assert data.train_images.shape == (21, 3, 32, 32) and str(inner) in data.source
    cat = CIFAR10_CLASSES.index("cat")
    assert (data.train_labels == cat).sum() == 3
    assert bool((data.train_images[data.train_labels == cat][-1] == 128).all())


def test_same_source_twice_is_memoised(tmp_path):
    root = write_python_batches(tmp_path / "d", n_train_per_class=2, n_test_per_class=1)
    assert load_cifar10(root, download=False, progress=False) is load_cifar10(root, download=False, progress=False)


def test_default_data_dir_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("RESNET_VIZ_DATA", str(tmp_path / "mine"))
    assert default_data_dir() == tmp_path / "mine"
    monkeypatch.delenv("RESNET_VIZ_DATA")
    assert default_data_dir() == Path.home() / ".cache" / "resnet_viz" / "data"


def test_env_data_dir_is_used_when_no_folder_given(monkeypatch, tmp_path):
    monkeypatch.setenv("RESNET_VIZ_DATA", str(write_python_batches(tmp_path / "d", 1, 1)))
    assert len(load_cifar10(download=False, progress=False).train_labels) == 10


# ------------------------------------------------------------------------------------------------- cache ----
def test_second_load_comes_from_the_cache_file(tmp_path, monkeypatch):
    root = write_image_folder(tmp_path / "imgs", n_train_per_class=2, n_test_per_class=1)
    first = load_cifar10(root, download=False, progress=False)
    assert len(cache_files(tmp_path)) == 1
    monkeypatch.setattr(data_module, "_MEMO", {})  # as if in a new process

    def no_decoding(path):
        raise AssertionError("decoded although the cache was valid")
    monkeypatch.setattr(data_module, "_decode", no_decoding)
    second = load_cifar10(root, download=False, progress=False)
    assert second is not first
    for name in ("train_images", "train_labels", "test_images", "test_labels"):
        assert torch.equal(getattr(first, name), getattr(second, name))


def test_changed_folder_is_decoded_again(tmp_path):
    root = write_image_folder(tmp_path / "imgs", n_train_per_class=2, n_test_per_class=1)
    load_cifar10(root, download=False, progress=False)
    Image.new("RGB", (32, 32)).save(root / "train" / "dog" / "extra.png")
    assert len(load_cifar10(root, download=False, progress=False).train_labels) == 21
    assert len(cache_files(tmp_path)) == 2


def test_corrupt_cache_is_rebuilt(tmp_path, monkeypatch):
    root = write_image_folder(tmp_path / "imgs", n_train_per_class=2, n_test_per_class=1)
    good = load_cifar10(root, download=False, progress=False)
    [cache] = cache_files(tmp_path)
    cache.write_bytes(cache.read_bytes()[:100])  # torn write
    monkeypatch.setattr(data_module, "_MEMO", {})
    rebuilt = load_cifar10(root, download=False, progress=False)
    assert torch.equal(rebuilt.train_images, good.train_images)
    assert cache.stat().st_size > 100  # rewritten whole
    assert not list((tmp_path / "cache").glob(".*tmp"))  # no temp files left behind


@pytest.mark.parametrize("labels", [lambda t: t + 10, lambda t: t - 1, lambda t: t.float(), lambda t: t.view(-1, 1)])
def test_cache_with_impossible_labels_is_rebuilt(tmp_path, monkeypatch, labels):
    """A cache whose labels are not class indices 0-9 (foreign or tampered) would fail deep inside the loss."""
    from safetensors.torch import load_file, save_file
    root = write_image_folder(tmp_path / "imgs", n_train_per_class=2, n_test_per_class=1)
    good = load_cifar10(root, download=False, progress=False)
    [cache] = cache_files(tmp_path)
    tensors = load_file(str(cache))
    tensors["train_labels"] = labels(tensors["train_labels"]).contiguous()
    save_file(tensors, str(cache))
    monkeypatch.setattr(data_module, "_MEMO", {})
    assert torch.equal(load_cifar10(root, download=False, progress=False).train_labels, good.train_labels)


# ------------------------------------------------------------------------------------------------ errors ----
def assert_data_error(match, *args, **kwargs):
    kwargs.setdefault("download", False)
    kwargs.setdefault("progress", False)
    with pytest.raises(DataError, match=match) as info:
        load_cifar10(*args, **kwargs)
    return str(info.value)


def test_missing_folder(tmp_path):
    message = assert_data_error("does not exist", tmp_path / "nope")
    assert str(tmp_path / "nope") in message


def test_empty_folder_without_download_names_both_ways(tmp_path):
    (tmp_path / "empty").mkdir()
    message = assert_data_error("No CIFAR-10 found", tmp_path / "empty")
    assert "RESNET_VIZ_DATA" in message and "--data" in message and "download" in message


def test_archive_instead_of_folder(tmp_path):
    (tmp_path / "cifar10.tar.gz").write_bytes(b"\x1f\x8b")
    assert_data_error("unpack it", tmp_path / "cifar10.tar.gz")


def test_failed_download_names_both_ways(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    (tmp_path / "d").mkdir()
    message = assert_data_error("downloading it failed", tmp_path / "d", download=True)
    assert "URLError" in message and "RESNET_VIZ_DATA" in message and "--data" in message
    assert "needs internet" in message


def test_successful_download_is_read_as_python_batches(tmp_path, monkeypatch):
    def fake_download(root, train, download):
        write_python_batches(root, n_train_per_class=1, n_test_per_class=1)
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", fake_download)
    monkeypatch.setenv("RESNET_VIZ_DATA", str(tmp_path / "fresh"))  # the default folder may not exist yet
    data = load_cifar10(progress=False)
    assert len(data.train_labels) == 10 and "python batches" in data.source


def test_truncated_pickle(tmp_path):
    root = write_python_batches(tmp_path / "d", n_train_per_class=2, n_test_per_class=1)
    batch = root / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:50])
    message = assert_data_error("not a readable CIFAR-10 batch file", root)
    assert str(batch) in message


def test_batch_with_wrong_contents(tmp_path):
    root = write_python_batches(tmp_path / "d", n_train_per_class=2, n_test_per_class=1)
    with open(root / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((3, 100), np.uint8), b"labels": [0, 1, 2]}, f)
    assert_data_error("3072", root)


def test_missing_batch_file(tmp_path):
    root = write_python_batches(tmp_path / "d", n_train_per_class=2, n_test_per_class=1)
    os.remove(root / "cifar-10-batches-py" / "data_batch_5")
    assert_data_error("data_batch_5 is missing", root)


def test_non_image_in_class_folder(tmp_path):
    root = write_image_folder(tmp_path / "imgs", n_train_per_class=1, n_test_per_class=1)
    (root / "train" / "bird" / "notes.txt").write_text("hello")
    message = assert_data_error("not an image file", root)
    assert str(root / "train" / "bird" / "notes.txt") in message


def test_corrupt_image(tmp_path):
    root = write_image_folder(tmp_path / "imgs", n_train_per_class=1, n_test_per_class=1)
    (root / "test" / "ship" / "0000.png").write_bytes(b"not really a png")
    assert_data_error("0000.png is not a readable JPEG or PNG image", root)


def test_unknown_class_folder(tmp_path):
    root = write_image_folder(tmp_path / "imgs", n_train_per_class=1, n_test_per_class=1)
    (root / "train" / "Airplanes").mkdir()
    assert_data_error("not CIFAR-10 classes: Airplanes", root)


def test_missing_class_folder(tmp_path):
    root = write_image_folder(tmp_path / "imgs", n_train_per_class=1, n_test_per_class=1)
    for f in (root / "test" / "frog").iterdir():
        f.unlink()
    (root / "test" / "frog").rmdir()
    assert_data_error("lacks the class folders frog", root)


def test_wrong_image_size(tmp_path):
    root = write_image_folder(tmp_path / "imgs", n_train_per_class=1, n_test_per_class=1)
    Image.new("RGB", (64, 48)).save(root / "train" / "horse" / "big.png")
    message = assert_data_error("is 64x48 pixels", root)
    assert "big.png" in message


def test_missing_test_folder(tmp_path):
    root = write_image_folder(tmp_path / "imgs", n_train_per_class=1, n_test_per_class=1)
    for f in (root / "test").rglob("*.png"):
        f.unlink()
    for d in (root / "test").iterdir():
        d.rmdir()
    (root / "test").rmdir()
    assert_data_error("has no test/ folder", root)


# ---------------------------------------------------------------------------------------------- subsets ----
def test_stratified_subset_is_balanced_sorted_and_deterministic():
    labels = torch.from_numpy(make_images(30, 0)[1])
    idx = stratified_subset(labels, 47, seed=5)
    assert idx.dtype == torch.int64 and len(idx) == 47 and len(set(idx.tolist())) == 47
    assert torch.equal(idx, idx.sort().values)
    counts = torch.bincount(labels[idx], minlength=10)
    assert counts.max() - counts.min() <= 1
    assert torch.equal(idx, stratified_subset(labels, 47, seed=5))
    assert not torch.equal(idx, stratified_subset(labels, 47, seed=6))


def test_stratified_subset_with_unequal_classes():
    labels = torch.tensor([0] * 3 + [1] * 50 + [2] * 50)
    counts = torch.bincount(labels[stratified_subset(labels, 30)], minlength=3)
    assert counts.tolist() == [3, 14, 13] or counts.tolist() == [3, 13, 14]  # class 0 has only 3 to give


def test_stratified_subset_edges():
    labels = torch.arange(20) % 10
    assert torch.equal(stratified_subset(labels, 20), torch.arange(20))
    assert torch.equal(stratified_subset(labels, 1000), torch.arange(20))
    assert len(stratified_subset(labels, 1)) == 1
    with pytest.raises(DataError):
        stratified_subset(labels, 0)


# ------------------------------------------------------------------------------------- normalise, augment ----
def test_normalize_values():
    images = torch.tensor([0, 255, 128], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 4, 4)
    out = normalize(images)
    assert out.dtype == torch.float32 and out.shape == (2, 3, 4, 4)
    expected = [(v / 255 - m) / s for v, m, s in zip((0, 255, 128), CIFAR10_MEAN, CIFAR10_STD)]
    assert torch.allclose(out[0, :, 0, 0], torch.tensor(expected))
    half = normalize(images, out=torch.empty(2, 3, 4, 4, dtype=torch.float16))
    assert half.dtype == torch.float16 and torch.allclose(half.float(), out, atol=1e-2)


def expected_crops(image: torch.Tensor) -> dict[tuple[int, int, bool], torch.Tensor]:
    """Every image the augmentation may produce from one image: each 32x32 window of the zero-padded image,
    flipped or not, keyed by (row offset, column offset, flipped)."""
    padded = torch.zeros(3, 40, 40, dtype=image.dtype)
    padded[:, 4:36, 4:36] = image
    return {(dy, dx, flip): (lambda w: w.flip(-1) if flip else w)(padded[:, dy:dy + 32, dx:dx + 32])
            for dy in range(9) for dx in range(9) for flip in (False, True)}


def test_augment_matches_a_per_image_crop_and_flip():
    # Noise images, so exactly one (offset, flip) can explain each output.
    images = torch.randint(1, 256, (48, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    out = augment_batch(images, torch.Generator().manual_seed(2))
    assert out.shape == images.shape and out.dtype == torch.uint8
    seen = []
    for image, result in zip(images, out):
        matches = [key for key, crop in expected_crops(image).items() if torch.equal(crop, result)]
        assert len(matches) == 1
        seen.append(matches[0])
    flips = [flip for _, _, flip in seen]
    assert 0 < sum(flips) < len(flips)  # both flipped and unflipped images occur
    assert len({(dy, dx) for dy, dx, _ in seen}) > 10  # offsets differ from image to image


def test_augment_is_reproducible_with_a_seeded_generator():
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    a = augment_batch(images, torch.Generator().manual_seed(7))
    b = augment_batch(images, torch.Generator().manual_seed(7))
    c = augment_batch(images, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert augment_batch(images[:0]).shape == (0, 3, 32, 32)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_augment_and_normalize_stay_on_the_gpu():
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, device="cuda")
    out = augment_batch(images, torch.Generator(device="cuda").manual_seed(0))
    assert out.device == images.device and out.dtype == torch.uint8
    assert normalize(out).device == images.device
    assert torch.equal(stratified_subset(torch.arange(40, device="cuda") % 10, 20),
                       stratified_subset(torch.arange(40) % 10, 20))


def test_unreadable_folder_is_a_data_error(tmp_path):
    root = write_image_folder(tmp_path / "imgs", n_train_per_class=1, n_test_per_class=1)
    (root / "train" / "cat" / "dangling.png").symlink_to(tmp_path / "gone.png")  # stat() fails on it
    assert_data_error("dangling.png", root)


def test_sample_images_is_seeded_and_respects_the_class():
    labels = torch.arange(100) % 10
    a = batches_module.sample_images(labels, 4, seed=7)
    assert len(a) == 4 and len(set(a.tolist())) == 4
    assert torch.equal(a, batches_module.sample_images(labels, 4, seed=7))
    assert not torch.equal(a, batches_module.sample_images(labels, 4, seed=8))
    cats = batches_module.sample_images(labels, 5, seed=0, label=3)
    assert (labels[cats] == 3).all() and len(cats) == 5
    assert sorted(batches_module.sample_images(labels, 50, seed=0, label=3).tolist()) == list(range(3, 100, 10))
    assert len(batches_module.sample_images(labels, 3, seed=0, label=11)) == 0  # no such class: nothing to draw
