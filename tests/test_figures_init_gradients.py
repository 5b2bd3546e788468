"""The step-0 gradient profile and its finding: a band over the seeds around their median, the first ÷ last conv
ratio of each net, stage boundaries, non-finite norms left out of the lines and said in words."""
from dataclasses import dataclass

import numpy as np
import pytest

from figure_fixtures import cifar_layer_names
from resnet_viz import figures


@dataclass
class Net:
    label: str
    residual: bool
    depth: int
    layer_names: list
    seeds: tuple
    norms: np.ndarray
    losses: np.ndarray


def net(residual: bool, depth: int = 20, seeds=(0, 1, 2), first: float = 1.0, last: float = 1.0, scale: float = 1.0,
        loss: float = 2.4, **model) -> Net:
    """Norms falling geometrically from `first` (stem) to `last` (last conv), ×(1 + 0.1·seed); fc = last."""
    names = cifar_layer_names(depth, residual=residual, **model)
    main = [i for i, n in enumerate(names) if "shortcut" not in n]
    profile = np.full(len(names), last, dtype=float)
    profile[main[:-1]] = np.geomspace(first, last, len(main) - 1)
    norms = np.stack([scale * profile * (1 + 0.1 * s) for s in seeds]).astype(np.float32)
    label = f"{'resnet' if residual else 'plain'}-{depth}"
    return Net(label, residual, depth, names, tuple(seeds), norms, np.full(len(seeds), loss, np.float32))


def test_profile_has_a_band_a_median_and_the_ratios():
    plain, resnet = net(False, first=2000.0, last=1.0), net(True, first=6.0, last=1.0)
    fig = figures.init_gradient_profile(plain, resnet)
    assert len(fig.data) == 6  # per net: upper edge, lower edge filled to it, median line
    upper, lower, median = fig.data[:3]
    assert lower.fill == "tonexty" and upper.showlegend is False and lower.showlegend is False
    np.testing.assert_allclose(median.y, np.median(plain.norms, 0), rtol=1e-6)
    np.testing.assert_allclose(lower.y, plain.norms.min(0), rtol=1e-6)
    np.testing.assert_allclose(upper.y, plain.norms.max(0), rtol=1e-6)
    assert list(median.x) == list(range(1, 21))
    assert median.name == "plain-20 · first ÷ last conv 2,000×" and fig.data[5].name == "resnet-20 · first ÷ last conv 6×"
    assert fig.layout.meta["ratios"]["plain-20"]["median"] == pytest.approx(2000, rel=1e-5)
    assert fig.layout.yaxis.type == "log" and "median over 3 seeds" in fig.layout.title.text
    assert [s.x0 for s in fig.layout.shapes] == [7.5, 13.5]  # stage2 and stage3 start at layers 8 and 14


def test_one_seed_draws_lines_only_and_projection_shortcuts_stay_off_the_main_path():
    plain, resnet = net(False, seeds=(4,)), net(True, seeds=(4,), shortcut="B")
    assert len(resnet.layer_names) == 22  # 20 main-path layers and two projection convs
    fig = figures.init_gradient_profile(plain, resnet)
    assert len(fig.data) == 2 and all(t.fill is None for t in fig.data)
    assert len(fig.data[1].x) == 20 and "seed 4" in fig.layout.title.text
    assert not any("shortcut" in str(c[0]) for c in fig.data[1].customdata)


def test_non_finite_norms_are_gaps_and_said_in_words():
    plain, resnet = net(False), net(True, scale=1e30, loss=float("inf"))
    resnet.norms[:, 3] = np.inf
    resnet.norms[0, 5] = np.nan
    fig = figures.init_gradient_profile(plain, resnet)
    median = np.array(fig.data[5].y, dtype=float)
    assert np.isnan(median[3]) and np.isfinite(median[5])  # a layer's median over the seeds that stayed finite
    sentence = figures.init_gradient_finding(plain, resnet)["sentence"]
    assert "4 of resnet-20's gradient norms are not finite" in sentence
    assert "resnet-20's loss on the batch is already inf" in sentence


def test_finding_says_what_the_numbers_show_and_no_more():
    plain, resnet = net(False, first=2000.0, last=1.0), net(True, first=6.0, last=1.0)
    finding = figures.init_gradient_finding(plain, resnet)
    s = finding["sentence"]
    assert s.startswith("At step 0, plain-20's first-layer gradient is 2,000× its last conv layer's (")
    assert "larger at the input end: it grows on its way back" in s
    assert "resnet-20's first-layer gradient is 6× its last conv layer's" in s and "within a factor of ten" in s
    assert "over 3 seeds" in s
    assert "vanish" not in s and "degradation" not in s  # nothing the numbers do not show
    assert finding["plain"]["ratio"]["min"] == pytest.approx(2000, rel=1e-5)


def test_finding_without_batchnorm_names_the_net_whose_gradients_explode():
    plain = net(False, first=0.02, last=0.04, loss=2.3)
    resnet = net(True, first=12.0, last=40.0, scale=1.0, loss=66.0)
    s = figures.init_gradient_finding(plain, resnet)["sentence"]
    assert "Layer for layer, resnet-20's gradients are typically" in s and "plain-20's (medians over all" in s
    assert "resnet-20's loss on the batch is already 66 before any update" in s and "far off scale" in s
    assert "plain-20's loss" not in s  # 2.3 is a guess's loss: nothing to say
    huge = figures.init_gradient_finding(plain, net(True, first=1e4, last=2e4, loss=2957.0))["sentence"]
    assert "typically" in huge and "×10⁵× plain-20's" in huge and "already 2,957 before" in huge
    shrinking = figures.init_gradient_finding(net(False, first=0.001, last=1.0), net(True))["sentence"]
    assert "plain-20's first-layer gradient is 1/1,000 its last conv layer's" in shrinking
    assert "smaller at the input end: it shrinks on its way back" in shrinking
