"""A full disk, injected where resnet_viz's writes reach the operating system (no small filesystem is needed).

`FullDisk` makes writes fail from the moment it is switched on, the way they fail on a full disk: os.fsync (which
ends every JSON write) raises OSError(ENOSPC), and safetensors' save_file writes part of the file and then raises
the SafetensorError its Rust writer raises on ENOSPC. `CountingFile` counts the bytes written through an open file
and can fail with ENOSPC past a given count (for code that writes with plain file objects: unpacking, packing)."""
from __future__ import annotations

import errno
import os

import safetensors.numpy
import safetensors.torch
from safetensors import SafetensorError

NO_SPACE = "No space left on device"


class FullDisk:
    def __init__(self, monkeypatch, json: bool = True, tensors: bool = True):
        self.on = False
        self.failed = 0  # writes refused so far
        real_fsync = os.fsync

        def fsync(fd):
            if self.on and json:
                self.failed += 1
                raise OSError(errno.ENOSPC, NO_SPACE)
            return real_fsync(fd)
        monkeypatch.setattr(os, "fsync", fsync)
        for module in (safetensors.torch, safetensors.numpy):
            monkeypatch.setattr(module, "save_file", self._failing(module.save_file, tensors))

    def _failing(self, real_save, tensors: bool):
        def save_file(tensor_dict, filename, metadata=None, **kwargs):
            if not (self.on and tensors):
                return real_save(tensor_dict, filename, metadata=metadata, **kwargs)
            self.failed += 1
            with open(filename, "wb") as f:  # the disk fills part of the way through
                f.write(bytes(4096))
            raise SafetensorError(f"Error while serializing: I/O error: {NO_SPACE} (os error 28) at path "
                                  f"\"{filename}\"")
        return save_file


class CountingFile:
    """An open binary file that counts what is written through it; past `fail_after` bytes in all (shared through
    `counts`) a write fails with ENOSPC, as on a full disk."""

    def __init__(self, f, counts: dict):
        self._f, self._counts = f, counts

    def write(self, data) -> int:
        limit = self._counts.get("fail_after")
        if limit is not None and self._counts["bytes"] + len(data) > limit:
            raise OSError(errno.ENOSPC, NO_SPACE)
        self._counts["bytes"] += len(data)
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()
