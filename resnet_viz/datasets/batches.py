"""What the training loop and the analyses do with CIFAR-10's images once loaded: class-balanced subsets, fixed
samples, normalisation and the paper's augmentation — batched tensor ops on the images' own device, no loop over
images, every random draw from a seeded generator."""
from __future__ import annotations

import torch

from ..errors import DataError
from .cifar10 import CIFAR10_MEAN, CIFAR10_STD


def subset_note(subset: int | None, n_train: int) -> str | None:
    """What to tell the user when a subset asks for more training images than the data holds (all are used)."""
    if subset is not None and subset > n_train:
        return (f"The subset asks for {subset:,} training images, but the data holds only {n_train:,}: training on "
                f"all {n_train:,} of them.")
    return None


def stratified_subset(labels: torch.Tensor, k: int, seed: int = 0) -> torch.Tensor:
    """k sorted indices with the classes as equally represented as possible; the same k and seed give the same
    subset on every machine. k >= len(labels) gives every index."""
    if k < 1:
        raise DataError(f"A subset needs at least one image, got {k}.")
    labels = labels.detach().cpu().flatten()
    n = len(labels)
    if k >= n:
        return torch.arange(n, device=labels.device)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=g)
    classes, class_of, counts = torch.unique(labels[perm], return_inverse=True, return_counts=True)
    # Rank of each (shuffled) image within its class: 0 for the first one of its class, 1 for the next, ...
    by_class = torch.sort(class_of, stable=True).indices
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty(n, dtype=torch.long)
    rank[by_class] = torch.arange(n) - starts[class_of[by_class]]
    # Take round by round: every class's r-th image before any (r+1)-th. A seeded class order decides which
    # classes get the extra images when k is not a multiple of the class count.
    class_order = torch.randperm(len(classes), generator=g)
    chosen = torch.argsort(rank * len(classes) + class_order[class_of], stable=True)[:k]
    return perm[chosen].sort().values


def normalize(images_uint8: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """(x/255 - mean) / std per channel, on the images' own device; NCHW (or CHW). float32 unless `out` is given,
    in which case the result is written into it (in its dtype) and returned."""
    shape = (3, 1, 1)
    mean = torch.tensor(CIFAR10_MEAN, device=images_uint8.device).view(shape)
    std = torch.tensor(CIFAR10_STD, device=images_uint8.device).view(shape)
    result = (images_uint8.float() / 255 - mean) / std
    return result if out is None else out.copy_(result)


def augment_batch(images_uint8: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """The paper's augmentation on the tensor's own device: 4-pixel zero padding, a random 32x32 crop (its own offset
    per image) and a horizontal flip with probability 1/2. Two gathers for the whole batch, no loop over images;
    all randomness comes from `generator` (which must live on the same device) so runs are reproducible."""
    if images_uint8.dim() != 4:
        raise ValueError(f"augment_batch expects NCHW images, got shape {list(images_uint8.shape)}")
    device = images_uint8.device
    if generator is not None and generator.device.type != device.type:
        raise ValueError(f"the generator is on {generator.device} but the images are on {device}")
    n, c, h, w = images_uint8.shape
    pad = 4
    padded = torch.nn.functional.pad(images_uint8, (pad, pad, pad, pad))  # zeros
    dy = torch.randint(0, 2 * pad + 1, (n,), device=device, generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), device=device, generator=generator)
    flip = torch.rand(n, device=device, generator=generator) < 0.5
    rows = dy[:, None] + torch.arange(h, device=device)  # [n, h]
    cols = torch.arange(w, device=device).expand(n, w)
    cols = torch.where(flip[:, None], cols.flip(1), cols) + dx[:, None]  # a flip reads the window's columns backwards
    out = padded.gather(2, rows[:, None, :, None].expand(n, c, h, w + 2 * pad))
    return out.gather(3, cols[:, None, None, :].expand(n, c, h, w))


def sample_images(labels: torch.Tensor, k: int, seed: int, label: int | None = None) -> torch.Tensor:
    """Indices of k images drawn at random without replacement (all of them if there are fewer), among those of
    class `label` if given. The same arguments give the same draw."""
    g = torch.Generator().manual_seed(int(seed))
    pool = torch.nonzero(labels == label).flatten() if label is not None else torch.arange(len(labels))
    return pool[torch.randperm(len(pool), generator=g)[:k]]
