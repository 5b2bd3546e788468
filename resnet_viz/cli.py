"""Command-line interface: `python -m resnet_viz train|sweep|extend|list|export|delete|pack|unpack|summary`."""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import signal
import sys
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path

from .config import DEVICES, FAMILIES, SCHEDULES, SHORTCUTS, STEMS, ModelConfig, RunConfig, TrainConfig
from .errors import ResnetVizError
from .presets import BRIEF_LR, BRIEF_RUN_STEPS

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
    pk = sub.add_parser("pack", help="write runs (config, status, metrics, weights) into a lecture pack .zip")
    pk.add_argument("run_ids", nargs="+", metavar="RUN_ID")
    pk.add_argument("-o", "--output", required=True, help="the .zip file to write")
    up = sub.add_parser("unpack", help="add the runs of a lecture pack to the store (never overwrites a run)")
    up.add_argument("pack")
    up.add_argument("--rename", action="store_true",
                    help="give an incoming run a new id when the store has one with its id (default: skip it)")
    su = sub.add_parser("summary", help="print a model's per-layer summary")
    _model_args(su, sweep=False)
    su.add_argument("--input-size", type=int, default=None)
    return parser


def _model_config(args, arch: str, depth: int) -> ModelConfig:
    return ModelConfig(family=args.family, depth=depth, residual=arch == "residual", shortcut=args.shortcut,
                       batchnorm=not args.no_bn, width=args.width, stem=args.stem,
                       num_classes=getattr(args, "num_classes", 10))


def _schedule_and_lr(args) -> tuple[str, float, str | None]:
    """The paper's step schedule at lr 0.1 — unless the run is brief and the user chose neither: then one-cycle to
    lr 0.05, because at lr 0.1 a fresh ResNet-56 spikes and a run of a few hundred steps ends at chance (the Home
    page's presets make the same choice). Returns (schedule, lr, a note saying so, or None)."""
    images = min(args.subset or CIFAR10_TRAIN_IMAGES, CIFAR10_TRAIN_IMAGES)
    steps = max(1, int(args.epochs * (images // max(1, args.batch_size))))
    if args.max_steps:
        steps = min(steps, args.max_steps)
    brief = steps < BRIEF_RUN_STEPS
    schedule = args.schedule or ("onecycle" if brief else "step")
    lr = args.lr if args.lr is not None else BRIEF_LR if brief and schedule != "step" else TrainConfig().lr
    note = None
    if brief and args.schedule is None and args.lr is None:
        note = (f"a brief run (~{steps} steps): one-cycle schedule peaking at lr {lr:g}. The paper's lr 0.1 step "
                f"schedule is built for 64k steps; in a brief run it makes a fresh ResNet-56 collapse. "
                f"--schedule step --lr 0.1 gives the paper's recipe.")
    return schedule, lr, note


def _train_config(args) -> TrainConfig:
    schedule, lr, note = _schedule_and_lr(args)
    if note:
        print(f"note: {note}", file=sys.stderr)
    return TrainConfig(epochs=args.epochs, subset=args.subset, batch_size=args.batch_size, lr=lr,
                       schedule=schedule, warmup_steps=args.warmup_steps, momentum=args.momentum,
                       weight_decay=args.weight_decay, seed=args.seed, device=args.device,
                       eval_every=args.eval_every, eval_images=args.eval_images, max_steps=args.max_steps,
                       grad_norm_every=args.grad_norm_every, record_grad_norms=not args.no_grad_norms)


def _run_training(args, configs: list[RunConfig]) -> int:
    from .data import load_cifar10
    from .store import RunStore
    from .trainer import Trainer
    for c in configs:  # fail on a bad config before spending minutes on the first run
        c.validate()
    store = RunStore(args.runs)
    data = load_cifar10(args.data, download=not args.no_download)
    print(f"data: {data.source}", file=sys.stderr)
    results = []
    with _stop_on_ctrl_c() as stop:
        for config in configs:
            if stop.is_set():
                break
            with _progress_bar(config.name) as on_progress:
                result = Trainer(config, data=data, store=store, on_progress=on_progress, stop_event=stop).run()
            results.append(result)
            _print_result(store, config.name, result)
    return 0 if all(r.status in ("finished", "stopped") for r in results) else 1


@contextmanager
def _stop_on_ctrl_c():
    """An Event that the first Ctrl-C sets (training stops after the step and saves); a second one aborts."""
    stop = threading.Event()

    def on_sigint(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("\nstopping after this step (Ctrl-C again to abort) …", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, on_sigint) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        yield stop
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


@contextmanager
def _progress_bar(desc: str):
    """One line of progress on stderr; yields the trainer's on_progress callback."""
    from tqdm import tqdm
    bar = tqdm(total=1, desc=desc, unit="step", dynamic_ncols=True, file=sys.stderr)

    def on_progress(p):
        bar.total = p.total_steps
        bar.n = p.step
        post = {"loss": f"{p.loss:.3f}", "lr": f"{p.lr:.3g}", "img/s": f"{p.images_per_second:.0f}"}
        if p.test_error is not None:
            post["test err"] = f"{100 * p.test_error:.1f}%"
        bar.set_postfix(post, refresh=False)
        bar.refresh()
    try:
        yield on_progress
    finally:
        bar.close()


def _print_result(store, name: str, result) -> None:
    summary = store.get(result.run_id).summary()
    print(f"{name}: {result.status} after {result.steps} steps in {result.seconds:.0f}s — "
          f"train loss {_num(summary['final_train_loss'])}, train error {_pct(summary['final_train_error'])}"
          f", test error {_pct(summary['final_test_error'])}  [{result.run_id}]")


def cmd_extend(args) -> int:
    from .data import load_cifar10
    from .extend import check_epochs, check_extendable, epochs_text, prepare_extension
    from .store import RunStore
    store = RunStore(args.runs)
    check_epochs(args.epochs)  # before minutes of loading CIFAR-10
    run = store.get(args.run_id)
    check_extendable(run)
    data_dir = args.data
    if data_dir is None and run.config.data_dir and Path(run.config.data_dir).expanduser().is_dir():
        data_dir = run.config.data_dir
    data = load_cifar10(data_dir, download=not args.no_download)
    print(f"data: {data.source}", file=sys.stderr)
    extension = prepare_extension(store, run.id, args.epochs, data=data, device=args.device)
    for note in extension.notes:
        print(f"note: {note}", file=sys.stderr)
    with _stop_on_ctrl_c() as stop:
        with _progress_bar(f"{run.label} +{epochs_text(args.epochs)}") as on_progress:
            result = extension.run(on_progress=on_progress, stop_event=stop)
    _print_result(store, run.label, result)
    return 0 if result.status in ("finished", "stopped") else 1


def cmd_pack(args) -> int:
    from .packs import pack_runs
    from .store import RunStore
    ids = pack_runs(RunStore(args.runs), args.run_ids, args.output)
    size = Path(args.output).expanduser().stat().st_size
    print(f"packed {len(ids)} run(s) into {args.output} ({size / 2 ** 20:.1f} MB)", file=sys.stderr)
    return 0


def cmd_unpack(args) -> int:
    from .packs import unpack
    from .store import RunStore
    result = unpack(RunStore(args.runs), args.pack, rename_clashes=args.rename)
    for original, added in result.added:
        print(added)
        if added != original:
            print(f"note: {original} is already in the store, so the incoming copy is {added}", file=sys.stderr)
    for run_id in result.skipped:
        print(f"skipped {run_id}: the store already has a run with this id (--rename keeps both)", file=sys.stderr)
    return 0


def _num(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def cmd_list(args) -> int:
    from .store import RunStore
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
        print(json.dumps(summaries, indent=2))
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


def cmd_summary(args) -> int:
    from .models import human_count, model_summary
    s = model_summary(_model_config(args, args.arch, args.depth), args.input_size)
    print(f"{s['config'].name}: {human_count(s['total_params'])} parameters, {human_count(s['total_flops'])} FLOPs "
          f"at {s['input_size']}×{s['input_size']}, {s['weight_layers']} weight layers")
    for r in s["layers"]:
        shape = "×".join(map(str, r["output_shape"]))
        print(f"  {r['name']:<34} {r['kind']:<30} {shape:>14} {r['params']:>10,} {human_count(r['flops']):>9}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            config = RunConfig(model=_model_config(args, args.arch, args.depth), train=_train_config(args),
                               data_dir=args.data, name=args.name)
            return _run_training(args, [config])
        if args.command == "sweep":
            train, configs = _train_config(args), []
            for arch, depth in itertools.product(args.arch, args.depth):
                model = _model_config(args, arch, depth)
                name = f"{args.name}-{model.name}" if args.name else None
                configs.append(RunConfig(model=model, train=dataclasses.replace(train), data_dir=args.data,
                                         name=name))
            return _run_training(args, configs)
        if args.command == "extend":
            return cmd_extend(args)
        if args.command == "pack":
            return cmd_pack(args)
        if args.command == "unpack":
            return cmd_unpack(args)
        if args.command == "list":
            return cmd_list(args)
        if args.command == "export":
            from .store import RunStore
            text = RunStore(args.runs).export(args.run_id, args.format)
            if args.output:
                with open(args.output, "w", encoding="utf-8") as f:
                    f.write(text)
            else:
                sys.stdout.write(text)
            return 0
        if args.command == "delete":
            from .store import RunStore
            store = RunStore(args.runs)
            run = store.get(args.run_id)
            if not args.yes:
                answer = input(f"Delete run {run.id} ({run.label}, {run.state})? [y/N] ")
                if answer.strip().lower() not in ("y", "yes"):
                    print("not deleted")
                    return 1
            store.delete(run.id)
            print(f"deleted {run.id}")
            return 0
        if args.command == "summary":
            return cmd_summary(args)
    except ResnetVizError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("aborted", file=sys.stderr)
        return 130
    return 0
