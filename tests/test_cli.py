"""The command line end to end on tiny data, in a real subprocess (`python -m resnet_viz …`)."""
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cifar_fixtures import write_image_folder, write_python_batches

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--width", "0.25", "--epochs", "2", "--batch-size", "32", "--eval-images", "20", "--device", "cpu"]


def cli(*args, env_extra=None, check=True, input=None):
    env = dict(os.environ, **(env_extra or {}))
    proc = subprocess.run([sys.executable, "-m", "resnet_viz", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def python_batches(tmp_path_factory):
    return write_python_batches(tmp_path_factory.mktemp("cifar"), 10, 5)


@pytest.fixture()
def env(tmp_path):
    return {"RESNET_VIZ_CACHE": str(tmp_path / "cache")}


def test_sweep_list_export_delete(python_batches, tmp_path, env):
    runs = tmp_path / "runs"
    out = cli("--runs", str(runs), "--data", str(python_batches), "sweep", "--arch", "plain", "residual",
              "--depth", "8", "14", *TINY, env_extra=env)
    assert out.stdout.count("finished after") == 4
    listed = json.loads(cli("--runs", str(runs), "list", "--json").stdout)
    assert len(listed) == 4
    assert {r["label"] for r in listed} == {"plain-8 (width ×0.25)", "plain-14 (width ×0.25)",
                                            "resnet-8 (width ×0.25)", "resnet-14 (width ×0.25)"}
    for r in listed:
        assert r["status"] == "finished" and r["steps_done"] == 2 * (100 // 32)
        for key in ("id", "name", "model", "train", "final_train_loss", "final_train_error", "final_test_error"):
            assert r[key] is not None, key
        assert r["model"]["depth"] in (8, 14) and r["train"]["batch_size"] == 32
    table = cli("--runs", str(runs), "list").stdout
    assert "plain-14" in table and "finished" in table

    run_id = listed[0]["id"]
    rows = list(csv.DictReader(io.StringIO(cli("--runs", str(runs), "export", run_id, "--format", "csv").stdout)))
    assert len(rows) == listed[0]["steps_done"] + 1 and "grad_norm:stem.conv" in rows[0]
    target = tmp_path / "out.json"
    cli("--runs", str(runs), "export", run_id, "--format", "json", "-o", str(target))
    assert json.loads(target.read_text())["summary"]["id"] == run_id

    kept = cli("--runs", str(runs), "delete", run_id, input="n\n", check=False)
    assert kept.returncode == 1 and len(json.loads(cli("--runs", str(runs), "list", "--json").stdout)) == 4
    cli("--runs", str(runs), "delete", run_id, "--yes")
    assert len(json.loads(cli("--runs", str(runs), "list", "--json").stdout)) == 3


def test_train_from_an_image_folder_via_env(tmp_path, env):
    images = write_image_folder(tmp_path / "jpeg-like", 10, 5)
    runs = tmp_path / "runs"
    out = cli("train", "--arch", "plain", "--depth", "8", "--name", "../../escape attempt", *TINY,
              env_extra={**env, "RESNET_VIZ_DATA": str(images), "RESNET_VIZ_RUNS": str(runs)})
    assert "image folder" in out.stderr and "finished after" in out.stdout
    [run] = json.loads(cli("list", "--json", env_extra={"RESNET_VIZ_RUNS": str(runs)}).stdout)
    assert run["name"] == "../../escape attempt" and (runs / run["id"]).is_dir()
    assert [p.name for p in tmp_path.iterdir()] == sorted(p.name for p in tmp_path.iterdir())  # nothing escaped
    assert not (tmp_path.parent / "escape attempt").exists()


@pytest.mark.parametrize("args, message", [
    (["train", "--depth", "21"], "6n+2"),
    (["train", "--depth", "20", "--width", "0"], "Width"),
    (["train", "--family", "imagenet", "--depth", "42"], "18, 34, 50"),
    (["train", "--depth", "1202", "--batch-size", "1000000", "--device", "cpu"], "GiB"),
    (["export", "no-such-run"], "no run"),
    (["export", "../etc"], "not a run id"),
    (["train", "--depth", "1000000004"], "2,000"),  # issue 9.1: grew memory until killed
    (["train", "--epochs", "nan"], "Epochs"),  # 9.7
    (["train", "--epochs", "inf"], "Epochs"),
    (["train", "--weight-decay", "nan"], "Weight decay"),
    (["train", "--lr", "inf"], "learning rate"),
    (["train", "--seed", "-1"], "seed"),
    (["sweep", "--depth", "20", "1000000004"], "2,000"),
    (["summary", "--input-size", "-5"], "input size"),  # 9.10
    (["summary", "--depth", "1000000004"], "2,000"),
])
def test_bad_input_is_one_clear_line(args, message, tmp_path, python_batches, env):
    out = cli("--runs", str(tmp_path / "runs"), "--data", str(python_batches), *args, env_extra=env, check=False)
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr


def test_missing_data_without_network_names_both_ways(tmp_path, env):
    out = cli("--runs", str(tmp_path / "runs"), "--data", str(tmp_path / "nowhere"), "train", "--depth", "8", *TINY,
              env_extra=env, check=False)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "RESNET_VIZ_DATA" in out.stderr and "download" in out.stderr


def test_summary_prints_the_seed_articles_resnet50():
    """The ImageNet family is described with ImageNet's 1000-class head unless told otherwise, as on the Build page
    and in the README: torchvision's ResNet-50 has 25.56M parameters."""
    out = cli("summary", "--family", "imagenet", "--depth", "50").stdout
    assert "25.56M parameters" in out and "stage5.res5c.conv3" in out and "stage2.res2a.shortcut.conv" in out
    assert "2,049,000" in out  # the fc: 2048 × 1000 weights and 1000 biases
    assert "23.53M parameters" in cli("summary", "--family", "imagenet", "--depth", "50", "--num-classes", "10").stdout
    assert "269.7K parameters" in cli("summary", "--depth", "20").stdout  # a CIFAR net keeps its 10-class head


def test_a_trained_imagenet_net_keeps_the_cifar10_head():
    """Training reads CIFAR-10, so a run's head has its ten classes whatever the family."""
    from resnet_viz.commands.cli import _model_config, build_parser
    args = build_parser().parse_args(["train", "--family", "imagenet", "--depth", "18", "--stem", "cifar"])
    assert _model_config(args, args.arch, args.depth).num_classes == 10
    args = build_parser().parse_args(["summary", "--family", "imagenet", "--depth", "18"])
    assert _model_config(args, args.arch, args.depth).num_classes == 1000


def test_brief_runs_default_to_one_cycle_and_say_so(capsys):
    from resnet_viz.commands.cli import _train_config, build_parser
    parse = build_parser().parse_args
    brief = _train_config(parse(["train", "--arch", "residual", "--depth", "56", "--epochs", "2", "--subset", "10000"]))
    assert (brief.schedule, brief.lr) == ("onecycle", 0.05)
    assert "brief run (~156 steps)" in capsys.readouterr().err
    long = _train_config(parse(["train", "--depth", "56", "--epochs", "10"]))  # 3,900 steps on all the data
    assert (long.schedule, long.lr) == ("step", 0.1)
    paper = _train_config(parse(["train", "--depth", "56", "--epochs", "2", "--subset", "10000", "--schedule", "step"]))
    assert (paper.schedule, paper.lr) == ("step", 0.1) and capsys.readouterr().err == ""
    chosen = _train_config(parse(["train", "--depth", "20", "--epochs", "1", "--lr", "0.02", "--schedule", "cosine"]))
    assert (chosen.schedule, chosen.lr) == ("cosine", 0.02)


# ------------------------------------------------------------------------------ issue 9: checked before the data ----
def test_runs_folder_and_device_are_checked_before_the_data(tmp_path, env, unwritable_dir):
    """9.5 and --device cuda: the data folder here does not exist, so an error about it would mean the data was
    loaded (or downloaded) first."""
    (tmp_path / "a-file").write_text("x")
    cases = [(tmp_path / "a-file", [], "not a folder"), (unwritable_dir, [], "cannot be saved"),
             (unwritable_dir / "runs", [], "cannot be saved")]
    import torch
    if not torch.cuda.is_available():
        cases.append((tmp_path / "runs", ["--device", "cuda"], "CUDA"))
    for runs, extra, message in cases:
        out = cli("--runs", str(runs), "--data", str(tmp_path / "nowhere"), "train", "--depth", "8", *extra,
                  env_extra=env, check=False)
        assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, out.stderr
        assert "CIFAR-10" not in out.stderr


def test_export_to_a_folder_or_a_missing_folder(python_batches, tmp_path, env):
    """9.8, and JSON export without NaN."""
    runs = tmp_path / "runs"
    cli("--runs", str(runs), "--data", str(python_batches), "train", "--depth", "8", *TINY, env_extra=env)
    [run] = json.loads(cli("--runs", str(runs), "list", "--json").stdout)
    for target, message in ((tmp_path, "is a folder"), (tmp_path / "missing" / "out.csv", "does not exist")):
        out = cli("--runs", str(runs), "export", run["id"], "-o", str(target), check=False)
        assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "missing").exists()

    def refuse(word):
        raise ValueError(word)
    json.loads(cli("--runs", str(runs), "export", run["id"], "--format", "json").stdout, parse_constant=refuse)


def test_a_bad_run_hides_only_itself_in_list_and_export(tmp_path):
    """9.2: valid JSON of the wrong shape in one run folder."""
    from resnet_viz.config import ModelConfig, RunConfig, TrainConfig
    from resnet_viz.storage.store import RunStore
    runs = tmp_path / "runs"
    store = RunStore(runs)
    ids = []
    for name in ("good", "config-null", "status-list", "created-text", "huge-pid", "width-x", "step-many"):
        writer = store.create(RunConfig(model=ModelConfig(depth=8), train=TrainConfig(epochs=1), name=name))
        writer.set_status("finished", step=0)
        ids.append(writer.id)
    good, *bad = ids

    def edit(run_id, file, change):
        path = runs / run_id / file
        obj = json.loads(path.read_text())
        change(obj)
        path.write_text(json.dumps(obj))
    edit(bad[0], "config.json", lambda c: c.update(config=None))
    edit(bad[1], "status.json", lambda s: s.update(status=["finished"]))
    edit(bad[2], "config.json", lambda c: c.update(created="last tuesday"))
    edit(bad[3], "status.json", lambda s: s.update(status="running", pid=2**70))
    edit(bad[4], "config.json", lambda c: c["config"]["model"].update(width="x"))
    edit(bad[5], "status.json", lambda s: s.update(step="many"))

    listed = cli("--runs", str(runs), "list", "--json")
    assert [r["id"] for r in json.loads(listed.stdout)] == [good]
    assert all(b in listed.stderr for b in bad) and "Traceback" not in listed.stderr
    table = cli("--runs", str(runs), "list")
    assert good in table.stdout and not any(b in table.stdout for b in bad)
    assert cli("--runs", str(runs), "export", good).stdout.startswith("step,")
    out = cli("--runs", str(runs), "export", bad[4], check=False)
    assert out.returncode == 2 and "width" in out.stderr.lower() and "Traceback" not in out.stderr


def test_delete_without_a_terminal_deletes_nothing(python_batches, tmp_path, env):
    from resnet_viz.config import ModelConfig, RunConfig
    from resnet_viz.storage.store import RunStore
    writer = RunStore(tmp_path).create(RunConfig(model=ModelConfig(depth=8)))
    writer.set_status("finished")
    out = subprocess.run([sys.executable, "-m", "resnet_viz", "--runs", str(tmp_path), "delete", writer.id],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert out.returncode == 1 and "not deleted" in out.stdout and "Traceback" not in out.stderr
    assert writer.path.is_dir()
