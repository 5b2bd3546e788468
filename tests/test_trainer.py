"""The instrumented trainer on tiny in-memory data: recorded numbers, determinism, stop, divergence."""
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from resnet_viz.config import ModelConfig, RunConfig, TrainConfig
from resnet_viz.datasets.batches import augment_batch, normalize
from resnet_viz.errors import ConfigError
from resnet_viz.nets.models import build_model, weight_layers
from resnet_viz.storage.store import RunStore
from resnet_viz.training.trainer import Trainer, lr_at

TINY_MODEL = ModelConfig(depth=8, width=0.5)


def tiny_config(**train) -> RunConfig:
    defaults = dict(epochs=2, batch_size=32, eval_images=20, device="cpu", flush_every=4, seed=3, precision="fp32")
    defaults.update(train)
    return RunConfig(model=TINY_MODEL, train=TrainConfig(**defaults))


def test_records_every_step_and_eval(tiny_data, tmp_path):
    store = RunStore(tmp_path)
    result = Trainer(tiny_config(), data=tiny_data, store=store).run()
    m = result.metrics
    steps = 2 * (200 // 32)
    assert result.status == "finished" and result.steps == steps
    assert m["loss"].shape == (steps,) and np.isfinite(m["loss"]).all()
    assert m["grad_norms"].shape == (steps, len(result.layer_names))
    assert (m["grad_norms"] > 0).all()
    assert m["grad_norm_step"][0] == 0  # step 0: the gradient at initialisation, before any update
    assert m["eval_step"][0] == 0 and m["eval_step"][-1] == steps
    assert ((0 <= m["test_error"]) & (m["test_error"] <= 1)).all()
    assert result.layer_names[0] == "stem.conv" and result.layer_names[-1] == "fc"
    run = store.get(result.run_id)
    assert run.state == "finished" and run.has_checkpoint
    np.testing.assert_array_equal(run.metrics["grad_norms"], m["grad_norms"])
    model = store.load_model(result.run_id)
    for (name, a), b in zip(result.model.state_dict().items(), model.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)


def test_recorded_grad_norms_equal_direct_computation(tiny_data):
    """Replay the first step by hand with the same seed and data order; compare each layer's norm."""
    cfg = tiny_config(max_steps=1, record_grad_norms=True)
    result = Trainer(cfg, data=tiny_data, save=False).run()

    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model).train().to(memory_format=torch.channels_last)  # as the trainer runs on CPU
    gen = torch.Generator().manual_seed(cfg.train.seed)
    perm = torch.randperm(200, generator=gen)
    idx = perm[:32]
    x = normalize(augment_batch(tiny_data.train_images[idx], gen)).contiguous(memory_format=torch.channels_last)
    loss = F.cross_entropy(model(x), tiny_data.train_labels[idx])
    loss.backward()
    direct = np.array([m.weight.grad.norm().item() for _, m in weight_layers(model)])
    np.testing.assert_allclose(result.metrics["grad_norms"][0], direct, rtol=1e-4)
    np.testing.assert_allclose(result.metrics["loss"][0], loss.item(), rtol=1e-5)


def test_grad_norm_every_n_and_off(tiny_data):
    every3 = Trainer(tiny_config(grad_norm_every=3), data=tiny_data, save=False).run()
    assert list(every3.metrics["grad_norm_step"]) == list(range(0, every3.steps, 3))
    assert np.isfinite(every3.metrics["grad_norms"]).all()
    off = Trainer(tiny_config(record_grad_norms=False), data=tiny_data, save=False).run()
    assert off.metrics["grad_norms"].shape[0] == 0


def test_same_seed_same_losses_on_cpu(tiny_data):
    a = Trainer(tiny_config(max_steps=5), data=tiny_data, save=False).run()
    b = Trainer(tiny_config(max_steps=5), data=tiny_data, save=False).run()
    c = Trainer(tiny_config(max_steps=5, seed=4), data=tiny_data, save=False).run()
    np.testing.assert_array_equal(a.metrics["loss"], b.metrics["loss"])
    assert not np.array_equal(a.metrics["loss"], c.metrics["loss"])


def test_stop_request_honoured_within_one_step(tiny_data, tmp_path):
    stop = threading.Event()
    seen = []

    def on_progress(p):
        seen.append(p.step)
        if p.step >= 4:
            stop.set()

    store = RunStore(tmp_path)
    result = Trainer(tiny_config(epochs=50), data=tiny_data, store=store, on_progress=on_progress,
                     stop_event=stop).run()
    assert result.status == "stopped"
    first_stop_step = next(s for s in seen if s >= 4)
    assert result.steps == first_stop_step  # no further step ran once the request was seen
    run = store.get(result.run_id)
    assert run.state == "stopped" and run.has_checkpoint
    assert len(run.metrics["loss"]) == result.steps


def test_nan_loss_marks_run_diverged(tiny_data, tmp_path):
    store = RunStore(tmp_path)
    result = Trainer(tiny_config(lr=1e6, epochs=20), data=tiny_data, store=store).run()
    assert result.status == "diverged"
    assert result.diverged_step is not None
    assert not np.isfinite(result.metrics["loss"][result.diverged_step])
    assert np.isfinite(result.metrics["loss"][: result.diverged_step]).all()
    run = store.get(result.run_id)
    assert run.state == "diverged" and run.status["diverged_step"] == result.diverged_step
    assert "diverged" in run.status["message"]


def test_schedules():
    tc = TrainConfig(lr=0.1, schedule="step")
    assert [lr_at(s, 100, tc) for s in (0, 49, 50, 74, 75, 99)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001,
                                                                                   0.001])
    warm = TrainConfig(lr=0.1, schedule="step", warmup_steps=10)
    assert lr_at(5, 100, warm) == pytest.approx(0.01) and lr_at(10, 100, warm) == pytest.approx(0.1)
    one = TrainConfig(lr=0.1, schedule="onecycle")
    lrs = [lr_at(s, 100, one) for s in range(100)]
    assert lrs[0] < 0.01 and max(lrs) == pytest.approx(0.1, rel=0.05) and lrs[-1] < 0.005
    cos = TrainConfig(lr=0.1, schedule="cosine")
    assert lr_at(0, 100, cos) == pytest.approx(0.1) and lr_at(99, 100, cos) < 0.001


@pytest.mark.parametrize("bad", [dict(epochs=0), dict(batch_size=0), dict(lr=-1), dict(schedule="magic"),
                                 dict(device="tpu"), dict(subset=3), dict(momentum=1.5)])
def test_bad_train_configs(bad):
    with pytest.raises(ConfigError):
        TrainConfig(**bad).validate()


def test_unavailable_device_is_a_clear_error(tiny_data):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ConfigError, match="CUDA"):
        Trainer(tiny_config(device="cuda"), data=tiny_data, save=False).run()


def test_memory_estimate_rejects_what_cannot_fit(tiny_data):
    cfg = RunConfig(model=ModelConfig(depth=1202), train=TrainConfig(batch_size=100_000, device="cpu"))
    with pytest.raises(ConfigError, match="GiB"):
        Trainer(cfg, data=tiny_data, save=False).run()


def test_branch_ratios_recorded_for_residual_nets_only(tiny_data, tmp_path):
    """Every N steps the trainer logs ‖F(x)‖/‖shortcut(x)‖ per block; the first row equals the analysis at
    initialisation, the store keeps the block names, the CSV export has a column per block, and plain nets log
    nothing."""
    from resnet_viz.analyses import branch_ratio_names, branch_ratios
    from resnet_viz.training.trainer import BRANCH_PROBE_IMAGES, EVAL_SUBSET_SEED
    from resnet_viz.datasets.batches import stratified_subset

    store = RunStore(tmp_path)
    result = Trainer(tiny_config(branch_ratio_every=3), data=tiny_data, store=store).run()
    m = result.metrics
    names = branch_ratio_names(result.model)
    assert len(names) == 3  # depth 8: one block per stage
    np.testing.assert_array_equal(m["branch_ratio_step"], np.arange(0, result.steps, 3))
    assert m["branch_ratios"].shape == (len(m["branch_ratio_step"]), 3)
    assert np.isfinite(m["branch_ratios"]).all() and (m["branch_ratios"] > 0).all()

    torch.manual_seed(tiny_config().train.seed)
    fresh = build_model(TINY_MODEL).to(memory_format=torch.channels_last)
    probe = tiny_data.test_images[stratified_subset(tiny_data.test_labels, 20, seed=EVAL_SUBSET_SEED)]
    expected = [v for _, v in branch_ratios(fresh, probe[:BRANCH_PROBE_IMAGES])]
    np.testing.assert_allclose(m["branch_ratios"][0], expected, rtol=1e-4)

    run = store.get(result.run_id)
    assert run.branch_names == names
    header = store.export(result.run_id, "csv").splitlines()[0].split(",")
    assert [h for h in header if h.startswith("branch_ratio:")] == [f"branch_ratio:{n}" for n in names]

    plain = RunConfig(model=ModelConfig(depth=8, width=0.5, residual=False), train=tiny_config().train)
    plain.train.branch_ratio_every = 3
    pm = Trainer(plain, data=tiny_data, save=False).run().metrics
    assert "branch_ratios" not in pm and "branch_ratio_step" not in pm


def test_branch_ratio_logging_off_and_bad_value(tiny_data):
    m = Trainer(tiny_config(branch_ratio_every=0, max_steps=3), data=tiny_data, save=False).run().metrics
    assert "branch_ratios" not in m
    with pytest.raises(ConfigError):
        tiny_config(branch_ratio_every=-1).validate()


@pytest.mark.parametrize("channels_last", [False, True])
def test_evaluate_matches_a_per_batch_computation(tiny_data, channels_last):
    """The trainer's evaluation (device sums, one host sync, ragged last batch) against the obvious loop."""
    from resnet_viz.training.evaluation import evaluate
    torch.manual_seed(0)
    model = build_model(TINY_MODEL).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    sets = {"train": (tiny_data.train_images[:70], tiny_data.train_labels[:70]),
            "test": (tiny_data.test_images[:23], tiny_data.test_labels[:23])}
    got = evaluate(model, sets, batch_size=16, channels_last=channels_last)
    assert model.training  # the mode it was in comes back
    assert list(got) == ["train_loss", "train_error", "test_loss", "test_error"]
    model.eval()
    for name, (x, y) in sets.items():
        losses, wrong = [], 0
        with torch.no_grad():
            for i in range(0, len(y), 10):  # another batching must not matter
                logits = model(normalize(x[i:i + 10]))
                losses.append(F.cross_entropy(logits, y[i:i + 10], reduction="none"))
                wrong += int((logits.argmax(1) != y[i:i + 10]).sum())
        assert got[f"{name}_loss"] == pytest.approx(torch.cat(losses).mean().item(), rel=1e-5)
        assert got[f"{name}_error"] == pytest.approx(wrong / len(y))


def test_bf16_training_keeps_fp32_numbers_and_says_so(tiny_data, tmp_path):
    """bf16 autocast changes the forward pass only: weights, gradient norms and evaluations stay fp32, and the run's
    status records the precision and the threads it used."""
    store = RunStore(tmp_path)
    result = Trainer(tiny_config(precision="bf16", max_steps=6, threads=1), data=tiny_data, store=store).run()
    assert result.status == "finished"
    assert all(p.dtype == torch.float32 for p in result.model.parameters())
    assert result.metrics["grad_norms"].dtype == np.float32 and np.isfinite(result.metrics["grad_norms"]).all()
    status = store.get(result.run_id).status
    assert status["precision"] == "bf16" and status["threads"] == 1
    fp32 = Trainer(tiny_config(max_steps=6, threads=1), data=tiny_data, save=False).run()
    # same data order and start: the losses agree to bf16's precision, not exactly
    np.testing.assert_allclose(result.metrics["loss"][:2], fp32.metrics["loss"][:2], rtol=0.05)
    assert not np.array_equal(result.metrics["loss"], fp32.metrics["loss"])


def test_eta_follows_the_pace_and_counts_evaluations(tiny_data):
    reports = []
    Trainer(tiny_config(max_steps=12, flush_every=2, eval_every=4), data=tiny_data, save=False,
            on_progress=reports.append).run()
    running = [p for p in reports if p.status == "running" and p.step > 0]
    assert running and all(p.seconds_per_step > 0 and p.eta_seconds >= 0 for p in running)
    mid = next(p for p in running if p.step == 4)
    assert mid.evals_left == 2 and mid.seconds_per_eval > 0  # steps 8 and 12 still to evaluate
    assert mid.eta_seconds == pytest.approx(8 * mid.seconds_per_step + 2 * mid.seconds_per_eval)


@pytest.mark.parametrize("start, total, every", [(0, 12, 4), (0, 13, 4), (5, 29, 6), (0, 7, 1), (3, 4, 10)])
def test_evaluations_after_counts_what_evaluates_at_says(start, total, every):
    from resnet_viz.training.schedule import StepPlan
    plan = StepPlan(batch=1, steps_per_epoch=1, total=total, eval_every=every, start=start)
    for step in range(start, total + 1):
        assert plan.evaluations_after(step) == sum(plan.evaluates_at(s) for s in range(step + 1, total + 1))
