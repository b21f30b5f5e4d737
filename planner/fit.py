"""Placing a memory estimate on a machine: one GPU, several, partial offload, CPU or unified memory.

Capacities come from the machine's totals (never from live free memory, which only adds warnings),
so the same machine always gets the same placements.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .catalog import Catalog, ModelSpec, QuantSpec, RuntimeSpec
from .hardware import Gpu, Machine
from .memory import MemoryEstimate, context_within
from .units import GIB


@dataclass(frozen=True, slots=True)
class Placement:
    kind: str  # gpu | multi-gpu | partial-offload | cpu | unified
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
    """RAM a model may use: the container limit or total, less what the OS keeps (policy)."""
    ram = machine.memory.usable_bytes
    reserve = max(int(ram * constants["cpu_os_reserve_fraction"]), int(constants["cpu_os_reserve_min_bytes"]))
    return max(0, ram - reserve)


def apple_working_set(total: int, constants: dict) -> int:
    """Metal's recommendedMaxWorkingSetSize: about 2/3 of unified memory, 3/4 from 64 GiB."""
    c = constants["apple_working_set"]
    frac = c["fraction_large"] if total >= c["large_from_gib"] * GIB else c["fraction_small"]
    return int(total * frac)


# ---------------------------------------------------------------- compatibility


def _cc(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    major, _, minor = str(text).partition(".")
    try:
        return int(major), int(minor or 0)
    except ValueError:
        return None


def runtime_gpus(machine: Machine, runtime: RuntimeSpec, quant: QuantSpec | None = None) -> tuple[list[Gpu], list[str]]:
    """The machine's GPUs this runtime (and quantization) can use, and why others can't."""
    usable, why = [], []
    for g in machine.gpus:
        acc = runtime.accelerators.get(g.vendor)
        if not acc:
            why.append(f"{runtime.id} has no {g.vendor} GPU backend")
            continue
        need = acc.get("min_compute_capability") if isinstance(acc, dict) else None
        have = _cc(g.compute_capability)
        if need and have is not None and have < _cc(need):
            why.append(f"{runtime.id} needs compute capability {need}; {g.name} has {g.compute_capability}")
            continue
        if quant is not None and g.vendor == "nvidia":
            qneed = runtime.quant_min_cc.get(quant.id) or quant.min_compute_capability
            if qneed and have is not None and have < _cc(qneed):
                why.append(f"{quant.id} on {runtime.id} needs compute capability {qneed}; "
                           f"{g.name} has {g.compute_capability}")
                continue
        usable.append(g)
    return usable, why


def runtime_on_machine(machine: Machine, runtime: RuntimeSpec) -> str | None:
    """None if the runtime can run on this machine at all, else the reason it can't."""
    if not runtime.supports_os(machine.os.system):
        return f"{runtime.id} does not run on {machine.os.system}"
    if "lm-studio" == runtime.id and machine.cpu.arch == "x86_64" and machine.cpu.flags \
            and "avx2" not in machine.cpu.flags:
        return "LM Studio needs a CPU with AVX2"
    gpus, _ = runtime_gpus(machine, runtime)
    if not gpus and not runtime.accelerators.get("cpu"):
        kinds = "/".join(sorted(k for k in runtime.accelerators if k != "cpu"))
        return f"{runtime.id} needs a supported GPU ({kinds}) and this machine has none it can use"
    return None


# ---------------------------------------------------------------- placement


def place(est: MemoryEstimate, cpu_est: MemoryEstimate, model: ModelSpec, machine: Machine,
          runtime: RuntimeSpec, quant: QuantSpec, catalog: Catalog) -> Placement | Rejection:
    """Where `est` (device-side estimate) or `cpu_est` (no GPU costs) can live on `machine`."""
    constants = catalog.constants
    gpus, why_not = runtime_gpus(machine, runtime, quant)
    if gpus and gpus[0].unified_memory:
        return _place_unified(est, machine, gpus[0], runtime, constants)
    if gpus:
        placed = _place_gpus(est, model, gpus, runtime)
        if isinstance(placed, Placement):
            return placed
        if runtime.partial_offload:
            off = _place_partial(est, cpu_est, model, machine, gpus, runtime, constants)
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
    return _place_cpu(cpu_est, machine, constants, why_not)


def _gpu_budget(g: Gpu, runtime: RuntimeSpec) -> tuple[int, float | None]:
    """Bytes a runtime may fill on one GPU, and the share it claims (vLLM/SGLang)."""
    mem = runtime.memory
    share = mem.get("gpu_memory_utilization")
    if share is not None:
        # vLLM checks util x total against what is free at start-up: the reserve must fit beside it.
        return min(int(g.memory_total_bytes * share), usable_gpu_bytes(g)), float(share)
    margin = int(mem.get("fit_margin_bytes", 0)) + int(mem.get("gpu_minimum_bytes", 0))
    return max(0, usable_gpu_bytes(g) - margin), None


gpu_budget = _gpu_budget  # public: multi-node placement (planner/fleet) prices each GPU the same way


def _place_gpus(est: MemoryEstimate, model: ModelSpec, gpus: list[Gpu], runtime: RuntimeSpec) -> Placement | Rejection:
    ranked = sorted(gpus, key=lambda g: (-_gpu_budget(g, runtime)[0], g.index))
    best = ranked[0]
    budget, share = _gpu_budget(best, runtime)
    need = est.total_bytes
    if need <= budget:
        max_ctx = context_within(budget, est, model.context_length)
        notes = _free_warning(best, need)
        if share is not None:
            notes += (f"{runtime.id} claims {share:.0%} of the GPU and fills what the weights leave with KV "
                      f"cache: room for about {max_ctx:,} tokens",)
        return Placement(kind="gpu", required_bytes=need, available_bytes=budget, device_bytes=need, host_bytes=0,
                         gpus=(best.index,), gpu_share=share, max_context=max_ctx, notes=notes)
    if len(gpus) > 1:
        if runtime.multi_gpu == "tensor":
            return _place_tensor_parallel(est, model, ranked, runtime)
        if runtime.multi_gpu == "layer":
            # Layers split across GPUs; each GPU carries its own context and compute buffers.
            fixed = est.overhead_bytes
            share_bytes = est.total_bytes - fixed
            budgets = [_gpu_budget(g, runtime)[0] for g in ranked]
            room = sum(b - fixed for b in budgets)
            need_all = est.total_bytes + fixed * (len(ranked) - 1)
            if share_bytes <= room:
                return Placement(kind="multi-gpu", required_bytes=need_all, available_bytes=sum(budgets),
                                 device_bytes=need_all, host_bytes=0, gpus=tuple(g.index for g in ranked),
                                 notes=("layers split across GPUs: memory adds up, decode speed does not",))
    total_budget = sum(_gpu_budget(g, runtime)[0] for g in gpus)
    return Rejection(_gpu_reason(est, gpus, runtime), needed_bytes=need,
                     gpu_layers_fit=_layers_fit(est, total_budget, len(gpus)))


def _place_tensor_parallel(est: MemoryEstimate, model: ModelSpec, gpus: list[Gpu],
                           runtime: RuntimeSpec) -> Placement | Rejection:
    heads = model.arch.attention_heads
    reasons = []
    for tp in (2, 4, 8, 16):
        if tp > len(gpus):
            break
        if heads % tp:
            reasons.append(f"tensor parallel {tp}: {heads} attention heads don't divide by {tp}")
            continue
        group = gpus[:tp]
        budget, share = min((_gpu_budget(g, runtime) for g in group), key=lambda b: b[0])
        per_gpu = (est.weights_bytes + est.kv_cache_bytes) // tp + est.overhead_bytes
        if per_gpu <= budget:
            max_ctx = None
            if est.kv_bytes_per_token > 0:
                free = budget * tp - est.weights_bytes - est.overhead_bytes * tp
                max_ctx = int(min(model.context_length, max(0, free) // est.kv_bytes_per_token))
            return Placement(kind="multi-gpu", required_bytes=per_gpu * tp, available_bytes=budget * tp,
                             device_bytes=per_gpu * tp, host_bytes=0, gpus=tuple(g.index for g in group),
                             tensor_parallel=tp, gpu_share=share, max_context=max_ctx,
                             notes=(f"tensor parallel over {tp} GPUs: {per_gpu / GIB:.1f} GiB each",))
        reasons.append(f"tensor parallel {tp}: needs {per_gpu / GIB:.1f} GiB per GPU, "
                       f"{budget / GIB:.1f} GiB usable")
    total_budget = sum(_gpu_budget(g, runtime)[0] for g in gpus)
    reason = _gpu_reason(est, gpus, runtime)
    if reasons:
        reason += "; " + reasons[-1]
    return Rejection(reason, needed_bytes=est.total_bytes, gpu_layers_fit=_layers_fit(est, total_budget, len(gpus)))


def _layer_bytes(est: MemoryEstimate) -> float:
    """Weights plus KV cache of one repeating layer."""
    return est.per_layer_bytes + est.kv_cache_bytes / est.layers


def _layers_fit(est: MemoryEstimate, budget: int, n_gpus: int) -> int:
    room = budget - est.overhead_bytes * n_gpus
    if room <= 0:
        return 0
    return int(min(est.layers, room // max(1.0, _layer_bytes(est))))


def _place_partial(est: MemoryEstimate, cpu_est: MemoryEstimate, model: ModelSpec, machine: Machine,
                   gpus: list[Gpu], runtime: RuntimeSpec, constants: dict) -> Placement | Rejection:
    """Some repeating layers (weights + their KV) on the GPU(s), the rest and the embeddings in RAM."""
    budgets = [_gpu_budget(g, runtime)[0] for g in gpus]
    n = _layers_fit(est, sum(budgets), len(gpus))
    ram = usable_ram_bytes(machine, constants)
    if n < 1:
        cpu = _place_cpu(cpu_est, machine, constants, [])
        if isinstance(cpu, Placement):
            return Placement(**{**_as_dict(cpu), "notes": cpu.notes + (
                f"not one layer fits the GPU ({max(budgets) / GIB:.1f} GiB usable): runs on the CPU",)})
        return Rejection(f"needs {est.total_bytes / GIB:.1f} GiB; {_gpu_list(gpus, runtime)}; "
                         f"not one layer fits, and the CPU run needs {cpu_est.total_bytes / GIB:.1f} GiB of "
                         f"{ram / GIB:.1f} GiB usable RAM", gpu_layers_fit=0, needed_bytes=est.total_bytes)
    layer = _layer_bytes(est)
    device = int(n * layer) + est.overhead_bytes * len(gpus)
    host = int((est.layers - n) * layer) + est.non_layer_bytes
    if host > ram:
        return Rejection(f"needs {est.total_bytes / GIB:.1f} GiB; {_gpu_list(gpus, runtime)}; "
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


def _place_cpu(cpu_est: MemoryEstimate, machine: Machine, constants: dict, why_not: list[str]) -> Placement | Rejection:
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
                     max_context=context_within(ram, cpu_est, 1 << 30), notes=tuple(notes))


def _place_unified(est: MemoryEstimate, machine: Machine, gpu: Gpu, runtime: RuntimeSpec,
                   constants: dict) -> Placement | Rejection:
    total = gpu.memory_total_bytes
    if gpu.vendor == "apple":
        budget = apple_working_set(total, constants)
        what = "Metal's working-set limit"
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


def _gpu_list(gpus: list[Gpu], runtime: RuntimeSpec) -> str:
    parts = [f"GPU {g.index} has {_gpu_budget(g, runtime)[0] / GIB:.1f} GiB usable" for g in gpus[:4]]
    return "; ".join(parts)


def _gpu_reason(est: MemoryEstimate, gpus: list[Gpu], runtime: RuntimeSpec) -> str:
    total_budget = sum(_gpu_budget(g, runtime)[0] for g in gpus)
    n = _layers_fit(est, total_budget, len(gpus))
    return (f"needs {est.total_bytes / GIB:.1f} GiB; {_gpu_list(gpus, runtime)}; "
            f"{n} of {est.layers} layers would fit")


def _as_dict(p: Placement) -> dict:
    return {k: getattr(p, k) for k in Placement.__slots__}
