"""Decode and prefill speed: memory-bandwidth-bound decode, compute-bound prefill, with a range.

decode tokens/s = 1 / sum over memories of bytes read there per token / (efficiency x bandwidth)
  bytes per token = weights of the parameters used per token (MoE: routed experts in use; the
  token-embedding lookup reads one row, not the table) + the KV cache read at the context.
prefill tokens/s = efficiency x dense BF16 FLOP/s / (2 x parameters used per token)

Efficiencies per runtime class and hardware class come from published llama.cpp runs (see
data/constants.yaml `speed`), with a low/expected/high range.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from .catalog import Catalog, ModelSpec, RuntimeSpec
from .fit import Placement
from .hardware import Gpu, Machine
from .memory import MemoryEstimate, tensor_groups


@dataclass(frozen=True, slots=True)
class Speed:
    low: float
    expected: float
    high: float
    prefill_tokens_per_s: float | None = None
    time_to_first_token_s: float | None = None
    basis: str = ""

    def to_dict(self) -> dict:
        return {"low": round(self.low, 1), "expected": round(self.expected, 1), "high": round(self.high, 1)}


def read_fraction(model: ModelSpec) -> float:
    """Share of the weights read per generated token (MoE experts in use; one embedding row)."""
    return _read_fraction(model.arch)


@functools.lru_cache(maxsize=1024)
def _read_fraction(arch, tokens: float = 1.0) -> float:
    """Share of the weights a step of `tokens` tokens reads: each MoE layer's routed experts that
    at least one token picks, 1 - (1 - k/E)^tokens of them (uniform routing; k/E for one token)."""
    total = read = 0
    for g in tensor_groups(arch):
        total += g.params
        if g.cls == "embed" and not arch.tied_embeddings:
            continue  # a lookup reads one row
        if g.expert and arch.moe is not None:
            share = arch.moe.experts_per_token / arch.moe.experts
            read += g.params * (share if tokens == 1.0 else 1 - (1 - share) ** tokens)
        else:
            read += g.params
    return read / total if total else 1.0


def hardware_class(vendor: str | None, memory_type: str | None = None) -> str:
    """cpu | cuda | cuda-hbm (data-centre cards) | metal | vulkan (AMD and Intel GPUs)."""
    if vendor is None:
        return "cpu"
    if vendor == "nvidia":
        return "cuda-hbm" if (memory_type or "").upper().startswith("HBM") else "cuda"
    return {"apple": "metal"}.get(vendor, "vulkan")


def gpu_class(gpu: Gpu | None, catalog: Catalog) -> str:
    if gpu is None:
        return "cpu"
    memory_type = _memory_types(catalog.gpus).get(gpu.catalog_id) if gpu.catalog_id else None
    return hardware_class(gpu.vendor, memory_type)


_MEMORY_TYPES: dict[int, tuple] = {}


def _memory_types(specs: tuple) -> dict:
    """Catalog GPU id -> its memory type (the last entry of an id wins), memoized per tuple of specs."""
    hit = _MEMORY_TYPES.get(id(specs))
    if hit is None or hit[0] is not specs:
        if len(_MEMORY_TYPES) > 64:
            _MEMORY_TYPES.clear()
        hit = _MEMORY_TYPES[id(specs)] = (specs, {s.id: s.memory_type for s in specs})
    return hit[1]


def decode_constants(catalog: Catalog, runtime: RuntimeSpec, hw: str) -> dict[str, float]:
    """{efficiency, layer_overhead_us, step_overhead_us, low, high} of a runtime on a hardware class
    (the runtime's module picks the row: planner/runtimes/base.py decode_constants)."""
    from .runtimes import get

    return get(runtime).decode_constants(catalog, hw)


def seconds_per_token(bytes_per_token: float, bandwidth: float, layers: int, k: dict[str, float],
                      moe_factor: float = 1.0, step: bool = True) -> float:
    """Bytes over effective bandwidth, plus a fixed cost per layer (kernel launches, sync), plus
    a fixed cost per decode step that does not shrink with the model (scheduler, sampling,
    detokenising, Python): `step_overhead_us`, counted once per token (`step=False` for the
    second part of a split placement).

    MoE layers read their routed experts in scattered pieces: `moe_factor` (< 1) lowers the
    efficiency for them.
    """
    per_step = k.get("step_overhead_us", 0.0) * 1e-6 if step else 0.0
    return (bytes_per_token / (k["efficiency"] * moe_factor * bandwidth) + layers * k["layer_overhead_us"] * 1e-6
            + per_step)


def gpu_bandwidth(gpu: Gpu) -> int | None:
    return gpu.memory_bandwidth_bytes_per_s


def ram_bandwidth(machine: Machine, catalog: Catalog) -> int:
    return machine.memory.bandwidth_bytes_per_s or int(catalog.constants["cpu_default_bandwidth_bytes_per_s"])


def cpu_class(machine: Machine) -> str:
    """"cpu_measured" when the RAM bandwidth was measured the way llama.cpp reads it (planner.bandwidth:
    every usable core streaming at once), so its constants are relative to a reachable figure;
    "cpu" otherwise (a spec-sheet or assumed bandwidth: constants fitted to published runs)."""
    src = machine.memory.bandwidth_source or ""
    return "cpu_measured" if machine.memory.bandwidth_bytes_per_s and src.startswith("measured: streaming read") \
        else "cpu"


def ram_bandwidth_note(machine: Machine, catalog: Catalog) -> str:
    """One line for every plan that reads weights from RAM: the bandwidth used, and whether it was
    measured (how) or assumed (the data/constants.yaml default)."""
    bw = ram_bandwidth(machine, catalog)
    if machine.memory.bandwidth_bytes_per_s:
        how = machine.memory.bandwidth_source or "given in the machine file"
        return f"CPU speed from RAM bandwidth {bw / 1e9:.1f} GB/s ({how})"
    return (f"CPU speed from an assumed RAM bandwidth of {bw / 1e9:.1f} GB/s (dual-channel DDR4-3200); "
            "measure it with `plan-deploy probe --measure-bandwidth --save FILE` and plan with --machine FILE")


def decode_bytes(est: MemoryEstimate, model: ModelSpec, fill: float) -> tuple[float, float]:
    """(weight bytes, KV bytes) read per generated token with the context `fill` (0..1) full."""
    weights = est.weights_read_bytes or est.weights_bytes * read_fraction(model)
    kv = est.kv_bytes_per_token * est.context * fill
    return weights, kv


def estimate_speed(est: MemoryEstimate, model: ModelSpec, placement: Placement, machine: Machine,
                   runtime: RuntimeSpec, catalog: Catalog, prompt_tokens: int | None = None) -> Speed | None:
    """Tokens/s range for a placement; None when a bandwidth it needs is unknown.

    expected: half the context filled; the range multiplies by the spread of published runs around
    the model (5th to 95th percentile of measured/predicted), low with a full context, high empty.
    """
    gpus = {g.index: g for g in machine.gpus}
    used = [gpus[i] for i in placement.gpus if i in gpus]
    hw = gpu_class(used[0] if used else None, catalog)
    cpu_hw = cpu_class(machine)
    if hw == "cpu":
        hw = cpu_hw
    k = decode_constants(catalog, runtime, hw)
    k_cpu = decode_constants(catalog, runtime, cpu_hw)
    ram_bw = ram_bandwidth(machine, catalog)
    tp_scaling = catalog.constants["speed"]["tensor_parallel_scaling"]
    mf = catalog.constants["speed"]["moe_efficiency_factor"] if model.is_moe else 1.0
    layers = est.layers
    out: dict[str, float] = {}
    full_context_bytes = 0.0
    bw = min((gpu_bandwidth(g) or 0) for g in used) if used else 0
    if placement.kind != "cpu" and not bw:
        return None
    for name, fill in (("low", 1.0), ("expected", 0.5), ("high", 0.0)):
        w, kv = decode_bytes(est, model, fill)
        per_token = w + kv
        if name == "low":
            full_context_bytes = per_token
        if placement.kind in ("gpu", "unified"):
            t = seconds_per_token(per_token, bw, layers, k, mf)
        elif placement.kind == "multi-gpu" and placement.tensor_parallel:
            # Each GPU reads 1/tp of the bytes; all-reduces take back part of the gain (policy).
            t = seconds_per_token(per_token, bw * placement.tensor_parallel * tp_scaling, layers, k, mf)
        elif placement.kind == "multi-gpu":
            t = seconds_per_token(per_token, bw, layers, k, mf)  # layer split: GPUs take turns
        elif placement.kind in ("partial-offload", "moe-offload"):
            t_gpu, t_ram, _ = offload_seconds(est, model, placement, machine, w, kv, bw, ram_bw, k, k_cpu, mf)
            t = t_gpu + t_ram
        else:
            t = seconds_per_token(per_token, ram_bw, layers, k_cpu, mf) + \
                cpu_kernel_seconds(w, est.quant, machine, k_cpu["efficiency"] * mf * ram_bw)
        out[name] = 1.0 / t
    low = out["low"] * k["low"]
    if placement.kind == "moe-offload":
        # Few cores may not keep up with RAM: the expert reads at the slowest published per-core rate.
        floor = machine.cpu.usable_cores * catalog.constants["speed"]["cpu_per_core_floor_bytes_per_s"]
        cpu_read = moe_offload_read_bytes(est, model, placement)
        low = min(low, 1.0 / ((full_context_bytes - cpu_read) / (k["efficiency"] * bw) + cpu_read / floor))
    if placement.kind in ("cpu", "partial-offload"):
        # Few cores may not keep up with RAM: the low end assumes the slowest published per-core rate.
        cpu_share = 1.0 if placement.kind == "cpu" else 1 - (placement.gpu_layers or 0) / layers
        floor = machine.cpu.usable_cores * catalog.constants["speed"]["cpu_per_core_floor_bytes_per_s"]
        cpu_time = full_context_bytes * cpu_share / floor
        gpu_time = 0.0 if placement.kind == "cpu" else full_context_bytes * (1 - cpu_share) / (k["efficiency"] * bw)
        low = min(low, 1.0 / (cpu_time + gpu_time))
    high = out["high"] * k["high"]
    expected = out["expected"]
    prefill = _prefill(model, placement, used, catalog)
    ttft = prompt_tokens / prefill if prefill and prompt_tokens else None
    return Speed(low=min(low, expected), expected=expected, high=max(high, expected), prefill_tokens_per_s=prefill,
                 time_to_first_token_s=ttft, basis=f"{runtime.speed.get('class', 'gguf')}/{hw}")


def offload_seconds(est: MemoryEstimate, model: ModelSpec, placement: Placement, machine: Machine, w: float,
                    kv: float, bw: float, ram_bw: float, k: dict[str, float], k_cpu: dict[str, float],
                    mf: float) -> tuple[float, float, float]:
    """(GPU seconds, RAM seconds, share of the bytes read on the GPU) of one decode step of a
    partial-offload placement (the GPU's repeating layers, the rest from RAM) or a MoE-offload one
    (the routed experts in use of the offloaded layers from RAM, the rest on the GPU), reading `w`
    weight and `kv` KV bytes. The RAM part includes the slow CPU kernels (`cpu_kernel_seconds`)."""
    layers = est.layers
    per_byte_ram = k_cpu["efficiency"] * mf * ram_bw
    if placement.kind == "partial-offload":
        gl = placement.gpu_layers or 0
        share = gl / layers
        t_gpu = seconds_per_token((w + kv) * share, bw, gl, k, mf)
        t_ram = seconds_per_token((w + kv) * (1 - share), ram_bw, layers - gl, k_cpu, mf, step=False) + \
            cpu_kernel_seconds(w * (1 - share), est.quant, machine, per_byte_ram)
        return t_gpu, t_ram, share
    ram_read = moe_offload_read_bytes(est, model, placement)
    t_gpu = seconds_per_token(w + kv - ram_read, bw, layers, k, mf)
    t_ram = seconds_per_token(ram_read, ram_bw, 0, k_cpu, mf, step=False) + \
        cpu_kernel_seconds(ram_read, est.quant, machine, per_byte_ram)
    return t_gpu, t_ram, 1.0 - ram_read / (w + kv)


def cpu_kernel_seconds(weight_bytes: float, quant: str, machine: Machine, bytes_per_s: float) -> float:
    """Extra seconds llama.cpp's CPU kernels need for `weight_bytes` of type `quant` beyond reading
    them at `bytes_per_s` (the memory-bound rate): reading takes 1/factor as long for the types
    whose kernels are slower than memory (planner/cpu_kernels.py); 0 for the others."""
    from .cpu_kernels import speed_factor

    f = speed_factor(quant, machine.cpu.arch, machine.cpu.flags)
    return weight_bytes / bytes_per_s * (1 / f - 1) if f else 0.0


def moe_offload_read_bytes(est: MemoryEstimate, model: ModelSpec, placement: Placement) -> float:
    """Expert bytes read from RAM per token under MoE expert offload: the experts in use
    (experts_per_token of experts) of the layers whose experts stay in RAM."""
    moe = model.arch.moe
    if moe is None or not placement.expert_host_bytes:
        return 0.0
    return placement.expert_host_bytes * moe.experts_per_token / moe.experts


def _prefill(model: ModelSpec, placement: Placement, used: list[Gpu], catalog: Catalog) -> float | None:
    """Prompt tokens/s when the model is on GPUs with a known throughput: a measured effective
    figure (Apple chips: llama.cpp's pp512), else dense BF16 TFLOPS x the class's efficiency."""
    if placement.kind not in ("gpu", "multi-gpu", "unified") or not used:
        return None
    measured = min((g.prefill_tflops or 0) for g in used)
    if measured:
        return measured * 1e12 * (placement.tensor_parallel or 1) / (2 * model.decode_params)
    tflops = min((g.bf16_tflops or 0) for g in used)
    eff = catalog.constants["speed"]["prefill_efficiency"].get(gpu_class(used[0], catalog))
    if not tflops or not eff:
        return None
    n = placement.tensor_parallel or 1
    flops_per_token = 2 * model.decode_params
    return eff * tflops * 1e12 * n / flops_per_token
