"""Analyses (response std, branch ratios, lesions, loss landscape, shattered gradients, dead ReLUs): known answers on
small random nets, and that every function leaves the model exactly as it found it."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resnet_viz import analyses as A
from resnet_viz.config import ModelConfig
from resnet_viz.datasets.batches import normalize
from resnet_viz.errors import ConfigError
from resnet_viz.nets.models import build_model

N_IMAGES = 32


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny nets: see conftest.py


def make(depth=14, residual=True, **kw):
    torch.manual_seed(0)
    return build_model(ModelConfig(depth=depth, width=0.5, residual=residual, **kw))


def settle_bn(model, images):
    """Give BN realistic running statistics (a fresh model's 0/1 make a deep ResNet blow up in eval mode)."""
    return A.calibrate_bn(model, images)


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (N_IMAGES, 3, 32, 32), dtype=torch.uint8, generator=g)


@pytest.fixture(scope="module")
def labels():
    return torch.arange(N_IMAGES) % 10


@pytest.fixture
def resnet(images):
    return settle_bn(make(), images)


@pytest.fixture
def plain(images):
    return settle_bn(make(residual=False), images)


def predictions(model, images):
    with torch.no_grad():
        return model.eval()(normalize(images)).argmax(1)


def zero_branch(block):
    block.bn2.weight.data.zero_()
    block.bn2.bias.data.zero_()


# ---------------------------------------------------------------------------------------- restoration ----
def snapshot(model):
    return ({k: v.clone() for k, v in model.state_dict().items()},
            {n: m.training for n, m in model.named_modules()},
            {n: p.requires_grad for n, p in model.named_parameters()},
            {n: b.lesioned for n, b in model.blocks()})


def assert_unchanged(model, before):
    state, modes, grads, lesions = snapshot(model)
    for k, v in before[0].items():
        assert torch.equal(state[k], v), f"{k} changed"
    assert modes == before[1]
    assert grads == before[2]
    assert lesions == before[3]
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
    assert all(p.grad is None for p in model.parameters())


CALLS = {
    "response_std": lambda m, x, y: A.response_std(m, x, batch_size=12),
    "branch_ratios": lambda m, x, y: A.branch_ratios(m, x),
    "branch_ratio_probe": lambda m, x, y: A.branch_ratio_probe(m, x),
    "lesion_single": lambda m, x, y: A.lesion_single(m, x, y),
    "lesion_random": lambda m, x, y: A.lesion_random(m, x, y, k_values=(1, 2), draws=2),
    "lesioned_logits": lambda m, x, y: A.lesioned_logits(m, x, ["stage1.block2"]),
    "landscape_1d": lambda m, x, y: A.loss_landscape_1d(m, x, y, points=3),
    "landscape_2d": lambda m, x, y: A.loss_landscape_2d(m, x, y, grid=2),
    "shattering": lambda m, x, y: A.gradient_shattering(m, x[0], points=8),
    "dead_relus": lambda m, x, y: A.dead_relus(m, x),
    "evaluate": lambda m, x, y: A.evaluate(m, x, y),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_every_function_restores_the_model(name, resnet, images, labels):
    model = resnet.train()
    model.stage2.block1.bn1.eval()  # a mixed mode must come back as it was
    model.stage3.block2.conv1.weight.requires_grad_(False)
    model.stage2.block2.lesioned = True
    before = snapshot(model)
    CALLS[name](model, images, labels)
    assert_unchanged(model, before)


def test_restored_even_when_progress_cancels(resnet, images, labels):
    before = snapshot(resnet)

    def cancel(fraction):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        A.loss_landscape_2d(resnet, images, labels, grid=3, progress=cancel)
    assert_unchanged(resnet, before)


def test_landscape_restores_a_channels_last_model(resnet, images, labels):
    model = resnet.to(memory_format=torch.channels_last)
    before = snapshot(model)
    A.loss_landscape_1d(model, images, labels, points=3)
    assert_unchanged(model, before)
    assert model.stage1.block1.conv1.weight.is_contiguous(memory_format=torch.channels_last)


# -------------------------------------------------------------------------------------- response std ----
def test_response_std_names_order_and_positivity(resnet, plain, images):
    for model in (resnet, plain):
        result = A.response_std(model, images)
        expected = ["stem.conv"] + [f"{b}.conv{i}" for b, _ in model.blocks() for i in (1, 2)]
        assert [n for n, _ in result] == expected
        assert all(np.isfinite(s) and s > 0 for _, s in result)


def test_response_std_is_the_std_of_the_bn_output(resnet, images):
    seen = {}
    handle = resnet.stage2.block1.bn2.register_forward_hook(lambda m, i, o: seen.setdefault("out", o))
    with torch.no_grad():
        resnet(normalize(images))
    handle.remove()
    got = dict(A.response_std(resnet, images, batch_size=7))["stage2.block1.conv2"]
    assert got == pytest.approx(seen["out"].double().std(unbiased=False).item(), rel=1e-5)


# ------------------------------------------------------------------------------------- branch ratios ----
def test_zeroed_branch_has_ratio_zero_and_probe_agrees(resnet, images):
    zero_branch(resnet.stage2.block2)
    ratios = dict(A.branch_ratios(resnet, images))
    assert list(ratios) == A.branch_ratio_names(resnet) == [n for n, _ in resnet.blocks()]
    assert ratios["stage2.block2"] == 0.0
    assert all(v > 0 for k, v in ratios.items() if k != "stage2.block2")
    resnet.train()
    probe = A.branch_ratio_probe(resnet, images)
    assert resnet.training
    assert probe.shape == (len(ratios),) and probe.dtype == torch.float32
    assert np.allclose(probe.numpy(), list(ratios.values()), rtol=1e-5)


def test_branch_ratio_matches_a_direct_computation(resnet, images):
    block = resnet.stage3.block1  # downsampling: the shortcut is the subsampled, zero-padded input
    seen = {}
    handle = block.register_forward_pre_hook(lambda m, i: seen.setdefault("x", i[0]))
    with torch.no_grad():
        resnet(normalize(images))
        handle.remove()
        x = seen["x"]
        expected = (block.branch(x).flatten(1).norm(dim=1) / block.shortcut(x).flatten(1).norm(dim=1)).mean()
    assert dict(A.branch_ratios(resnet, images))["stage3.block1"] == pytest.approx(expected.item(), rel=1e-5)


def test_plain_net_has_no_branch_ratios(plain, images):
    with pytest.raises(ConfigError, match="plain"):
        A.branch_ratios(plain, images)
    with pytest.raises(ConfigError, match="plain"):
        A.branch_ratio_probe(plain, images)
    assert A.branch_ratio_names(plain) == []


# ---------------------------------------------------------------------------------------------- lesions ----
def test_deleting_a_zeroed_block_changes_nothing(resnet, images):
    for name in ("stage1.block2", "stage3.block1"):  # an identity block and an option-A downsampling block
        zero_branch(dict(resnet.blocks())[name])
        intact = A.lesioned_logits(resnet, images)
        assert np.array_equal(A.lesioned_logits(resnet, images, [name]), intact)
    labels = predictions(resnet, images)
    result = A.lesion_single(resnet, images, labels)
    assert result["baseline"] == 1.0 and result["images"] == N_IMAGES
    by_block = {r["block"]: r for r in result["blocks"]}
    assert by_block["stage1.block2"]["accuracy"] == 1.0
    assert by_block["stage3.block1"]["accuracy"] == 1.0


def test_lesion_single_matches_lesioning_the_model(resnet, plain, images, labels):
    for model in (resnet, plain):
        result = A.lesion_single(model, images, labels, batch_size=10)
        assert result["baseline"] == pytest.approx(A.evaluate(model, images, labels)[1])
        for row in result["blocks"]:
            if row["removable"]:
                logits = A.lesioned_logits(model, images, [row["block"]])
                expected = float((torch.from_numpy(logits).argmax(1) == labels).float().mean())
                assert row["accuracy"] == pytest.approx(expected)


def test_residual_blocks_removable_plain_downsampling_blocks_not(resnet, plain, images, labels):
    rows = A.lesion_single(resnet, images, labels)["blocks"]
    assert [r["block"] for r in rows] == [n for n, _ in resnet.blocks()]
    assert all(r["removable"] and r["accuracy"] is not None for r in rows)
    notes = {r["block"]: r["reason"] for r in rows}
    assert notes["stage1.block1"] is None and "only its shortcut" in notes["stage2.block1"]

    rows = {r["block"]: r for r in A.lesion_single(plain, images, labels)["blocks"]}
    for name, block in plain.blocks():
        assert rows[name]["removable"] is (not block.changes_shape)
    for name in ("stage2.block1", "stage3.block1"):
        assert rows[name]["removable"] is False and rows[name]["accuracy"] is None
        assert rows[name]["reason"] == "changes the shape: nothing else connects its input to the next layer"
    with pytest.raises(ConfigError, match="cannot be deleted"):
        A.lesioned_logits(plain, images, ["stage2.block1"])


def test_projection_blocks_are_removable(images, labels):
    model = settle_bn(make(depth=8, shortcut="B"), images)
    rows = {r["block"]: r for r in A.lesion_single(model, images, labels)["blocks"]}
    assert rows["stage2.block1"]["removable"] and "projection" in rows["stage2.block1"]["reason"]


def test_lesion_random_shapes_seed_and_limits(resnet, plain, images, labels):
    result = A.lesion_random(resnet, images, labels, k_values=(0, 1, 3), draws=3, seed=5)
    assert list(result) == [0, 1, 3] and all(len(v) == 3 for v in result.values())
    assert result[0] == [A.evaluate(resnet, images, labels)[1]] * 3
    assert result == A.lesion_random(resnet, images, labels, k_values=(0, 1, 3), draws=3, seed=5)
    assert all(0 <= a <= 1 for v in result.values() for a in v)
    assert list(A.lesion_random(resnet, images, labels, draws=1)) == list(range(1, 7))  # 6 blocks
    full = A.lesion_random(plain, images, labels, k_values=(4,), draws=2)  # all 4 removable blocks
    assert full[4][0] == full[4][1]
    with pytest.raises(ConfigError, match="4 removable blocks"):
        A.lesion_random(plain, images, labels, k_values=(5,))


def test_the_two_lesion_studies_agree_on_the_intact_net_given_the_same_images(resnet, plain, images, labels):
    """Each study sizes its own image subset to its budget, so their intact accuracies can differ; the page says why,
    with `lesion_random_images`, and with one number of images for both they agree."""
    n = A.lesion_random_images(resnet, images, k_values=(0, 1), draws=2, max_images=12)
    assert n == 12 and A.lesion_random_images(resnet, images, k_values=(0, 1), draws=2) <= len(images)
    result = A.lesion_random(resnet, images, labels, k_values=(0, 1), draws=2, max_images=12)
    assert all(abs(a * n - round(a * n)) < 1e-9 for v in result.values() for a in v)  # counts out of n images
    assert A.lesion_single(resnet, images, labels, max_images=12)["baseline"] == pytest.approx(result[0][0])
    with pytest.raises(ConfigError, match="4 removable blocks"):
        A.lesion_random_images(plain, images, k_values=(5,))


# ---------------------------------------------------------------------------------------- landscape ----
def test_filter_normalised_direction(resnet):
    d = A.random_direction(resnet, torch.Generator().manual_seed(0))
    params = dict(resnet.named_parameters())
    assert set(d) == set(params)
    weights = {f"{n}.weight" for n, m in resnet.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    for name, p in params.items():
        assert d[name].shape == p.shape
        if name in weights:
            w = p.detach().reshape(len(p), -1).double().norm(dim=1)
            assert torch.allclose(d[name].reshape(len(p), -1).double().norm(dim=1), w, rtol=1e-5)
            assert not torch.allclose(d[name], p.detach())
        else:  # BN weights/biases and the fc bias
            assert not d[name].any(), name
    again = A.random_direction(resnet, torch.Generator().manual_seed(0))
    assert all(torch.equal(d[k], again[k]) for k in d)


def test_landscape_origin_is_the_models_loss(resnet, images, labels):
    with torch.no_grad():
        direct = F.cross_entropy(resnet(normalize(images)), labels).item()
    loss, acc = A.evaluate(resnet, images, labels)
    assert loss == pytest.approx(direct, rel=1e-5)

    fractions = []
    alphas, losses, accs = A.loss_landscape_1d(resnet, images, labels, points=5, span=0.5, progress=fractions.append)
    assert alphas.tolist() == [-0.5, -0.25, 0.0, 0.25, 0.5]
    assert losses.shape == accs.shape == (5,)
    assert losses[2] == loss and accs[2] == acc
    assert fractions == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])

    a, b, grid = A.loss_landscape_2d(resnet, images, labels, grid=3)
    assert a.tolist() == b.tolist() == [-1.0, 0.0, 1.0]
    assert grid.shape == (3, 3) and np.isfinite(grid).all()
    assert grid[1, 1] == loss
    # the 2-D landscape's first direction is the 1-D one: its β = 0 row is the 1-D curve
    _, line, _ = A.loss_landscape_1d(resnet, images, labels, points=3)
    assert np.allclose(grid[1], line, rtol=1e-5)


def test_landscape_uses_max_images(resnet, images, labels):
    _, losses, _ = A.loss_landscape_1d(resnet, images, labels, points=1, max_images=10)
    idx = A.budget_subset(resnet, images, labels, 1, max_images=10)
    assert sorted(labels[idx].tolist()) == list(range(10))  # class-balanced, not the first ten
    assert losses[0] == A.evaluate(resnet, images[idx], labels[idx])[0]
    by_class = torch.sort(labels).values  # as an image folder is read: class after class
    assert set(by_class[A.budget_subset(resnet, images, by_class, 1, max_images=10)].tolist()) == set(range(10))
    assert A.images_for_budget(resnet, images, 121) == N_IMAGES  # a small net affords them all
    assert A.images_for_budget(resnet, images, 1e9) == A.MIN_IMAGES
    with pytest.raises(ConfigError):
        A.images_for_budget(resnet, images, 1, max_images=0)


def test_budget_shrinks_the_sample_for_deep_nets():
    deep = build_model(ModelConfig(depth=56))
    images = torch.zeros(256, 3, 32, 32, dtype=torch.uint8)
    assert A.macs_per_image(deep) == pytest.approx(125.5e6, rel=0.01)
    assert A.images_for_budget(deep, images, 121) == A.MIN_IMAGES
    assert 50 <= A.images_for_budget(deep, images, 21) <= 100


# ---------------------------------------------------------------------------------------- shattering ----
@pytest.mark.parametrize("residual", [True, False])
def test_gradient_shattering_shapes_and_ranges(residual, resnet, plain, images):
    model = resnet if residual else plain
    r = A.gradient_shattering(model, images[3], points=16, epsilon=2.0, max_lag=5)
    assert r["t"].shape == r["signal"].shape == r["pixel_signal"].shape == (16,)
    assert r["t"][0] == pytest.approx(-2.0) and r["t"][-1] == pytest.approx(2.0)
    assert r["lags"].tolist() == list(range(6))
    assert r["autocorrelation"].shape == r["gradient_cosine"].shape == (6,)
    for key in ("signal", "pixel_signal", "autocorrelation", "gradient_cosine"):
        assert np.isfinite(r[key]).all(), key
    assert r["autocorrelation"][0] == pytest.approx(1.0)
    assert -1.0 <= r["neighbour_correlation"] <= 1.0
    assert r["neighbour_correlation"] == r["gradient_cosine"][1]
    assert r["predicted_class"] == int(predictions(model, images[3:4])[0]) and r["zero_gradients"] == 0
    again = A.gradient_shattering(model, images[3:4], points=16, epsilon=2.0, max_lag=5)
    assert np.array_equal(again["signal"], r["signal"])


def test_gradient_shattering_of_a_linear_region_is_constant(resnet, images):
    # a line so short that no ReLU changes state: the gradient is the same at every point
    r = A.gradient_shattering(resnet, images[0], points=4, epsilon=1e-7)
    assert r["neighbour_correlation"] == pytest.approx(1.0, abs=1e-6)


def test_calibrate_bn_copies_and_measures(images):
    fresh = make(depth=8)
    before = snapshot(fresh)
    assert A.bn_never_updated(fresh)
    calibrated = A.calibrate_bn(fresh, images)
    assert_unchanged(fresh, before)
    assert calibrated is not fresh and not calibrated.training and not A.bn_never_updated(calibrated)
    assert calibrated.stem.bn.momentum == fresh.stem.bn.momentum
    with torch.no_grad():
        stem = fresh.stem.conv(normalize(images))
    assert torch.allclose(calibrated.stem.bn.running_mean, stem.mean((0, 2, 3)), atol=1e-4)
    for name, p in fresh.named_parameters():
        assert torch.equal(p, dict(calibrated.named_parameters())[name])


def test_gradient_shattering_of_a_dead_net_is_undefined_not_zero(resnet, images):
    resnet.fc.weight.data.zero_()  # the logits no longer depend on the input
    r = A.gradient_shattering(resnet, images[0], points=8)
    assert r["zero_gradients"] == 8 and np.isnan(r["neighbour_correlation"])
    assert not r["signal"].any() and np.isnan(r["autocorrelation"][1:]).all()


# ---------------------------------------------------------------------------------------- dead ReLUs ----
def test_dead_relus(resnet, images):
    resnet.stage1.block1.bn1.weight.data.zero_()
    resnet.stage1.block1.bn1.bias.data.fill_(-1.0)
    result = A.dead_relus(resnet, images)
    names = [n for n, _ in result]
    assert names[:3] == ["stem.relu", "stage1.block1.relu1", "stage1.block1.relu_out"]
    assert sorted(names) == sorted(n for n, m in resnet.named_modules() if isinstance(m, nn.ReLU))
    values = dict(result)
    assert values["stage1.block1.relu1"] == 1.0
    assert all(0.0 <= v <= 1.0 for v in values.values())
    assert values["stem.relu"] < 1.0


def test_bad_inputs(resnet, images, labels):
    with pytest.raises(ConfigError, match="uint8"):
        A.response_std(resnet, normalize(images))
    with pytest.raises(ConfigError, match="label"):
        A.lesion_single(resnet, images, labels[:3])
    with pytest.raises(ConfigError, match="one image"):
        A.gradient_shattering(resnet, images[:2])


def test_the_package_exports_its_public_api():
    from resnet_viz.analyses import common, lesion, probes
    assert all(hasattr(A, name) for name in A.__all__)
    assert A.branch_ratio_probe is probes.branch_ratio_probe and A.NOT_REMOVABLE is lesion.NOT_REMOVABLE
    assert A.evaluate is common.evaluate
