"""Placing a memory estimate on a machine: one GPU, several, partial offload, CPU or unified memory.

Capacities come from the machine's totals (never from live free memory, which only adds warnings),
so the same machine always gets the same placements.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .catalog import Catalog, ModelSpec, QuantSpec, RuntimeSpec
from .hardware import Gpu, Machine
from .memory import MemoryEstimate, context_within, expert_share
from .runtimes import Options
from .runtimes import get as runtime_rules
from .units import GIB


@dataclass(frozen=True, slots=True)
class Placement:
    kind: str  # gpu | multi-gpu | moe-offload | partial-offload | cpu | unified
    required_bytes: int  # what this plan needs, device and host together
    available_bytes: int  # what the devices it uses offer
    device_bytes: int  # on the GPU(s) / unified pool
    host_bytes: int  # in system RAM
    gpus: tuple[int, ...] = ()
    gpu_layers: int | None = None  # partial offload: repeating layers on the GPU(s)
    tensor_parallel: int | None = None
    gpu_share: float | None = None  # vLLM/SGLang: fraction of each GPU claimed
    max_context: int | None = None  # longest context the memory allows (vLLM: its KV pool)
    notes: tuple[str, ...] = ()
    moe_cpu_layers: int | None = None  # moe-offload: layers whose routed experts stay in RAM
    expert_host_bytes: int = 0  # moe-offload: expert weights in RAM

    @property
    def headroom(self) -> float:
        return 0.0 if self.available_bytes <= 0 else 1 - self.required_bytes / self.available_bytes


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: str
    gpu_layers_fit: int | None = None
    needed_bytes: int | None = None
    notes: tuple[str, ...] = field(default=())


# ---------------------------------------------------------------- capacities


def usable_gpu_bytes(gpu: Gpu) -> int:
    """A GPU's memory less the driver's reserve (NVML v2 reports it inside the total)."""
    return gpu.memory_total_bytes - (gpu.memory_reserved_bytes or 0)


def usable_ram_bytes(machine: Machine, constants: dict) -> int:
    """RAM a model may use: the container limit or total, less what the OS keeps (policy).

    Inside a container whose limit is below the host's RAM, the OS lives outside the limit: only
    the fractional reserve applies (for the process's other allocations), not the 2 GiB minimum.
    """
    mem = machine.memory
    ram = mem.usable_bytes
    reserve = int(ram * constants["cpu_os_reserve_fraction"])
    if not (mem.limit_bytes is not None and mem.limit_bytes < mem.total_bytes):
        reserve = max(reserve, int(constants["cpu_os_reserve_min_bytes"]))
    return max(0, ram - reserve)


def apple_working_set(total: int, constants: dict) -> int:
    """Metal's recommendedMaxWorkingSetSize: about 2/3 of unified memory, 3/4 from 64 GiB."""
    c = constants["apple_working_set"]
    frac = c["fraction_large"] if total >= c["large_from_gib"] * GIB else c["fraction_small"]
    return int(total * frac)


# ---------------------------------------------------------------- compatibility


def runtime_gpus(machine: Machine, runtime: RuntimeSpec, quant: QuantSpec | None = None) -> tuple[list[Gpu], list[str]]:
    """The machine's GPUs this runtime (and quantization) can use, and why others can't
    (each reason once, with the number of GPUs it applies to)."""
    key = (id(machine), id(runtime), id(quant))
    hit = _RUNTIME_GPUS.get(key)
    if hit is None or hit[0] is not machine or hit[1] is not runtime or hit[2] is not quant:  # never a stale one
        rules = runtime_rules(runtime)
        usable, why = [], {}
        for g in machine.gpus:
            reason = rules.gpu_reason(g, quant)
            if reason is None:
                usable.append(g)
            else:
                why[reason] = why.get(reason, 0) + 1
        if len(_RUNTIME_GPUS) > 4096:  # hypothetical machines come and go (can-run, hardware search)
            _RUNTIME_GPUS.clear()
        hit = _RUNTIME_GPUS[key] = (machine, runtime, quant, tuple(usable),
                                    tuple(r if n == 1 else f"{r} ({n} GPUs)" for r, n in why.items()))
    return list(hit[3]), list(hit[4])


# (machine, runtime, quant, usable GPUs, reasons) by the objects' ids: the ranking asks for each
# candidate twice, and the answer depends on nothing else (the objects are frozen).
_RUNTIME_GPUS: dict[tuple[int, int, int], tuple] = {}


def runtime_on_machine(machine: Machine, runtime: RuntimeSpec) -> str | None:
    """None if the runtime can run on this machine at all, else the reason it can't."""
    return runtime_rules(runtime).machine_reason(machine)


# ---------------------------------------------------------------- placement


def place(est: MemoryEstimate, cpu_est: MemoryEstimate | Callable[[], MemoryEstimate], model: ModelSpec,
          machine: Machine, runtime: RuntimeSpec, quant: QuantSpec, catalog: Catalog,
          options: Options = Options()) -> Placement | Rejection:
    """Where `est` (device-side estimate) or `cpu_est` (no GPU costs) can live on `machine`.
    `cpu_est` may be a function that returns it: called only when a placement in RAM is tried.

    MIG instances are isolated devices: a plan uses one instance, never several (no tensor
    parallel, no layer split across instances).
    """
    constants = catalog.constants
    gpus, why_not = runtime_gpus(machine, runtime, quant)
    if gpus and gpus[0].unified_memory:
        spec = next((s for s in catalog.gpus if s.id == gpus[0].catalog_id), None)
        fraction = spec.unified_gpu_fraction if spec is not None else None
        return _place_unified(est, machine, gpus[0], runtime, constants, fraction)
    if gpus:
        pooled = runtime_rules(runtime).pools(gpus)
        placed = _place_gpus(est, model, gpus, runtime, options, pooled)
        if isinstance(placed, Placement):
            return placed
        one = gpus if pooled else [max(gpus, key=lambda g: (_gpu_budget(g, runtime, options)[0], -g.index))]
        if getattr(runtime_rules(runtime), "moe_offload", False) and model.is_moe:
            moe = _place_moe(est, model, machine, one[0], runtime, constants, options)
            if isinstance(moe, Placement):
                return moe
        if runtime.partial_offload:
            off = _place_partial(est, _made(cpu_est), model, machine, one, runtime, constants, options)
            if isinstance(off, Placement):
                return off
            placed = off
        return placed
    if machine.gpus and not runtime.accelerators.get("cpu"):
        return Rejection("; ".join(why_not) or f"{runtime.id} cannot use this machine's GPUs")
    if not runtime.accelerators.get("cpu"):
        return Rejection(f"{runtime.id} needs a GPU")
    if machine.gpus and why_not and quant.id in runtime.quant_min_cc:
        return Rejection("; ".join(why_not))
    return _place_cpu(_made(cpu_est), machine, constants, why_not, model)


def _made(est: MemoryEstimate | Callable[[], MemoryEstimate]) -> MemoryEstimate:
    """The estimate, or what the function given in its place returns."""
    return est() if callable(est) else est


def _gpu_budget(g: Gpu, runtime: RuntimeSpec, options: Options = Options()) -> tuple[int, float | None]:
    """Bytes a runtime may fill on one GPU, and the share it claims (vLLM/SGLang)."""
    return runtime_rules(runtime).gpu_budget(g, options, usable_gpu_bytes(g))


gpu_budget = _gpu_budget  # public: multi-node placement (planner/fleet) prices each GPU the same way


def _place_gpus(est: MemoryEstimate, model: ModelSpec, gpus: list[Gpu], runtime: RuntimeSpec,
                options: Options = Options(), pooled: bool = True) -> Placement | Rejection:
    ranked = sorted(gpus, key=lambda g: (-_gpu_budget(g, runtime, options)[0], g.index))
    best = ranked[0]
    budget, share = _gpu_budget(best, runtime, options)
    need = est.total_bytes
    outside = runtime_rules(runtime).outside_share_bytes(est)  # SGLang: activations, graphs
    if need - outside <= budget:
        why = _outside_reason(runtime, best, budget, share, outside)
        if why:
            return Rejection(why, needed_bytes=need)
        max_ctx = context_within(budget + outside, est, context_cap(model, est.context))
        notes = _free_warning(best, need)
        if share is not None:
            notes += (f"{runtime.id} claims {share:.0%} of the GPU and fills what the weights leave with KV "
                      f"cache: room for about {max_ctx:,} tokens",)
        return Placement(kind="gpu", required_bytes=need, available_bytes=budget + outside, device_bytes=need,
                         host_bytes=0, gpus=(best.index,), gpu_share=share, max_context=max_ctx, notes=notes)
    if len(gpus) > 1 and not pooled:
        return Rejection(f"needs {need / GIB:.1f} GiB; the largest MIG instance offers {budget / GIB:.1f} GiB, "
                         f"and MIG instances cannot be combined (one instance per process, no peer-to-peer)",
                         needed_bytes=need, gpu_layers_fit=_layers_fit(est, budget, 1))
    if len(gpus) > 1:
        if runtime.multi_gpu == "tensor":
            return _place_tensor_parallel(est, model, ranked, runtime, options)
        if runtime.multi_gpu == "layer":
            # Layers split across GPUs; each GPU carries its own context and compute buffers.
            fixed = est.overhead_bytes
            share_bytes = est.total_bytes - fixed
            budgets = [_gpu_budget(g, runtime, options)[0] for g in ranked]
            room = sum(b - fixed for b in budgets)
            need_all = est.total_bytes + fixed * (len(ranked) - 1)
            if share_bytes <= room:
                return Placement(kind="multi-gpu", required_bytes=need_all, available_bytes=sum(budgets),
                                 device_bytes=need_all, host_bytes=0, gpus=tuple(g.index for g in ranked),
                                 notes=("layers split across GPUs: memory adds up, decode speed does not",))
    total_budget = sum(_gpu_budget(g, runtime, options)[0] for g in gpus)
    return Rejection(_gpu_reason(est, gpus, runtime, options), needed_bytes=need,
                     gpu_layers_fit=_layers_fit(est, total_budget, len(gpus)))


def _place_tensor_parallel(est: MemoryEstimate, model: ModelSpec, gpus: list[Gpu],
                           runtime: RuntimeSpec, options: Options = Options()) -> Placement | Rejection:
    heads = model.arch.attention_heads
    reasons = []
    for tp in (2, 4, 8, 16):
        if tp > len(gpus):
            break
        if heads % tp:
            reasons.append(f"tensor parallel {tp}: {heads} attention heads don't divide by {tp}")
            continue
        group = gpus[:tp]
        budget, share = min((_gpu_budget(g, runtime, options) for g in group), key=lambda b: b[0])
        per_gpu = (est.weights_bytes + est.kv_cache_bytes) // tp + est.overhead_bytes
        outside = runtime_rules(runtime).outside_share_bytes(est)
        if per_gpu - outside <= budget:
            why = _outside_reason(runtime, min(group, key=usable_gpu_bytes), budget, share, outside)
            if why:
                reasons.append(f"tensor parallel {tp}: {why}")
                continue
            max_ctx = None
            if est.kv_bytes_per_token > 0:
                free = (budget + outside) * tp - est.weights_bytes - est.overhead_bytes * tp - est.kv_state_bytes
                max_ctx = int(min(context_cap(model, est.context), max(0, free) // est.kv_bytes_per_token))
            return Placement(kind="multi-gpu", required_bytes=per_gpu * tp, available_bytes=(budget + outside) * tp,
                             device_bytes=per_gpu * tp, host_bytes=0, gpus=tuple(g.index for g in group),
                             tensor_parallel=tp, gpu_share=share, max_context=max_ctx,
                             notes=(f"tensor parallel over {tp} GPUs: {per_gpu / GIB:.1f} GiB each",))
        reasons.append(f"tensor parallel {tp}: needs {per_gpu / GIB:.1f} GiB per GPU, "
                       f"{budget / GIB:.1f} GiB usable")
    total_budget = sum(_gpu_budget(g, runtime, options)[0] for g in gpus)
    reason = _gpu_reason(est, gpus, runtime, options)
    if reasons:
        reason += "; " + reasons[-1]
    return Rejection(reason, needed_bytes=est.total_bytes, gpu_layers_fit=_layers_fit(est, total_budget, len(gpus)))


def _outside_reason(runtime: RuntimeSpec, g: Gpu, budget: int, share: float | None, outside: int) -> str | None:
    """Memory a runtime keeps outside its claimed share (SGLang: activations and CUDA graphs beside
    --mem-fraction-static) must fit in what the share leaves of the GPU."""
    if outside <= 0:
        return None
    left = usable_gpu_bytes(g) - budget
    if outside <= left:
        return None
    return (f"{runtime.id} keeps {outside / GIB:.1f} GiB (activations, CUDA graphs) outside its "
            f"{share:.0%} memory share and only {max(0, left) / GIB:.1f} GiB is left beside it; "
            f"a lower --mem-fraction-static leaves more")


def context_cap(model: ModelSpec, context: int) -> int:
    """The longest context a plan may claim: the trained (native) window, or the YaRN-extended
    one when the plan already runs beyond the native window."""
    if context > model.context_length and model.context_length_extended:
        return model.context_length_extended
    return model.context_length


def _place_moe(est: MemoryEstimate, model: ModelSpec, machine: Machine, gpu: Gpu, runtime: RuntimeSpec,
               constants: dict, options: Options) -> Placement | Rejection:
    """MoE expert offload: attention, shared weights and the KV cache on one GPU, the routed
    experts of the first N layers in RAM (llama.cpp --n-cpu-moe N), N as small as fits."""
    budget = _gpu_budget(gpu, runtime, options)[0]
    expert_layer = est.per_layer_bytes * expert_share(model.arch)
    if expert_layer <= 0:
        return Rejection("no expert weights to offload")
    over = est.total_bytes - budget
    n = max(1, -(-over // int(expert_layer)))
    if n > est.layers:
        return Rejection(f"even with every layer's experts in RAM the rest needs "
                         f"{(est.total_bytes - expert_layer * est.layers) / GIB:.1f} GiB of {budget / GIB:.1f} GiB")
    host = int(n * expert_layer)
    ram = usable_ram_bytes(machine, constants)
    if host > ram:
        return Rejection(f"the experts of {n} layers need {host / GIB:.1f} GiB of RAM; {ram / GIB:.1f} GiB usable")
    device = est.total_bytes - host
    notes = [f"MoE expert offload: the routed experts of {n} of {est.layers} layers in RAM "
             f"({host / GIB:.1f} GiB); attention, shared weights and KV cache on the GPU"]
    if machine.memory.available_bytes < host:
        notes.append(f"only {machine.memory.available_bytes / GIB:.1f} GiB of RAM is free now; "
                     f"this plan needs {host / GIB:.1f} GiB")
    return Placement(kind="moe-offload", required_bytes=device + host, available_bytes=budget + ram,
                     device_bytes=device, host_bytes=host, gpus=(gpu.index,), moe_cpu_layers=int(n),
                     expert_host_bytes=host, notes=tuple(notes + list(_free_warning(gpu, device))))


def _layer_bytes(est: MemoryEstimate) -> float:
    """Weights plus KV cache of one repeating layer."""
    return est.per_layer_bytes + est.kv_cache_bytes / est.layers


def _layers_fit(est: MemoryEstimate, budget: int, n_gpus: int) -> int:
    room = budget - est.overhead_bytes * n_gpus
    if room <= 0:
        return 0
    return int(min(est.layers, room // max(1.0, _layer_bytes(est))))


def _place_partial(est: MemoryEstimate, cpu_est: MemoryEstimate, model: ModelSpec, machine: Machine,
                   gpus: list[Gpu], runtime: RuntimeSpec, constants: dict,
                   options: Options = Options()) -> Placement | Rejection:
    """Some repeating layers (weights + their KV) on the GPU(s), the rest and the embeddings in RAM."""
    budgets = [_gpu_budget(g, runtime, options)[0] for g in gpus]
    n = _layers_fit(est, sum(budgets), len(gpus))
    ram = usable_ram_bytes(machine, constants)
    if n < 1:
        cpu = _place_cpu(cpu_est, machine, constants, [], model)
        if isinstance(cpu, Placement):
            return Placement(**{**_as_dict(cpu), "notes": cpu.notes + (
                f"not one layer fits the GPU ({max(budgets) / GIB:.1f} GiB usable): runs on the CPU",)})
        return Rejection(f"needs {est.total_bytes / GIB:.1f} GiB; {_gpu_list(gpus, runtime, options)}; "
                         f"not one layer fits, and the CPU run needs {cpu_est.total_bytes / GIB:.1f} GiB of "
                         f"{ram / GIB:.1f} GiB usable RAM", gpu_layers_fit=0, needed_bytes=est.total_bytes)
    layer = _layer_bytes(est)
    device = int(n * layer) + est.overhead_bytes * len(gpus)
    host = int((est.layers - n) * layer) + est.non_layer_bytes
    if host > ram:
        return Rejection(f"needs {est.total_bytes / GIB:.1f} GiB; {_gpu_list(gpus, runtime, options)}; "
                         f"{n} of {est.layers} layers would fit on the GPU and the other "
                         f"{host / GIB:.1f} GiB exceed the {ram / GIB:.1f} GiB of usable RAM",
                         gpu_layers_fit=n, needed_bytes=est.total_bytes)
    notes = [f"{n} of {est.layers} layers on the GPU, {est.layers - n} in RAM: decode runs at RAM speed "
             f"for those layers"]
    if machine.memory.available_bytes < host:
        notes.append(f"only {machine.memory.available_bytes / GIB:.1f} GiB of RAM is free now; "
                     f"this plan needs {host / GIB:.1f} GiB")
    return Placement(kind="partial-offload", required_bytes=device + host, available_bytes=sum(budgets) + ram,
                     device_bytes=device, host_bytes=host, gpus=tuple(g.index for g in gpus), gpu_layers=n,
                     notes=tuple(notes))


def _place_cpu(cpu_est: MemoryEstimate, machine: Machine, constants: dict, why_not: list[str],
               model: ModelSpec) -> Placement | Rejection:
    ram = usable_ram_bytes(machine, constants)
    need = cpu_est.total_bytes
    limit = machine.memory.limit_bytes
    where = f"{ram / GIB:.1f} GiB of RAM usable" + (" (container limit)" if limit and limit < machine.memory.total_bytes else "")
    if need > ram:
        return Rejection(f"needs {need / GIB:.1f} GiB; {where}", needed_bytes=need)
    notes = list(why_not[:1])
    if machine.memory.available_bytes < need:
        notes.append(f"only {machine.memory.available_bytes / GIB:.1f} GiB of RAM is free now; "
                     f"this plan needs {need / GIB:.1f} GiB")
    return Placement(kind="cpu", required_bytes=need, available_bytes=ram, device_bytes=0, host_bytes=need,
                     max_context=context_within(ram, cpu_est, context_cap(model, cpu_est.context)), notes=tuple(notes))


def _place_unified(est: MemoryEstimate, machine: Machine, gpu: Gpu, runtime: RuntimeSpec,
                   constants: dict, fraction: float | None = None) -> Placement | Rejection:
    """One pool shared by CPU and GPU. Apple: Metal's working-set limit; others: RAM less the OS
    reserve, capped at `fraction` of the pool where the GPU catalog documents a default cap."""
    total = gpu.memory_total_bytes
    if gpu.vendor == "apple":
        budget = apple_working_set(total, constants)
        what = "Metal's working-set limit"
    elif fraction is not None:
        budget = int(total * fraction)
        what = f"the GPU's default share ({fraction:.0%})"
    else:
        budget = usable_ram_bytes(machine, constants)
        what = "shared memory usable by the GPU"
    budget = min(budget, usable_ram_bytes(machine, constants))
    need = est.total_bytes
    if need > budget:
        return Rejection(f"needs {need / GIB:.1f} GiB; {what} is {budget / GIB:.1f} GiB of "
                         f"{total / GIB:.0f} GiB unified memory", needed_bytes=need)
    return Placement(kind="unified", required_bytes=need, available_bytes=budget, device_bytes=need, host_bytes=0,
                     gpus=(gpu.index,), notes=_free_warning(gpu, need))


def _free_warning(g: Gpu, need: int) -> tuple[str, ...]:
    free = g.memory_free_bytes
    if free is not None and free < need:
        return (f"GPU {g.index} has only {free / GIB:.1f} GiB free now (other processes); "
                f"this plan needs {need / GIB:.1f} GiB",)
    return ()


def _gpu_list(gpus: list[Gpu], runtime: RuntimeSpec, options: Options = Options()) -> str:
    parts = [f"GPU {g.index} has {_gpu_budget(g, runtime, options)[0] / GIB:.1f} GiB usable" for g in gpus[:4]]
    return "; ".join(parts)


def _gpu_reason(est: MemoryEstimate, gpus: list[Gpu], runtime: RuntimeSpec, options: Options = Options()) -> str:
    total_budget = sum(_gpu_budget(g, runtime, options)[0] for g in gpus)
    n = _layers_fit(est, total_budget, len(gpus))
    return (f"needs {est.total_bytes / GIB:.1f} GiB; {_gpu_list(gpus, runtime, options)}; "
            f"{n} of {est.layers} layers would fit")


def _as_dict(p: Placement) -> dict:
    return {k: getattr(p, k) for k in Placement.__slots__}
