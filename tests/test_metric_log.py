"""The trainer's device-side metric log: bulk flushes into the host arrays, and first-non-finite detection."""
import numpy as np
import torch

from resnet_viz.training.metric_log import DeviceMetricLog, MetricArrays

TOTAL, LAYERS, WINDOW = 10, 3, 4


def make_log(grad_every=2, record_grads=True, n_blocks=2, probe_every=3, flush_seconds=2.0):
    host = MetricArrays(TOTAL, LAYERS, grad_every, record_grads, n_blocks, probe_every)
    return host, DeviceMetricLog(host, WINDOW, LAYERS, torch.device("cpu"), grad_every, record_grads, flush_seconds)


def run_steps(log, steps, losses):
    for step in steps:
        grads = [torch.full((2, 2), float(step + j)) for j in range(LAYERS)] if log.wants_grad_norms(step) else None
        log.record_step(step, torch.tensor(losses[step]), torch.tensor(step / 100), grads)


def test_flush_copies_each_window_to_the_host():
    host, log = make_log()
    losses = np.linspace(2.0, 1.0, TOTAL)
    run_steps(log, range(0, 4), losses)
    assert np.isnan(host.loss).all()  # nothing reaches the host before a flush
    assert log.flush_due(4, now=log.last_flush_time) and not log.flush_due(3, now=log.last_flush_time)
    assert log.flush(4) is None
    run_steps(log, range(4, 7), losses)
    log.record_branch_ratios(torch.tensor([0.5, 0.25]))
    log.record_branch_ratios(torch.tensor([0.4, 0.2]))
    assert log.flush(7) is None
    np.testing.assert_allclose(host.loss[:7], losses[:7], rtol=1e-6)
    assert np.isnan(host.loss[7:]).all()
    np.testing.assert_allclose(host.batch_error[:7], np.arange(7) / 100, rtol=1e-6)
    # gradient norms every 2nd step: the norm of a 2×2 tensor of v is 2v
    assert list(host.grad_norm_step) == [0, 2, 4, 6, 8]
    np.testing.assert_allclose(host.grad_norms[:4], [[2 * (s + j) for j in range(LAYERS)] for s in (0, 2, 4, 6)])
    assert np.isnan(host.grad_norms[4]).all()
    np.testing.assert_allclose(host.branch_ratios[:2], [[0.5, 0.25], [0.4, 0.2]])
    assert np.isnan(host.branch_ratios[2:]).all()
    m = host.as_dict(7)
    assert len(m["loss"]) == 7 and list(m["grad_norm_step"]) == [0, 2, 4, 6] and list(m["branch_ratio_step"]) == [0, 3, 6]


def test_flush_reports_the_first_non_finite_step():
    host, log = make_log(record_grads=False)
    losses = np.ones(TOTAL)
    losses[5], losses[6] = np.inf, np.nan
    run_steps(log, range(0, 4), losses)
    assert log.flush(4) is None
    run_steps(log, range(4, 7), losses)
    assert log.flush(7) == 5
    assert host.grad_norms.shape == (0, LAYERS)


def test_flush_is_due_after_the_time_limit():
    _, log = make_log(flush_seconds=2.0)
    log.flush(0, now=100.0)
    assert not log.flush_due(1, now=101.0) and log.flush_due(1, now=102.5)
    assert log.flush(0) is None  # nothing pending: no copy, no divergence


def test_restore_takes_over_a_saved_run_and_logging_goes_on_from_there():
    import pytest
    host, log = make_log()
    losses = np.linspace(2.0, 1.0, TOTAL)
    run_steps(log, range(0, 4), losses)
    log.flush(4)
    run_steps(log, range(4, 6), losses)
    log.record_branch_ratios(torch.tensor([0.5, 0.25]))
    log.record_branch_ratios(torch.tensor([0.4, 0.2]))
    log.flush(6)
    host.add_evaluation(0, {k: 0.5 for k in ("train_loss", "train_error", "test_loss", "test_error")}, 1.0)
    host.add_evaluation(6, {k: 0.25 for k in ("train_loss", "train_error", "test_loss", "test_error")}, 2.0)
    saved = host.as_dict(6)

    longer = MetricArrays(TOTAL + 4, LAYERS, 2, True, 2, 3)
    longer.restore(saved, 4)  # steps 0-3 kept; the rows of steps 4 and 5 and the evaluation at 6 dropped
    np.testing.assert_array_equal(longer.loss[:4], saved["loss"][:4])
    assert np.isnan(longer.loss[4:]).all()
    np.testing.assert_array_equal(longer.grad_norms[:2], saved["grad_norms"][:2])
    assert np.isnan(longer.grad_norms[2:]).all()
    np.testing.assert_array_equal(longer.branch_ratios[:2], saved["branch_ratios"])
    assert longer.evals["eval_step"] == [0]
    resumed = DeviceMetricLog(longer, WINDOW, LAYERS, torch.device("cpu"), 2, True, start=4)
    run_steps(resumed, range(4, 7), np.arange(TOTAL, dtype=float))
    resumed.flush(7)
    np.testing.assert_array_equal(longer.loss[4:7], [4, 5, 6])
    assert np.isfinite(longer.grad_norms[2:4]).all()

    with pytest.raises(ValueError, match="end at step 6"):
        MetricArrays(TOTAL, LAYERS, 2, True, 2, 3).restore(saved, 8)
    with pytest.raises(ValueError, match="grad norms"):
        MetricArrays(TOTAL, LAYERS, 3, True, 2, 3).restore(saved, 6)  # another gradient-norm interval
    with pytest.raises(ValueError, match="grad norms"):
        MetricArrays(TOTAL, LAYERS + 1, 2, True, 2, 3).restore(saved, 6)  # other layers
