"""The numbers behind the figures: smoothing, gradient ratios, schedule drops, log scales."""
import math

import numpy as np
import pytest

from resnet_viz import figures
from resnet_viz.figures.numerics import thin_indices


def test_ema_is_bias_corrected_and_skips_gaps():
    assert np.allclose(figures.ema(np.full(10, 3.0), 0.9), 3.0)  # no warm-up bias towards 0
    y = figures.ema([1.0, np.nan, 1.0, 5.0], 0.5)
    assert math.isnan(y[1]) and y[2] == 1.0 and 1.0 < y[3] < 5.0
    assert np.array_equal(figures.ema([1.0, 2.0], 0.0), [1.0, 2.0])


def test_first_last_ratio_uses_the_last_conv_before_fc_and_skips_shortcuts():
    names = ["stem.conv", "stage1.block1.conv1", "stage1.block1.conv2", "stage1.block1.shortcut.conv", "fc"]
    g = np.array([[1.0, 9.0, 4.0, 100.0, 7.0],
                  [2.0, 9.0, 8.0, 100.0, 7.0],
                  [3.0, 9.0, 0.0, 100.0, 7.0]])
    assert figures.last_conv_index(names, 5) == 2
    r = figures.first_last_ratio(g, names)
    assert r[0] == pytest.approx(0.25) and r[1] == pytest.approx(0.25)
    assert math.isnan(r[2])  # division by a zero norm is undefined, not inf
    assert figures.first_last_ratio(g)[0] == pytest.approx(1 / 100)  # no names: the layer before the last


def test_lr_drops_are_found():
    m = {"step": np.arange(8), "lr": np.array([0.1] * 4 + [0.01] * 2 + [0.001] * 2)}
    assert figures.lr_drop_steps(m) == [4, 6]
    assert figures.lr_drop_steps({"step": np.arange(3), "lr": np.full(3, 0.1)}) == []
    # the smooth tail of a one-cycle schedule (consecutive ratios > 2 near zero) is not a drop
    from resnet_viz.config import TrainConfig
    from resnet_viz.training.trainer import lr_at
    cfg = TrainConfig(lr=0.05, schedule="onecycle")
    one_cycle = np.array([lr_at(i, 124, cfg) for i in range(124)])
    assert figures.lr_drop_steps({"step": np.arange(124), "lr": one_cycle}) == []


def test_spans_decades():
    assert figures.spans_decades([np.array([2.3, 1.7]), np.array([3.4e6])])
    assert not figures.spans_decades([np.array([2.3, 1.7, np.nan, 0.0, -1.0]), None])
    assert not figures.spans_decades([])


def test_shared_color_range_covers_both_runs():
    a = np.full((4, 3), 1e-3)
    b = np.full((4, 3), 10.0)
    lo, hi = figures.shared_color_range(a, b, percentiles=(0, 100))
    assert lo == pytest.approx(1e-3) and hi == pytest.approx(10.0)
    assert figures.shared_color_range(np.zeros((2, 2))) == (1e-3, 1.0)


def test_log_ticks_within_a_decade():
    vals, text = figures.log_ticks(math.log10(2e-3), math.log10(9e-3))
    assert text == ["2e-3", "5e-3"] and vals[0] == pytest.approx(math.log10(2e-3))


def test_thinning_keeps_the_first_and_last_points():
    assert list(thin_indices(5, max_points=10)) == [0, 1, 2, 3, 4]
    idx = thin_indices(10_001, max_points=1000)
    assert idx[0] == 0 and idx[-1] == 10_000 and len(idx) <= 1001 and np.all(np.diff(idx) > 0)


def test_eval_loss_spike_says_nothing_and_warns_nothing_about_batches_that_are_all_nan():
    """A diverged run's batch losses are NaN: no spike can be measured against them, and numpy's "Mean of empty
    slice" must not reach the server log."""
    import warnings
    m = {"step": np.arange(10), "loss": np.full(10, np.nan), "eval_step": np.array([4, 9]),
         "train_loss": np.array([3.0, 1e5]), "test_loss": np.array([3.0, 1e5])}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert figures.eval_loss_spike(m) is None
        m["loss"][:3] = 2.0  # finite batches before the first evaluation: that one is compared, the NaN-only one not
        m["test_loss"][0] = 500.0
        spike = figures.eval_loss_spike(m)
    assert spike is not None and spike["step"] == 4 and spike["batch_loss"] == 2.0



def test_numbers_read_like_a_slide():
    assert [figures.readable(x) for x in (2.31, 0.05, 840, 3540, 1.3e5, 1e7, 9.96e6, 5.26e7)] == \
        ["2.31", "0.05", "840", "3,540", "1.3×10⁵", "10⁷", "10⁷", "5.3×10⁷"]
