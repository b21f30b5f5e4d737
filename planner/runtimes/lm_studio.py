"""LM Studio's `lms` CLI: GGUF (and MLX on Apple Silicon) models, downloaded then loaded.

Rules (facts in data/runtimes.yaml `lm-studio`):
- x86-64 CPUs need AVX2 (LM Studio's system requirements).
- `lms get` reads `owner/name` as an LM Studio Hub artifact: a Hugging Face model is fetched by
  its full URL (https://huggingface.co/owner/name), the quantization chosen with `@quant`.
- `lms load --gpu off|max|0..1` sets the offload ratio; `--context-length` the context.
- No RoPE/YaRN setting is exposed: contexts beyond the native window are refused.
"""

from __future__ import annotations

from ..hardware import Machine
from .base import Launch, LaunchRequest, Runtime, Step
from .render import finish


class LmStudio(Runtime):
    id = "lm-studio"
    loads_local_files = False  # models live in LM Studio's own folder; plans fetch them with `lms get`

    def machine_reason(self, machine: Machine) -> str | None:
        if machine.cpu.arch == "x86_64" and machine.cpu.flags and "avx2" not in machine.cpu.flags:
            return "LM Studio needs a CPU with AVX2"
        return super().machine_reason(machine)

    def launch(self, req: LaunchRequest) -> Launch:
        p, est = req.placement, req.estimate
        if p.kind == "cpu":
            ratio = "off"
        elif p.kind == "partial-offload":
            ratio = f"{(p.gpu_layers or 0) / est.layers:.2f}"
        else:
            ratio = "max"
        values = self.base_values(req)
        url = self.spec.rules.get("hf_url_prefix", "https://huggingface.co/") + req.artifact.repo
        values.update({"lms_model": req.artifact.repo, "lms_url": url, "lms_quant": req.quant.lower(),
                       "gpu_ratio": ratio})
        argv, env = self.fill(values)
        pre, _ = self.fill(values, key="pre")
        env.update(self.pin_env(req))
        return finish(self, req, [Step("prepare", tuple(pre)), Step("server", tuple(argv), env)])


RUNTIME = LmStudio
