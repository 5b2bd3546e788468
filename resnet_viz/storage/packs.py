"""Lecture packs: a set of runs in one zip, to carry from the machine that trained them to the one that shows them.

    manifest.json                   {"format": "resnet_viz.pack", "version": 1, "runs": [run ids], "created": …}
    <run id>/config.json
    <run id>/status.json
    <run id>/metrics.safetensors    when the run has curves
    <run id>/checkpoint.safetensors when it has weights

Unpacking trusts nothing in the file, least of all the sizes it declares. Member names must be exactly these (no
absolute paths, no "..", no links, no other files). Each run's config.json and status.json are read first (capped,
in memory) and must have the store's shape and a valid config, which says how large the run's other files can be
(resnet_viz.storage.run_sizes): a member the zip says is larger is refused before anything is written. A safetensors
member's header is read and checked before its data — a checkpoint must be exactly its model's tensors and training
state, curves no longer than its steps — and then exactly the bytes that header declares are extracted, never
more, whatever the zip says (zip bombs). The pack as a whole is capped too, and must fit the disk's free space.
Everything is checked in a hidden staging folder inside the run store before any run is moved in, each with one
rename, and an existing run is never overwritten: a clash is skipped, or with `rename_clashes` the incoming run
gets a new id. A disk that fills while unpacking is a StorageError, and nothing is added.
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import stat
import tempfile
import time
import uuid
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..training.checkpoint import CHECKPOINT_FILE, checkpoint_keys
from ..config import RunConfig
from ..errors import ConfigError, PackError, RunStoreError, StorageError
from .files import DISK_FULL, NOT_WRITABLE, atomic_write_json, storage_error
from ..readable import human_bytes
from .run_checks import check_meta, check_status
from .run_sizes import checkpoint_cap, checkpoint_mismatch, metrics_cap, metrics_mismatch, read_header
from .store import RUN_FILES, RUN_ID_RE, STATUSES, RunStore

FORMAT = "resnet_viz.pack"
VERSION = 1
MANIFEST = "manifest.json"
JSON_FILES = ("config.json", "status.json")
CHUNK = 1 << 20
UNNAMED = "This file"  # how messages name a pack given as bytes without a name


@dataclass(frozen=True)
class PackLimits:
    """Caps on what unpacking accepts, in bytes once decompressed."""
    runs: int = 1000
    json_bytes: int = 256 << 10  # a config or status is a few kB (a run extended a hundred times: ~50 kB)
    tensor_file_bytes: int = 4 << 30  # a ceiling for any run; each run's own caps follow from its config (run_sizes)
    total_bytes: int = 32 << 30


@dataclass
class Unpacked:
    added: list[tuple[str, str]] = field(default_factory=list)  # (id in the pack, id in the store)
    skipped: list[str] = field(default_factory=list)  # ids already in the store, left as they were


# ------------------------------------------------------------------------------------------------- packing ----
def write_pack(store: RunStore, run_ids: list[str], out: BinaryIO) -> list[str]:
    """Write the runs' files as a lecture pack to the open binary file `out`; returns the run ids packed."""
    ids = list(dict.fromkeys(run_ids))
    if not ids:
        raise PackError("Name at least one run to pack.")
    runs = [store.get(run_id) for run_id in ids]
    for run in runs:
        if run.state == "running":
            raise PackError(f"Run {run.id} is still training; pack it once it has finished or been stopped.")
        for name in RUN_FILES[2:]:
            path = run.path / name
            if path.is_file() and path.stat().st_size > PackLimits().tensor_file_bytes:
                raise PackError(f"Run {run.id}'s {name} is larger than a pack may hold.")
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.writestr(MANIFEST, json.dumps({"format": FORMAT, "version": VERSION, "runs": ids, "created": time.time()}))
        for run in runs:
            z.writestr(f"{run.id}/config.json", (run.path / "config.json").read_bytes())
            z.writestr(f"{run.id}/status.json", json.dumps(run.status))  # as the store sees it: dead = interrupted
            for name in RUN_FILES[2:]:
                if (run.path / name).is_file():
                    z.write(run.path / name, f"{run.id}/{name}")
    return ids


def pack_runs(store: RunStore, run_ids: list[str], path: str | Path) -> list[str]:
    """Write a lecture pack to `path` (all or nothing: through a temporary file and a rename)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise PackError(f"{path} is a folder; name the .zip file to write.")
    if not path.parent.is_dir():
        raise PackError(f"There is no folder {path.parent} to write {path.name} into.")
    what = f"the lecture pack {path.name}"
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise storage_error(e, path.parent, what) from e
    try:
        with os.fdopen(fd, "wb") as f:
            ids = write_pack(store, run_ids, f)
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno in DISK_FULL:
            needed = sum(p.stat().st_size for run_id in dict.fromkeys(run_ids)
                         for p in store.get(run_id).path.iterdir() if p.name in RUN_FILES)
            raise storage_error(e, path.parent, what, needed, kept=path.exists()) from e
        raise
    return ids


def pack_bytes(store: RunStore, run_ids: list[str]) -> bytes:
    buf = io.BytesIO()
    write_pack(store, run_ids, buf)
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------- unpacking ----
@dataclass
class _Incoming:
    """A run in a pack, its config.json and status.json checked: the most bytes each of its tensor files may take."""
    id: str
    where: str  # how messages name it
    config: RunConfig
    caps: dict[str, int]


def unpack(store: RunStore, source: str | Path | BinaryIO, rename_clashes: bool = False,
           limits: PackLimits = PackLimits()) -> Unpacked:
    """Check a lecture pack and add its runs to the store. Raises PackError, in one sentence, for anything wrong
    with the file (then nothing is added), and StorageError when the store's disk fills or refuses the files."""
    label = Path(source).name if isinstance(source, (str, Path)) else getattr(source, "name", None) or UNNAMED
    try:
        archive = zipfile.ZipFile(source)
    except FileNotFoundError:
        raise PackError(f"There is no file {source}.") from None
    except (zipfile.BadZipFile, EOFError, ValueError, OSError):
        raise PackError(f"{label} is not a lecture pack: it is not a zip file, or a damaged one.") from None
    with archive:
        members = _check_members(archive, label, limits)
        if MANIFEST not in members:
            raise PackError(f"{label} is not a resnet_viz lecture pack (it has no {MANIFEST}).")
        run_ids = _check_manifest(_read_json(archive, members.pop(MANIFEST), label, limits), members, label)
        # Every run's config first: it says how large the run's other files can be, before any of them is opened.
        runs = {run_id: _check_json(archive, members, run_id, label, limits) for run_id in run_ids}
        caps = {}
        for name, info in members.items():
            run_id, file = name.split("/")
            caps[name] = min(runs[run_id].caps.get(file, limits.json_bytes), _cap(name, limits))
            if info.file_size > caps[name]:
                raise PackError(f"{label} is too large to unpack: {name!r} would be {info.file_size:,} bytes, more "
                                f"than a run of its config can need ({caps[name]:,}).")
        needed = sum(min(info.file_size, caps[name]) for name, info in members.items())  # zipfile stops at either
        try:
            store.root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=store.root))  # hidden: listings skip it
        except OSError as e:
            raise storage_error(e, store.root, f"the runs of {label}", needed) from e
        try:
            _check_room(store, label, needed)
            room = [limits.total_bytes]  # what the files may still take, all together
            for name, info in members.items():
                run = runs[name.split("/")[0]]
                if name.endswith(".safetensors"):
                    _extract_safetensors(archive, info, staging / name, label, run, caps[name], limits, room)
                else:
                    _extract(archive, info, staging / name, label, limits, room)
            for run_id in run_ids:
                _check_run(RunStore(staging), run_id, runs[run_id].where)
            return _move_in(store, staging, run_ids, rename_clashes)
        except OSError as e:  # the store's disk filled, or refused a file: nothing was moved in
            if e.errno not in DISK_FULL + NOT_WRITABLE or isinstance(e, StorageError):
                raise
            raise storage_error(e, store.root, f"the runs of {label}", needed) from e
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _check_room(store: RunStore, label: str, needed: int) -> None:
    free = shutil.disk_usage(store.root).free
    if free < needed + (64 << 20):
        raise StorageError(f"The disk holding {store.root} has not enough free space for {label}: its runs take up "
                           f"to {human_bytes(needed)} and {human_bytes(free)} is free. Nothing was unpacked.")


def _check_members(archive: zipfile.ZipFile, label: str, limits: PackLimits) -> dict[str, zipfile.ZipInfo]:
    """{member name: info}, every name one a pack may hold; sizes as declared within the caps."""
    infos = archive.infolist()
    if len(infos) > 1 + len(RUN_FILES) * limits.runs:
        raise PackError(f"{label} holds {len(infos):,} files, more than a lecture pack of {limits.runs} runs may.")
    members: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name = info.filename
        parts = name.split("/")
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
            raise PackError(f"{label} is unsafe: it holds a file with an absolute path ({name!r}).")
        if "\\" in name or any(p in ("", ".", "..") for p in parts):
            raise PackError(f"{label} is unsafe: the path {name!r} could point outside the run store.")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise PackError(f"{label} is unsafe: {name!r} is a symbolic link.")
        if not (name == MANIFEST or len(parts) == 2 and RUN_ID_RE.match(parts[0]) and parts[1] in RUN_FILES):
            raise PackError(f"{label} holds {name!r}, which is not part of a lecture pack (only {MANIFEST} and "
                            f"<run id>/{{{','.join(RUN_FILES)}}}).")
        if name in members:
            raise PackError(f"{label} is damaged: it holds {name!r} twice.")
        if info.flag_bits & 0x1:
            raise PackError(f"{label} is encrypted; lecture packs are not.")
        if info.file_size > _cap(name, limits):
            raise PackError(f"{label} is too large to unpack: {name!r} would be {info.file_size:,} bytes.")
        members[name] = info
    if sum(info.file_size for info in infos) > limits.total_bytes:
        raise PackError(f"{label} is too large to unpack: over {limits.total_bytes:,} bytes in all.")
    return members


def _cap(name: str, limits: PackLimits) -> int:
    return limits.tensor_file_bytes if name.endswith(".safetensors") else limits.json_bytes


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, label: str, cap: int, sink) -> int:
    """Decompress a member chunk by chunk into `sink(bytes)`, stopping as soon as it passes `cap`."""
    size = 0
    try:
        with archive.open(info) as src:
            while chunk := src.read(CHUNK):
                size += len(chunk)
                if size > cap:
                    raise PackError(f"{label} is too large to unpack: {info.filename!r} grows past "
                                    f"{cap:,} bytes.")
                sink(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError, ValueError) as e:
        if isinstance(e, PackError):
            raise
        raise PackError(f"{label} is damaged: {info.filename!r} cannot be read ({e}).") from None
    return size


def _read_json(archive: zipfile.ZipFile, info: zipfile.ZipInfo, label: str, limits: PackLimits):
    chunks = []
    _read_member(archive, info, label, limits.json_bytes, chunks.append)
    try:
        return json.loads(b"".join(chunks).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise PackError(f"{label} is damaged: {info.filename!r} is not valid JSON.") from None


def _extract(archive, info, dest: Path, label: str, limits: PackLimits, room: list[int]) -> None:
    dest.parent.mkdir(exist_ok=True)
    with open(dest, "xb") as out:
        def write(chunk: bytes) -> None:
            room[0] -= len(chunk)
            if room[0] < 0:
                raise PackError(f"{label} is too large to unpack: over {limits.total_bytes:,} bytes in all.")
            out.write(chunk)
        _read_member(archive, info, label, _cap(info.filename, limits), write)


def _extract_safetensors(archive, info, dest: Path, label: str, run: _Incoming, cap: int, limits: PackLimits,
                         room: list[int]) -> None:
    """Extract a safetensors member: its header first, checked against the run's config (a checkpoint must be its
    model's tensors; curves no longer than its steps), then exactly the bytes the header declares — never more than
    `cap`, whatever the zip says of the member's size."""
    file = info.filename.split("/")[1]
    damaged = f"{run.where} is damaged: its {file} is not a safetensors file"
    try:
        with archive.open(info) as src:
            try:
                header, head = read_header(src.read)
            except ValueError as e:
                raise PackError(f"{damaged} ({e}).") from None
            if file == CHECKPOINT_FILE and (wrong := checkpoint_mismatch(header, run.config)):
                raise PackError(f"{run.where} is damaged: its checkpoint does not fit the model its config "
                                f"describes ({wrong}).")
            if file == "metrics.safetensors" and (wrong := metrics_mismatch(header, run.config)):
                raise PackError(f"{run.where} is damaged: its curves do not fit its config ({wrong}).")
            if header.file_size > cap:
                raise PackError(f"{label} is too large to unpack: {info.filename!r} declares {header.file_size:,} "
                                f"bytes, more than a run of its config can need ({cap:,}).")
            room[0] -= header.file_size
            if room[0] < 0:
                raise PackError(f"{label} is too large to unpack: over {limits.total_bytes:,} bytes in all.")
            dest.parent.mkdir(exist_ok=True)
            with open(dest, "xb") as out:
                out.write(head)
                left = header.data_bytes
                while left:
                    chunk = src.read(min(left, CHUNK))
                    if not chunk:
                        raise PackError(f"{damaged} (it ends {left:,} bytes before the end its header declares).")
                    out.write(chunk)
                    left -= len(chunk)
                if src.read(1):
                    raise PackError(f"{label} is too large to unpack: {info.filename!r} goes on past the "
                                    f"{header.file_size:,} bytes its header declares.")
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError) as e:
        raise PackError(f"{label} is damaged: {info.filename!r} cannot be read ({e}).") from None


def _check_manifest(manifest, members: dict, label: str) -> list[str]:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise PackError(f"{label} is not a resnet_viz lecture pack (its {MANIFEST} names no such format).")
    version = manifest.get("version")
    if not isinstance(version, int) or version < 1:
        raise PackError(f"{label} is damaged: its {MANIFEST} has no valid version.")
    if version > VERSION:
        raise PackError(f"{label} was made by a newer resnet_viz (pack version {version}); update resnet_viz to "
                        f"unpack it.")
    run_ids = manifest.get("runs")
    if (not isinstance(run_ids, list) or not all(isinstance(i, str) and RUN_ID_RE.match(i) for i in run_ids)
            or len(set(run_ids)) != len(run_ids)):
        raise PackError(f"{label} is damaged: its {MANIFEST} does not list valid run ids.")
    folders = {name.split("/")[0] for name in members}
    if folders != set(run_ids):
        raise PackError(f"{label} is damaged: its {MANIFEST} lists other runs than the files it holds.")
    for run_id in run_ids:
        missing = [n for n in JSON_FILES if f"{run_id}/{n}" not in members]
        if missing:
            raise PackError(f"{label} is damaged: run {run_id} has no {missing[0]}.")
    return run_ids


def _check_json(archive, members: dict, run_id: str, label: str, limits: PackLimits) -> _Incoming:
    """A run's config.json and status.json, read (capped) and checked as the store checks them, and more: its id,
    a valid config, finished training. Nothing is written."""
    where = f"Run {run_id} in {label if label != UNNAMED else 'this file'}"
    meta, status = (_read_json(archive, members[f"{run_id}/{name}"], label, limits) for name in JSON_FILES)
    if not isinstance(meta, dict) or meta.get("id") != run_id or not isinstance(meta.get("name", ""), str) \
            or not isinstance(meta.get("created", 0), (int, float)):
        raise PackError(f"{where} is damaged: its config.json does not have a run's shape.")
    if not isinstance(status, dict) or status.get("status") not in STATUSES or status["status"] == "running" \
            or not isinstance(status.get("step", 0), int):
        raise PackError(f"{where} is damaged: its status.json does not say how its training ended.")
    try:  # the store's own checks (run_checks), and a config that parses
        check_meta(meta)
        check_status(status)
        config = RunConfig.from_dict(meta["config"])
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as e:
        raise PackError(f"{where} is damaged: its config or status cannot be read ({e}).") from None
    try:
        config.validate()
    except ConfigError as e:
        raise PackError(f"{where} has a config that cannot be used: {e}") from None
    except Exception:  # values of the wrong types, and the like
        raise PackError(f"{where} is damaged: its config.json does not have a run's shape.") from None
    return _Incoming(run_id, where, config, {CHECKPOINT_FILE: checkpoint_cap(config),
                                             "metrics.safetensors": metrics_cap(config)})


def _check_run(staging: RunStore, run_id: str, where: str) -> None:
    """Once extracted: the run reads as the store reads it, and its safetensors files parse (safetensors holds raw
    tensors, never pickles)."""
    try:
        run = staging.get(run_id)
    except RunStoreError as e:  # the store's reader says what is wrong
        raise PackError(f"{where} is damaged: {e}") from None
    try:
        metrics = run.metrics
    except RunStoreError:
        raise PackError(f"{where} is damaged: its metrics.safetensors is not a safetensors file.") from None
    if metrics and (metrics.get("loss") is None or metrics["loss"].ndim != 1):
        raise PackError(f"{where} is damaged: its metrics have no per-step loss.")
    if run.has_checkpoint:
        try:
            checkpoint_keys(run.checkpoint_path)
        except Exception:
            raise PackError(f"{where} is damaged: its {CHECKPOINT_FILE} is not a safetensors file.") from None


def _move_in(store: RunStore, staging: Path, run_ids: list[str], rename_clashes: bool) -> Unpacked:
    result = Unpacked()
    for run_id in run_ids:
        target = run_id
        if (store.root / run_id).exists():
            if not rename_clashes:
                result.skipped.append(run_id)
                continue
            target = f"{run_id[:100]}-copy-{uuid.uuid4().hex[:6]}"
            meta_path = staging / run_id / "config.json"
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            atomic_write_json(meta_path, dict(meta, id=target), what=f"the config of run {target}")
        try:
            os.rename(staging / run_id, store.root / target)  # fails rather than replace a run's folder
        except OSError:
            result.skipped.append(run_id)
            continue
        result.added.append((run_id, target))
    return result
