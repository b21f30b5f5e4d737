"""SGLang: vLLM's rules where they agree (the module inherits them), its own where they differ.

- --mem-fraction-static is the share of each GPU for weights + KV pool only (ServerArgs help:
  "static allocation (model weights and KV cache memory pool)"); activations and CUDA-graph
  buffers live in the rest of the GPU (its memory hook reserves them there). The planning option
  --gpu-memory-utilization sets it; --cuda-graph-backend-decode/-prefill disabled is its eager mode (0.5.23 deprecates --disable-cuda-graph).
- AMD: Instinct parts only (the architectures in data `rules.amd_archs`).
- YaRN: --json-model-override-args with the model card's rope_scaling.
"""

from __future__ import annotations

import json

from ..catalog import ModelSpec
from .vllm import Vllm


class Sglang(Vllm):
    id = "sglang"

    def outside_share_bytes(self, est) -> int:
        return est.overhead_bytes

    def rope_args(self, model: ModelSpec, context: int) -> tuple[str, ...] | None:
        if context <= model.context_length:
            return ()
        return ("--json-model-override-args", json.dumps({"rope_scaling": self.yarn(model)}, separators=(",", ":")))


RUNTIME = Sglang
