"""Serving N users at once: memory for N sequences, batched decode speed, and the largest load.

A decode step of a batch of N sequences reads the weights once for all of them and each
sequence's own KV cache, and does N tokens' worth of matrix products:

    t(N) = max( t_mem(N), t_compute(N) )                                   (roofline)
    t_mem(N)     = W(N) + N x KV(fill)  over the placement's effective bandwidth, plus the fixed
                   per-layer and per-step costs of speed.seconds_per_token
    t_compute(N) = N x 2 x parameters used per token / (efficiency x dense BF16 FLOP/s x GPUs)
    per-user tokens/s = 1 / t(N);   aggregate tokens/s = N / t(N)

W(N): dense weights are read once per step; a MoE layer reads the experts the batch routes to,
E x (1 - (1 - k/E)^N) of its E experts when k of E are picked per token, uniformly and
independently (the expected number of distinct experts; real routing is skewed, so this is an
upper bound on what is read). `efficiency` is the share of the dense BF16 peak the batched decode
kernels reach: data/constants.yaml `serving.compute_efficiency` per runtime class and hardware
class, with its sources; where no batched run was published, the class's prefill efficiency.

Prompt processing of arriving requests is not counted (it takes turns with decode in every
runtime's scheduler): measure a running server with `plan-deploy bench --concurrency`.

CPU, partial-offload and MoE-offload placements: no batched-decode figure for CPUs is in our
sources, so no gain from batching is assumed there (the aggregate stays the single-stream speed,
shared by N users): a cautious floor.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from .catalog import Architecture, Catalog, ModelSpec, RuntimeSpec
from .fit import Placement
from .hardware import Machine
from .memory import MemoryEstimate, tensor_groups
from .speed import Speed, decode_bytes, decode_constants, gpu_class, seconds_per_token

ON_GPU = ("gpu", "unified", "multi-gpu")


@dataclass(frozen=True, slots=True)
class Serving:
    """A plan's figures at `concurrency` users decoding at once.

    per_user: tokens/s each user sees (low: every context full; expected: half full; high: empty).
    aggregate_tokens_per_s: expected per-user x concurrency. max_concurrency: sequences of the plan's
    context the memory holds (None where not computed: offload placements). batching: how the runtime
    serves them. bound: what limits the expected step, "memory bandwidth" or "compute".
    """

    concurrency: int
    per_user: Speed
    aggregate_tokens_per_s: float
    max_concurrency: int | None
    batching: str
    bound: str
    basis: str = ""

    @property
    def per_user_tokens_per_s(self) -> float:
        return self.per_user.expected

    def to_dict(self) -> dict:
        return {"concurrency": self.concurrency, "per_user_tokens_per_s": self.per_user.to_dict(),
                "aggregate_tokens_per_s": round(self.aggregate_tokens_per_s, 0),
                "max_concurrency": self.max_concurrency, "batching": self.batching, "bound": self.bound,
                "basis": self.basis}


def batch_read_fraction(arch: Architecture, n: int) -> float:
    """Share of the weights a decode step of `n` sequences reads: every dense tensor; of each MoE
    layer's routed experts the expected distinct share 1 - (1 - k/E)^n (uniform routing); one
    embedding row per token when the embeddings are untied (negligible: counted as 0)."""
    return _batch_read_fraction(arch, max(1, int(n)))


@functools.lru_cache(maxsize=1024)
def _batch_read_fraction(arch: Architecture, n: int) -> float:
    total = read = 0.0
    for g in tensor_groups(arch):
        total += g.params
        if g.cls == "embed" and not arch.tied_embeddings:
            continue
        if g.expert and arch.moe is not None:
            read += g.params * (1 - (1 - arch.moe.experts_per_token / arch.moe.experts) ** n)
        else:
            read += g.params
    return read / total if total else 1.0


def compute_efficiency(catalog: Catalog, runtime: RuntimeSpec, hw: str) -> tuple[float | None, str]:
    """(share of the dense BF16 peak batched decode reaches, where the figure comes from)."""
    from .runtimes import get

    cls = get(runtime).speed_class
    table = catalog.constants.get("serving", {}).get("compute_efficiency", {})
    eff = (table.get(cls) or {}).get(hw)
    if eff is not None:
        return float(eff), f"batched decode {cls}/{hw}"
    pre = catalog.constants["speed"]["prefill_efficiency"].get(hw)
    return (float(pre) if pre else None), f"prefill efficiency {hw} (no batched-decode run for {cls})"


def max_concurrency(est: MemoryEstimate, placement: Placement) -> int | None:
    """Sequences of `est.context` tokens the placement's memory holds: what the weights and fixed
    costs leave, over one sequence's KV cache (and recurrent state). vLLM logs the same figure at
    start-up ("Maximum concurrency for C tokens per request"). None for offload placements."""
    if placement.kind not in ON_GPU + ("cpu",) or est.kv_cache_bytes <= 0:
        return None
    per_seq = est.kv_cache_bytes / max(1, est.batch)
    fixed = placement.required_bytes - est.kv_cache_bytes  # weights and fixed costs (per GPU where split)
    return max(0, int((placement.available_bytes - fixed) // per_seq))


def estimate(est: MemoryEstimate, model: ModelSpec, placement: Placement, machine: Machine, runtime: RuntimeSpec,
             catalog: Catalog, n: int, single: Speed | None, batching: str) -> Serving | None:
    """Per-user and aggregate decode tokens/s with `n` sequences at once (see the module's formula);
    None when the single-stream speed is unknown."""
    if single is None:
        return None
    cap = max_concurrency(est, placement)
    if placement.kind not in ON_GPU:
        per = Speed(low=single.low / n, expected=single.expected / n, high=single.high / n)
        return Serving(concurrency=n, per_user=per, aggregate_tokens_per_s=single.expected, max_concurrency=cap,
                       batching=batching, bound="CPU (no batching gain assumed)", basis=single.basis)
    gpus = {g.index: g for g in machine.gpus}
    used = [gpus[i] for i in placement.gpus if i in gpus]
    hw = gpu_class(used[0], catalog)
    k = decode_constants(catalog, runtime, hw)
    tp = placement.tensor_parallel or 1
    bw = min(g.memory_bandwidth_bytes_per_s or 0 for g in used)
    if tp > 1:
        bw = bw * tp * catalog.constants["speed"]["tensor_parallel_scaling"]
    mf = catalog.constants["speed"]["moe_efficiency_factor"] if model.is_moe else 1.0
    # Compute: dense BF16 peak (measured effective figure for Apple chips, efficiency 1).
    measured = min((g.prefill_tflops or 0) for g in used)
    if measured:
        flops, eff, how = measured * 1e12 * tp, 1.0, "measured prompt-processing FLOP/s"
    else:
        flops = min((g.bf16_tflops or 0) for g in used) * 1e12 * tp
        eff, how = compute_efficiency(catalog, runtime, hw)
    grow = batch_read_fraction(model.arch, n) / batch_read_fraction(model.arch, 1)
    out: dict[str, float] = {}
    bound = "memory bandwidth"
    for name, fill in (("low", 1.0), ("expected", 0.5), ("high", 0.0)):
        w, kv = decode_bytes(est, model, fill)
        t_mem = seconds_per_token(w * grow + n * kv, bw, est.layers, k, mf)
        t = t_mem
        if flops and eff:
            t_comp = n * 2 * model.decode_params / (eff * flops)
            if t_comp > t_mem:
                t = t_comp
                if name == "expected":
                    bound = "compute"
        out[name] = 1.0 / t
    per = Speed(low=min(out["low"] * k["low"], out["expected"]), expected=out["expected"],
                high=max(out["high"] * k["high"], out["expected"]))
    return Serving(concurrency=n, per_user=per, aggregate_tokens_per_s=per.expected * n, max_concurrency=cap,
                   batching=batching, bound=bound, basis=f"{single.basis}; compute: {how}")
