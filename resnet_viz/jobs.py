"""A training queue for the app: one background worker per process trains queued runs one after another on the one
device — or, with RESNET_VIZ_EXECUTOR=ray (and RAY_ADDRESS), hands them to a Ray cluster, where they train side by
side (a classroom server). Browser sessions submit jobs, watch them and stop them; the worker never touches the UI
(the app's pages read the jobs' state back on a timer), so it keeps training while users switch pages or rerun scripts.
"""
from __future__ import annotations

import copy
import itertools
import os
import threading
import time
import traceback
from dataclasses import dataclass, field

from .config import RunConfig
from .errors import ConfigError, ResnetVizError
from .executors import EXECUTORS, FINAL_STATES, RunState



def app_reserved_cores() -> int:
    """CPU cores a training run leaves to the app's server, so pages render while it trains: one where there are
    cores to spare. On 2 cores a reserved core would halve every run (plain-56 in a 3-minute budget: 144 steps, too
    few to show Fig. 6), while the server's work there is bursts of page rendering, not a steady load; other
    processes' steady load is left to the trainer's thread governor, which measures it."""
    from .threads import usable_cores
    return 1 if usable_cores() > 2 else 0
METRICS_REFRESH_SECONDS = 5.0  # a Ray job's live charts re-read its metrics from the run store this often


@dataclass
class Job:
    id: int
    owner: str  # the browser session that submitted it; others see it as "queued by another session"
    config: RunConfig
    runs_dir: str | None
    state: str = "queued"  # queued, loading data, running, then one of FINAL_STATES
    run_id: str | None = None
    message: str | None = None
    submitted: float = field(default_factory=time.time)
    progress: object | None = None  # the trainer's latest Progress
    metrics: dict | None = None  # live metrics (host arrays) while running
    layer_names: list[str] | None = None
    extra_epochs: float | None = None  # set: train run `run_id` this many more epochs (resnet_viz.extend)
    stop_event: threading.Event = field(default_factory=threading.Event, repr=False)
    planned_seconds: float | None = None  # the time-budget plan's estimate for this run, if it came from one
    planned_step_seconds: float | None = None  # the measured step time that plan assumed
    node: str | None = None  # the machine training it
    ticket: int | None = field(default=None, repr=False)  # its number in the Ray executor, once handed over
    process: object | None = field(default=None, repr=False)  # its run_process.TrainingProcess while it trains
    metrics_read: float = field(default=0.0, repr=False)

    @property
    def label(self) -> str:
        return self.config.name or self.config.model.name

    @property
    def done(self) -> bool:
        return self.state in FINAL_STATES


class JobQueue:
    def __init__(self, executor: str | None = None, ray_address: str | None = None):
        self.executor = (executor or os.environ.get("RESNET_VIZ_EXECUTOR") or "local").strip().lower()
        self.ray_address = ray_address or os.environ.get("RAY_ADDRESS") or None
        self._ray = None  # the RayExecutor, made by the worker on first use
        self._lock = threading.Lock()
        self._jobs: list[Job] = []
        self._ids = itertools.count(1)
        self._wake = threading.Condition(self._lock)
        self._worker: threading.Thread | None = None

    # -- called from page scripts ---------------------------------------------------------------------------------
    def submit(self, configs: list[RunConfig], owner: str, runs_dir: str | None = None,
               plans: list | None = None) -> list[Job]:
        """Queue runs. `plans`: each run's budget.PlannedRun (or None), for estimates of the whole queue."""
        from .store import RunStore
        from .trainer import resolve_device
        if self.executor not in EXECUTORS:
            raise ConfigError(f"RESNET_VIZ_EXECUTOR is {self.executor!r}: it must be one of {', '.join(EXECUTORS)}.")
        for c in configs:  # refused at once, with the same message as the CLI's, not after loading the data
            c.validate()
            if self.executor == "local":
                resolve_device(c.train.device)
        if configs:
            RunStore(runs_dir).check_writable()
        with self._lock:
            plans = plans or [None] * len(configs)
            jobs = [Job(next(self._ids), owner, copy.deepcopy(c), runs_dir,
                        planned_seconds=plan.seconds if plan else None,
                        planned_step_seconds=plan.speed.step_seconds if plan else None)
                    for c, plan in zip(configs, plans)]
            self._jobs.extend(jobs)
            self._ensure_worker()
            self._wake.notify_all()
        return jobs

    def submit_extension(self, run_id: str, epochs: float, owner: str, runs_dir: str | None = None,
                         data_dir: str | None = None) -> Job:
        """Queue "train `epochs` more epochs" for a finished or stopped run; a run that cannot be extended is
        refused at once (ResnetVizError)."""
        from .extend import check_epochs, check_extendable, epochs_text
        from .store import RunStore
        check_epochs(epochs)
        run = RunStore(runs_dir).get(run_id)
        check_extendable(run)
        label = copy.deepcopy(run.config)  # for the job list; the extension itself reads the run's own config
        label.name, label.data_dir = f"{run.name} (+{epochs_text(epochs)})", data_dir
        with self._lock:
            job = Job(next(self._ids), owner, label, runs_dir, run_id=run_id, extra_epochs=epochs)
            self._jobs.append(job)
            self._ensure_worker()
            self._wake.notify_all()
        return job

    def stop(self, job_id: int) -> None:
        with self._lock:
            for job in self._jobs:
                if job.id == job_id and not job.done:
                    if job.state == "queued" and job.ticket is None:
                        job.state, job.message = "cancelled", "Cancelled before it started."
                    else:  # the worker passes it on (to the training process, or to the cluster)
                        job.stop_event.set()
                        if job.process is not None:
                            job.process.stop()
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
            if self.executor == "ray":  # side by side on the cluster: each job's own time
                out[job.id] = left
                continue
            if left is None or clock is None:
                clock = None
            else:
                clock += left
            out[job.id] = clock
        return out

    def jobs(self, owner: str | None = None) -> list[Job]:
        """Copies, safe to read while the worker runs."""
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

    # -- the worker -----------------------------------------------------------------------------------------------
    def _ensure_worker(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            work = self._work_on_ray if self.executor == "ray" else self._work
            self._worker = threading.Thread(target=work, name="resnet_viz-trainer", daemon=True)
            self._worker.start()

    def _next(self) -> Job | None:
        with self._lock:
            while True:
                job = next((j for j in self._jobs if j.state == "queued"), None)
                if job is not None:
                    job.state = "loading data"
                    return job
                if not self._wake.wait(timeout=30):
                    return None  # idle: let the thread end; the next submit starts a new one

    def _work(self) -> None:
        while (job := self._next()) is not None:
            self._run(job)

    def _run(self, job: Job) -> None:
        """Train one job in a process of its own (resnet_viz.run_process): page reruns then cost it CPU time at
        most, never the server's interpreter lock."""
        from .data import load_cifar10
        from .run_process import TrainingProcess
        from .store import RunStore

        def publish(state: RunState):
            with self._lock:
                if job.state not in FINAL_STATES:
                    job.state = "running" if state.state == "running" else job.state
                job.run_id, job.node = state.run_id or job.run_id, state.node or job.node
                if state.progress is not None:
                    job.progress = state.progress
                    job.metrics = state.progress.metrics
                    job.layer_names = state.progress.layer_names or job.layer_names

        try:
            # Here, once per data folder (then memoised): a missing folder fails now with the usual message, and
            # the default one is downloaded before the training process reads it.
            load_cifar10(job.config.data_dir)
            runs_dir = str(RunStore(job.runs_dir).root)
            with self._lock:
                if job.stop_event.is_set():
                    job.state, job.message = "cancelled", "Cancelled before it started."
                    return
                job.process = TrainingProcess(
                    job.id, job.label, runs_dir, config=None if job.extra_epochs else job.config,
                    extend=(job.run_id, job.extra_epochs) if job.extra_epochs else None,
                    data_dir=job.config.data_dir, reserve_cores=app_reserved_cores())
            final = job.process.follow(publish)
            with self._lock:
                job.state, job.message = final.state, final.message
                job.run_id = final.run_id or job.run_id
                job.process = None
            if job.run_id:
                self._read_metrics(job)  # the whole run, as saved, for its card and its charts
        except ResnetVizError as e:
            with self._lock:
                job.state, job.message = "failed", str(e)
        except Exception as e:  # keep the worker alive for the next job, and say what happened
            with self._lock:
                job.state = "failed"
                job.message = f"Training failed: {type(e).__name__}: {e}"
            traceback.print_exc()

    # -- the worker, when a Ray cluster trains the jobs ---------------------------------------------------------------
    def _work_on_ray(self) -> None:
        """Hand queued jobs to the cluster as they come, pass Stop on, and mirror the runs' states into the jobs."""
        idle_since = time.time()
        while True:
            with self._lock:
                queued = [j for j in self._jobs if j.state == "queued" and j.ticket is None]
                stopping = [j for j in self._jobs if j.ticket is not None and not j.done and j.stop_event.is_set()]
                active = {j.ticket: j for j in self._jobs if j.ticket is not None and not j.done}
                if not queued and not active:
                    if time.time() - idle_since > 30:
                        return  # idle: let the thread end; the next submit starts a new one
                    self._wake.wait(timeout=1.0)
                    continue
            idle_since = time.time()
            try:
                executor = self._ray_executor()
            except ResnetVizError as e:  # no Ray, or no cluster at that address: every queued job says why
                with self._lock:
                    for job in queued:
                        job.state, job.message = "failed", str(e)
                continue
            try:
                for job in queued:
                    self._hand_over(executor, job)
                for job in stopping:
                    executor.stop(job.ticket)
                    job.stop_event.clear()  # told once
                for state in executor.finished(timeout=0.5):
                    self._mirror(active.get(state.key), state, final=True)
                for ticket, state in executor.states().items():
                    self._mirror(active.get(ticket), state, final=False)
            except Exception as e:  # the cluster went away: say so on every job it held, start afresh next time
                traceback.print_exc()
                with self._lock:
                    for job in active.values():
                        job.state, job.message = "failed", f"Lost the Ray cluster: {type(e).__name__}: {e}"
                self._ray = None

    def _ray_executor(self):
        if self._ray is None:
            from .executors import RayExecutor
            self._ray = RayExecutor(self.ray_address)
        return self._ray

    def _hand_over(self, executor, job: Job) -> None:
        from .data import load_cifar10
        if job.state != "queued":  # cancelled meanwhile
            return
        try:
            # Here, once per data folder (then memoised): a missing folder fails now, with the usual message,
            # and the default one is downloaded before any node needs it.
            load_cifar10(job.config.data_dir)
            ticket = executor.submit(job.config, job.runs_dir)
        except ResnetVizError as e:
            with self._lock:
                job.state, job.message = "failed", str(e)
            return
        with self._lock:
            if job.state == "cancelled":  # stopped while its data was checked
                executor.stop(ticket)
            job.ticket = ticket

    def _mirror(self, job: Job | None, state: RunState, final: bool) -> None:
        if job is None or (state.done and not final):  # a run's end is taken from `finished` only
            return
        with self._lock:
            if state.state != "queued":
                job.state = state.state
            job.run_id, job.node = state.run_id, state.node
            if state.progress is not None:
                job.progress = state.progress
            if final:
                job.message = state.message
        if state.run_id and (final or time.time() - job.metrics_read > METRICS_REFRESH_SECONDS):
            self._read_metrics(job)

    def _read_metrics(self, job: Job) -> None:
        """The live charts of a run trained elsewhere: its metrics as last saved to the shared run store."""
        from .store import RunStore
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
