"""Command-line interface: `python -m resnet_viz train|sweep|extend|list|export|delete|pack|unpack|summary|gradients`.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import itertools
import sys
import warnings
from pathlib import Path

from . import gradients as cli_gradients
from .training import number, percent, run_training
from ..config import (CIFAR10_HEAD, DEVICES, FAMILIES, IMAGENET_HEAD, PRECISIONS, SCHEDULES, SHORTCUTS, STEMS,
                     ModelConfig, RunConfig, TrainConfig)
from ..errors import ResnetVizError
from ..execution.executors import ExecutorKind
from ..lecture.presets import BRIEF_LR, BRIEF_RUN_STEPS, DEFAULT_MINUTES, PRESETS, brief_run_rule


def _model_args(p: argparse.ArgumentParser, sweep: bool, describe_only: bool = False) -> None:
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
    if describe_only:  # a model described, not trained: the ImageNet family has ImageNet's head, as on Build
        g.add_argument("--num-classes", type=int, default=None,
                       help="classifier outputs (default: 1000 for imagenet, torchvision's head; 10 for cifar)")
    elif not sweep:
        g.add_argument("--num-classes", type=int, default=10,
                       help="classifier outputs (default 10: the CIFAR-10 classes it trains on)")


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


def _executor_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("where to train")
    g.add_argument("--executor", choices=[k.value for k in ExecutorKind], default=ExecutorKind.LOCAL.value,
                   help="local: in this process, one run after another (default); ray: each run a Ray task on a "
                        "cluster, side by side (pip install -r requirements-ray.txt; --runs and --data must be "
                        "folders every node sees)")
    g.add_argument("--ray-address", default=None, help="the Ray cluster to use, e.g. 10.0.0.1:6379 (default: "
                   "$RAY_ADDRESS, or a local Ray instance on this machine)")
    g.add_argument("--ray-cpus", type=int, default=None, help="CPUs each run asks for on a cluster without GPUs "
                   "(default: $RESNET_VIZ_RAY_CPUS or 1); with GPUs each run takes one GPU")


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
    _executor_args(t)
    s = sub.add_parser("sweep", help="train every combination of --arch, --depth and --seeds: one after another, "
                       "or side by side with --executor ray")
    _model_args(s, sweep=True)
    _train_args(s)
    s.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="train every combination once per seed (default: the one --seed)")
    _executor_args(s)
    ext = sub.add_parser("extend", help="train a finished or stopped run more epochs, appending to its curves")
    ext.add_argument("run_id")
    ext.add_argument("--epochs", type=float, required=True, help="how many more epochs")
    ext.add_argument("--device", choices=DEVICES, default=None, help="(default: as the run was configured)")
    ext.add_argument("--no-download", action="store_true", help="never download CIFAR-10")
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
    pk = sub.add_parser("pack", help="write runs (config, status, metrics, weights) into a lecture pack .zip")
    pk.add_argument("run_ids", nargs="+", metavar="RUN_ID")
    pk.add_argument("-o", "--output", required=True, help="the .zip file to write")
    up = sub.add_parser("unpack", help="add the runs of a lecture pack to the store (never overwrites a run)")
    up.add_argument("pack")
    up.add_argument("--rename", action="store_true",
                    help="give an incoming run a new id when the store has one with its id (default: skip it)")
    cli_gradients.add_parser(sub)
    su = sub.add_parser("summary", help="print a model's per-layer summary")
    _model_args(su, sweep=False, describe_only=True)
    su.add_argument("--input-size", type=int, default=None)
    return parser


def _model_config(args, arch: str, depth: int) -> ModelConfig:
    return ModelConfig(family=args.family, depth=depth, residual=arch == "residual", shortcut=args.shortcut,
                       batchnorm=not args.no_bn, width=args.width, stem=args.stem,
                       num_classes=_num_classes(args))


def _num_classes(args) -> int:
    """--num-classes, or the family's own head: 1000 for an ImageNet net described by `summary` (torchvision's
    ResNet-50 has 25.56M parameters with it), 10 for anything trained here on CIFAR-10."""
    chosen = getattr(args, "num_classes", None)
    if chosen is not None:
        return chosen
    return IMAGENET_HEAD if args.family == "imagenet" and args.command == "summary" else CIFAR10_HEAD


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


def cmd_list(args) -> int:
    from ..storage.store import RunStore, strict_json
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
              f"{number(s['final_train_loss']):>10} {percent(s['final_train_error']):>9} "
              f"{percent(s['final_test_error']):>8}")
    return 0


def cmd_export(args) -> int:
    from ..storage.store import RunStore
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
    from ..storage.files import atomic_write_text, storage_error
    what = f"the export {path.name}"
    if path.exists() and not path.is_file():  # /dev/stdout, a named pipe: written into, never replaced
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as e:
            raise storage_error(e, path.parent, what, len(text.encode())) from e
        return 0
    # Whole or not at all: a full disk must not leave half a CSV, nor cost the file an earlier export wrote there.
    atomic_write_text(path, text, what=what)
    return 0


def cmd_delete(args) -> int:
    from ..storage.store import RunStore
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
    from ..readable import human_count
    from ..nets.summary import model_summary
    s = model_summary(_model_config(args, args.arch, args.depth), args.input_size)
    count = functools.partial(human_count, thousands_decimals=1)
    print(f"{s['config'].name}: {count(s['total_params'])} parameters, {count(s['total_flops'])} FLOPs "
          f"at {s['input_size']}×{s['input_size']}, {s['weight_layers']} weight layers")
    for r in s["layers"]:
        shape = "×".join(map(str, r["output_shape"]))
        print(f"  {r['name']:<34} {r['kind']:<30} {shape:>14} {r['params']:>10,} {count(r['flops']):>9}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    previous_showwarning, warnings.showwarning = warnings.showwarning, _print_warning
    try:
        if args.command == "train":
            model = _model_config(args, args.arch, args.depth).validate()
            config = RunConfig(model=model, train=_train_config(args), data_dir=args.data, name=args.name)
            return run_training(args, [config])
        if args.command == "sweep":
            train, configs = _train_config(args), []
            seeds = args.seeds if args.seeds is not None else [args.seed]
            for arch, depth, seed in itertools.product(args.arch, args.depth, seeds):
                model = _model_config(args, arch, depth).validate()
                label = model.name if len(seeds) == 1 else f"{model.name} seed {seed}"
                name = f"{args.name}-{label}" if args.name else None if len(seeds) == 1 else label
                configs.append(RunConfig(model=model, train=dataclasses.replace(train, seed=seed),
                                         data_dir=args.data, name=name))
            return run_training(args, configs)
        if args.command in ("preset", "extend", "pack", "unpack"):
            from . import lecture as cli_lecture
            return getattr(cli_lecture, f"cmd_{args.command}")(args)
        if args.command == "list":
            return cmd_list(args)
        if args.command == "export":
            return cmd_export(args)
        if args.command == "delete":
            return cmd_delete(args)
        if args.command == "summary":
            return cmd_summary(args)
        if args.command == "gradients":
            return cli_gradients.cmd_gradients(args)
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
