"""How large a run's files can be, judged from its config alone; and safetensors headers, which declare the size of
everything behind them, read and checked against that before the bytes behind them are. A lecture pack is refused
by these numbers before it inflates (resnet_viz.storage.packs).

- A checkpoint holds exactly the model's state_dict (weights, BatchNorm statistics), SGD momentum for each
  parameter, the data generator's state and, mid-epoch, that epoch's order of the training images
  (resnet_viz.training.checkpoint).
- The curves hold a few numbers per step, a row of per-layer gradient norms per recorded step, a row of branch
  ratios per probe and a few numbers per evaluation (resnet_viz.training.metric_log); a run's steps follow from its epochs,
  batch size and subset (or max_steps).

The model is built on PyTorch's meta device, so sizing even a ResNet-1202 costs no memory.

A safetensors file is 8 bytes (little-endian: the header's length), a JSON header giving each tensor's dtype, shape
and byte range (and string metadata), then the tensors' bytes: its whole size is known from its first bytes.
"""
from __future__ import annotations

import functools
import json
import math
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from ..training.checkpoint import EPOCH_PERM, GENERATOR, MOMENTUM
from ..config import ModelConfig, RunConfig, TrainConfig

DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
               "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
TORCH_DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16",
                torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8", torch.bool: "BOOL"}
HEADER_BYTES = 1 << 20  # names, shapes, byte ranges and string metadata (a checkpoint keeps its config): kilobytes
MAX_TRAIN_IMAGES = 1_000_000  # twenty times CIFAR-10's training set: the most images a run is taken to train on
GENERATOR_STATE_BYTES = 1 << 16  # a CPU generator's state is 5,056 bytes, a CUDA one's 16
PER_STEP_ARRAYS = 4  # step, loss, batch error, lr
PER_EVAL_ARRAYS = 6  # eval_step, train and test loss and error, eval_time
NUMBER_BYTES = 8  # the writers keep float32 and int64; a cap allows 8 bytes for every number


@dataclass(frozen=True)
class Header:
    """A safetensors header as declared: the file's size follows from it."""
    json_bytes: int
    tensors: dict[str, tuple[str, tuple[int, ...]]]  # name: (dtype, shape)
    metadata: dict[str, str]
    data_bytes: int

    @property
    def file_size(self) -> int:
        return 8 + self.json_bytes + self.data_bytes


def read_header(read: Callable[[int], bytes], max_header: int = HEADER_BYTES) -> tuple[Header, bytes]:
    """Read a safetensors header from `read(n)` (a stream at the file's start) and check that it describes a valid
    file: known dtypes, byte ranges that match the shapes and follow one another without gaps or overlaps. Returns
    the header and its raw bytes (to be written before the data). Raises ValueError saying what is wrong."""
    prefix = _read_exactly(read, 8)
    if len(prefix) < 8:
        raise ValueError("it ends before its header")
    length = int.from_bytes(prefix, "little")
    if length < 2:
        raise ValueError("its header is empty")
    if length > max_header:
        raise ValueError(f"its header would be {length:,} bytes, more than a run's file needs ({max_header:,})")
    raw = _read_exactly(read, length)
    if len(raw) < length:
        raise ValueError("it ends inside its header")
    try:
        entries = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ValueError("its header is not JSON") from None
    if not isinstance(entries, dict):
        raise ValueError("its header is not a JSON object")
    metadata = entries.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ValueError("its metadata are not text")
    tensors, spans = {}, []
    for name, entry in entries.items():
        if not isinstance(entry, dict):
            raise ValueError(f"its entry {name!r} is not an object")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if dtype not in DTYPE_BYTES:
            raise ValueError(f"{name!r} has the unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(_whole(n) for n in shape):
            raise ValueError(f"{name!r} has no valid shape")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(_whole(n) for n in offsets) \
                or offsets[1] - offsets[0] != math.prod(shape) * DTYPE_BYTES[dtype]:
            raise ValueError(f"{name!r}'s byte range does not match its shape")
        tensors[name] = (dtype, tuple(shape))
        spans.append((offsets[0], offsets[1]))
    end = 0
    for begin, stop in sorted(spans):
        if begin != end:
            raise ValueError("its tensors' byte ranges leave gaps or overlap")
        end = stop
    return Header(length, tensors, metadata, end), prefix + raw


def _read_exactly(read: Callable[[int], bytes], n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = read(min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _whole(n) -> bool:
    return isinstance(n, int) and not isinstance(n, bool) and n >= 0


# ------------------------------------------------------------------------------------------------ checkpoints ----
@dataclass(frozen=True)
class ModelSizes:
    required: dict[str, tuple[str, tuple[int, ...]]]  # a checkpoint's tensors: the model's state_dict
    momentum: dict[str, tuple[str, tuple[int, ...]]]  # those it may hold besides: each parameter's momentum
    layers: int  # weight layers: the columns of the gradient norms
    blocks: int  # residual blocks: the columns of the branch ratios


def model_sizes(model_cfg: ModelConfig) -> ModelSizes:
    return _model_sizes(tuple(sorted(asdict(model_cfg).items())))


# A pack holds a few models, each asked about three times; depth 1202 took ~1 s (2-core AMD EPYC VM, 2026-12-07).
@functools.lru_cache(maxsize=16)
def _model_sizes(fields: tuple) -> ModelSizes:
    from ..analyses.probes import branch_ratio_names
    from ..nets.models import build_model, weight_layers
    with torch.device("meta"):
        model = build_model(ModelConfig(**dict(fields)))
    return ModelSizes(required={k: (TORCH_DTYPES[v.dtype], tuple(v.shape)) for k, v in model.state_dict().items()},
                      momentum={MOMENTUM + k: (TORCH_DTYPES[p.dtype], tuple(p.shape))
                                for k, p in model.named_parameters()},
                      layers=len(weight_layers(model)), blocks=len(branch_ratio_names(model)))


def max_train_images(tc: TrainConfig) -> int:
    return min(tc.subset, MAX_TRAIN_IMAGES) if tc.subset else MAX_TRAIN_IMAGES


def checkpoint_cap(config: RunConfig) -> int:
    """The most bytes the checkpoint of a run of this config can take."""
    sizes = model_sizes(config.model)
    tensors = sum(_nbytes(dtype, shape) for dtype, shape in (*sizes.required.values(), *sizes.momentum.values()))
    return 8 + HEADER_BYTES + tensors + GENERATOR_STATE_BYTES + 8 * max_train_images(config.train)


def checkpoint_mismatch(header: Header, config: RunConfig) -> str | None:
    """None when the header declares a checkpoint of this config's model (and training state for it); otherwise
    the first tensor that does not fit, or is missing."""
    required, momentum = model_sizes(config.model).required, model_sizes(config.model).momentum
    for name, (dtype, shape) in header.tensors.items():
        if name in required or name in momentum:
            if (dtype, shape) != (required.get(name) or momentum[name]):
                return name
        elif name == GENERATOR:
            if dtype != "U8" or len(shape) != 1 or shape[0] > GENERATOR_STATE_BYTES:
                return name
        elif name == EPOCH_PERM:
            if dtype != "I64" or len(shape) != 1 or shape[0] > max_train_images(config.train):
                return name
        else:
            return name
    return next((name for name in required if name not in header.tensors), None)


def _nbytes(dtype: str, shape: tuple[int, ...]) -> int:
    return math.prod(shape) * DTYPE_BYTES[dtype]


# ----------------------------------------------------------------------------------------------------- curves ----
def max_steps(tc: TrainConfig) -> int:
    """The most steps a run of this training config can record: its epochs at the largest number of steps per
    epoch its subset (or MAX_TRAIN_IMAGES) allows, or its max_steps."""
    per_epoch = max(1, max_train_images(tc) // tc.batch_size)
    total = max(1, round(tc.epochs * per_epoch))
    return min(total, tc.max_steps) if tc.max_steps else total


def metrics_cap(config: RunConfig) -> int:
    """The most bytes the curves of a run of this config can take."""
    tc, sizes = config.train, model_sizes(config.model)
    steps = max_steps(tc)
    layers = sizes.layers
    blocks = sizes.blocks if tc.branch_ratio_every else 0
    grad_rows = -(-steps // tc.grad_norm_every)
    probe_rows = -(-steps // tc.branch_ratio_every) if blocks else 0
    numbers = (PER_STEP_ARRAYS * steps + grad_rows * (1 + layers) + probe_rows * (1 + blocks)
               + PER_EVAL_ARRAYS * (steps + 1))
    return 8 + HEADER_BYTES + NUMBER_BYTES * numbers


def metrics_mismatch(header: Header, config: RunConfig) -> str | None:
    """None when the curves the header declares are no longer than a run of this config records; otherwise what
    is too long."""
    steps = max_steps(config.train)
    for name, (_dtype, shape) in header.tensors.items():
        if shape and shape[0] > steps + 1:
            return f"{name!r} holds {shape[0]:,} rows, more than the {steps:,} steps its config allows"
    return None
