"""Unpickling CIFAR-10's python batch files without letting them run code.

A pickle may call any importable function while it loads, so an unrestricted one would let a crafted data_batch_1, in
a folder the user (or anyone using the app's data-folder box) points at, run code. `load_batch_pickle` allows only
what the real files hold: dicts, lists, bytes, text, numbers and numpy arrays.
"""
from __future__ import annotations

import codecs
import functools
import pickle
from typing import BinaryIO

import numpy as np


class RefusedPickle(pickle.UnpicklingError):
    """A batch file that asks for something CIFAR-10's files never hold."""


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    # How Python 3 pickles bytes at protocol 2: _codecs.encode(text, "latin1"). Any other codec is refused.
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise RefusedPickle(f"it asks to encode with {encoding!r}")
    return codecs.encode(text, "latin1")


@functools.cache
def _pickle_allowlist() -> dict[tuple[str, str], object]:
    """The only globals CIFAR-10's batches need: numpy's array reconstruction (under numpy 1.x's and 2.x's module
    names, as pickled by Python 2 or by a modern re-pickle) and the bytes helper of protocol 2."""
    core = getattr(np, "_core", None) or np.core
    allowed: dict[tuple[str, str], object] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
                                               ("_codecs", "encode"): _latin1_bytes}
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = core.multiarray._reconstruct
        if hasattr(core.numeric, "_frombuffer"):  # protocol 5 pickles of arrays
            allowed[(f"{package}.numeric", "_frombuffer")] = core.numeric._frombuffer
    return allowed


class _BatchUnpickler(pickle.Unpickler):
    """A pickle.Unpickler whose only importable globals are the allowlist's."""

    def find_class(self, module: str, name: str):
        found = _pickle_allowlist().get((module, name))
        if found is None:
            raise RefusedPickle(f"it asks to load {module}.{name}")
        return found


def load_batch_pickle(file: BinaryIO) -> object:
    """The object pickled in `file`, read as torchvision reads CIFAR-10's Python-2 pickles (bytes stay bytes).
    Raises RefusedPickle for anything the dataset's files never ask for."""
    return _BatchUnpickler(file, encoding="bytes").load()
