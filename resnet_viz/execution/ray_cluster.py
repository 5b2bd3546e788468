"""The Ray executor: each run a Ray task on a cluster, side by side — one GPU each where the cluster has GPUs, a fixed
number of CPUs otherwise.

On a cluster every node must see the run store and the data at the same path (a shared folder): a task writes its run
into the store where it trains, and the driver reads the results back from there. Ray is optional and imported only
when this executor is made.
"""
from __future__ import annotations

import dataclasses
import itertools
import os
import socket
import threading
import time
import traceback
from pathlib import Path

from ..config import RunConfig
from ..errors import ConfigError, ResnetVizError
from .executors import CANCELLED, Executor, ExecutorKind, RunRequest, RunState
from .run_here import mark_interrupted, train_request
from ..storage.store import RunStore

RAY_MISSING = "Ray is not installed: pip install -r requirements-ray.txt"
DEFAULT_RAY_CPUS = 1  # CPUs a run asks of a cluster without GPUs (RESNET_VIZ_RAY_CPUS or --ray-cpus change it)
KILLED = ("The Ray worker training this run died (killed, out of memory, or its node left the cluster); the metrics "
          "up to its last save are kept.")


def import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_MISSING) from None
    return ray


class _Board:
    """A Ray actor, one per driver: tasks post their state here and learn whether they should stop."""

    def __init__(self):
        self._states: dict[int, RunState] = {}
        self._stops: set[int] = set()

    def report(self, state: RunState) -> bool:
        self._states[state.key] = state
        return state.key in self._stops

    def stop(self, key: int) -> None:
        self._stops.add(key)

    def forget(self, key: int) -> None:
        self._states.pop(key, None)
        self._stops.discard(key)

    def snapshot(self) -> dict[int, RunState]:
        return dict(self._states)


def _train_task(key: int, request_dict: dict, runs_dir: str, board) -> RunState:
    """The body of a Ray task: train one run request on whichever node Ray chose, reporting to the driver's board."""
    from ..datasets.cifar10 import load_cifar10
    request = RunRequest.from_dict(request_dict)
    state = RunState(key, request.label, state="loading data", node=socket.gethostname(), pid=os.getpid())
    stop = threading.Event()
    replies = []  # futures of the board's answers to our reports: True once the driver asked this run to stop

    def publish(s: RunState) -> None:
        # Never wait for an answer: a task blocked in ray.get or ray.wait lends its CPU to the next queued task, and
        # more runs would then train at once than the cluster has slots for. Read the answers that have arrived.
        replies.append(board.report.remote(_light(s)).future())
        for reply in [r for r in replies if r.done()]:
            replies.remove(reply)
            try:
                if reply.result():
                    stop.set()
            except Exception:  # the driver (and its board) is gone: stop cleanly rather than train for nobody
                stop.set()

    publish(state)
    try:
        # The driver loaded (or downloaded) the data before submitting; a node only reads the shared folder.
        data = load_cifar10(request.config.data_dir, download=False, progress=False)
        train_request(state, request, runs_dir, data, ExecutorKind.RAY, stop, publish)
    except ResnetVizError as e:
        state.state, state.message = "failed", f"{e} (on node {state.node})"
    except Exception as e:  # one broken run must not take the others down; its traceback goes to the Ray logs
        traceback.print_exc()
        state.state, state.message = "failed", f"Training failed on node {state.node}: {type(e).__name__}: {e}"
    return _light(state)


def _light(state: RunState) -> RunState:
    """The state without the metric arrays: the driver reads those from the shared run store."""
    if state.progress is None:
        return dataclasses.replace(state)
    return dataclasses.replace(state, progress=dataclasses.replace(state.progress, metrics=None, layer_names=None))


def shared_config(config: RunConfig) -> RunConfig:
    """The config with an absolute data folder, the same on every node (None means this machine's default)."""
    from ..datasets.cifar10 import default_data_dir
    data_dir = Path(config.data_dir).expanduser() if config.data_dir else default_data_dir()
    return dataclasses.replace(config, data_dir=str(data_dir.resolve()))


class RayExecutor(Executor):
    """Each run is a Ray task: one GPU each where the cluster has GPUs, a fixed number of CPUs otherwise."""

    kind = ExecutorKind.RAY

    def __init__(self, address: str | None = None, cpus_per_run: int | None = None):
        super().__init__()
        ray = self._ray = import_ray()
        cpus = cpus_per_run if cpus_per_run is not None else os.environ.get("RESNET_VIZ_RAY_CPUS") or DEFAULT_RAY_CPUS
        if not str(cpus).isdigit() or int(cpus) < 1:
            raise ConfigError(f"A run needs a whole number of CPUs, at least one; got {cpus!r}.")
        cpus = int(cpus)
        address = address or os.environ.get("RAY_ADDRESS") or None
        if not ray.is_initialized():
            # No address: a local Ray instance on this machine's CPUs and GPUs. The package travels to every node,
            # so a node needs only the requirements installed, not this checkout.
            package = str(Path(__file__).resolve().parents[1])
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="warning",
                         runtime_env={"py_modules": [package], "excludes": ["__pycache__"]})
            except Exception as e:
                raise ConfigError(f"Could not reach the Ray cluster at {address or 'a new local instance'} "
                                  f"({type(e).__name__}: {e}); check that it runs, and that this machine has its "
                                  f"token (RAY_AUTH_MODE=token, RAY_AUTH_TOKEN).") from e
        gpus = ray.cluster_resources().get("GPU", 0)
        self.resources = {"num_gpus": 1, "num_cpus": 1} if gpus >= 1 else {"num_cpus": cpus}
        self._task = ray.remote(_train_task).options(max_retries=0, **self.resources)  # a killed run is not rerun
        self._board = ray.remote(num_cpus=0)(_Board).remote()
        self._keys = itertools.count()
        self._refs: dict[int, object] = {}  # key -> ObjectRef of the task, while it is not done
        self._runs_dir: dict[int, str] = {}
        self._last: dict[int, RunState] = {}
        self.where = f"Ray cluster at {address}" if address else "a local Ray instance"

    def submit(self, request: RunRequest, runs_dir, data=None) -> int:
        del data  # a task reads the shared data folder where it trains
        key = next(self._keys)
        runs_dir = str(Path(runs_dir or RunStore().root).expanduser().resolve())
        request = dataclasses.replace(request, config=shared_config(request.config))
        self._refs[key] = self._task.remote(key, request.to_dict(), runs_dir, self._board)
        self._runs_dir[key] = runs_dir
        self._last[key] = RunState(key, request.label)
        return key

    def states(self) -> dict[int, RunState]:
        """The latest state of every run not yet collected by `finished`."""
        reported = self._ray.get(self._board.snapshot.remote())
        self._last.update({k: s for k, s in reported.items() if k in self._refs})
        return {k: self._last[k] for k in self._refs}

    def stop(self, key: int) -> None:
        """Before its run folder exists (queued, loading data): it is cancelled. Once training: it stops after its
        current step and keeps what it trained (status `stopped`)."""
        if key not in self._refs:
            return
        self._ray.get(self._board.stop.remote(key))
        if self.states()[key].run_id is None:
            self._ray.cancel(self._refs[key])

    def abort(self, key: int) -> None:
        """Interrupt a run at once (the trainer marks it `interrupted`); for a second Ctrl-C."""
        if key in self._refs:
            self._ray.cancel(self._refs[key])

    def _wait_for_ends(self, timeout: float) -> list[RunState]:
        if not self._refs:
            time.sleep(timeout)
            return []
        by_ref = {ref: key for key, ref in self._refs.items()}
        ready, _ = self._ray.wait(list(by_ref), num_returns=len(by_ref), timeout=timeout)
        ended = []
        for ref in ready:
            key = by_ref[ref]
            ended.append(self._collect(key, ref))
            del self._refs[key]
            self._board.forget.remote(key)
        return ended

    def _collect(self, key: int, ref) -> RunState:
        from ray.exceptions import TaskCancelledError
        self.states()
        last = self._last.pop(key)
        runs_dir = self._runs_dir.pop(key)
        try:
            return self._ray.get(ref)
        except TaskCancelledError:
            if last.run_id is not None:
                last.state, last.message = "interrupted", "Interrupted; the metrics up to the last save are kept."
            else:
                last.state, last.message = "cancelled", CANCELLED
        except Exception as e:  # the worker died (killed, out of memory, node lost) or Ray itself failed
            crashed = type(e).__name__ in ("WorkerCrashedError", "NodeDiedError", "OutOfMemoryError")
            last.state = "interrupted" if crashed and last.started else "failed"
            last.message = KILLED if crashed else f"Ray could not run it: {type(e).__name__}: {e}"
            mark_interrupted(runs_dir, last.run_id, last.message)
        return last
