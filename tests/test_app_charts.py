"""AppTest for what the charts' pages say and choose: the default pair of runs, defaults that follow the selection
until the user sets them, the gradient-flow sentence's step numbers, the evaluation-spike note, run names and
presentation mode. The run store is written directly with synthetic metrics: no training needed."""
import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import ui
from figure_fixtures import cifar_layer_names
from resnet_viz.config import ModelConfig, RunConfig, TrainConfig
from resnet_viz.storage.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
BRIEF = TrainConfig(epochs=2, subset=8000, lr=0.05, schedule="onecycle")


def synthetic_metrics(depth: int, residual: bool, spike: bool = False, steps: int = 60, every: int = 10) -> dict:
    rng = np.random.default_rng(depth + residual)
    names = cifar_layer_names(depth)
    gsteps = np.arange(0, steps, every)
    grads = 10 ** rng.uniform(-2, 0, (len(gsteps), len(names)))
    grads[:, 0] = np.linspace(2.0, 0.5, len(gsteps)) * grads[:, -2]  # first layer ÷ last conv: 2 → 0.5
    es = np.linspace(0, steps - 1, 6).astype(int)
    test_loss = np.linspace(2.3, 1.5, 6)
    if spike:
        test_loss[1] = 1.2e5
    return {"step": np.arange(steps), "loss": np.linspace(2.3, 1.4, steps), "batch_error": np.linspace(0.9, 0.5, steps),
            "lr": np.full(steps, 0.05), "grad_norm_step": gsteps, "grad_norms": grads.astype(np.float32),
            "eval_step": es, "train_loss": np.linspace(2.3, 1.4, 6), "train_error": np.linspace(0.9, 0.5, 6),
            "test_loss": test_loss, "test_error": np.linspace(0.9, 0.55, 6)}


def add_run(store: RunStore, depth: int, residual: bool, name: str, created: float, train: TrainConfig = BRIEF,
            spike: bool = False) -> str:
    writer = store.create(RunConfig(model=ModelConfig(depth=depth, residual=residual), train=train, name=name))
    writer.write_metrics(synthetic_metrics(depth, residual, spike), cifar_layer_names(depth))
    writer.set_status("finished", step=60)
    config = json.loads((writer.path / "config.json").read_text())
    (writer.path / "config.json").write_text(json.dumps({**config, "created": created}))
    return writer.id


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """The "All four" preset's runs (plain-56 with an evaluation spike), then, newer, an unrelated ResNet-20 trained
    otherwise and a Degradation run."""
    root = tmp_path_factory.mktemp("runs")
    s = RunStore(root)
    ids = {"plain-20": add_run(s, 20, False, "plain-20 · all", 100.0),
           "plain-56": add_run(s, 56, False, "plain-56 · all", 101.0, spike=True),
           "resnet-20": add_run(s, 20, True, "resnet-20 · all", 102.0),
           "resnet-56": add_run(s, 56, True, "resnet-56 · all", 103.0),
           "other resnet-20": add_run(s, 20, True, "resnet-20", 200.0, train=TrainConfig(epochs=1)),
           "plain-56 degradation": add_run(s, 56, False, "plain-56 · degradation", 201.0)}
    return root, ids


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def test_default_pair_is_twins_of_one_preset_then_the_rest_of_it(store, app_test):
    root, ids = store
    at = app_test("pages/3_Gradient_flow.py", root, root / "no-data").run()
    no_exception(at)
    # the newest plain-56 and its newest same-depth residual are of different presets: the "all" twins win
    assert at.multiselect(key="keep_grad_runs").value == [ids["plain-56"], ids["resnet-56"]]
    at = app_test("pages/5_Compare_runs.py", root, root / "no-data").run()
    assert sorted(at.multiselect(key="keep_compare_runs").value) == sorted(
        ids[k] for k in ("plain-20", "plain-56", "resnet-20", "resnet-56"))  # four wanted: the whole preset


def test_a_presets_runs_stay_together_whatever_precision_each_net_got(tmp_path, app_test):
    """The "All four" preset measured bf16 faster for the plain nets and fp32 for the ResNets on this machine: the
    four are still one preset's runs, all picked on Compare runs (it picked three)."""
    s = RunStore(tmp_path)
    ids = {f"{'resnet' if residual else 'plain'}-{depth}": add_run(
        s, depth, residual, f"{'resnet' if residual else 'plain'}-{depth} · all", 100.0 + i,
        train=dataclasses.replace(BRIEF, precision="fp32" if residual else "bf16", threads=2 + i))
        for i, (depth, residual) in enumerate([(20, False), (56, False), (20, True), (56, True)])}
    at = app_test("pages/5_Compare_runs.py", tmp_path, tmp_path / "no-data").run()
    no_exception(at)
    assert sorted(at.multiselect(key="keep_compare_runs").value) == sorted(ids.values())
    at = app_test("pages/3_Gradient_flow.py", tmp_path, tmp_path / "no-data").run()
    assert at.multiselect(key="keep_grad_runs").value == [ids["plain-56"], ids["resnet-56"]]


def test_run_names_do_not_repeat_the_label():
    def run(label, name):
        return SimpleNamespace(label=label, name=name)
    assert ui.run_name(run("plain-20", "plain-20 · degradation")) == "plain-20 · degradation"
    assert ui.run_name(run("plain-20", "plain-20")) == "plain-20"
    assert ui.run_name(run("plain-20", "")) == "plain-20"
    assert ui.run_name(run("plain-20", "my first try")) == "plain-20 · my first try"
    assert ui.run_name(run("plain-20", "plain-200 test")) == "plain-20 · plain-200 test"


def test_gradient_flow_sentence_and_table_use_the_same_numbers_and_real_steps(store, app_test):
    root, ids = store
    at = app_test("pages/3_Gradient_flow.py", root, root / "no-data").run()
    text = " ".join(m.value for m in at.markdown)
    assert "at initialisation (step 0)" in text and "recorded from step 0" in " ".join(c.value for c in at.caption)
    assert "every 10 training steps" in " ".join(c.value for c in at.caption)
    table = at.dataframe[0].value
    assert list(table["start at step"]) == [0, 0] and list(table["end: steps"]) == ["50–50", "50–50"]
    for end in table["ratio at the end"]:
        assert f"{end} at the end" in text  # the sentence quotes the table's number
    assert "**The ratio**" in text


def test_relative_depth_follows_the_selection_until_set(store, app_test):
    root, ids = store
    at = app_test("pages/3_Gradient_flow.py", root, root / "no-data").run()
    relative = lambda: at.toggle(key="keep_grad_relative").value  # noqa: E731
    assert relative() is False  # one depth
    at.multiselect(key="keep_grad_runs").set_value([ids["plain-20"], ids["resnet-56"]]).run()
    assert relative() is True  # two depths: overlay on 0…1
    at.multiselect(key="keep_grad_runs").set_value([ids["plain-20"], ids["resnet-20"]]).run()
    assert relative() is False
    at.toggle(key="keep_grad_relative").set_value(True).run()  # the user's choice …
    at.multiselect(key="keep_grad_runs").set_value([ids["plain-56"], ids["resnet-56"]]).run()
    no_exception(at)
    assert relative() is True  # … stays


def test_a_spike_is_marked_and_explained_without_a_log_scale(store, app_test):
    """plain-56's evaluation at 1.2×10⁵ is marked on the loss chart's top edge and explained below it; the batch
    curves decide the scale, so it stays linear."""
    root, ids = store
    at = app_test("pages/5_Compare_runs.py", root, root / "no-data").run()
    no_exception(at)
    assert at.toggle(key="keep_compare_loss_log").value is False
    [loss] = [json.loads(c.proto.spec) for c in at.get("plotly_chart") if "Training loss" in c.proto.spec]
    assert loss["layout"]["meta"]["off_the_chart"] == 1 and loss["layout"]["yaxis"]["range"][1] < 5
    assert any("Why the evaluation loss spikes" in m.value and "plain-56" in m.value for m in at.markdown)
    at.multiselect(key="keep_compare_runs").set_value([ids["plain-20"], ids["resnet-20"]]).run()
    assert not any("Why the evaluation loss spikes" in m.value for m in at.markdown)


def test_loss_log_scale_follows_the_selection_until_set(tmp_path, app_test):
    """On for a run whose batch losses span decades (it diverged), off without it — until the user sets it."""
    s = RunStore(tmp_path)
    calm = add_run(s, 20, True, "resnet-20", 100.0)
    metrics = synthetic_metrics(20, False)
    metrics["loss"] = np.geomspace(2.3, 4e4, len(metrics["loss"]))
    writer = s.create(RunConfig(model=ModelConfig(depth=20, residual=False), train=BRIEF, name="plain-20"))
    writer.write_metrics(metrics, cifar_layer_names(20))
    writer.set_status("diverged", step=60)
    at = app_test("pages/5_Compare_runs.py", tmp_path, tmp_path / "no-data").run()
    no_exception(at)
    log = lambda: at.toggle(key="keep_compare_loss_log").value  # noqa: E731
    at.multiselect(key="keep_compare_runs").set_value([writer.id, calm]).run()
    assert log() is True
    at.multiselect(key="keep_compare_runs").set_value([calm]).run()
    assert log() is False
    at.toggle(key="keep_compare_loss_log").set_value(True).run()
    at.multiselect(key="keep_compare_runs").set_value([writer.id]).run()
    assert log() is True  # set by the user: it stays


def test_presentation_mode_enlarges_every_chart_of_the_page(store, app_test):
    root, _ = store
    at = app_test("pages/3_Gradient_flow.py", root, root / "no-data").run()
    before = [json.loads(c.proto.spec)["layout"] for c in at.get("plotly_chart")]
    at.sidebar.toggle(key="presentation").set_value(True).run()
    no_exception(at)
    after = [json.loads(c.proto.spec)["layout"] for c in at.get("plotly_chart")]
    assert len(after) == len(before) == 4  # two heatmaps, profiles, ratio
    for small, big in zip(before, after):
        assert big["font"]["size"] > small["font"]["size"] and big["height"] > small["height"]
    # the ratio table: a static table whose cells wrap, not a grid that scrolls its last columns out of sight
    assert len(at.table) == 1 and not at.dataframe and "ratio at the end" in at.table[0].value.columns
    at.run()  # a rerun (as after a page switch) keeps the mode
    assert at.sidebar.toggle(key="presentation").value is True


def test_presentation_mode_from_the_address(store, app_test):
    """…/Compare_runs?presentation=true opens the page in presentation mode (a lecture's links, a reload)."""
    root, _ = store
    at = app_test("pages/5_Compare_runs.py", root, root / "no-data")
    at.query_params["presentation"] = "true"
    at.run()
    no_exception(at)
    assert at.sidebar.toggle(key="presentation").value is True
    assert all(json.loads(c.proto.spec)["layout"]["font"]["size"] > 13 for c in at.get("plotly_chart"))


def test_ui_imports_what_the_pages_need_once_at_start_up():
    """Two sessions importing pandas at the same moment (st.dataframe's lazy import) could see a partially
    initialised module: app.py imports ui first, and ui imports the pages' libraries before any page runs."""
    import subprocess
    import sys
    code = ("import sys; sys.path.insert(0, '.'); import ui; "
            "print(all(m in sys.modules for m in ('pandas', 'pyarrow', 'torch', 'plotly.graph_objs._heatmap', "
            "'resnet_viz.analyses', 'resnet_viz.nets.models', 'resnet_viz.analyses.gradcam')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.stdout.strip().splitlines()[-1] == "True", out.stderr[-2000:]
    assert "import ui" in (ROOT / "app.py").read_text().split("st.navigation")[0]  # before any page runs
