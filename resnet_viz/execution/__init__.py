"""Where runs train: one executor protocol and its implementations.

- executors.py — the protocol: a run request (a new config, or an extension of a saved run), run states, submit /
  states / stop / finished, and the executor kinds; registry.py maps a kind to its executor.
- local.py — on this machine, one run after another: in this process (the CLI) or each in a process of its own
  (the app: run_process.py); ray_cluster.py — Ray tasks, side by side; run_here.py — one request trained wherever an
  executor placed it.
- jobs.py — the app's one queue of jobs: it hands them to an executor and mirrors the states back for the pages.

A new executor is one module here (an `Executor` subclass), one `ExecutorKind` member and one branch in registry.py.
"""
