"""The run store: every trained run as a folder (config.json, status.json, metrics, checkpoint), shared by the CLI,
the app and separate processes.

- store.py — create, list, read and delete runs; run_checks.py — what each file may hold, so a damaged or foreign
  run fails with one sentence and the rest still list.
- packs.py — lecture packs (a zip of runs) out and in, refused before they inflate or fill the disk (run_sizes.py:
  how large a run's files can be, judged from its config).
- files.py — writes that are never seen half-done, and JSON strict parsers accept.
"""
