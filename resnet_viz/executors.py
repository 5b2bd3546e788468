"""Where runs train: in this process, one after another (`local`), or as Ray tasks spread over a cluster, side by side
(`ray`). Both run the same Trainer against the same run store, and the store records where each run trained
(status.json: `executor`, `node`).

On a cluster every node must see the run store and the data at the same path (a shared folder): a task writes its run
into the store where it trains, and the driver reads the results back from there. Ray is optional and imported only
when the ray executor is asked for.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import os
import socket
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .config import RunConfig
from .errors import ConfigError, ResnetVizError
from .store import RunStore, atomic_write_json

EXECUTORS = ("local", "ray")
FINAL_STATES = ("finished", "stopped", "diverged", "failed", "interrupted", "cancelled")
RAY_MISSING = "Ray is not installed: pip install -r requirements-ray.txt"
DEFAULT_RAY_CPUS = 1  # CPUs a run asks of a cluster without GPUs (RESNET_VIZ_RAY_CPUS or --ray-cpus change it)
POLL_SECONDS = 0.5
KILLED = ("The Ray worker training this run died (killed, out of memory, or its node left the cluster); the metrics "
          "up to its last save are kept.")


@dataclass
class RunState:
    """What the driver knows of one run. Plain data: a Ray task sends it back to the driver."""

    key: int  # the run's number in its executor
    label: str
    state: str = "queued"  # queued, loading data, running, then one of FINAL_STATES
    progress: object | None = None  # the trainer's latest Progress (without its metric arrays when it came from Ray)
    run_id: str | None = None
    node: str | None = None
    pid: int | None = None
    message: str | None = None
    steps: int = 0
    seconds: float = 0.0

    @property
    def done(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def started(self) -> bool:
        return self.state != "queued"


def run_label(config: RunConfig) -> str:
    return config.name or config.model.name


def final_message(status: str, steps: int, diverged_step: int | None = None) -> str:
    return {"finished": "Finished and saved.",
            "stopped": f"Stopped at step {steps}; what was trained is saved.",
            "diverged": f"Diverged at step {diverged_step} (the loss became NaN or infinite). Try a lower learning "
                        f"rate."}[status]


class _PlacedStore(RunStore):
    """A run store whose new runs record where they train, and say so the moment their folder exists."""

    def __init__(self, root, executor: str, on_create: Callable[[str], None]):
        super().__init__(root)
        self.placement = {"executor": executor, "node": socket.gethostname()}
        self.on_create = on_create

    def create(self, config):
        writer = super().create(config)
        writer.heartbeat(**self.placement)  # kept by every later status write
        self.on_create(writer.id)
        return writer


def train_here(state: RunState, config: RunConfig, runs_dir, data, executor: str, stop_event: threading.Event,
               publish: Callable[[RunState], None], reserve_cores: int = 0):
    """Train one run in this process, publishing its state as it changes; returns the TrainResult. `reserve_cores`:
    CPU cores left free for this process's other work (the app's server)."""
    from .trainer import Trainer

    def on_create(run_id):
        state.run_id, state.state = run_id, "running"
        publish(state)

    def on_progress(p):
        state.state, state.run_id, state.progress, state.steps = "running", p.run_id, p, p.step
        publish(state)

    state.node, state.pid = socket.gethostname(), os.getpid()
    result = Trainer(config, data=data, store=_PlacedStore(runs_dir, executor, on_create), on_progress=on_progress,
                     stop_event=stop_event, reserve_cores=reserve_cores).run()
    state.state, state.steps, state.seconds = result.status, result.steps, result.seconds
    state.message = final_message(result.status, result.steps, result.diverged_step)
    publish(state)
    return result


class LocalExecutor:
    """Runs one after another in this process, on this machine's one device: the CLI's and the app's default."""

    name = "local"

    def run(self, configs: list[RunConfig], runs_dir, data, on_update: Callable[[RunState], None],
            stop_event: threading.Event) -> list[RunState]:
        states = [RunState(i, run_label(c)) for i, c in enumerate(configs)]
        for state, config in zip(states, configs):
            if stop_event.is_set():
                state.state, state.message = "cancelled", "Cancelled before it started."
                on_update(state)
                continue
            train_here(state, config, runs_dir, data, self.name, stop_event, on_update)
        return states


# ------------------------------------------------------------------------------------------------------ ray ----
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


def _train_task(key: int, config_dict: dict, runs_dir: str, board) -> RunState:
    """The body of a Ray task: train one run on whichever node Ray chose, reporting to the driver's board."""
    import ray

    from .data import load_cifar10
    config = RunConfig.from_dict(config_dict)
    state = RunState(key, run_label(config), state="loading data", node=socket.gethostname(), pid=os.getpid())
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
        data = load_cifar10(config.data_dir, download=False, progress=False)
        train_here(state, config, runs_dir, data, "ray", stop, publish)
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


def _mark_interrupted(runs_dir, run_id: str | None, message: str) -> None:
    """A killed task cannot write its own end: say it in status.json, so no node shows the run as still running."""
    if run_id is None:
        return
    path = Path(runs_dir) / run_id / "status.json"
    try:
        status = json.loads(path.read_text(encoding="utf-8"))
        if status.get("status") == "running":
            atomic_write_json(path, dict(status, status="interrupted", message=message, updated=time.time()))
    except (OSError, ValueError):
        pass  # the run folder is unreadable: the store will report it when listed


def shared_config(config: RunConfig) -> RunConfig:
    """The config with an absolute data folder, the same on every node (None means this machine's default)."""
    from .data import default_data_dir
    data_dir = Path(config.data_dir).expanduser() if config.data_dir else default_data_dir()
    return dataclasses.replace(config, data_dir=str(data_dir.resolve()))


class RayExecutor:
    """Each run is a Ray task: one GPU each where the cluster has GPUs, a fixed number of CPUs otherwise."""

    name = "ray"

    def __init__(self, address: str | None = None, cpus_per_run: int | None = None):
        ray = self._ray = import_ray()
        cpus = cpus_per_run if cpus_per_run is not None else os.environ.get("RESNET_VIZ_RAY_CPUS") or DEFAULT_RAY_CPUS
        if not str(cpus).isdigit() or int(cpus) < 1:
            raise ConfigError(f"A run needs a whole number of CPUs, at least one; got {cpus!r}.")
        cpus = int(cpus)
        address = address or os.environ.get("RAY_ADDRESS") or None
        if not ray.is_initialized():
            # No address: a local Ray instance on this machine's CPUs and GPUs. The package travels to every node,
            # so a node needs only the requirements installed, not this checkout.
            package = str(Path(__file__).resolve().parent)
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

    def submit(self, config: RunConfig, runs_dir) -> int:
        key = next(self._keys)
        runs_dir = str(Path(runs_dir or RunStore().root).expanduser().resolve())
        config = shared_config(config)
        self._refs[key] = self._task.remote(key, config.to_dict(), runs_dir, self._board)
        self._runs_dir[key] = runs_dir
        self._last[key] = RunState(key, run_label(config))
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

    def finished(self, timeout: float = POLL_SECONDS) -> list[RunState]:
        """Wait up to `timeout` seconds; return the final states of the runs that ended since the last call."""
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
                last.state, last.message = "cancelled", "Cancelled before it started."
        except Exception as e:  # the worker died (killed, out of memory, node lost) or Ray itself failed
            crashed = type(e).__name__ in ("WorkerCrashedError", "NodeDiedError", "OutOfMemoryError")
            last.state = "interrupted" if crashed and last.started else "failed"
            last.message = KILLED if crashed else f"Ray could not run it: {type(e).__name__}: {e}"
            _mark_interrupted(runs_dir, last.run_id, last.message)
        return last

    def run(self, configs: list[RunConfig], runs_dir, data, on_update: Callable[[RunState], None],
            stop_event: threading.Event) -> list[RunState]:
        """Train every config as its own task and wait for all of them. One failed or killed run does not stop the
        others. `stop_event` (a first Ctrl-C) cancels what has not started and stops the started runs after their
        current step; a KeyboardInterrupt (a second Ctrl-C) interrupts them at once."""
        del data  # the driver loaded it to check it (and download it); the tasks read the shared folder
        keys = [self.submit(c, runs_dir) for c in configs]
        final: dict[int, RunState] = {}
        seen: dict[int, tuple] = {}
        stopping = False
        try:
            while len(final) < len(keys):
                if stop_event.is_set() and not stopping:
                    stopping = True
                    for key in keys:
                        if key not in final:
                            self.stop(key)
                for state in self.finished(POLL_SECONDS):
                    final[state.key] = state
                    on_update(state)
                for key, state in self.states().items():
                    mark = (state.state, state.steps, state.run_id)
                    if not state.done and seen.get(key) != mark:  # a run's end is told once, by `finished`
                        seen[key] = mark
                        on_update(state)
        except KeyboardInterrupt:
            for key in keys:
                self.abort(key)
            deadline = time.time() + 10  # give the trainers a moment to write `interrupted`
            while self._refs and time.time() < deadline:
                self.finished(POLL_SECONDS)
            raise
        return [final[k] for k in keys]


def make_executor(name: str, ray_address: str | None = None, ray_cpus: int | None = None):
    if name == "local":
        if ray_address:
            raise ConfigError("--ray-address needs --executor ray.")
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(ray_address, ray_cpus)
    raise ConfigError(f"Unknown executor {name!r}: choose one of {', '.join(EXECUTORS)}.")
