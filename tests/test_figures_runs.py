"""The figures' typed inputs (RunSeries, AnalysisSeries), run colours, and the package's promise not to load torch."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from figure_fixtures import four_runs
from resnet_viz import figures
from resnet_viz.config import ModelConfig, RunConfig
from resnet_viz.figures import AnalysisSeries, RunSeries
from resnet_viz.figures.runs import as_analysis_series, as_runs
from resnet_viz.storage.store import Run, RunStore

ROOT = Path(__file__).resolve().parents[1]


def store_run(root: Path, name: str, **model) -> Run:
    writer = RunStore(root).create(RunConfig(model=ModelConfig(depth=8, **model), name=name))
    writer.write_metrics({"step": np.arange(3), "loss": np.array([2.3, 2.0, 1.8])}, ["stem.conv", "fc"])
    return RunStore(root).get(writer.id)


def test_a_store_run_is_read_from_its_config_not_its_name(tmp_path):
    run = store_run(tmp_path, "foo")  # a name that says nothing about the net
    r = RunSeries.from_run(run)
    assert (r.label, r.residual, r.depth, r.layer_names) == ("resnet-8", True, 8, ["stem.conv", "fc"])
    assert list(r.metrics["loss"]) == pytest.approx([2.3, 2.0, 1.8])
    misleading = RunSeries.from_run(store_run(tmp_path, "resnet-110", residual=False))
    assert (misleading.label, misleading.residual, misleading.depth) == ("plain-8", False, 8)


def test_a_training_job_is_read_like_a_store_run():
    class Job:  # what the Train page hands over while a run trains: config, live metrics, layer names or None
        config = RunConfig(model=ModelConfig(depth=14, residual=False), name="my run")
        metrics = {"step": np.arange(2)}
        layer_names = None

    r = RunSeries.from_run(Job())
    assert (r.label, r.residual, r.depth, r.layer_names) == ("plain-14", False, 14, [])


def test_from_dict_needs_the_family_and_depth():
    r = RunSeries.from_dict({"label": "plain-56", "metrics": {}, "residual": False, "depth": 56})
    assert (r.residual, r.depth, r.layer_names) == (False, 56, [])
    with pytest.raises(ValueError, match="residual, depth"):
        RunSeries.from_dict({"label": "plain-56", "metrics": {}})  # the label is not read
    with pytest.raises(ValueError, match="residual"):
        AnalysisSeries.from_dict({"label": "resnet-20", "data": []})


def test_figures_take_typed_runs_only_and_number_repeated_labels():
    runs = four_runs()
    twins = as_runs([runs[0], runs[0]])
    assert [r.label for r in twins] == ["plain-20", "plain-20 #2"]
    assert runs[0].label == "plain-20"  # the caller's run is not renamed
    with pytest.raises(TypeError, match="RunSeries.from_run"):
        figures.training_curves([{"label": "plain-20", "metrics": {}}])
    series = as_analysis_series([{"label": "a", "data": [], "residual": True}, AnalysisSeries("a", [], False, 8)])
    assert [(s.label, s.residual) for s in series] == [("a", True), ("a #2", False)]
    with pytest.raises(TypeError):
        as_analysis_series([("plain-20", [])])


def test_colours_warm_for_plain_cool_for_residual_darker_when_deeper():
    runs = four_runs()
    colors = figures.run_colors(runs)
    assert len(set(colors)) == 4

    def rgb(c):
        return [int(v) for v in c[c.index("(") + 1:-1].split(",")]
    p20, p56, r20, r56 = map(rgb, colors)
    assert p20[0] > p20[2] and p56[0] > p56[2]  # warm: more red than blue
    assert r20[2] > r20[0] and r56[2] > r56[0]  # cool: more blue than red
    assert sum(p56) < sum(p20) and sum(r56) < sum(r20)  # deeper = darker
    assert figures.run_colors([runs[0]]) == [figures.PLAIN_COLOR]
    assert figures.run_colors([AnalysisSeries("x", [], True, 20)]) == [figures.RESIDUAL_COLOR]


def test_importing_the_figures_does_not_load_torch():
    code = "import resnet_viz.figures, sys; assert 'torch' not in sys.modules, 'torch was imported'"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
