"""Fixtures shared by several test files. Helpers that build data live in cifar_fixtures.py and figure_fixtures.py."""
import os
import tempfile
from pathlib import Path

import pytest
import torch

from cifar_fixtures import train_tiny_pair, write_python_batches

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Decoded images and measured step times go to a folder of this test session, never to ~/.cache."""
    before = os.environ.get("RESNET_VIZ_CACHE")
    os.environ["RESNET_VIZ_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if before is None:
        os.environ.pop("RESNET_VIZ_CACHE", None)
    else:
        os.environ["RESNET_VIZ_CACHE"] = before


@pytest.fixture
def app_test(monkeypatch):
    """The page tests' one AppTest factory: `app_test(file, runs, data, timeout=60)` is the AppTest of `file`
    (relative to the checkout: "app.py", "pages/2_Train.py"), not run yet, with the app's run store and CIFAR-10
    folder pointed at `runs` and `data` for this test (RESNET_VIZ_RUNS, RESNET_VIZ_DATA); a folder left None stays as
    the environment has it."""
    from streamlit.testing.v1 import AppTest

    def make(file: str, runs: Path | None = None, data: Path | None = None, timeout: float = 60):
        for variable, folder in (("RESNET_VIZ_RUNS", runs), ("RESNET_VIZ_DATA", data)):
            if folder is not None:
                monkeypatch.setenv(variable, str(folder))
        return AppTest.from_file(str(ROOT / file), default_timeout=timeout)
    return make


@pytest.fixture
def known_speeds(tmp_path, monkeypatch):
    """A speed cache in which plain and residual nets take 0.1 s a step per 20 layers in bf16 (1.5× that in fp32), at
    any thread count: a plan is then known in advance and nothing is timed."""
    from resnet_viz.training import budget
    from resnet_viz.config import ModelConfig
    monkeypatch.setenv("RESNET_VIZ_CACHE", str(tmp_path / "speed-cache"))
    cpu = torch.device("cpu")
    for depth in (20, 56):
        for model in (ModelConfig(depth=depth, residual=False), ModelConfig(depth=depth),
                      ModelConfig(depth=depth, residual=False, batchnorm=False)):
            for threads in range(1, 9):
                for precision, factor in (("fp32", 1.5), ("bf16", 1.0)):
                    budget.record_observed(model, 128, cpu, budget.Speed(0.1 * depth / 20 * factor, 1e-4, precision,
                                                                         threads))


def machine_load(monkeypatch, cores_busy: float) -> None:
    """Make every CPU-load sample say that other processes keep `cores_busy` cores busy, whatever really runs
    beside the tests (a CI machine is not quiet, nor reliably busy)."""
    from resnet_viz.training import threads
    monkeypatch.setattr(threads.CpuLoad, "others_busy", lambda self, min_interval=0.25: cores_busy)


@pytest.fixture
def quiet_machine(monkeypatch):
    machine_load(monkeypatch, 0.0)


@pytest.fixture
def busy_machine(monkeypatch):
    machine_load(monkeypatch, 8.0)


@pytest.fixture(scope="module")
def one_thread():
    """For modules of tiny nets (they opt in with `pytestmark = pytest.mark.usefixtures("one_thread")`): with several
    intra-op threads, synchronisation costs more than it saves, and on a busy machine it costs a lot. The module runs
    single-threaded, and the setting is put back afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """A tiny CIFAR-10 in its python-batch layout: 120 train and 60 test images. Tests read it, never change it."""
    return write_python_batches(tmp_path_factory.mktemp("cifar"), n_train_per_class=12, n_test_per_class=6)


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory, data_dir):
    """A run store with a plain/residual pair of tiny nets, trained for real on data_dir. Tests that change a store
    (delete, corrupt) copy it first."""
    return train_tiny_pair(tmp_path_factory.mktemp("runs"), data_dir, epochs=3)


@pytest.fixture()
def unwritable_dir(tmp_path):
    """A folder this process cannot create files in. Root ignores permission bits, so as root a read-only system
    folder stands in (sysfs refuses new files even to root)."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o500)
        yield folder
        folder.chmod(0o700)
        return
    for candidate in (Path("/sys"), Path("/proc")):
        try:
            fd, probe = tempfile.mkstemp(dir=candidate)
        except OSError:
            yield candidate
            return
        os.close(fd)
        os.unlink(probe)
    pytest.skip("running as root with no read-only folder to stand in for an unwritable one")


@pytest.fixture(scope="session")
def tiny_data():
    """200 training and 50 test images in memory, class-dependent brightness so there is something to learn."""
    from resnet_viz.datasets.cifar10 import Cifar10Tensors
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(200) % 10
    images = (torch.rand(200, 3, 32, 32, generator=g) * 120 + labels.view(-1, 1, 1, 1) * 12).to(torch.uint8)
    test_labels = torch.arange(50) % 10
    test = (torch.rand(50, 3, 32, 32, generator=g) * 120 + test_labels.view(-1, 1, 1, 1) * 12).to(torch.uint8)
    return Cifar10Tensors(images, labels, test, test_labels, tuple(str(i) for i in range(10)), "tiny in-memory")
