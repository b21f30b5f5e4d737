"""Launch commands: each runtime's module builds its steps (argv + env); render.py writes them
for the machine's shell. This module only assembles the request."""

from __future__ import annotations

from .catalog import Artifact, ModelSpec, RuntimeSpec
from .fit import Placement
from .hardware import Machine
from .memory import MemoryEstimate
from .runtimes import Launch, LaunchRequest, Options, Step, get

__all__ = ["Launch", "Step", "command"]


def command(model: ModelSpec, quant: str, art: Artifact, est: MemoryEstimate, placement: Placement,
            runtime: RuntimeSpec, kv_cache_type: str | None = None, *, machine: Machine,
            options: Options = Options()) -> Launch:
    """The commands that start `runtime` with this plan on `machine` (argv + env per step)."""
    req = LaunchRequest(model=model, quant=quant, artifact=art, estimate=est, placement=placement, machine=machine,
                        kv_cache_type=kv_cache_type, options=options)
    return get(runtime).launch(req)


def loads_local_path(runtime_id: str) -> bool:
    """Whether `runtime_id` can launch a model file already on this disk (a local artifact)."""
    from .runtimes import Runtime, modules

    return bool(modules().get(runtime_id, Runtime).loads_local_files)
