"""Serving N users at once: memory for N sequences, batched decode speed, and the largest load.

A decode step of a batch of N sequences reads the weights once for all of them plus each
sequence's own KV cache, and does N tokens' worth of matrix products:

    t(N) = t_mem(N) + (N - 1) / (r x prefill tokens/s)
    t_mem(N) = (W x g(N) + N x KV(fill)) over the placement's effective bandwidth, plus the fixed
               per-layer and per-step costs (speed.seconds_per_token: the single-stream formula,
               so t(1) is exactly the single-user estimate)
    per-user tokens/s = 1 / t(N);   aggregate tokens/s = N / t(N)

The second term is the compute of the batch's extra tokens: the same matrix products prompt
processing runs, at a share `r` of the plan's prefill rate (small batches use the GPU less well
than a 512-2048-token prompt). r is data/constants.yaml `serving.batch_decode_ratio`, fitted by
scripts/calibrate_serving.py to llama.cpp's batched-bench runs (tests/data/batch_runs.yaml).
Memory and compute add rather than overlap: in llama.cpp's runs the step time grows steadily
with N from the first extra sequence on, not only past a roofline knee.

g(N): dense weights are read once per step; a MoE layer reads the experts the batch routes to,
E x (1 - (1 - k/E)^n) of its E experts when k of E are picked per token, uniformly and
independently (the expected number of distinct experts; inference-sim PR #790 uses the same
closed form for capacity planning). Tokens of one batch overlap in their experts more than
independent draws do, so n is an effective batch N^a, a = serving.moe_batch_exponent (0.54: fitted
to gpt-oss-20b's batched runs; gpt-oss-120b and Qwen3-Coder-30B-A3B held out).

Prompt processing of arriving requests is not counted (it takes turns with decode in every
runtime's scheduler): measure a running server with `plan-deploy bench --concurrency`.

CPU placements and GPUs without a prefill figure: no batched compute rate is known there, so no
gain from batching is assumed (the aggregate stays the single-stream speed, shared by N users): a
cautious floor. Partial-offload and MoE-offload placements split the step: the GPU's share batches
as above (its prefill rate is the GPU's for its share of the layers), the share read from RAM costs
N times its single-stream time (no gain assumed there either).
"""

from __future__ import annotations

from dataclasses import dataclass

from .catalog import Architecture, Catalog, ModelSpec, RuntimeSpec
from .fit import Placement
from .hardware import Machine
from .memory import MemoryEstimate
from .speed import Speed, _read_fraction, decode_bytes, decode_constants, gpu_class, seconds_per_token

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


def batch_read_fraction(arch: Architecture, n: int, exponent: float = 1.0) -> float:
    """Share of the weights a decode step of `n` sequences reads: every dense tensor; of each MoE
    layer's routed experts the expected distinct share 1 - (1 - k/E)^(n^exponent) (uniform routing
    over an effective batch); one embedding row per token when the embeddings are untied
    (negligible: counted as 0)."""
    return _read_fraction(arch, max(1.0, float(n) ** exponent))


def batch_decode_ratio(catalog: Catalog) -> float:
    """r: batched decode's compute rate per extra sequence as a share of the prefill rate
    (data/constants.yaml serving.batch_decode_ratio, fitted by scripts/calibrate_serving.py)."""
    return float(catalog.constants["serving"]["batch_decode_ratio"])


def moe_batch_exponent(catalog: Catalog) -> float:
    """a: a batch of N routes like N^a independent tokens (data/constants.yaml serving.moe_batch_exponent)."""
    return float(catalog.constants["serving"]["moe_batch_exponent"])


def step_seconds(t_single_mem: float, weight_bytes: float, kv_bytes: float, n: int, arch: Architecture,
                 seconds_per_byte: float, prefill_tokens_per_s: float | None, ratio: float,
                 exponent: float = 1.0) -> float:
    """Seconds per decode step of `n` sequences (see the module formula): the single-stream step
    time, plus the extra bytes n sequences read (more routed experts, n-1 more KV caches) at
    `seconds_per_byte`, plus (n-1) tokens of compute at `ratio` x the prefill rate."""
    grow = batch_read_fraction(arch, n, exponent) / batch_read_fraction(arch, 1)
    extra_bytes = weight_bytes * (grow - 1) + (n - 1) * kv_bytes
    compute = (n - 1) / (ratio * prefill_tokens_per_s) if prefill_tokens_per_s else 0.0
    return t_single_mem + extra_bytes * seconds_per_byte + compute


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
    prefill = single.prefill_tokens_per_s
    if placement.kind in ("partial-offload", "moe-offload"):
        split = _offload(est, model, placement, machine, runtime, catalog, n, single, batching, cap)
        if split is not None:
            return split
    if placement.kind not in ON_GPU or not prefill:
        why = {"cpu": "CPU", "partial-offload": "layers in RAM", "moe-offload": "experts in RAM"}.get(
            placement.kind, "no prefill figure for this GPU")
        per = Speed(low=single.low / n, expected=single.expected / n, high=single.high / n)
        return Serving(concurrency=n, per_user=per, aggregate_tokens_per_s=single.expected, max_concurrency=cap,
                       batching=batching, bound=f"{why}: no batching gain assumed", basis=single.basis)
    gpus = {g.index: g for g in machine.gpus}
    used = [gpus[i] for i in placement.gpus if i in gpus]
    hw = gpu_class(used[0], catalog)
    k = decode_constants(catalog, runtime, hw)
    tp = placement.tensor_parallel or 1
    bw = min(g.memory_bandwidth_bytes_per_s or 0 for g in used)
    if tp > 1:
        bw = bw * tp * catalog.constants["speed"]["tensor_parallel_scaling"]
    mf = catalog.constants["speed"]["moe_efficiency_factor"] if model.is_moe else 1.0
    per_byte = 1.0 / (k["efficiency"] * mf * bw)
    ratio = batch_decode_ratio(catalog)
    out: dict[str, float] = {}
    for name, fill in (("low", 1.0), ("expected", 0.5), ("high", 0.0)):
        w, kv = decode_bytes(est, model, fill)
        t1 = seconds_per_token(w + kv, bw, est.layers, k, mf)
        out[name] = 1.0 / step_seconds(t1, w, kv, n, model.arch, per_byte, prefill, ratio,
                                       moe_batch_exponent(catalog))
    w, kv = decode_bytes(est, model, 0.5)
    compute = (n - 1) / (ratio * prefill)
    bound = "compute" if compute > seconds_per_token(w + kv, bw, est.layers, k, mf) else "memory bandwidth"
    per = Speed(low=min(out["low"] * k["low"], out["expected"]), expected=out["expected"],
                high=max(out["high"] * k["high"], out["expected"]))
    return Serving(concurrency=n, per_user=per, aggregate_tokens_per_s=per.expected * n, max_concurrency=cap,
                   batching=batching, bound=bound, basis=f"{single.basis}; batched compute at {ratio:g} x prefill")


def _offload(est: MemoryEstimate, model: ModelSpec, placement: Placement, machine: Machine, runtime: RuntimeSpec,
             catalog: Catalog, n: int, single: Speed, batching: str, cap: int | None) -> Serving | None:
    """Partial / MoE offload at `n` users: the GPU's part batches (module formula, at the GPU's
    prefill rate for its share), the RAM part costs n x its single-stream time. None when the GPU
    has no bandwidth or FLOP/s figure (then the caller assumes no gain at all)."""
    from .speed import _prefill, cpu_class, offload_seconds, ram_bandwidth

    gpus = {g.index: g for g in machine.gpus}
    used = [gpus[i] for i in placement.gpus if i in gpus]
    bw = min((g.memory_bandwidth_bytes_per_s or 0) for g in used) if used else 0
    as_gpu = Placement(kind="gpu", required_bytes=0, available_bytes=0, device_bytes=0, host_bytes=0,
                       gpus=placement.gpus)
    whole = _prefill(model, as_gpu, used, catalog) if used else None
    if not bw or not whole:
        return None
    hw = gpu_class(used[0], catalog)
    k, k_cpu = decode_constants(catalog, runtime, hw), decode_constants(catalog, runtime, cpu_class(machine))
    ram_bw = ram_bandwidth(machine, catalog)
    mf = catalog.constants["speed"]["moe_efficiency_factor"] if model.is_moe else 1.0
    ratio, a = batch_decode_ratio(catalog), moe_batch_exponent(catalog)
    out: dict[str, float] = {}
    for name, fill in (("low", 1.0), ("expected", 0.5), ("high", 0.0)):
        w, kv = decode_bytes(est, model, fill)
        t_gpu, t_ram, share = offload_seconds(est, model, placement, machine, w, kv, bw, ram_bw, k, k_cpu, mf)
        prefill = whole / share if share > 0 else None
        t = step_seconds(t_gpu, w * share, kv * share, n, model.arch, 1.0 / (k["efficiency"] * mf * bw), prefill,
                         ratio, a) + n * t_ram
        out[name] = 1.0 / t
    per = Speed(low=min(out["low"] * k["low"], out["expected"]), expected=out["expected"],
                high=max(out["high"] * k["high"], out["expected"]))
    return Serving(concurrency=n, per_user=per, aggregate_tokens_per_s=per.expected * n, max_concurrency=cap,
                   batching=batching, bound="RAM part (no batching gain assumed there)",
                   basis=f"{single.basis}; GPU part batched at {ratio:g} x prefill")
