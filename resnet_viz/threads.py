"""How many CPU threads torch should use: all cores for a training run, one for an analysis on a busy machine.

On 2 CPU cores a forward pass takes 3–10× longer while another process (a training run) keeps both cores busy —
unless torch uses one thread, which then is the faster setting (`analyses.common` has the measurements).
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

import torch


def cpu_busy() -> bool:
    """True when the 1-minute load average says the cores are already taken (e.g. by a training run)."""
    try:
        return os.getloadavg()[0] >= (os.cpu_count() or 1) - 0.5
    except (OSError, AttributeError):  # no load average (AttributeError: not on Windows)
        return False


def training_threads() -> int:
    """A training run on the CPU uses every core."""
    return os.cpu_count() or 1


def analysis_threads(device: str, current: int) -> int:
    """Threads for an analysis on `device` ('cpu', 'cuda', …) when torch now uses `current`: one on a busy CPU,
    where fighting over the cores is several times slower; otherwise `current`."""
    if device == "cpu" and current > 1 and cpu_busy():
        return 1
    return current


@contextlib.contextmanager
def threads_for_analysis(device: str) -> Iterator[None]:
    """Run the block with `analysis_threads`; the thread count is restored afterwards."""
    before = torch.get_num_threads()
    wanted = analysis_threads(device, before)
    if wanted != before:
        torch.set_num_threads(wanted)
    try:
        yield
    finally:
        torch.set_num_threads(before)
