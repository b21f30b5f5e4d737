"""vLLM: safetensors/AWQ/GPTQ/FP8 models on NVIDIA and AMD GPUs, tensor parallel, paged KV pool.

Rules (facts with sources in data/runtimes.yaml `vllm`, under `rules` and `memory`):
- It claims a share of each GPU's total memory (--gpu-memory-utilization) up front and fills what
  weights, activations, CUDA graphs and the sampler leave with KV cache.
- FP8 checkpoints: W8A8 from compute capability 8.9; from 7.5 (Turing, Ampere) as weight-only
  W8A16 through the FP8-Marlin kernels (vllm#5975, docs quantization/fp8). ROCm: FP8 only on the
  architectures its rocm platform's `supports_fp8` lists (gfx94x, gfx95x, gfx12xx).
- dtype `auto` on a GPU without BF16 (compute capability < 8.0) resolves to float16, and to
  float32 for the model types vLLM keeps out of float16 (Gemma 2/3): twice the weight memory.
- Beyond the native window: YaRN through --hf-overrides; without it vLLM refuses a
  --max-model-len above max_position_embeddings.
- --enforce-eager: no CUDA graphs (less memory, slower decode).
"""

from __future__ import annotations

import json
from typing import Any

from ..catalog import Catalog, ModelSpec, QuantSpec
from ..hardware import Gpu
from .base import Launch, LaunchRequest, Options, Runtime, Step, cc_tuple, gpu_arch
from .render import finish


class Vllm(Runtime):
    id = "vllm"
    eager_flag = "--enforce-eager"

    # ------------------------------------------------------------ support

    def gpu_reason(self, gpu: Gpu, quant: QuantSpec | None = None) -> str | None:
        if gpu.vendor == "amd":
            arch = gpu_arch(gpu)
            allowed = self.spec.rules.get("amd_archs", [])
            if arch is not None and allowed and not any(arch.startswith(a) for a in allowed):
                return f"{self.id} on AMD supports {', '.join(allowed)}; {gpu.name} is {arch}"
        return super().gpu_reason(gpu, quant)

    def quant_reason(self, gpu: Gpu, quant: QuantSpec) -> str | None:
        if quant.id == "FP8" and gpu.vendor == "amd":
            arch = gpu_arch(gpu)
            fp8 = self.spec.rules.get("rocm_fp8_archs", [])
            if arch is None or not any(arch.startswith(a) for a in fp8):
                return (f"FP8 on {self.id} with ROCm needs one of {', '.join(fp8)}; {gpu.name} is "
                        f"{arch or 'an unknown architecture'}")
            return None
        if quant.id == "FP8" and gpu.vendor == "nvidia" and self.spec.rules.get("fp8_weight_only_min_cc"):
            need = self.spec.rules.get("fp8_weight_only_min_cc")
            have = cc_tuple(gpu.compute_capability)
            if need and have is not None and have < cc_tuple(need):
                return (f"FP8 on {self.id} needs compute capability {need} (weight-only FP8-Marlin); "
                        f"{gpu.name} has {gpu.compute_capability}")
            return None
        return super().quant_reason(gpu, quant)

    def quant_notes(self, gpus: list[Gpu], quant: QuantSpec) -> tuple[str, ...]:
        native = self.spec.rules.get("fp8_native_min_cc")
        if quant.id == "FP8" and native and any(
                g.vendor == "nvidia" and (cc_tuple(g.compute_capability) or (99, 0)) < cc_tuple(native) for g in gpus):
            return (f"FP8 runs weight-only (W8A16, FP8-Marlin kernels) below compute capability {native}: "
                    f"the memory of FP8, not its compute speed-up",)
        return ()

    def dtype(self, model: ModelSpec, quant: QuantSpec, gpus: list[Gpu]) -> str | None:
        """What `--dtype auto` becomes for a 16-bit checkpoint on these GPUs, when not bfloat16."""
        if quant.kind != "native" or quant.id != "BF16":
            return None
        no_bf16 = self.spec.rules.get("bf16_min_cc")
        if not no_bf16 or not any(g.vendor == "nvidia" and (cc_tuple(g.compute_capability) or (99, 0))
                                  < cc_tuple(no_bf16) for g in gpus):
            return None
        prefixes = self.spec.rules.get("float16_unsupported_models", [])
        return "float32" if any(model.id.startswith(p) for p in prefixes) else "float16"

    def weight_scale(self, model: ModelSpec, quant: QuantSpec, gpus: list[Gpu]) -> tuple[float, str | None]:
        dt = self.dtype(model, quant, gpus)
        if dt == "float16":
            return 1.0, f"{self.id} runs this BF16 checkpoint as float16: the GPU has no BF16"
        if dt == "float32":
            return 2.0, (f"{self.id} runs {model.id} as float32 on a GPU without BF16 (it keeps this model "
                         f"type out of float16): twice the weight memory")
        return 1.0, None

    # ------------------------------------------------------------ memory

    def gpu_share(self, options: Options) -> float | None:
        return options.gpu_memory_utilization or float(self.spec.memory["gpu_memory_utilization"])

    def gpu_budget(self, gpu: Gpu, options: Options, usable: int) -> tuple[int, float | None]:
        # The share is of the total; vLLM checks it against what is free at start-up, so the
        # driver's reserve must fit beside it.
        share = self.gpu_share(options)
        return min(int(gpu.memory_total_bytes * share), usable), share

    def batch_defaults(self, devices: tuple[Gpu, ...]) -> tuple[int, int]:
        """(max_num_batched_tokens, max_num_seqs) the server picks for the largest of `devices`:
        a tier by GPU memory, A100s kept on the smallest (data `memory.batch_defaults`)."""
        mem = self.spec.memory
        tokens, seqs = int(mem.get("max_num_batched_tokens", 2048)), int(mem.get("max_num_seqs", 0))
        tiers = mem.get("batch_defaults")
        if not tiers or not devices:
            return tokens, seqs
        g = max(devices, key=lambda d: d.memory_total_bytes)
        small = any(word in g.name.lower() for word in mem.get("batch_defaults_small_names", []))
        for from_bytes, t, n in tiers:
            if g.memory_total_bytes >= from_bytes and (not small or from_bytes == 0):
                tokens, seqs = int(t), int(n)
        return tokens, seqs

    def concurrency_limit(self, req: LaunchRequest) -> int | None:
        """max_num_seqs: the server's default for the plan's GPUs (`batch_defaults`)."""
        used = tuple(g for g in req.machine.gpus if g.index in req.placement.gpus)
        return self.batch_defaults(used)[1] or None

    def overhead_bytes(self, model: ModelSpec, catalog: Catalog, context: int, batch: int, gpu: bool,
                       options: Options, devices: tuple[Gpu, ...] = ()) -> int:
        """CUDA context + allocator slack + the profiling run's activations (one batch of
        max_num_batched_tokens) + CUDA graphs (unless eager) + the sampler's float32 logits for
        max_num_seqs requests (both defaults by GPU size)."""
        from ..memory import activation_bytes_per_token

        mem = self.spec.memory
        arch = model.arch
        total = int(mem.get("cuda_context_bytes", 0)) + int(mem.get("allocator_slack_bytes", 0)) if gpu else 0
        batched, seqs = self.batch_defaults(devices)
        total += activation_bytes_per_token(arch, catalog.constants) * min(batched, context)
        if not options.enforce_eager:
            total += int(mem.get("cuda_graph_bytes_per_layer", 0)) * arch.layers
        total += max(seqs, batch) * arch.vocab_size * 4  # --max-num-seqs raised to the planned load
        return total

    # ------------------------------------------------------------ context

    def rope_args(self, model: ModelSpec, context: int) -> tuple[str, ...] | None:
        if context <= model.context_length:
            return ()
        return ("--hf-overrides", json.dumps({"rope_scaling": self.yarn(model)}, separators=(",", ":")))

    # ------------------------------------------------------------ launch

    def values(self, req: LaunchRequest) -> dict[str, Any]:
        v = self.base_values(req)
        p = req.placement
        share = p.gpu_share if p.gpu_share is not None else self.gpu_share(req.options)
        v.update(hf_repo=getattr(req.artifact, "path", None) or req.artifact.repo,
                 gpu_util=f"{share:.2f}", tensor_parallel=p.tensor_parallel,
                 enforce_eager="" if req.options.enforce_eager else None)
        if v.get("kv_cache_type") == "auto":
            v["kv_cache_type"] = None
        return v

    def launch(self, req: LaunchRequest) -> Launch:
        argv, env = self.fill(self.values(req))
        argv = [a for a in argv if a != ""]
        argv += list(self.rope_args(req.model, req.estimate.context) or ())
        env.update(self.pin_env(req))
        notes = []
        if req.options.enforce_eager:
            notes.append("eager mode (no CUDA graphs): less memory, and decode slower than the estimate, which "
                         "assumes CUDA graphs")
        return finish(self, req, [Step("server", tuple(argv), env)], notes)


RUNTIME = Vllm
