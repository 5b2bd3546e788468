"""How many CPU threads torch should use, fairly beside whatever else runs on the machine.

Why it matters: torch's default of one thread per core collapses when anything else runs. Its OpenMP threads wait for
each other at every operator, so one descheduled thread stalls all of them — a plain-56 step ran 5–10× slower beside
one competing process. So a training run counts the cores other processes are using *now* (from /proc/stat, not the
one-minute load average, which lags a minute behind), takes what is left, and looks again every few seconds. An
analysis on a busy CPU uses one thread (`analyses.common` has the measurements).
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass
from typing import Iterator

import torch

RECHECK_SECONDS = 5.0  # how often a training run looks at the load again
BUSY_THRESHOLD = 0.35  # another process must use this much of a core before we give that core up


def usable_cores() -> int:
    """Cores this process may run on (a container's CPU set, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


BROWSERS = ("chrom", "firefox", "safari", "msedge", "brave", "opera", "vivaldi", "webkit")  # process names


def _process_table() -> dict[int, tuple[str, int, int]] | None:
    """{pid: (name, parent pid, busy jiffies)} of every process, or None where /proc is missing.

    The busy jiffies include those of the process's children that have ended (cutime, cstime): a training process
    that ends keeps its CPU time inside the server's, so the demo's total never drops — it did, by the whole run's
    time, whenever a run ended while the load was sampled, and the next plan then saw a machine 'busy' with that
    much and took one thread."""
    table = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return None
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                text = f.read()
        except OSError:
            continue  # ended meanwhile
        comm, rest = text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()
        try:
            table[int(name)] = (comm.lower(), int(rest[1]), sum(int(v) for v in rest[11:15]))
        except (IndexError, ValueError):
            continue
    return table


def demo_pids(table: dict[int, tuple[str, int, int]], root: int) -> set[int]:
    """The demo's own processes: `root` (the app's server) with its descendants, and every web browser process with
    its descendants — the tabs watching the demo are part of it, not competitors for the cores."""
    children: dict[int, list[int]] = {}
    for pid, (_, ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    seeds = [root] + [pid for pid, (comm, _, _) in table.items() if any(b in comm for b in BROWSERS)]
    found, stack = set(), seeds
    while stack:
        pid = stack.pop()
        if pid not in found:
            found.add(pid)
            stack.extend(children.get(pid, ()))
    return found


def _demo_root() -> int:
    """The app's server: the process that started this one for a run (RESNET_VIZ_DEMO_PID), else this process."""
    value = os.environ.get("RESNET_VIZ_DEMO_PID", "")
    return int(value) if value.isdigit() else os.getpid()


def _read_jiffies(exclude_demo: bool = False) -> tuple[int, int] | None:
    """(busy jiffies of the whole machine, busy jiffies of the processes not to count as others: this process, or
    with `exclude_demo` every process of the demo), or None where /proc is missing."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        with open("/proc/self/stat") as f:
            own = f.read().rsplit(")", 1)[1].split()  # the command name may hold spaces: split after it
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    busy_total = sum(fields[:8]) - idle  # guest time is already inside user time
    mine = int(own[11]) + int(own[12])  # utime + stime
    if exclude_demo and (table := _process_table()) is not None:
        demo = demo_pids(table, _demo_root()) | {os.getpid()}
        mine = sum(table[pid][2] for pid in demo if pid in table)
    return busy_total, mine


class CpuLoad:
    """Cores used by *other* processes, measured between successive calls (no sleeping after the first).

    `exclude_demo`: other than the demo itself (the app's server, its training process and the browsers watching
    it), which is what a run's thread count is decided from; an analysis (exclude_demo False) counts a training run
    as the competitor it is."""

    def __init__(self, exclude_demo: bool = False):
        self.exclude_demo = exclude_demo
        self._last = _read_jiffies(exclude_demo)
        self._last_time = time.monotonic()

    def others_busy(self, min_interval: float = 0.25) -> float:
        """Cores other processes kept busy since the last call; waits `min_interval` if the last call was recent."""
        if min_interval > 0:
            wait = min_interval - (time.monotonic() - self._last_time)
            if wait > 0:
                time.sleep(wait)
        now, now_time = _read_jiffies(self.exclude_demo), time.monotonic()
        last, last_time = self._last, self._last_time
        self._last, self._last_time = now, now_time
        if now is None or last is None:
            return _loadavg_others()
        ticks = os.sysconf("SC_CLK_TCK") * (now_time - last_time)
        others = ((now[0] - last[0]) - (now[1] - last[1])) / max(1e-9, ticks)
        return max(0.0, others)


def _loadavg_others() -> float:
    """Fallback without /proc (macOS): the one-minute load average, which includes us when we are busy."""
    try:
        return max(0.0, os.getloadavg()[0] - 1.0)
    except (AttributeError, OSError):
        return 0.0


def choose_threads(others_busy: float, reserve: int = 0, cores: int | None = None) -> int:
    """Threads that fit beside what else runs: the free cores, less `reserve` kept for a server to render."""
    cores = usable_cores() if cores is None else cores
    taken = math.ceil(others_busy - BUSY_THRESHOLD) if others_busy > BUSY_THRESHOLD else 0
    return max(1, min(cores, cores - taken - reserve))


@dataclass
class ThreadGovernor:
    """Sets torch's intra-op threads for a training run and adjusts them when the load changes.

    `reserve`: cores left free for other work of this process (the app's server renders pages beside training).
    `fixed`: a user's explicit choice; then nothing is measured or changed."""

    reserve: int = 0
    fixed: int | None = None

    def __post_init__(self):
        self._load = CpuLoad(exclude_demo=True)
        self._last_check = 0.0
        self.threads = self.fixed or 0

    def start(self) -> int:
        self.threads = self.fixed or choose_threads(self._load.others_busy(), self.reserve)
        torch.set_num_threads(self.threads)
        self._last_check = time.monotonic()
        return self.threads

    def maybe_adjust(self) -> int:
        """Cheap to call every step: it looks at the load only every RECHECK_SECONDS."""
        if self.fixed or time.monotonic() - self._last_check < RECHECK_SECONDS:
            return self.threads
        self._last_check = time.monotonic()
        wanted = choose_threads(self._load.others_busy(min_interval=0.0), self.reserve)
        if wanted != self.threads:
            self.threads = wanted
            torch.set_num_threads(wanted)
        return self.threads


@contextlib.contextmanager
def threads_a_run_would_get(device_type: str, reserve: int = 0) -> Iterator[int]:
    """Within the block torch uses the threads a training run started now would get (the free cores, less
    `reserve`): what a plan must be measured and looked up with. Yields that count (0 off the CPU); restores after."""
    if device_type != "cpu":
        yield 0
        return
    before = torch.get_num_threads()
    threads = choose_threads(CpuLoad(exclude_demo=True).others_busy(), reserve)
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)


def cpu_busy() -> bool:
    """True when other processes keep (nearly) every core busy, e.g. a training run."""
    return choose_threads(CpuLoad().others_busy(min_interval=0.2)) == 1 and usable_cores() > 1


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
