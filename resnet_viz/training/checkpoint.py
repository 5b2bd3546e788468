"""A run's checkpoint: its file name, what it keeps beside the weights so that training can go on exactly where it
stopped, and the one place it is read back (the weights for a model, the whole training state to continue from, or
just its table of contents).

checkpoint.safetensors (CHECKPOINT_FILE) holds the model's state_dict (weights and BatchNorm statistics) and,
under "trainer/":

    trainer/momentum/<parameter name>  SGD's momentum buffer of each parameter
    trainer/generator                  the state (uint8) of the generator that draws each epoch's order and the
                                       augmentations
    trainer/epoch_perm                 the current epoch's order, when the run stopped inside an epoch

and in its metadata `step` (steps trained), `generator_device` (a generator's state only fits its own kind of
device) and, with an epoch order, `perm_start` (the step that order began at). Checkpoints written before this
format have the weights only. `storage.writer.RunWriter.write_checkpoint` writes it.

torch is only named in annotations here: the run store (which imports this module) stays torch-free on import.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import RunStoreError

if TYPE_CHECKING:
    import torch

CHECKPOINT_FILE = "checkpoint.safetensors"  # in each run's folder
TRAINING_STATE_PREFIX = "trainer/"  # checkpoint keys that are not the model's: momentum, data order
MOMENTUM = TRAINING_STATE_PREFIX + "momentum/"
GENERATOR = TRAINING_STATE_PREFIX + "generator"
EPOCH_PERM = TRAINING_STATE_PREFIX + "epoch_perm"


def training_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, generator: torch.Generator, step: int,
                   perm: torch.Tensor | None, perm_start: int, steps_per_epoch: int
                   ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and metadata that `RunWriter.write_checkpoint` stores beside the weights after `step` steps."""
    name_of = {p: n for n, p in model.named_parameters()}
    tensors = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            buffer = optimizer.state.get(p, {}).get("momentum_buffer")
            if buffer is not None:
                tensors[MOMENTUM + name_of[p]] = buffer
    tensors[GENERATOR] = generator.get_state()
    metadata = {"step": str(step), "generator_device": generator.device.type}
    if perm is not None and step < perm_start + steps_per_epoch:  # the epoch's order was drawn, not all used
        tensors[EPOCH_PERM] = perm
        metadata["perm_start"] = str(perm_start)
    return tensors, metadata


@dataclass
class SavedTraining:
    """A checkpoint as read back: the weights and whatever training state it has."""
    weights: dict[str, torch.Tensor]
    step: int | None = None  # None: an older checkpoint that does not say
    momentum: dict[str, torch.Tensor] = field(default_factory=dict)
    generator_state: torch.Tensor | None = None
    generator_device: str | None = None
    epoch_perm: torch.Tensor | None = None
    perm_start: int | None = None

    @property
    def has_training_state(self) -> bool:
        return self.step is not None and bool(self.momentum) and self.generator_state is not None


def read_checkpoint(path: Path) -> SavedTraining:
    """Read a checkpoint (on the CPU). Raises RunStoreError, in one sentence, for a missing or unreadable file."""
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        saved = SavedTraining(weights={k: v for k, v in tensors.items() if not k.startswith(TRAINING_STATE_PREFIX)})
        if "step" in meta:
            saved.step = int(meta["step"])
        saved.momentum = {k[len(MOMENTUM):]: v for k, v in tensors.items() if k.startswith(MOMENTUM)}
        saved.generator_state = tensors.get(GENERATOR)
        saved.generator_device = meta.get("generator_device")
        if EPOCH_PERM in tensors:
            saved.epoch_perm, saved.perm_start = tensors[EPOCH_PERM], int(meta["perm_start"])
    except FileNotFoundError as e:
        raise RunStoreError(f"{path.parent.name} has no checkpoint to continue from.") from e
    except Exception as e:  # a torn or foreign file
        raise RunStoreError(f"The checkpoint of {path.parent.name} cannot be read ({e}).") from e
    if saved.step is not None and saved.step < 0 or saved.perm_start is not None and saved.perm_start < 0:
        raise RunStoreError(f"The checkpoint of {path.parent.name} names a negative step.")
    return saved


def read_weights(path: Path, device="cpu") -> dict[str, torch.Tensor]:
    """The model's state_dict from a checkpoint, on `device`, without the training state. Raises what safetensors
    raises for a missing or unreadable file: the caller says which run."""
    from safetensors import safe_open
    with safe_open(str(path), framework="pt", device=str(device)) as f:
        return {k: f.get_tensor(k) for k in f.keys() if not k.startswith(TRAINING_STATE_PREFIX)}


def checkpoint_keys(path: Path) -> list[str]:
    """The names of the tensors a checkpoint holds, from its header alone (no tensor is read). Raises what
    safetensors raises for a file that is not a safetensors file."""
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        return list(f.keys())
