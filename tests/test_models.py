"""Model builder: the paper's parameter counts, torchvision equality, shapes, plain twins, names, bad configs,
summaries, memory checks and lesioning. Big nets are built on the meta device (no memory, no arithmetic)."""
import pytest
import torch
import torchvision
from torch import nn

from resnet_viz.config import PAPER_TABLE6_PARAMS_M, ModelConfig
from resnet_viz.errors import ConfigError
from resnet_viz.nets.models import (BasicBlock, Bottleneck, ProjectionShortcut, ResNet, ZeroPadShortcut, build_model,
                               count_parameters, layer_names, weight_layers)
from resnet_viz.nets.summary import check_fits, model_summary


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny nets: see conftest.py


def meta_model(cfg: ModelConfig) -> ResNet:
    with torch.device("meta"):
        return build_model(cfg)


def small(cfg: ModelConfig) -> ResNet:
    torch.manual_seed(0)
    return build_model(cfg)


def twin(cfg: ModelConfig) -> ModelConfig:
    return ModelConfig(**{**cfg.__dict__, "residual": not cfg.residual})


# ------------------------------------------------------------------------------------------- parameter counts

@pytest.mark.parametrize("depth", sorted(PAPER_TABLE6_PARAMS_M))
def test_cifar_parameter_counts_match_table6(depth):
    residual = count_parameters(meta_model(ModelConfig(depth=depth)))
    plain = count_parameters(meta_model(ModelConfig(depth=depth, residual=False)))
    paper = PAPER_TABLE6_PARAMS_M[depth]  # 0.27M … 19.4M: compare to the digits the paper prints
    digits = len(str(paper).split(".")[1])
    assert round(residual / 1e6, digits) == paper, (depth, residual)
    assert plain == residual  # option A has no parameters: the twins are exactly the same size


def test_projection_shortcuts_add_parameters():
    a = count_parameters(meta_model(ModelConfig(depth=20)))
    b = count_parameters(meta_model(ModelConfig(depth=20, shortcut="B")))
    c = count_parameters(meta_model(ModelConfig(depth=20, shortcut="C")))
    # B: two 1×1 projections (16→32, 32→64) with BN; C: a projection on each of the 9 blocks
    assert b - a == (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
    assert c > b
    assert count_parameters(meta_model(ModelConfig(depth=20, shortcut="B", residual=False))) == a


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_imagenet_family_equals_torchvision(depth):
    ours = meta_model(ModelConfig(family="imagenet", depth=depth, num_classes=1000))
    with torch.device("meta"):
        theirs = getattr(torchvision.models, f"resnet{depth}")(num_classes=1000)
    assert count_parameters(ours) == count_parameters(theirs)
    # the same tensors too, not just the same total: every torchvision parameter shape appears as often in ours
    shapes = sorted(tuple(p.shape) for p in ours.parameters())
    assert shapes == sorted(tuple(p.shape) for p in theirs.parameters())


# --------------------------------------------------------------------------------------- the seed article's layout

def test_resnet50_follows_the_seed_article():
    model = meta_model(ModelConfig(family="imagenet", depth=50, num_classes=1000))
    blocks = dict(model.blocks())
    expected = [f"stage{s}.res{s}{c}" for s, n in zip((2, 3, 4, 5), (3, 4, 6, 3)) for c in "abcdef"[:n]]
    assert list(blocks) == expected
    for name, block in blocks.items():
        assert isinstance(block, Bottleneck)
        if name.endswith("a"):  # the 'convolutional block': a projection shortcut
            assert isinstance(block.shortcut, ProjectionShortcut) and block.article_kind == "convolutional block"
        else:  # the 'identity block'
            assert isinstance(block.shortcut, nn.Identity) and block.article_kind == "identity block", name
    assert isinstance(model.stem.maxpool, nn.MaxPool2d) and model.stem.conv.kernel_size == (7, 7)
    assert model.stem.conv.stride == (2, 2)
    # stage 5's identity blocks are 512, 512, 2048 filters (the article's "256x256x2048" is a slip)
    b = blocks["stage5.res5b"]
    assert (b.conv1.out_channels, b.conv2.out_channels, b.conv3.out_channels) == (512, 512, 2048)
    assert blocks["stage3.res3a"].conv2.stride == (2, 2)  # v1.5: the stride on the 3×3, as torchvision
    assert isinstance(model.avgpool, nn.AdaptiveAvgPool2d)  # global pool, not the article's 2x2
    summary = model_summary(ModelConfig(family="imagenet", depth=50, num_classes=1000))
    assert 4.0e9 < summary["total_macs"] < 4.2e9  # torchvision: 4.09 GMACs at 224x224
    assert summary["input_size"] == 224 and summary["weight_layers"] == 50 + 4  # 49 convs + fc + 4 projections


def test_long_stages_use_the_caffe_names():
    blocks = [name for name, _ in meta_model(ModelConfig(family="imagenet", depth=101)).blocks()]
    stage4 = [n for n in blocks if n.startswith("stage4.")]
    assert stage4[:3] == ["stage4.res4a", "stage4.res4b", "stage4.res4c"] and len(stage4) == 23
    assert stage4[-1] == "stage4.res4w" and len(set(blocks)) == len(blocks)


def test_basic_blocks_for_18_and_34():
    model = meta_model(ModelConfig(family="imagenet", depth=34))
    assert all(isinstance(b, BasicBlock) for _, b in model.blocks()) and len(model.blocks()) == 16
    assert [n for n, _ in model.blocks()][:4] == ["stage2.res2a", "stage2.res2b", "stage2.res2c", "stage3.res3a"]


# ------------------------------------------------------------------------------------------------------- shapes

SHAPE_CONFIGS = (
    [ModelConfig(depth=8, shortcut=s, batchnorm=bn, residual=r) for s in "ABC" for bn in (True, False)
     for r in (True, False)]
    + [ModelConfig(depth=8, width=w) for w in (0.5, 2)] + [ModelConfig(depth=14, width=0.5, residual=False)]
    + [ModelConfig(family="imagenet", depth=d, width=0.125, stem=stem, shortcut=s, batchnorm=bn)
       for d in (18, 50) for stem in ("cifar", "imagenet") for s in "ABC" for bn in (True, False)
       if (stem, bn) != ("imagenet", False) or s == "B"]
    + [ModelConfig(family="imagenet", depth=18, width=0.125, residual=False),
       ModelConfig(family="imagenet", depth=50, width=0.125, stem="cifar", residual=False, num_classes=7)]
)


@pytest.mark.parametrize("cfg", SHAPE_CONFIGS, ids=lambda c: f"{c.family}-{c.name}-{c.shortcut}-{c.stem}")
def test_forward_shapes(cfg):
    model = small(cfg)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, cfg.num_classes) and out.dtype == torch.float32 and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == cfg.batchnorm
    assert all((m.bias is None) == cfg.batchnorm for m in convs)  # a bias before BN would be redundant
    first = {"cifar": 16, "imagenet": 64}[cfg.family] * cfg.width
    assert model.stem.conv.out_channels == round(first)
    if cfg.family == "imagenet" and cfg.stem == "imagenet":
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, cfg.num_classes)


@pytest.mark.parametrize("shortcut", "ABC")
def test_shortcut_kinds(shortcut):
    model = small(ModelConfig(depth=14, shortcut=shortcut))
    kinds = {name: type(b.shortcut) for name, b in model.blocks()}
    changing = {"stage2.block1", "stage3.block1"}
    for name, kind in kinds.items():
        if shortcut == "C" or (shortcut == "B" and name in changing):
            assert kind is ProjectionShortcut, name
        elif name in changing:
            assert kind is ZeroPadShortcut, name
        else:
            assert kind is nn.Identity, name


def test_option_a_shortcut_zero_pads():
    sc = ZeroPadShortcut(16, 32, 2)
    x = torch.randn(1, 16, 8, 8)
    y = sc(x)
    assert y.shape == (1, 32, 4, 4) and not list(sc.parameters())
    torch.testing.assert_close(y[:, :16], x[:, :, ::2, ::2])
    assert (y[:, 16:] == 0).all()


# ---------------------------------------------------------------------------------------------------- plain twins

class ZeroShortcut(nn.Module):
    def forward(self, x):
        return torch.zeros((), device=x.device)


@pytest.mark.parametrize("cfg", [
    ModelConfig(depth=14), ModelConfig(depth=14, shortcut="B"), ModelConfig(depth=8, shortcut="C", batchnorm=False),
    ModelConfig(family="imagenet", depth=50, width=0.125, stem="cifar"),
    ModelConfig(family="imagenet", depth=18, width=0.25, stem="cifar", shortcut="A"),
], ids=lambda c: f"{c.family}-{c.name}-{c.shortcut}")
def test_plain_twin_is_residual_minus_shortcuts(cfg):
    residual = small(cfg)
    plain = small(twin(cfg))
    assert plain.cfg.residual is False and all(b.shortcut is None for _, b in plain.blocks())
    res_state, plain_state = residual.state_dict(), plain.state_dict()
    assert set(plain_state) == {k for k in res_state if ".shortcut." not in k}
    assert all(plain_state[k].shape == res_state[k].shape for k in plain_state)
    # the same module tree, layer for layer, apart from the shortcuts
    res_modules = [(n, type(m)) for n, m in residual.named_modules() if ".shortcut" not in n]
    assert [(n, type(m)) for n, m in plain.named_modules()] == res_modules
    # the residual's weights load into the plain twin; only the shortcuts' are left over
    result = plain.load_state_dict(res_state, strict=False)
    assert result.missing_keys == []
    assert all(".shortcut." in k for k in result.unexpected_keys)
    assert bool(result.unexpected_keys) == any(isinstance(b.shortcut, ProjectionShortcut) for _, b in residual.blocks())
    # with every shortcut contributing zero, the residual net computes exactly what its plain twin does
    residual.eval(), plain.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(residual(x), plain(x))  # the shortcuts matter…
        for _, block in residual.blocks():
            block.shortcut = ZeroShortcut()
        torch.testing.assert_close(residual(x), plain(x))  # …and they are the only difference


# ------------------------------------------------------------------------------------------------ names and ReLUs

@pytest.mark.parametrize("cfg", [ModelConfig(depth=20, shortcut="B"),
                                 ModelConfig(family="imagenet", depth=50, width=0.125, stem="cifar")],
                         ids=lambda c: c.name)
def test_layer_names_in_depth_order_and_relus_separate(cfg):
    model = small(cfg).eval()
    names = layer_names(model)
    assert names == [n for n, _ in weight_layers(model)] and len(names) == len(set(names))
    assert names[0] == "stem.conv" and names[-1] == "fc"
    # depth order = the order in which a forward pass runs them (a projection right after its block's branch)
    order, relu_calls = [], {}
    handles = [m.register_forward_hook(lambda m, i, o, n=n: order.append(n)) for n, m in weight_layers(model)]
    relus = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.ReLU)]
    handles += [m.register_forward_hook(lambda m, i, o, n=n: relu_calls.__setitem__(n, relu_calls.get(n, 0) + 1))
                for n, m in relus]
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
    for h in handles:
        h.remove()

    assert order == names
    # every ReLU is its own module, not in place, and runs exactly once
    assert len({id(m) for _, m in relus}) == len(relus) and not any(m.inplace for _, m in relus)
    assert relu_calls == {n: 1 for n, _ in relus}
    per_block = 2 if cfg.family == "cifar" else 3
    assert len(relus) == 1 + per_block * len(model.blocks())
    if cfg.family == "cifar":
        assert names[1:3] == ["stage1.block1.conv1", "stage1.block1.conv2"]
        assert "stage2.block1.shortcut.conv" in names
        assert sum(1 for n in names if ".shortcut." not in n) == cfg.depth  # depth counts the weight layers


# ---------------------------------------------------------------------------------------------------- bad configs

@pytest.mark.parametrize("bad, message", [
    (dict(depth=21), "6n\\+2.*Try 20 or 26"), (dict(depth=2), "n ≥ 1"), (dict(depth=0), "6n\\+2"),
    (dict(depth=-4), "6n\\+2"), (dict(depth=20.5), "whole number"), (dict(depth=True), "whole number"),
    (dict(width=0), "positive"), (dict(width=-1), "positive"), (dict(width=float("nan")), "positive"),
    (dict(width=1e-6), "no channels"), (dict(family="vgg"), "family 'vgg'.*'cifar'.*'imagenet'"),
    (dict(shortcut="D"), "shortcut option 'D'.*A.*B.*C"),
    (dict(family="imagenet", depth=42), "18, 34, 50, 101, 152; 42"), (dict(family="imagenet", depth=20), "20"),
    (dict(family="cifar", stem="imagenet"), "stem"), (dict(family="imagenet", depth=18, stem="tiny"), "stem"),
    (dict(num_classes=1), "2 classes"),
])
def test_bad_configs_raise_one_clear_error(bad, message):
    for call in (build_model, model_summary):
        with pytest.raises(ConfigError, match=message):
            call(ModelConfig(**bad))
    with pytest.raises(ValueError):  # ConfigError is a ValueError for callers that catch those
        ModelConfig(**bad).validate()


@pytest.mark.parametrize("width", [float("inf"), float("nan"), 1e9])
def test_absurd_widths_are_config_errors(width):
    with pytest.raises(ConfigError):
        build_model(ModelConfig(width=width))


def test_minimum_width_depends_on_the_family():
    assert build_model(ModelConfig(family="imagenet", depth=18, width=1 / 40, stem="cifar")).stem.conv.out_channels == 2
    with pytest.raises(ConfigError, match="1/32"):
        ModelConfig(width=1 / 40).validate()


def test_memory_check():
    # ResNet-110 needs ~50 MB per image in a training step: ten million images per batch is far past any machine
    with pytest.raises(ConfigError, match=r"batch size 10000000 needs about .* GiB.*smaller depth or batch size"):
        check_fits(ModelConfig(depth=110), 10**7, torch.device("cpu"))
    need = check_fits(ModelConfig(depth=20), 128, torch.device("cpu"))
    assert 10 * 2**20 < need < 4 * 2**30
    assert check_fits(ModelConfig(depth=20), 256, torch.device("cpu")) > need


# -------------------------------------------------------------------------------------------------------- summary

def test_summary_rows_and_totals():
    cfg = ModelConfig(depth=20)
    s = model_summary(cfg)
    model = small(cfg)
    assert s["total_params"] == count_parameters(model) == 269_722 and s["input_size"] == 32
    rows = {r["name"]: r for r in s["layers"]}
    assert len(rows) == len(s["layers"])  # one row per layer
    assert rows["stem.conv"]["output_shape"] == (16, 32, 32)
    for stage, shape in (("stage1", (16, 32, 32)), ("stage2", (32, 16, 16)), ("stage3", (64, 8, 8))):
        assert rows[f"{stage}.block3.relu_out"]["output_shape"] == shape
    assert rows["fc"]["output_shape"] == (10,) and rows["fc"]["macs"] == 64 * 10
    assert rows["stem.conv"]["macs"] == 16 * 32 * 32 * 27
    assert rows["stage2.block1.shortcut"]["kind"].startswith("shortcut (zero-pad")
    weight_rows = [r for r in s["layers"] if r["kind"].startswith(("conv", "fc"))]
    assert [r["name"] for r in weight_rows] == layer_names(model)
    assert len(weight_rows) == 20 == s["weight_layers"]
    bn_params = sum(p.numel() for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters())
    assert sum(r["params"] for r in weight_rows) == s["total_params"] - bn_params
    assert sum(r["params"] for r in s["layers"]) == s["total_params"]
    assert s["total_flops"] == 2 * s["total_macs"]
    assert 40e6 < s["total_macs"] < 42e6  # ResNet-20: 40.8 M multiply-adds, the figure usually quoted
    assert model_summary(twin(cfg))["total_params"] == s["total_params"]


def test_summary_with_projections_and_input_size():
    cfg = ModelConfig(depth=20, shortcut="B")
    s = model_summary(cfg)
    names = [r["name"] for r in s["layers"]]
    assert "stage2.block1.shortcut.conv" in names and "stage2.block1.shortcut" not in names  # no wrapper row
    assert s["weight_layers"] == 22 and s["total_params"] == count_parameters(small(cfg))
    big = model_summary(cfg, input_size=64)
    assert big["total_macs"] > 3.9 * s["total_macs"] and big["total_params"] == s["total_params"]
    assert {r["name"]: r for r in big["layers"]}["stage3.block3.relu_out"]["output_shape"] == (64, 16, 16)


def measured_rows(cfg: ModelConfig, size: int) -> list[tuple]:
    """(name, output shape, params) of every layer, measured by running the model with forward hooks on a CPU."""
    model, rows = small(cfg).eval(), []
    leaves = [(n, m) for n, m in model.named_modules()
              if n and not list(m.children()) and not isinstance(m, nn.Flatten)]
    for n, m in leaves:
        m.register_forward_hook(lambda mod, i, out, n=n: rows.append(
            (n, tuple(out.shape[1:]), sum(p.numel() for p in mod.parameters(recurse=False)))))
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    return rows


@pytest.mark.parametrize("cfg, size", [
    (ModelConfig(depth=8), 32), (ModelConfig(depth=8, residual=False), 32), (ModelConfig(depth=14, shortcut="B"), 32),
    (ModelConfig(depth=8, shortcut="C", batchnorm=False), 20), (ModelConfig(depth=8, width=0.5), 17),
    (ModelConfig(family="imagenet", depth=18, width=0.25), 64),
    (ModelConfig(family="imagenet", depth=50, width=0.125, stem="cifar"), 32),
    (ModelConfig(family="imagenet", depth=50, width=0.125, residual=False), 57)])
def test_summary_shapes_are_the_shapes_a_forward_pass_produces(cfg, size):
    """model_summary works the shapes out without running the model; they must be what running it gives."""
    s = model_summary(cfg, size)
    assert [(r["name"], r["output_shape"], r["params"]) for r in s["layers"]] == measured_rows(cfg, size)


def test_summary_of_the_deepest_net_is_quick():
    import time
    model_summary(ModelConfig(depth=20))
    start = time.process_time()
    s = model_summary(ModelConfig(depth=1202))
    assert time.process_time() - start < 2.0  # CPU seconds: a busy machine's wall clock says nothing
    assert s["weight_layers"] == 1202 and round(s["total_params"] / 1e6, 1) == 19.4


# ------------------------------------------------------------------------------------------------------- lesioning

def test_lesioned_residual_block_is_its_shortcut_only():
    x = torch.relu(torch.randn(2, 16, 32, 32))  # a block's input comes out of a ReLU
    for shortcut in "AB":
        model = small(ModelConfig(depth=14, shortcut=shortcut)).eval()
        for block in (model.stage1.block2, model.stage2.block1):  # an identity and a shape-changing shortcut
            with torch.no_grad():
                full = block(x)
                block.lesioned = True
                lesioned = block(x)
            torch.testing.assert_close(lesioned, block.relu_out(block.shortcut(x)))
            if shortcut == "A":
                torch.testing.assert_close(lesioned, block.shortcut(x))  # ReLU of a ReLU'd input is a no-op
            assert lesioned.shape == full.shape and not torch.allclose(lesioned, full)
            block.lesioned = False
        model.stage2.block1.lesioned = True
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    torch.testing.assert_close(model.stage1.block2.shortcut(x), x)  # identity: a removed block passes x on


def test_lesioned_plain_blocks():
    plain = small(ModelConfig(depth=14, residual=False)).eval()
    plain.stage2.block1.lesioned = True
    with pytest.raises(ConfigError, match="cannot be removed"):
        plain(torch.randn(1, 3, 32, 32))
    plain.stage2.block1.lesioned = False
    plain.stage2.block2.lesioned = True
    x = torch.randn(2, 32, 16, 16)
    torch.testing.assert_close(plain.stage2.block2(x), x)  # a removed plain block passes its input on
    assert plain(torch.randn(1, 3, 32, 32)).shape == (1, 10)
