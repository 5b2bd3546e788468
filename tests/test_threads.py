"""The CPU thread policy: the free cores for training, re-checked as the load changes; one thread for an analysis
on a busy CPU."""
import pytest
import torch

from resnet_viz.training import threads
from resnet_viz.training import threads as compute


def _others(monkeypatch, busy: float, cores: int = 4):
    monkeypatch.setattr(threads, "usable_cores", lambda: cores)
    monkeypatch.setattr(threads.CpuLoad, "others_busy", lambda self, min_interval=0.25: busy)


def test_analysis_threads_follow_the_load(monkeypatch):
    _others(monkeypatch, 3.6)
    assert threads.cpu_busy()
    assert threads.analysis_threads("cpu", 4) == 1
    assert threads.analysis_threads("cuda", 4) == 4  # the GPU does the work
    assert threads.analysis_threads("cpu", 1) == 1
    _others(monkeypatch, 1.0)
    assert not threads.cpu_busy() and threads.analysis_threads("cpu", 4) == 4


def test_governor_follows_the_load_and_leaves_room(monkeypatch):
    before = torch.get_num_threads()
    try:
        _others(monkeypatch, 0.0)
        g = threads.ThreadGovernor(reserve=1)
        assert g.start() == 3 and torch.get_num_threads() == 3
        _others(monkeypatch, 2.0)
        assert g.maybe_adjust() == 3  # not looked at again yet
        g._last_check = -1e9
        assert g.maybe_adjust() == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_threads_for_analysis_restores_the_setting(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setattr(threads, "analysis_threads", lambda device, current: 1)
    try:
        torch.set_num_threads(2)
        with threads.threads_for_analysis("cpu"):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("others, reserve, cores, expected", [
    (0.0, 0, 2, 2), (0.2, 0, 2, 2), (1.0, 0, 2, 1), (0.9, 0, 16, 15), (3.0, 0, 2, 1), (0.0, 1, 2, 1),
    (0.0, 1, 16, 15), (2.4, 1, 16, 12),
])
def test_threads_fit_beside_other_work(others, reserve, cores, expected):
    assert compute.choose_threads(others, reserve, cores) == expected


def test_cpu_load_counts_other_processes_not_this_one(monkeypatch):
    """Machine-wide busy time minus this process's own, per second of wall time, in cores."""
    ticks = compute.os.sysconf("SC_CLK_TCK")
    readings = iter([(1000, 100), (1000 + 3 * ticks, 100 + 1 * ticks)])  # 3 cores-seconds busy, 1 of them ours
    clock = iter([10.0, 11.0])

    class FakeTime:
        monotonic = staticmethod(lambda: next(clock))
        sleep = staticmethod(lambda s: None)

    monkeypatch.setattr(compute, "_read_jiffies", lambda exclude_demo=False: next(readings))
    monkeypatch.setattr(compute, "time", FakeTime)
    load = compute.CpuLoad()
    assert load.others_busy(min_interval=0.0) == pytest.approx(2.0)


def test_the_demo_is_the_server_its_children_and_the_browsers():
    """A run's threads are decided from what *else* runs: the app's server with its training process, and the
    browser tabs watching them, are part of the demo."""
    table = {1: ("init", 0, 0), 50: ("streamlit", 1, 0), 51: ("python", 50, 0), 52: ("python", 51, 0),
             70: ("chromium", 1, 0), 71: ("chromium", 70, 0), 72: ("cat", 71, 0), 90: ("ffmpeg", 1, 0),
             91: ("firefox-bin", 1, 0)}
    assert compute.demo_pids(table, 50) == {50, 51, 52, 70, 71, 72, 91}


def test_a_busy_child_of_the_demo_is_not_a_competitor(monkeypatch):
    """Measured on this machine: a child process spinning on a core counts as another process's load in general,
    but not when the question is what *else* runs beside the demo."""
    import subprocess
    monkeypatch.setattr(compute, "BROWSERS", ())  # browsers other sessions run here are not this test's business
    import sys
    import time
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])

    def child_jiffies() -> int:
        return compute._process_table()[child.pid][2]
    try:
        time.sleep(0.3)
        everything, beside_demo = compute.CpuLoad(), compute.CpuLoad(exclude_demo=True)
        start, t0 = child_jiffies(), time.monotonic()
        time.sleep(1.0)
        child_cores = (child_jiffies() - start) / compute.os.sysconf("SC_CLK_TCK") / (time.monotonic() - t0)
        difference = everything.others_busy(min_interval=0) - beside_demo.others_busy(min_interval=0)
        assert child_cores > 0.05  # it ran (on a busy machine, maybe only a little)
        assert difference == pytest.approx(child_cores, abs=0.1)  # exactly the child's share is left out
    finally:
        child.kill()
        child.wait()


def test_a_run_that_ends_while_the_load_is_sampled_is_not_a_competitor(monkeypatch):
    """A training process of the demo that ends (and is reaped) between two readings keeps its CPU time inside the
    demo's: before, its whole time vanished from the demo's total and counted as other processes' load, and a plan
    made just after a run ended took one thread on an idle machine."""
    import resource
    import subprocess
    import sys
    import time
    monkeypatch.setattr(compute, "BROWSERS", ())
    child = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 1.0: pass"])
    time.sleep(0.5)  # it has spun half a second before the readings begin
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    everything, beside_demo, t0 = compute.CpuLoad(), compute.CpuLoad(exclude_demo=True), time.monotonic()
    child.wait()  # ended and reaped within the window
    time.sleep(0.3)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds = time.monotonic() - t0
    # the child's whole time is reported at its end; roughly its second half fell inside the window
    everything_busy, beside = everything.others_busy(min_interval=0), beside_demo.others_busy(min_interval=0)
    child_total = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    assert child_total > 0.3
    assert beside <= everything_busy + 0.15  # never more than all other processes together
    assert beside < everything_busy - 0.5 * (child_total - 0.5) / seconds + 0.15  # and less by the child's share


def test_cpu_load_reads_this_machine():
    load = compute.CpuLoad()
    assert 0.0 <= load.others_busy(min_interval=0.5) <= compute.usable_cores() + 0.5  # 0.1 s is 10 jiffies: too coarse


def test_governor_with_a_fixed_thread_count_never_changes_it():
    before = torch.get_num_threads()
    try:
        g = compute.ThreadGovernor(fixed=1)
        assert g.start() == 1 and torch.get_num_threads() == 1
        g._last_check = -1e9
        assert g.maybe_adjust() == 1
    finally:
        torch.set_num_threads(before)


