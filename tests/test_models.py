"""Model builder: the paper's parameter counts, torchvision equality, shapes, plain twins, names, bad configs."""
import pytest
import torch
import torchvision
from torch import nn

from resnet_viz.config import PAPER_TABLE6_PARAMS_M, ModelConfig
from resnet_viz.errors import ConfigError
from resnet_viz.models import (ProjectionShortcut, ResNet, ZeroPadShortcut, build_model, check_fits,
                               count_parameters, layer_names, model_summary)


def meta_model(cfg: ModelConfig) -> ResNet:
    with torch.device("meta"):
        return build_model(cfg)


@pytest.mark.parametrize("depth", sorted(PAPER_TABLE6_PARAMS_M))
def test_cifar_parameter_counts_match_table6(depth):
    residual = count_parameters(meta_model(ModelConfig(depth=depth)))
    plain = count_parameters(meta_model(ModelConfig(depth=depth, residual=False)))
    paper = PAPER_TABLE6_PARAMS_M[depth]
    digits = 1 if paper >= 1 else 2
    assert round(residual / 1e6, digits) == paper
    assert plain == residual  # option A has no parameters: the twins are the same size


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_imagenet_family_equals_torchvision(depth):
    ours = meta_model(ModelConfig(family="imagenet", depth=depth, num_classes=1000))
    with torch.device("meta"):
        theirs = getattr(torchvision.models, f"resnet{depth}")()
    assert count_parameters(ours) == count_parameters(theirs)


def test_resnet50_follows_the_seed_article():
    model = meta_model(ModelConfig(family="imagenet", depth=50, num_classes=1000))
    blocks = dict(model.blocks())
    expected = [f"stage{s}.res{s}{c}" for s, n in zip((2, 3, 4, 5), (3, 4, 6, 3)) for c in "abcdef"[:n]]
    assert list(blocks) == expected
    for name, block in blocks.items():
        first = name.endswith("a")
        assert block.article_kind == ("convolutional block" if first else "identity block"), name
    assert isinstance(model.stem.maxpool, nn.MaxPool2d) and model.stem.conv.kernel_size == (7, 7)
    # stage 5's identity blocks are 512, 512, 2048 filters (the article's "256x256x2048" is a slip)
    b = blocks["stage5.res5b"]
    assert (b.conv1.out_channels, b.conv2.out_channels, b.conv3.out_channels) == (512, 512, 2048)
    assert isinstance(model.avgpool, nn.AdaptiveAvgPool2d)  # global pool, not the article's 2x2
    summary = model_summary(ModelConfig(family="imagenet", depth=50, num_classes=1000))
    assert 4.0e9 < summary["total_macs"] < 4.2e9  # torchvision: 4.09 GMACs at 224x224


@pytest.mark.parametrize("cfg", [
    ModelConfig(depth=8), ModelConfig(depth=14, residual=False), ModelConfig(depth=8, shortcut="B"),
    ModelConfig(depth=8, shortcut="C"), ModelConfig(depth=8, batchnorm=False), ModelConfig(depth=8, width=0.5),
    ModelConfig(depth=8, width=2), ModelConfig(family="imagenet", depth=18, width=0.125, stem="cifar"),
    ModelConfig(family="imagenet", depth=50, width=0.125, stem="cifar", residual=False),
    ModelConfig(family="imagenet", depth=18, width=0.125),
], ids=lambda c: c.name)
def test_forward_shapes(cfg):
    model = build_model(cfg)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_plain_twin_is_residual_minus_shortcuts():
    for cfg in (ModelConfig(depth=14, shortcut="B"), ModelConfig(family="imagenet", depth=50, width=0.125,
                                                                  stem="cifar")):
        residual = build_model(cfg)
        plain = build_model(ModelConfig(**{**cfg.__dict__, "residual": False}))
        res_state, plain_state = residual.state_dict(), plain.state_dict()
        assert set(plain_state) == {k for k in res_state if ".shortcut." not in k}
        assert all(plain_state[k].shape == res_state[k].shape for k in plain_state)
        # With every shortcut contributing zero, the residual net computes exactly what its plain twin does.
        plain.load_state_dict({k: v for k, v in res_state.items() if ".shortcut." not in k})
        for _, block in residual.blocks():
            block.shortcut = ZeroShortcut()
        residual.eval(), plain.eval()
        x = torch.randn(2, 3, 32, 32)
        torch.testing.assert_close(residual(x), plain(x))


class ZeroShortcut(nn.Module):
    def forward(self, x):
        return torch.zeros((), device=x.device)


def test_layer_names_and_relus():
    model = build_model(ModelConfig(depth=20, shortcut="B"))
    names = layer_names(model)
    assert names[0] == "stem.conv" and names[-1] == "fc" and len(names) == len(set(names))
    assert names[1:3] == ["stage1.block1.conv1", "stage1.block1.conv2"]
    assert "stage2.block1.shortcut.conv" in names
    assert sum(1 for n in names if ".shortcut." not in n) == 20  # depth counts the weight layers
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    assert len(relus) == 1 + 2 * 9 and not any(r.inplace for r in relus)
    assert len({id(r) for r in relus}) == len(relus)


def test_option_a_shortcut_zero_pads():
    sc = ZeroPadShortcut(16, 32, 2)
    x = torch.randn(1, 16, 8, 8)
    y = sc(x)
    assert y.shape == (1, 32, 4, 4)
    torch.testing.assert_close(y[:, :16], x[:, :, ::2, ::2])
    assert (y[:, 16:] == 0).all()
    model = build_model(ModelConfig(depth=8))
    assert isinstance(model.stage2.block1.shortcut, ZeroPadShortcut)
    assert isinstance(build_model(ModelConfig(depth=8, shortcut="B")).stage2.block1.shortcut, ProjectionShortcut)


def test_summary_rows_and_totals():
    cfg = ModelConfig(depth=20)
    s = model_summary(cfg)
    model = build_model(cfg)
    assert s["total_params"] == count_parameters(model) == 269_722
    rows = {r["name"]: r for r in s["layers"]}
    assert rows["stage1.block3.relu_out"]["output_shape"] == (16, 32, 32)
    assert rows["stage2.block3.relu_out"]["output_shape"] == (32, 16, 16)
    assert rows["stage3.block3.relu_out"]["output_shape"] == (64, 8, 8)
    assert rows["stem.conv"]["macs"] == 16 * 32 * 32 * 27
    weight_rows = [r for r in s["layers"] if r["kind"].startswith(("conv", "fc"))]
    assert len(weight_rows) == 20 == s["weight_layers"]
    bn_params = sum(p.numel() for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters())
    assert sum(r["params"] for r in weight_rows) == s["total_params"] - bn_params
    assert s["total_flops"] == 2 * s["total_macs"]


def test_lesioned_blocks():
    model = build_model(ModelConfig(depth=14)).eval()
    block = model.stage1.block2
    x = torch.relu(torch.randn(2, 16, 32, 32))
    block.lesioned = True
    torch.testing.assert_close(block(x), x)  # identity shortcut of a post-ReLU input
    plain = build_model(ModelConfig(depth=14, residual=False)).eval()
    plain.stage2.block1.lesioned = True
    with pytest.raises(ConfigError, match="cannot be removed"):
        plain(torch.randn(1, 3, 32, 32))
    plain.stage2.block1.lesioned = False
    plain.stage2.block2.lesioned = True
    assert plain(torch.randn(1, 3, 32, 32)).shape == (1, 10)


@pytest.mark.parametrize("bad, message", [
    (dict(depth=21), "6n\\+2"), (dict(depth=2), "6n\\+2"), (dict(depth=0), "6n\\+2"), (dict(depth=-4), "6n\\+2"),
    (dict(width=0), "positive"), (dict(width=-1), "positive"), (dict(family="vgg"), "family"),
    (dict(shortcut="D"), "shortcut"), (dict(family="imagenet", depth=42), "18, 34, 50"),
    (dict(family="cifar", stem="imagenet"), "stem"), (dict(depth=20.5), "whole number"),
    (dict(num_classes=1), "2 classes"),
])
def test_bad_configs_raise_one_clear_error(bad, message):
    with pytest.raises(ConfigError, match=message):
        build_model(ModelConfig(**bad))


def test_depth_hint_suggests_neighbours():
    with pytest.raises(ConfigError, match="Try 20 or 26"):
        ModelConfig(depth=21).validate()


def test_memory_check():
    with pytest.raises(ConfigError, match="GiB"):
        check_fits(ModelConfig(depth=1202), 10**6, torch.device("cpu"))
    assert check_fits(ModelConfig(depth=20), 128, torch.device("cpu")) > 0
