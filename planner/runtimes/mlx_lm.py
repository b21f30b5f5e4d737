"""MLX-LM's `mlx_lm.server`: MLX models on Apple Silicon (unified memory).

Rules (facts in data/runtimes.yaml `mlx-lm`): the server sizes its KV cache per request (no
context flag); no RoPE/YaRN setting is exposed, so contexts beyond the native window are refused.
"""

from __future__ import annotations

from .base import Launch, LaunchRequest, Runtime, Step
from .render import finish


class MlxLm(Runtime):
    id = "mlx-lm"

    def launch(self, req: LaunchRequest) -> Launch:
        values = self.base_values(req)
        values.update(mlx_repo=req.artifact.repo, kv_cache_type=None)
        argv, env = self.fill(values)
        return finish(self, req, [Step("server", tuple(argv), env)])


RUNTIME = MlxLm
