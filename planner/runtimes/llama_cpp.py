"""llama.cpp's llama-server: GGUF on CPU, CUDA, ROCm, Metal, Vulkan; layer offload, MoE expert offload.

Rules (facts in data/runtimes.yaml `llama.cpp`):
- `-ngl N` puts N repeating layers (N = layers + 1: all, with the output layer) on the GPU(s);
  `-sm layer` splits layers over several GPUs, `-sm none` keeps one GPU (pinned by environment).
- MoE expert offload: `--n-cpu-moe N` keeps the expert tensors of the first N layers in RAM while
  attention, shared weights and the KV cache stay on the GPU (`-ngl` all layers).
- Beyond the native window: `--rope-scaling yarn --rope-scale F --yarn-orig-ctx N` (the settings
  the model cards give for llama.cpp).
- A local or converted file is loaded with `-m PATH`; a catalogued one with `-hf REPO:QUANT`.
"""

from __future__ import annotations

from typing import Any

from ..catalog import ModelSpec
from .base import Launch, LaunchRequest, Runtime, Step
from .render import finish


def model_source(req: LaunchRequest) -> str:
    """catalog | local | convert (the artifact's origin; catalog entries carry none)."""
    return getattr(req.artifact, "source", None) or "catalog"


class LlamaCpp(Runtime):
    id = "llama.cpp"
    moe_offload = True

    def rope_args(self, model: ModelSpec, context: int) -> tuple[str, ...] | None:
        if context <= model.context_length:
            return ()
        y = self.yarn(model)
        return ("--rope-scaling", "yarn", "--rope-scale", f"{y['factor']:g}",
                "--yarn-orig-ctx", str(y["original_max_position_embeddings"]))

    def concurrency_values(self, req: LaunchRequest) -> dict[str, Any]:
        """N users: -np N slots and -c the total of their contexts (the slots split -c)."""
        n = req.estimate.batch
        return {"context": req.estimate.context * n, "parallel": n} if n > 1 else {}

    def gpu_layers(self, req: LaunchRequest) -> int:
        p = req.placement
        if p.kind == "cpu":
            return 0
        if p.kind == "partial-offload":
            return p.gpu_layers or 0
        return req.estimate.layers + 1  # every repeating layer and the output layer

    def values(self, req: LaunchRequest) -> dict[str, Any]:
        v = self.base_values(req)
        if model_source(req) in ("local", "convert"):
            v.update(model_flag="-m", model_ref=getattr(req.artifact, "path", None) or req.artifact.file)
        else:
            v.update(model_flag="-hf", model_ref=f"{req.artifact.repo}:{req.quant}")
        v["gpu_layers"] = self.gpu_layers(req)
        p = req.placement
        several = len([g for g in req.machine.gpus if not g.mig_instance]) > 1
        if p.kind == "multi-gpu":
            v["split_mode"] = "layer"
        elif p.gpus and several and p.kind in ("gpu", "moe-offload"):
            v["split_mode"] = "none"
        if p.kind == "moe-offload":
            v["n_cpu_moe"] = p.moe_cpu_layers
        return v

    def argv_env(self, req: LaunchRequest) -> tuple[list[str], dict[str, str]]:
        argv, env = self.fill(self.values(req))
        argv += list(self.rope_args(req.model, req.estimate.context) or ())
        env.update(self.pin_env(req))
        return argv, env

    def launch(self, req: LaunchRequest) -> Launch:
        argv, env = self.argv_env(req)
        return finish(self, req, [Step("server", tuple(argv), env)])


RUNTIME = LlamaCpp
