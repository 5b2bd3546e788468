"""A training queue for the app: one background worker per process trains queued runs one after another on the one
device. Browser sessions submit jobs, watch them and stop them; the worker never touches the UI (the app's pages read
the jobs' state back on a timer), so it keeps training while users switch pages or rerun scripts.
"""
from __future__ import annotations

import copy
import itertools
import threading
import time
import traceback
from dataclasses import dataclass, field

from .config import RunConfig
from .errors import ResnetVizError

FINAL_STATES = ("finished", "stopped", "diverged", "failed", "cancelled")
APP_RESERVED_CORES = 1  # a CPU core left to the server, so pages render while a run trains


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
    stop_event: threading.Event = field(default_factory=threading.Event, repr=False)
    planned_seconds: float | None = None  # the time-budget plan's estimate for this run, if it came from one
    planned_step_seconds: float | None = None  # the measured step time that plan assumed

    @property
    def label(self) -> str:
        return self.config.name or self.config.model.name

    @property
    def done(self) -> bool:
        return self.state in FINAL_STATES


class JobQueue:
    def __init__(self):
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
        for c in configs:  # refused at once, with the same message as the CLI's, not after loading the data
            c.validate()
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

    def stop(self, job_id: int) -> None:
        with self._lock:
            for job in self._jobs:
                if job.id == job_id and not job.done:
                    if job.state == "queued":
                        job.state, job.message = "cancelled", "Cancelled before it started."
                    else:
                        job.stop_event.set()

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
            self._worker = threading.Thread(target=self._work, name="resnet_viz-trainer", daemon=True)
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
        from .data import load_cifar10, subset_note
        from .store import RunStore
        from .trainer import Trainer

        def on_progress(p):
            with self._lock:
                job.state = "running"
                job.run_id = p.run_id
                job.progress = p
                job.metrics = p.metrics
                job.layer_names = p.layer_names

        try:
            data = load_cifar10(job.config.data_dir)
            note = subset_note(job.config.train.subset, len(data.train_labels))
            trainer = Trainer(job.config, data=data, store=RunStore(job.runs_dir), on_progress=on_progress, reserve_cores=APP_RESERVED_CORES,
                              stop_event=job.stop_event)
            with self._lock:
                job.state = "running"
            result = trainer.run()
            with self._lock:
                job.state, job.run_id = result.status, result.run_id
                job.layer_names = result.layer_names
                job.metrics = result.metrics
                job.message = {"finished": "Finished and saved.",
                               "stopped": f"Stopped at step {result.steps}; what was trained is saved.",
                               "diverged": f"Diverged at step {result.diverged_step} (the loss became NaN or "
                                           f"infinite). Try a lower learning rate."}[result.status]
                if note:
                    job.message = f"{job.message} {note}"
        except ResnetVizError as e:
            with self._lock:
                job.state, job.message = "failed", str(e)
        except Exception as e:  # keep the worker alive for the next job, and say what happened
            with self._lock:
                job.state = "failed"
                job.message = f"Training failed: {type(e).__name__}: {e}"
            traceback.print_exc()


_QUEUE: JobQueue | None = None
_QUEUE_LOCK = threading.Lock()


def job_queue() -> JobQueue:
    """The process-wide queue: every browser session of one `streamlit run` shares the one device."""
    global _QUEUE
    with _QUEUE_LOCK:
        if _QUEUE is None:
            _QUEUE = JobQueue()
        return _QUEUE
