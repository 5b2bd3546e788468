"""Command-line interface: `python -m resnet_viz train|sweep|list|export|delete|summary`."""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import signal
import sys
import threading
import warnings
from pathlib import Path

from .config import (DEVICES, FAMILIES, PRECISIONS, SCHEDULES, SHORTCUTS, STEMS, ModelConfig, RunConfig,
                     TrainConfig)
from .errors import ResnetVizError
from .presets import BRIEF_LR, BRIEF_RUN_STEPS, DEFAULT_MINUTES, PRESETS, brief_run_rule

CIFAR10_TRAIN_IMAGES = 50_000


def _model_args(p: argparse.ArgumentParser, sweep: bool) -> None:
    g = p.add_argument_group("model")
    many = {"nargs": "+"} if sweep else {}
    g.add_argument("--family", choices=FAMILIES, default="cifar",
                   help="cifar: the paper's 6n+2 nets; imagenet: ResNet-18/34/50/101/152 (default: cifar)")
    g.add_argument("--arch", choices=("plain", "residual"), default=["residual"] if sweep else "residual",
                   help="plain twin or residual net" + (" (several allowed)" if sweep else ""), **many)
    g.add_argument("--depth", type=int, default=[20] if sweep else 20, help="6n+2 for cifar (20, 32, 44, 56, 110, "
                   "1202 …); 18/34/50/101/152 for imagenet" + (" (several allowed)" if sweep else ""), **many)
    g.add_argument("--shortcut", choices=SHORTCUTS, default=None,
                   help="A zero-pad identity (cifar default), B projection where shapes change (imagenet default), "
                        "C projection everywhere")
    g.add_argument("--no-bn", action="store_true", help="build without BatchNorm")
    g.add_argument("--width", type=float, default=1.0, help="channel multiplier (default 1 = 16/32/64)")
    g.add_argument("--stem", choices=STEMS, default=None,
                   help="imagenet family: 'imagenet' 7x7/2 + max-pool (default) or 'cifar' 3x3/1 for 32x32 images")
    if not sweep:
        g.add_argument("--num-classes", type=int, default=10, help="classifier outputs (CIFAR-10: 10; ImageNet: 1000)")


def _train_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training")
    d = TrainConfig()
    g.add_argument("--epochs", type=float, default=d.epochs, help=f"(default {d.epochs:g})")
    g.add_argument("--subset", type=int, default=None, help="train on a stratified subset of K images")
    g.add_argument("--batch-size", type=int, default=d.batch_size, help=f"(default {d.batch_size})")
    g.add_argument("--lr", type=float, default=None,
                   help=f"peak learning rate (default: the paper's {d.lr}; {BRIEF_LR} for a brief one-cycle run)")
    g.add_argument("--schedule", choices=SCHEDULES, default=None,
                   help="step: the paper's /10 at 50%% and 75%% of the run; onecycle/cosine suit brief runs "
                        f"(default: step, or onecycle for runs under {BRIEF_RUN_STEPS:,} steps)")
    g.add_argument("--warmup", type=int, default=0, dest="warmup_steps", help="steps at lr/10 first (paper: "
                   "ResNet-110)")
    g.add_argument("--momentum", type=float, default=d.momentum)
    g.add_argument("--weight-decay", type=float, default=d.weight_decay)
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--device", choices=DEVICES, default="auto")
    g.add_argument("--eval-every", type=int, default=0, help="steps between evaluations (default: 12 per run)")
    g.add_argument("--eval-images", type=int, default=d.eval_images)
    g.add_argument("--max-steps", type=int, default=None, help="stop after this many steps")
    g.add_argument("--grad-norm-every", type=int, default=1, help="record gradient norms every N steps")
    g.add_argument("--no-grad-norms", action="store_true", help="do not record gradient norms")
    g.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="forward pass in bf16 autocast or fp32; auto: bf16 where this machine measured it faster "
                        "(loss, gradient norms and evaluation are fp32 either way)")
    g.add_argument("--threads", type=int, default=0,
                   help="CPU threads; 0 (default): the cores other processes leave free, re-checked while training")
    g.add_argument("--name", default=None, help="a name for the run (sweep: a prefix)")
    g.add_argument("--no-download", action="store_true", help="never download CIFAR-10")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m resnet_viz", description="Train plain nets and their ResNet "
                                     "twins on CIFAR-10 and record how their gradients flow.")
    parser.add_argument("--runs", default=None, help="run store folder (default: $RESNET_VIZ_RUNS or ./runs)")
    parser.add_argument("--data", default=None, help="CIFAR-10 folder: python batches or train/<class>, "
                        "test/<class> images (default: $RESNET_VIZ_DATA or ~/.cache/resnet_viz/data, downloaded "
                        "there if missing)")
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train one model")
    _model_args(t, sweep=False)
    _train_args(t)
    s = sub.add_parser("sweep", help="train every combination of --arch and --depth, one after another")
    _model_args(s, sweep=True)
    _train_args(s)
    ls = sub.add_parser("list", help="list the runs in the store")
    ls.add_argument("--json", action="store_true", help="print a JSON array, one object per run")
    ex = sub.add_parser("export", help="write a run's metrics as CSV or JSON")
    ex.add_argument("run_id")
    ex.add_argument("--format", choices=("csv", "json"), default="csv")
    ex.add_argument("-o", "--output", default=None, help="file to write (default: standard output)")
    de = sub.add_parser("delete", help="delete a run")
    de.add_argument("run_id")
    de.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    pr = sub.add_parser("preset", help="train a one-click experiment, sized to the minutes you have")
    pr.add_argument("preset", nargs="?", choices=[p.key for p in PRESETS], help="which experiment (see --list)")
    pr.add_argument("--list", action="store_true", help="list the experiments and stop")
    pr.add_argument("--minutes", type=float, default=DEFAULT_MINUTES,
                    help=f"wall time for the whole experiment (default {DEFAULT_MINUTES:g})")
    pr.add_argument("--device", choices=DEVICES, default="auto")
    pr.add_argument("--plan-only", action="store_true", help="print the plan (steps, estimated time) and stop")
    pr.add_argument("--remeasure", action="store_true", help="time the nets again instead of using the cache")
    pr.add_argument("--no-download", action="store_true", help="never download CIFAR-10")
    su = sub.add_parser("summary", help="print a model's per-layer summary")
    _model_args(su, sweep=False)
    su.add_argument("--input-size", type=int, default=None)
    return parser


def _model_config(args, arch: str, depth: int) -> ModelConfig:
    return ModelConfig(family=args.family, depth=depth, residual=arch == "residual", shortcut=args.shortcut,
                       batchnorm=not args.no_bn, width=args.width, stem=args.stem,
                       num_classes=getattr(args, "num_classes", 10))


def _schedule_and_lr(args) -> tuple[str, float, str | None]:
    """presets.brief_run_rule: the paper's step schedule at lr 0.1, or one-cycle to 0.05 for a brief run where the
    user chose neither. Returns (schedule, lr, a note saying so, or None)."""
    schedule, lr, note = brief_run_rule(args.epochs, args.subset, args.batch_size, args.max_steps, args.schedule,
                                        args.lr)
    if note and note.startswith("a brief run"):
        note = note.replace("Schedule step with lr 0.1", "--schedule step --lr 0.1")
        return schedule, lr, note
    return schedule, lr, None


def _train_config(args) -> TrainConfig:
    typed = TrainConfig(epochs=args.epochs, subset=args.subset, batch_size=args.batch_size,
                        lr=TrainConfig.lr if args.lr is None else args.lr, schedule=args.schedule or "step",
                        warmup_steps=args.warmup_steps, momentum=args.momentum, weight_decay=args.weight_decay,
                        seed=args.seed, device=args.device, eval_every=args.eval_every,
                        eval_images=args.eval_images, max_steps=args.max_steps, grad_norm_every=args.grad_norm_every,
                        record_grad_norms=not args.no_grad_norms, precision=args.precision, threads=args.threads)
    typed.validate()  # before the step count below does arithmetic with what was typed (--epochs nan, inf …)
    schedule, lr, note = _schedule_and_lr(args)
    if note:
        print(f"note: {note}", file=sys.stderr)
    return dataclasses.replace(typed, schedule=schedule, lr=lr)


def _run_training(args, configs: list[RunConfig]) -> int:
    from tqdm import tqdm

    from .data import load_cifar10
    from .models import check_fits
    from .store import RunStore
    from .trainer import Trainer, resolve_device
    # Everything that can be checked without the data is checked before loading it (or downloading 170 MB): the
    # configs, the device, the memory a step needs, and that runs can be saved where --runs points.
    for c in configs:
        c.validate()
        check_fits(c.model, c.train.batch_size, resolve_device(c.train.device))
    store = RunStore(args.runs)
    store.check_writable()
    data = load_cifar10(args.data, download=not args.no_download)
    print(f"data: {data.source}", file=sys.stderr)
    stop = threading.Event()

    def on_sigint(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("\nstopping after this step (Ctrl-C again to abort) …", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, on_sigint) if threading.current_thread() is threading.main_thread() \
        else None
    results = []
    try:
        for config in configs:
            if stop.is_set():
                break
            bar = tqdm(total=1, desc=config.name, unit="step", dynamic_ncols=True, file=sys.stderr)

            def on_progress(p, bar=bar):
                bar.total = p.total_steps
                bar.n = p.step
                post = {"loss": f"{p.loss:.3f}", "lr": f"{p.lr:.3g}", "img/s": f"{p.images_per_second:.0f}"}
                if p.test_error is not None:
                    post["test err"] = f"{100 * p.test_error:.1f}%"
                bar.set_postfix(post, refresh=False)
                bar.refresh()

            result = Trainer(config, data=data, store=store, on_progress=on_progress, stop_event=stop).run()
            bar.close()
            results.append(result)
            summary = store.get(result.run_id).summary()
            print(f"{config.name}: {result.status} after {result.steps} steps in {result.seconds:.0f}s — "
                  f"train loss {_num(summary['final_train_loss'])}, train error {_pct(summary['final_train_error'])}"
                  f", test error {_pct(summary['final_test_error'])}  [{result.run_id}]")
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    return 0 if all(r.status in ("finished", "stopped") for r in results) else 1


def _num(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def cmd_list(args) -> int:
    from .store import RunStore, strict_json
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runs = RunStore(args.runs).list()
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    summaries = []
    for run in runs:
        try:
            summaries.append(run.summary())
        except ResnetVizError as e:
            print(f"warning: {e}", file=sys.stderr)
    if args.json:
        print(strict_json(summaries, indent=2))
        return 0
    if not summaries:
        print(f"no runs in {RunStore(args.runs).root}")
        return 0
    header = f"{'id':<44} {'model':<22} {'status':<11} {'steps':>7} {'train loss':>10} {'train err':>9} " \
             f"{'test err':>8}"
    print(header)
    for s in summaries:
        print(f"{s['id']:<44} {s['label']:<22} {s['status']:<11} {s['steps_done']:>7} "
              f"{_num(s['final_train_loss']):>10} {_pct(s['final_train_error']):>9} {_pct(s['final_test_error']):>8}")
    return 0


def cmd_export(args) -> int:
    from .store import RunStore
    text = RunStore(args.runs).export(args.run_id, args.format)
    if not args.output:
        sys.stdout.write(text)
        return 0
    path = Path(args.output).expanduser()
    if path.is_dir():
        raise ResnetVizError(f"{path} is a folder; give a file name for the export, e.g. "
                             f"{path / f'{args.run_id}.{args.format}'}.")
    if not path.parent.is_dir():
        raise ResnetVizError(f"Cannot write {path}: the folder {path.parent} does not exist. Create it first or "
                             f"choose another place.")
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        raise ResnetVizError(f"Cannot write {path}: {e.strerror or e}.") from e
    return 0


def cmd_delete(args) -> int:
    from .store import RunStore
    store = RunStore(args.runs)
    run = store.get(args.run_id)
    if not args.yes:
        try:
            answer = input(f"Delete run {run.id} ({run.label}, {run.state})? [y/N] ")
        except EOFError:  # no terminal to ask (a script, a pipe): not a yes
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("not deleted (use --yes to delete without asking)")
            return 1
    store.delete(run.id)
    print(f"deleted {run.id}")
    return 0


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)  # a sentence for the user, not Python's file:line report


def cmd_summary(args) -> int:
    from .models import human_count, model_summary
    s = model_summary(_model_config(args, args.arch, args.depth), args.input_size)
    print(f"{s['config'].name}: {human_count(s['total_params'])} parameters, {human_count(s['total_flops'])} FLOPs "
          f"at {s['input_size']}×{s['input_size']}, {s['weight_layers']} weight layers")
    for r in s["layers"]:
        shape = "×".join(map(str, r["output_shape"]))
        print(f"  {r['name']:<34} {r['kind']:<30} {shape:>14} {r['params']:>10,} {human_count(r['flops']):>9}")
    return 0


def cmd_preset(args) -> int:
    """Plan an experiment for this machine and the minutes given, print the plan, then train it."""
    if args.list or not args.preset:
        for p in PRESETS:
            print(f"{p.key:12s} {p.title}: {', '.join(m.name for m in p.models)}")
        if not args.list:
            print("\nerror: name an experiment, e.g. `preset degradation --minutes 3`", file=sys.stderr)
            return 2
        return 0
    import time

    import torch

    from .presets import describe_training, plan_preset, preset_by_key
    from .threads import CpuLoad, choose_threads
    from .trainer import resolve_device
    device = resolve_device(args.device)
    if device.type == "cpu":  # plan with the threads the runs will get: the cores others leave free
        torch.set_num_threads(choose_threads(CpuLoad().others_busy()))
    print("measuring this machine (a few timed steps per net; cached afterwards) …", file=sys.stderr)
    plan = plan_preset(preset_by_key(args.preset), args.minutes, device, args.data, refresh=args.remeasure)
    print(f"plan for {args.minutes:g} min on {device.type}"
          + (f" ({plan.threads} thread{'s' if plan.threads != 1 else ''})" if plan.threads else "") + ":",
          file=sys.stderr)
    for r in plan.runs:
        print(f"  {r.config.model.name:12s} {r.steps:6,d} steps  {r.speed.precision}  "
              f"{r.speed.step_seconds:.3f} s/step  ~{r.seconds:.0f} s", file=sys.stderr)
    print(f"  {describe_training(plan.runs[0].config.train)}", file=sys.stderr)
    print(f"  estimated total: {plan.total_seconds:.0f} s", file=sys.stderr)
    if args.plan_only:
        return 0
    for name in ("precision", "threads", "runs"):  # what _run_training reads from a train command's arguments
        if not hasattr(args, name):
            setattr(args, name, None)
    started = time.perf_counter()
    code = _run_training(args, [r.config for r in plan.runs])
    print(f"wall time {time.perf_counter() - started:.0f} s (estimated {plan.total_seconds:.0f} s)", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    previous_showwarning, warnings.showwarning = warnings.showwarning, _print_warning
    try:
        if args.command == "train":
            model = _model_config(args, args.arch, args.depth).validate()
            config = RunConfig(model=model, train=_train_config(args), data_dir=args.data, name=args.name)
            return _run_training(args, [config])
        if args.command == "sweep":
            models = [_model_config(args, arch, depth).validate()
                      for arch, depth in itertools.product(args.arch, args.depth)]
            train = _train_config(args)
            configs = [RunConfig(model=model, train=dataclasses.replace(train), data_dir=args.data,
                                 name=f"{args.name}-{model.name}" if args.name else None) for model in models]
            return _run_training(args, configs)
        if args.command == "preset":
            return cmd_preset(args)
        if args.command == "list":
            return cmd_list(args)
        if args.command == "export":
            return cmd_export(args)
        if args.command == "delete":
            return cmd_delete(args)
        if args.command == "summary":
            return cmd_summary(args)
    except ResnetVizError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, a folder removed under a running command: the system's own sentence
        print(f"error: {e.strerror or e}" + (f": {e.filename}" if e.filename else ""), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("aborted", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = previous_showwarning
    return 0
