"""The local executor: runs train one after another on this machine's one device, in a worker thread of their own.

Two ways to train, one protocol:
- in this process (the CLI's default): the worker thread runs the training loop itself, so tests can patch it and
  an error reaches the caller as itself (raised again from `finished`, in the caller's thread);
- each run in a child process (`processes=True`, the app's server): a training loop inside the server shared its
  interpreter lock with every watching tab's page reruns and was stalled by them (see `run_process`).
"""
from __future__ import annotations

import ctypes
import dataclasses
import itertools
import threading
import traceback

from .executors import CANCELLED, Executor, ExecutorKind, RunRequest, RunState

ABORTED = "Aborted from the keyboard; the metrics up to the last save are kept."


class LocalExecutor(Executor):
    kind = ExecutorKind.LOCAL

    def __init__(self, processes: bool = False, reserve_cores: int = 0):
        """`reserve_cores`: CPU cores each run leaves free for this process's other work (the app's server)."""
        super().__init__()
        self.processes, self.reserve_cores = processes, reserve_cores
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._keys = itertools.count()
        self._waiting: list[int] = []  # keys in queue order
        self._requests: dict[int, tuple[RunRequest, str, object]] = {}  # key -> (request, runs_dir, data)
        self._states: dict[int, RunState] = {}  # every run not yet collected by `finished`
        self._stops: dict[int, threading.Event] = {}
        self._ended: list[RunState] = []
        self._current: int | None = None  # the run training now
        self._process = None  # its run_process.TrainingProcess, with processes=True
        self._worker: threading.Thread | None = None
        self._failure: BaseException | None = None  # in this process: the error that ended a run, for the caller

    # -- the protocol ---------------------------------------------------------------------------------------------
    def submit(self, request: RunRequest, runs_dir, data=None) -> int:
        with self._lock:
            key = next(self._keys)
            self._requests[key] = (request, str(runs_dir), data)
            self._states[key] = RunState(key, request.label)
            self._stops[key] = threading.Event()
            self._waiting.append(key)
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="resnet_viz-local-executor", daemon=True)
                self._worker.start()
        return key

    def states(self) -> dict[int, RunState]:
        with self._lock:
            return {k: dataclasses.replace(s) for k, s in self._states.items()}

    def _cancel_if_waiting(self, key: int) -> bool:
        """A run not started yet is simply taken off the list (the caller holds the lock)."""
        if key not in self._waiting:
            return False
        self._waiting.remove(key)
        self._end(key, "cancelled", CANCELLED)
        return True

    def stop(self, key: int) -> None:
        with self._lock:
            if self._cancel_if_waiting(key):
                return
            if key in self._stops:
                self._stops[key].set()
            process = self._process if key == self._current else None
        if process is not None:
            process.stop()

    def abort(self, key: int) -> None:
        with self._lock:
            if self._cancel_if_waiting(key):
                return
            if key != self._current:
                return
            process, worker = self._process, self._worker
        if process is not None:
            process.kill()
        elif worker is not None:  # the loop trains in that thread: interrupt it as Ctrl-C interrupts a main thread
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(worker.ident),
                                                       ctypes.py_object(KeyboardInterrupt))

    def _wait_for_ends(self, timeout: float) -> list[RunState]:
        with self._lock:
            self._changed.wait_for(lambda: self._ended or self._failure is not None, timeout)
            ended, self._ended = self._ended, []
            failure, self._failure = self._failure, None
        if failure is not None:
            raise failure
        return ended

    # -- the worker -----------------------------------------------------------------------------------------------
    def _end(self, key: int, status: str | None = None, message: str | None = None,
             final: RunState | None = None) -> None:
        """(lock held) Move run `key` to the ended ones, with `final` as its last state or `status` and `message`."""
        state = self._states.pop(key)
        if final is not None:
            state = dataclasses.replace(final)
        if status is not None:
            state.state, state.message = status, message
        self._ended.append(state)
        self._requests.pop(key, None)
        self._stops.pop(key, None)
        self._changed.notify_all()

    def _publish(self, key: int, state: RunState) -> None:
        with self._lock:
            if key in self._states:
                self._states[key] = dataclasses.replace(state)
                self._changed.notify_all()

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._waiting:
                    self._worker = None  # the next submit starts a new one
                    return
                key = self._current = self._waiting.pop(0)
                request, runs_dir, data = self._requests[key]
                stop = self._stops[key]
            try:
                if self.processes:
                    final = self._train_in_child(key, request, runs_dir, stop)
                else:
                    final = self._train_here(key, request, runs_dir, data, stop)
                with self._lock:
                    self._end(key, final=final)
            except KeyboardInterrupt:  # `abort` (a second Ctrl-C): the trainer has marked the run interrupted
                with self._lock:
                    self._end(key, "interrupted", ABORTED)
            except BaseException as e:
                with self._lock:
                    self._fail(key, e)
            finally:
                with self._lock:
                    self._current = self._process = None

    def _fail(self, key: int, error: BaseException) -> None:
        """(lock held) In this process the caller gets the error itself, and nothing more trains: as if it had
        trained the run in its own thread. For a child process's handler, the run fails and the next one goes on."""
        from ..errors import ResnetVizError
        if self.processes:
            traceback.print_exc()
            self._end(key, "failed", str(error) if isinstance(error, ResnetVizError)
                      else f"Training failed: {type(error).__name__}: {error}")
            return
        self._end(key, "failed", str(error))
        self._failure = error
        for waiting in self._waiting:
            self._end(waiting, "cancelled", CANCELLED)
        self._waiting.clear()

    def _train_here(self, key: int, request: RunRequest, runs_dir: str, data, stop: threading.Event) -> RunState:
        from ..datasets.cifar10 import load_cifar10
        from .run_here import train_request
        state = RunState(key, request.label)
        if data is None:
            data = load_cifar10(request.config.data_dir, download=False, progress=False)
        train_request(state, request, runs_dir, data, self.kind, stop, lambda s: self._publish(key, s),
                      reserve_cores=self.reserve_cores)
        return state

    def _train_in_child(self, key: int, request: RunRequest, runs_dir: str, stop: threading.Event) -> RunState:
        from .run_process import TrainingProcess
        with self._lock:
            if stop.is_set():  # stopped between the queue and here
                return dataclasses.replace(self._states[key], state="cancelled", message=CANCELLED)
            self._states[key].state = "loading data"
            process = self._process = TrainingProcess(key, request, runs_dir, reserve_cores=self.reserve_cores)
        return process.follow(lambda s: self._publish(key, s))
