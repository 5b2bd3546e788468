"""Training one run: the loop and what it needs.

- trainer.py — the loop: from a start state (fresh, or an extension's) to a finished, stopped or diverged run; it
  knows nothing of queues, executors, plans or presets. train_one.py — the loop as the app and the CLI call it: the
  precision resolved first, the measured pace taught to the planner after.
- loop_io.py — what the loop takes in and gives back; precision.py — autocast; schedule.py — learning rates and
  evaluation steps; metric_log.py — the per-step metrics; evaluation.py — loss and error on fixed image sets.
- checkpoint.py — the safetensors checkpoint (one file name, one reader); extend.py — builds the start state that
  trains a saved run further.
- devices.py — which device to train on; threads.py — how many CPU threads, decided from what else runs;
  budget.py — measures this machine's pace and plans how many steps fit in the minutes you have.
"""
