"""Which executor an ExecutorKind names: the one place a new executor is registered (see `resnet_viz.execution.executors`)."""
from __future__ import annotations

from ..errors import ConfigError
from .executors import Executor, ExecutorKind
from .local import LocalExecutor
from .ray_cluster import RayExecutor


def make_executor(kind: ExecutorKind | str, ray_address: str | None = None, ray_cpus: int | None = None,
                  processes: bool = False, reserve_cores: int = 0) -> Executor:
    """`processes`, `reserve_cores`: for the local executor (each run in a child process; cores left free)."""
    kind = ExecutorKind.parse(kind, "The executor")
    if kind is ExecutorKind.LOCAL:
        if ray_address:
            raise ConfigError("--ray-address needs --executor ray.")
        return LocalExecutor(processes=processes, reserve_cores=reserve_cores)
    if kind is ExecutorKind.RAY:
        return RayExecutor(ray_address, ray_cpus)
    raise ConfigError(f"No executor is registered for {kind.value!r}.")
