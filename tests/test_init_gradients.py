"""The step-0 gradient view's engine: it equals what the trainer records at step 0 for the same seed and batch, it
caches per net and seed without touching the global random state, it refuses what it cannot do with the reason, and
the `gradients` command prints its table."""
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from resnet_viz.analyses import init_gradients as ig
from resnet_viz.config import ModelConfig, RunConfig, TrainConfig
from resnet_viz.errors import ConfigError
from resnet_viz.training.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]
TINY = dict(depth=8, width=0.5)


def trainer_step0(model: ModelConfig, data, seed: int, subset=None, threads=1) -> tuple[list[str], np.ndarray]:
    """Train one step for real and return what the trainer recorded for step 0."""
    train = TrainConfig(max_steps=1, seed=seed, subset=subset, precision="fp32", device="cpu", eval_images=10,
                        threads=threads)
    result = Trainer(RunConfig(model=model, train=train), data=data, save=False).run()
    assert list(result.metrics["grad_norm_step"]) == [0]
    return result.layer_names, result.metrics["grad_norms"][0]


@pytest.mark.parametrize("batchnorm, shortcut, subset, seed, threads", [
    (True, "A", None, 0, 1), (False, "A", None, 5, 1), (True, "B", 150, 3, 1), (True, "A", None, 0, 2)])
def test_equals_what_the_trainer_records_at_step_0(tiny_data, batchnorm, shortcut, subset, seed, threads):
    model = ModelConfig(batchnorm=batchnorm, shortcut=shortcut, **TINY)
    ig.clear_cache()
    result = ig.init_gradients(model, tiny_data, seeds=(seed,), subset=subset, threads=threads)
    assert result.batch_size == 128 and result.images == (subset or 200)
    for net in (result.plain, result.resnet):
        names, recorded = trainer_step0(dataclasses.replace(model, residual=net.residual), tiny_data, seed, subset,
                                        threads)
        assert list(net.layer_names) == names
        assert net.norms.shape == (1, len(names))
        np.testing.assert_allclose(net.norms[0], recorded, rtol=1e-5, atol=0)
    assert any("shortcut" in n for n in result.resnet.layer_names) == (shortcut == "B")


def test_seeds_differ_and_the_cache_answers_without_a_pass(tiny_data):
    model = ModelConfig(**TINY)
    ig.clear_cache()
    state = torch.random.get_rng_state()
    first = ig.init_gradients(model, tiny_data, seeds=(0, 1, 2))
    assert torch.equal(torch.random.get_rng_state(), state)  # the app's global random state is left alone
    assert first.computed == 6 and first.plain.norms.shape[0] == 3
    assert not np.allclose(first.plain.norms[0], first.plain.norms[1])  # other weights, another batch
    assert ig.is_cached(model, tiny_data, (0, 1, 2)) and not ig.is_cached(model, tiny_data, (0, 3))
    again = ig.init_gradients(model, tiny_data, seeds=(0, 1, 2))
    assert again.computed == 0 and again.seconds == 0
    np.testing.assert_array_equal(again.resnet.norms, first.resnet.norms)
    # The plain twin has no shortcuts: another option recomputes only the ResNet.
    other = ig.init_gradients(dataclasses.replace(model, shortcut="C"), tiny_data, seeds=(0, 1, 2))
    assert other.computed == 3
    np.testing.assert_array_equal(other.plain.norms, first.plain.norms)
    # Other images are another batch, whatever the seed: never a stale answer.
    brighter = dataclasses.replace(tiny_data, train_images=tiny_data.train_images // 2)
    assert ig.init_gradients(model, brighter, seeds=(0,)).computed == 2
    # Other thread counts round differently (a run trained with 2 threads records other last digits): their own.
    assert ig.init_gradients(model, tiny_data, seeds=(0,), threads=2).computed == 2


def test_progress_is_reported_in_the_callers_thread(tiny_data):
    ig.clear_cache()
    seen = []
    ig.init_gradients(ModelConfig(**TINY), tiny_data, seeds=(0, 1),
                      on_progress=lambda done, total, message: seen.append((done, total, message)))
    assert seen[-1] == (4, 4, "done")
    assert [s[0] for s in seen] == sorted(s[0] for s in seen) and all(s[1] == 4 for s in seen)
    assert seen[0][0] == 0 and "plain-8 (width ×0.5) seed 0" in seen[0][2]  # seed by seed: seed 0 first
    assert any("seed 1" in message for _, _, message in seen[:-1])


def test_bad_settings_are_refused_with_a_sentence(tiny_data, monkeypatch):
    with pytest.raises(ConfigError, match="CIFAR nets"):
        ig.init_gradients(ModelConfig(family="imagenet", depth=18), tiny_data)
    with pytest.raises(ConfigError, match="differ"):
        ig.init_gradients(ModelConfig(**TINY), tiny_data, seeds=(1, 1))
    with pytest.raises(ConfigError, match="between 1 and"):
        ig.init_gradients(ModelConfig(**TINY), tiny_data, seeds=())
    with pytest.raises(ConfigError, match="6n"):
        ig.init_gradients(ModelConfig(depth=9), tiny_data)
    import resnet_viz.nets.summary as summary
    monkeypatch.setattr(ig, "_PACE", {})  # only the prior: what this machine does when nothing else runs
    monkeypatch.setattr(summary, "available_memory", lambda device: 2**40)
    assert ig.check_feasible(ModelConfig(depth=56)).seconds_first_seed <= ig.MAX_SECONDS
    with pytest.raises(ConfigError, match=r"Refused: plain-1202 and resnet-1202 are too slow .* about \d+ s"):
        ig.check_feasible(ModelConfig(depth=1202))
    monkeypatch.setattr(summary, "available_memory", lambda device: 2**30)
    with pytest.raises(ConfigError, match=r"Refused: plain-110 and resnet-110 are too large .* GiB"):
        ig.check_feasible(ModelConfig(depth=110))


def test_the_table_lists_every_layer_of_both_nets_and_the_ratios(tiny_data):
    result = ig.init_gradients(ModelConfig(shortcut="B", **TINY), tiny_data, seeds=(0, 1))
    table = ig.gradient_table(result)
    lines = table.splitlines()
    for name in result.resnet.layer_names:
        assert any(f" {name} " in line for line in lines), name
    shortcut_rows = [line for line in lines if ".shortcut.conv " in line]
    assert shortcut_rows and all("—" in line for line in shortcut_rows)  # the plain twin has no shortcut convs
    p = result.plain
    ratio = np.median(p.norms[:, 0] / p.norms[:, -2])
    assert f"{p.label}: first layer ÷ last conv layer (stem.conv ÷ {p.layer_names[-2]}) = " in table
    assert ig._ratio_text(float(ratio)) in table
    assert "on cpu with 1 thread per pass; seeds 0, 1." in lines[0]


def cli(*args):
    return subprocess.run([sys.executable, "-m", "resnet_viz", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))


def test_cli_prints_the_table(data_dir):
    proc = cli("gradients", "--depth", "8", "--width", "0.25", "--seeds", "0", "1", "--data", str(data_dir))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "plain-8 (width ×0.25) median" in out and "resnet-8 (width ×0.25) median" in out
    assert "stage3.block1.conv2" in out and " fc " in out
    assert "plain-8 (width ×0.25): first layer ÷ last conv layer" in out and "seeds 0, 1" in out
    assert "0 of 4 passes done; now plain-8 (width ×0.25) seed 0" in proc.stderr  # progress: stderr, table: stdout
    no_bn = cli("--data", str(data_dir), "gradients", "--depth", "8", "--width", "0.25", "--seeds", "4", "--no-bn")
    assert no_bn.returncode == 0, no_bn.stderr
    assert "plain-8 (no BN, width ×0.25): first layer" in no_bn.stdout and "seeds 4;" not in no_bn.stdout


def test_cli_without_data_says_so(tmp_path):
    proc = cli("gradients", "--depth", "8", "--data", str(tmp_path / "nowhere"), "--no-download")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "does not exist" in proc.stderr and not proc.stdout
    refused = cli("gradients", "--depth", "21", "--data", str(tmp_path))
    assert refused.returncode == 2 and "6n+2" in refused.stderr
