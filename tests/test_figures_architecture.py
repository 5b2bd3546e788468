"""Model summary tables, the architecture diagram (drawn from a model summary) and the residual block figure."""
import plotly.graph_objects as go
import pytest

from resnet_viz import figures
from resnet_viz.config import ModelConfig
from resnet_viz.nets.models import ResNet, shortcut_kind
from resnet_viz.nets.summary import model_summary


def diagram(cfg: ModelConfig, *args) -> go.Figure:
    return figures.architecture_diagram(model_summary(cfg), *args)


def test_summary_table_and_totals():
    s = model_summary(ModelConfig(depth=20))
    rows = figures.summary_table(s)
    assert len(rows) == 20 and rows[0]["layer"] == "stem.conv" and rows[-1]["layer"] == "fc"
    assert [r["#"] for r in rows] == list(range(1, 21))
    assert rows[0]["output"] == "16×32×32" and rows[0]["params"] == 432
    assert set(rows[0]) == {"#", "layer", "kind", "output", "params", "MACs"}
    assert len(figures.summary_table(s, weight_layers_only=False)) == len(s["layers"])
    t = figures.summary_totals(s)
    assert t["params"] == s["total_params"] and t["weight_layers"] == 20 and t["params_h"] == "269.72K"
    assert isinstance(figures.summary_table_figure(s), go.Figure)


@pytest.mark.parametrize("cfg", [ModelConfig(depth=20), ModelConfig(depth=20, shortcut="B"),
                                 ModelConfig(depth=20, shortcut="C"), ModelConfig(family="imagenet", depth=50),
                                 ModelConfig(depth=20, residual=False)])
def test_layout_matches_the_built_model(cfg):
    layout = figures.architecture_layout(model_summary(cfg))
    blocks = [b for st in layout["stages"] for b in st["blocks"]]
    built = ResNet(cfg.validate()).blocks()
    assert [f"{b['stage']}.{b['name']}" for b in blocks] == [name for name, _ in built]
    assert [b["article_kind"] for b in blocks] == [m.article_kind for _, m in built]
    assert [b["shortcut"] for b in blocks] == [shortcut_kind(m.shortcut) for _, m in built]


def arc_traces(fig):
    return [t for t in fig.data if isinstance(t.meta, dict) and t.meta.get("role") == "shortcut"]


def test_diagram_has_arcs_for_residual_and_none_for_plain():
    res = diagram(ModelConfig(depth=20))
    assert res.layout.meta["arcs"] == 9
    kinds = {t.meta["kind"] for t in arc_traces(res)}
    assert kinds == {"identity", "zero-pad"}
    assert next(t for t in arc_traces(res) if t.meta["kind"] == "zero-pad").line.dash == "dash"
    plain = diagram(ModelConfig(depth=20, residual=False))
    assert plain.layout.meta["arcs"] == 0 and not arc_traces(plain)
    assert plain.layout.meta["nodes"] == res.layout.meta["nodes"]  # the same column, minus the arcs


def test_projection_arcs_are_labelled():
    fig = diagram(ModelConfig(depth=20, shortcut="B"))
    proj = next(t for t in arc_traces(fig) if t.meta["kind"] == "projection")
    assert proj.line.dash == "solid"
    labels = [t for t in fig.data if t.name == "shortcut labels"][0]
    assert list(labels.text) == ["1×1 conv", "1×1 conv"]


def test_collapsed_stages():
    cfg = ModelConfig(depth=110)  # 18 blocks per stage: collapsed by default
    summary = model_summary(cfg)
    assert figures.auto_collapsed_stages(summary) == {"stage1", "stage2", "stage3"}
    auto = figures.architecture_diagram(summary)
    # input, stem, 3 stage boxes, pool, fc, output
    assert auto.layout.meta["nodes"] == 8 and auto.layout.meta["collapsed"] == ["stage1", "stage2", "stage3"]
    assert auto.layout.meta["arcs"] == 3
    labels = [t for t in auto.data if t.name == "labels"][0].text
    assert "<b>stage2: 18 blocks, 32 ch, /2</b>" in labels
    one = figures.architecture_diagram(summary, {"stage2"})
    assert one.layout.meta["nodes"] == 8 - 2 + 18 + 18 and one.layout.meta["collapsed"] == ["stage2"]
    none = figures.architecture_diagram(summary, False)
    assert none.layout.meta["nodes"] == 5 + 54 and none.layout.meta["arcs"] == 54
    assert diagram(ModelConfig(depth=20), True).layout.meta["nodes"] == 8


def test_a_very_long_expanded_stage_is_elided():
    summary = model_summary(ModelConfig(depth=1202))
    fig = figures.architecture_diagram(summary, {"stage1", "stage3"})
    n = fig.layout.meta["nodes"]
    assert n < 20  # 200 blocks of stage2 are drawn as 4 + "…" + 2
    labels = [t for t in fig.data if t.name == "labels"][0].text
    assert any("194 more identity blocks" in str(s) for s in labels)


def test_resnet50_diagram_uses_the_article_names():
    fig = diagram(ModelConfig(family="imagenet", depth=50))
    labels = " ".join(str(s) for s in [t for t in fig.data if t.name == "labels"][0].text)
    for name in ("res2a", "res2c", "res3d", "res4f", "res5c"):
        assert name in labels
    assert "1×1,512 → 3×3,512 → 1×1,2048" in labels  # stage 5: [512, 512, 2048], not the article's 256x256x2048
    assert "global avg-pool" in labels
    hover = " ".join(str(s) for t in fig.data if t.name == "boxes" for s in t.hovertext)
    assert "convolutional block" in hover and "identity block" in hover
    assert fig.layout.meta["arcs"] == 16
    assert "50 weight layers" in fig.layout.title.text


def test_residual_block_diagram():
    fig = figures.residual_block_diagram()
    texts = " ".join(a.text for a in fig.layout.annotations)
    assert "identity block" in texts and "convolutional block" in texts and "F(x) + x" in texts
    assert "1×1 conv" in texts


def test_diagram_takes_a_summary_not_a_config():
    summary = model_summary(ModelConfig(depth=14))
    from_layout = figures.architecture_diagram(figures.architecture_layout(summary))
    assert from_layout.layout.meta == figures.architecture_diagram(summary).layout.meta
    assert figures.stage_names(summary) == ["stage1", "stage2", "stage3"]
    with pytest.raises(TypeError, match="model_summary"):
        figures.architecture_diagram(ModelConfig(depth=14))  # the figures never build a torch model themselves
