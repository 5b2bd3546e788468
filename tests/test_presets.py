"""Presets: every run of a preset trains the same way, sized for the device, and the settings are valid."""
import pytest

from resnet_viz.presets import PRESETS, describe_training, preset_runs, training_for
from resnet_viz.trainer import lr_at


@pytest.mark.parametrize("device_type", ["cpu", "cuda", "mps"])
def test_presets_are_valid_and_fair(device_type):
    for preset in PRESETS:
        runs = preset_runs(preset, device_type, data_dir="/data")
        assert len(runs) == len(preset.models) >= 2
        assert len({id(run.train) for run in runs}) == len(runs)  # no mutable config shared between jobs
        for run in runs:
            run.validate()
            assert run.data_dir == "/data" and preset.key in run.name
            assert run.train == runs[0].train  # a comparison is only fair with equal training


def test_cpu_presets_are_brief_and_gpu_presets_use_all_data():
    cpu, gpu = training_for("cpu"), training_for("cuda")
    steps = cpu.epochs * cpu.subset // cpu.batch_size
    assert 80 <= steps <= 160 and cpu.schedule == "onecycle"
    # one-cycle peaks at the configured lr and starts well below it: no step at the peak rate on fresh weights
    assert max(lr_at(s, int(steps), cpu) for s in range(int(steps))) == pytest.approx(cpu.lr, rel=0.05)
    assert lr_at(0, int(steps), cpu) < cpu.lr / 10
    assert gpu.subset is None and gpu.lr == 0.1 and gpu.schedule == "step" and gpu.warmup_steps > 0
    assert "8,000-image subset" in describe_training(cpu) and "one-cycle" in describe_training(cpu)
    assert "all 50,000" in describe_training(gpu) and "warm-up" in describe_training(gpu)
