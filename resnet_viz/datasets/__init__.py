"""CIFAR-10 on disk and on the training device.

- cifar10.py — CIFAR-10 as uint8 tensors from its python batches, an image folder (e.g. the JPEG copy) or a
  torchvision download, cached after the first decode; the paper's augmentation as batched tensor ops.
- safe_pickle.py — reads the python batch files without letting them run code.
"""
