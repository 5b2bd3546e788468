"""The CPU thread policy: every core for training, one thread for an analysis on a busy CPU."""
import os

import torch

from resnet_viz import threads


def test_analysis_threads_follow_the_load(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    monkeypatch.setattr(os, "getloadavg", lambda: (3.6, 0.0, 0.0))
    assert threads.cpu_busy()
    assert threads.analysis_threads("cpu", 4) == 1
    assert threads.analysis_threads("cuda", 4) == 4  # the GPU does the work
    assert threads.analysis_threads("cpu", 1) == 1
    monkeypatch.setattr(os, "getloadavg", lambda: (1.0, 0.0, 0.0))
    assert not threads.cpu_busy() and threads.analysis_threads("cpu", 4) == 4
    assert threads.training_threads() == 4


def test_no_load_average_means_not_busy(monkeypatch):
    def unavailable():
        raise OSError("no load average here")
    monkeypatch.setattr(os, "getloadavg", unavailable)
    assert not threads.cpu_busy()


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
