"""A training queue for the app: browser sessions submit jobs, watch them and stop them; one background loop hands
the jobs to an executor (`resnet_viz.execution.executors`) and mirrors the runs' states into the jobs. The executor is the local
one (runs one after another on the one device, each in a process of its own) or, with RESNET_VIZ_EXECUTOR=ray (and
RAY_ADDRESS), a Ray cluster, where they train side by side (a classroom server). The loop never touches the UI (the
app's pages read the jobs back on a timer), so training goes on while users switch pages or rerun scripts.
"""
from __future__ import annotations

import copy
import dataclasses
import itertools
import os
import threading
import time
import traceback
from dataclasses import dataclass, field

from ..config import RunConfig
from ..errors import ResnetVizError
from .executors import CANCELLED, ExecutorKind, RunRequest, RunState

__all__ = ["ExecutorKind", "Job", "JobQueue", "app_reserved_cores", "job_queue"]

METRICS_REFRESH_SECONDS = 5.0  # a Ray job's live charts re-read its metrics from the run store this often
POLL_SECONDS = 0.25  # how often the loop asks the executor: a Stop reaches a training run within this
IDLE_SECONDS = 30.0  # an idle loop ends; the next submit starts a new one


def app_reserved_cores() -> int:
    """CPU cores a training run leaves to the app's server, so pages render while it trains: one where there are
    cores to spare. On 2 cores a reserved core would halve every run (plain-56 in a 3-minute budget: 144 steps, too
    few to show Fig. 6), while the server's work there is bursts of page rendering, not a steady load; other
    processes' steady load is left to the trainer's thread governor, which measures it."""
    from ..training.threads import usable_cores
    return 1 if usable_cores() > 2 else 0


@dataclass
class Job:
    id: int
    owner: str  # the browser session that submitted it; others see it as "queued by another session"
    request: RunRequest
    runs_dir: str | None
    latest: RunState  # the executor's latest word on its run: state, progress, run id, node, message
    submitted: float = field(default_factory=time.time)
    metrics: dict | None = None  # live metrics (host arrays) while running; the whole run's once it ended
    layer_names: list[str] | None = None
    stop_event: threading.Event = field(default_factory=threading.Event, repr=False)
    planned_seconds: float | None = None  # the time-budget plan's estimate for this run, if it came from one
    planned_step_seconds: float | None = None  # the measured step time that plan assumed
    ticket: int | None = field(default=None, repr=False)  # its key in the executor, once handed over
    metrics_read: float = field(default=0.0, repr=False)

    @property
    def config(self) -> RunConfig:
        return self.request.config

    @property
    def label(self) -> str:
        return self.request.label

    @property
    def state(self) -> str:  # queued, loading data, running, then one of executors.FINAL_STATES
        return self.latest.state

    @property
    def message(self) -> str | None:
        return self.latest.message

    @property
    def run_id(self) -> str | None:
        return self.latest.run_id or self.request.extend_run_id

    @property
    def node(self) -> str | None:  # the machine training it
        return self.latest.node

    @property
    def progress(self):  # the trainer's latest Progress
        return self.latest.progress

    @property
    def done(self) -> bool:
        return self.latest.done

    def end(self, state: str, message: str | None) -> None:
        self.latest = dataclasses.replace(self.latest, state=state, message=message)


class JobQueue:
    def __init__(self, executor: str | None = None, ray_address: str | None = None):
        name = (executor or os.environ.get("RESNET_VIZ_EXECUTOR") or ExecutorKind.LOCAL.value).strip().lower()
        self.executor: ExecutorKind | str = next((k for k in ExecutorKind if k.value == name), name)
        self.ray_address = ray_address or os.environ.get("RAY_ADDRESS") or None
        self._executor = None  # made by the loop on first use
        self._lock = threading.Lock()
        self._jobs: list[Job] = []
        self._ids = itertools.count(1)
        self._wake = threading.Condition(self._lock)
        self._worker: threading.Thread | None = None

    # -- called from page scripts ---------------------------------------------------------------------------------
    def submit(self, configs: list[RunConfig], owner: str, runs_dir: str | None = None,
               plans: list | None = None) -> list[Job]:
        """Queue runs. `plans`: each run's budget.PlannedRun (or None), for estimates of the whole queue."""
        from ..storage.store import RunStore
        from ..training.devices import resolve_device
        kind = ExecutorKind.parse(self.executor, "RESNET_VIZ_EXECUTOR")
        for c in configs:  # refused at once, with the same message as the CLI's, not after loading the data
            c.validate()
            if kind is ExecutorKind.LOCAL:
                resolve_device(c.train.device)
        if configs:
            RunStore(runs_dir).check_writable()
        plans = plans or [None] * len(configs)
        return [self._add(RunRequest(copy.deepcopy(c)), owner, runs_dir,
                          planned_seconds=plan.seconds if plan else None,
                          planned_step_seconds=plan.speed.step_seconds if plan else None)
                for c, plan in zip(configs, plans)]

    def submit_extension(self, run_id: str, epochs: float, owner: str, runs_dir: str | None = None,
                         data_dir: str | None = None) -> Job:
        """Queue "train `epochs` more epochs" for a finished or stopped run; a run that cannot be extended is
        refused at once (ResnetVizError)."""
        from ..training.extend import check_epochs, check_extendable, epochs_text
        from ..storage.store import RunStore
        check_epochs(epochs)
        run = RunStore(runs_dir).get(run_id)
        check_extendable(run)
        shown = copy.deepcopy(run.config)  # for the job list; the extension itself reads the run's own config
        shown.name, shown.data_dir = f"{run.name} (+{epochs_text(epochs)})", data_dir
        return self._add(RunRequest(shown, extend_run_id=run_id, extra_epochs=epochs), owner, runs_dir)

    def _add(self, request: RunRequest, owner: str, runs_dir: str | None, **plan) -> Job:
        with self._lock:
            job_id = next(self._ids)
            job = Job(job_id, owner, request, runs_dir, RunState(job_id, request.label), **plan)
            self._jobs.append(job)
            self._ensure_worker()
            self._wake.notify_all()
        return job

    def stop(self, job_id: int) -> None:
        with self._lock:
            for job in self._jobs:
                if job.id == job_id and not job.done:
                    if job.state == "queued" and job.ticket is None:
                        job.end("cancelled", CANCELLED)
                    else:  # the loop passes it on to the executor (the training process, or the cluster)
                        job.stop_event.set()
                    self._wake.notify_all()

    def queue_eta(self) -> dict[int, float | None]:
        """Seconds until each unfinished job ends, the queue ahead of it included. The running job's own pace (its
        Progress) also rescales the plans of the jobs behind it: a machine running 20% slower than planned will be
        20% slower for them too."""
        with self._lock:
            pending = [j for j in self._jobs if not j.done]
        out: dict[int, float | None] = {}
        clock, speed = 0.0, 1.0
        for job in pending:
            p = job.progress
            left = p.eta_seconds if p is not None and job.state == "running" else None
            if left is not None and job.planned_step_seconds and p.seconds_per_step:
                speed = min(4.0, max(0.25, p.seconds_per_step / job.planned_step_seconds))
            if left is None:
                left = job.planned_seconds * speed if job.planned_seconds else None
            if self.executor is ExecutorKind.RAY:  # side by side on the cluster: each job's own time
                out[job.id] = left
                continue
            if left is None or clock is None:
                clock = None
            else:
                clock += left
            out[job.id] = clock
        return out

    def jobs(self, owner: str | None = None) -> list[Job]:
        """Copies, safe to read while the loop runs."""
        with self._lock:
            return [copy.copy(j) for j in self._jobs if owner is None or j.owner == owner]

    def busy(self) -> bool:
        with self._lock:
            return any(not j.done for j in self._jobs)

    def wait(self, timeout: float = 60.0) -> bool:
        """Block until every job is done (tests, scripts). True if they all finished in time."""
        deadline = time.time() + timeout
        while self.busy():
            if time.time() > deadline:
                return False
            time.sleep(0.05)
        return True

    def clear_finished(self, owner: str | None = None) -> None:
        """Forget finished jobs (their runs stay in the store): one tab's, or everyone's."""
        with self._lock:
            self._jobs = [j for j in self._jobs if not (j.done and (owner is None or j.owner == owner))]

    # -- the loop -------------------------------------------------------------------------------------------------
    def _ensure_worker(self) -> None:
        """(lock held)"""
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._work, name="resnet_viz-trainer", daemon=True)
            self._worker.start()

    def _work(self) -> None:
        """Hand queued jobs to the executor as they come, pass Stop on, and mirror the runs' states into the jobs."""
        idle_since = time.time()
        while True:
            with self._lock:
                queued = [j for j in self._jobs if j.state == "queued" and j.ticket is None]
                if not queued and not any(j.ticket is not None and not j.done for j in self._jobs):
                    if time.time() - idle_since > IDLE_SECONDS:
                        self._worker = None  # the next submit starts a new loop
                        return
                    self._wake.wait(timeout=1.0)
                    continue
            idle_since = time.time()
            try:
                executor = self._get_executor()
            except ResnetVizError as e:  # no Ray, or no cluster at that address: every queued job says why
                with self._lock:
                    for job in queued:
                        job.end("failed", str(e))
                continue
            try:
                self._step(executor, queued)
            except Exception as e:  # the executor broke (the cluster went away): say so on every job it held
                traceback.print_exc()
                lost = f"Lost the Ray cluster: {type(e).__name__}: {e}" if executor.kind is ExecutorKind.RAY else \
                    f"Training failed: {type(e).__name__}: {e}"
                with self._lock:
                    for job in self._jobs:
                        if job.ticket is not None and not job.done:
                            job.end("failed", lost)
                self._executor = None  # start afresh next time

    def _step(self, executor, queued: list[Job]) -> None:
        for job in queued:
            self._hand_over(executor, job)
        with self._lock:
            active = {j.ticket: j for j in self._jobs if j.ticket is not None and not j.done}
            stopping = [j for j in active.values() if j.stop_event.is_set()]
        for job in stopping:
            executor.stop(job.ticket)
            job.stop_event.clear()  # told once
        for state in executor.finished(POLL_SECONDS, lambda s: self._mirror(active.get(s.key), s, final=False)):
            self._mirror(active.get(state.key), state, final=True)

    def _get_executor(self):
        if self._executor is None:
            from .registry import make_executor
            kind = ExecutorKind.parse(self.executor, "RESNET_VIZ_EXECUTOR")
            self._executor = make_executor(kind, self.ray_address if kind is ExecutorKind.RAY else None,
                                           processes=True, reserve_cores=app_reserved_cores())
        return self._executor

    def _hand_over(self, executor, job: Job) -> None:
        from ..datasets.cifar10 import load_cifar10
        from ..storage.store import RunStore
        with self._lock:
            if job.state != "queued":  # cancelled meanwhile
                return
            job.latest = dataclasses.replace(job.latest, state="loading data")
        try:
            # Here, once per data folder (then memoised): a missing folder fails now, with the usual message,
            # and the default one is downloaded before a training process (or any node) reads it.
            load_cifar10(job.config.data_dir)
            runs_dir = str(RunStore(job.runs_dir).root)
        except ResnetVizError as e:
            with self._lock:
                job.end("failed", str(e))
            return
        with self._lock:
            if job.stop_event.is_set():  # stopped while its data was checked
                job.end("cancelled", CANCELLED)
                return
            job.ticket = executor.submit(job.request, runs_dir)
            job.latest = dataclasses.replace(job.latest, state="queued")  # until the executor says more

    def _mirror(self, job: Job | None, state: RunState, final: bool) -> None:
        if job is None or (state.done and not final):  # a run's end is taken from `finished` only
            return
        progress = state.progress
        with self._lock:
            job.latest = dataclasses.replace(state)
            if progress is not None and progress.metrics is not None:  # live curves come with the state
                job.metrics, job.layer_names = progress.metrics, progress.layer_names or job.layer_names
        stale = time.time() - job.metrics_read > METRICS_REFRESH_SECONDS
        if state.run_id and (final or (stale and (progress is None or progress.metrics is None))):
            self._read_metrics(job)  # at the end: the whole run, as saved, for its card and its charts

    def _read_metrics(self, job: Job) -> None:
        """The curves of a run as last saved to the run store (a shared folder, for a run trained elsewhere)."""
        from ..storage.store import RunStore
        try:
            run = RunStore(job.runs_dir).get(job.run_id)
            metrics, names = run.metrics, run.layer_names
        except ResnetVizError:
            return  # not saved yet, or being replaced: the next refresh will do
        with self._lock:
            job.metrics, job.layer_names, job.metrics_read = metrics, names, time.time()


_QUEUE: JobQueue | None = None
_QUEUE_LOCK = threading.Lock()


def job_queue() -> JobQueue:
    """The process-wide queue: every browser session of one `streamlit run` shares the one device."""
    global _QUEUE
    with _QUEUE_LOCK:
        if _QUEUE is None:
            _QUEUE = JobQueue()
        return _QUEUE
