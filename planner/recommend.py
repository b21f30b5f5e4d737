"""Candidates, filters and the one sort key that orders plans.

A candidate is model x quantization x runtime. It is kept when the runtime runs on the machine,
the catalog lists an artifact for that quantization, and the memory engine finds a placement.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from . import fit, launch, memory, speed
from . import quality as qmod
from .catalog import Artifact, Catalog, ModelSpec, RuntimeSpec
from .errors import PlannerError, UsageError
from .hardware import Machine
from .runtimes import Options
from .runtimes import get as runtime_rules

LICENCE_FILTERS = ("any", "commercial", "permissive")
PLACEMENT_ORDER = {"gpu": 0, "unified": 0, "multi-gpu": 1, "moe-offload": 2, "partial-offload": 3, "cpu": 4}


@dataclass(frozen=True)
class Request:
    licence: str = "any"
    context: int | None = None  # None: the default (constants.yaml default_context)
    runtimes: tuple[str, ...] = ()
    quants: tuple[str, ...] = ()
    use_cases: tuple[str, ...] = ()
    min_tps: float | None = None
    kv_cache_type: str | None = None
    models: tuple[str, ...] = ()  # restrict to these catalog ids
    options: Options = Options()  # runtime settings: --gpu-memory-utilization, --enforce-eager

    def to_dict(self, context: int) -> dict:
        d = {"licence": self.licence, "context": context, "runtimes": list(self.runtimes),
             "quants": list(self.quants), "use_cases": list(self.use_cases), "min_tps": self.min_tps,
             "kv_cache_type": self.kv_cache_type}
        if self.options != Options():
            d["gpu_memory_utilization"] = self.options.gpu_memory_utilization
            d["enforce_eager"] = self.options.enforce_eager
        return d


@dataclass(frozen=True)
class Plan:
    model: ModelSpec
    quant: str
    runtime: RuntimeSpec
    artifact: Artifact
    estimate: memory.MemoryEstimate
    placement: fit.Placement
    speed: speed.Speed | None
    launch: launch.Launch
    quality: float
    quality_estimated: bool
    interactive: bool
    notes: tuple[str, ...] = ()
    repacked_bytes: int = 0  # llama.cpp CPU plans: weights copied into the CPU_REPACK buffer at load

    @property
    def resident_bytes(self) -> int | None:
        """RSS right after loading a llama.cpp CPU plan with mmap: file + repacked copy + KV + buffers."""
        if self.placement.kind != "cpu" or self.estimate.format not in ("gguf", "ollama"):
            return None
        return self.estimate.total_bytes + self.repacked_bytes
    quality_detail: qmod.Quality | None = None  # the benchmark, figure, source and quantization penalty

    @property
    def bits_per_weight(self) -> float:
        return self.estimate.weights_bytes * 8 / self.model.params

    def to_dict(self, rank: int) -> dict:
        m, p, e = self.model, self.placement, self.estimate
        return {
            "rank": rank,
            "model": m.id,
            "hf_repo": m.hf_repo,
            "quant": self.quant,
            "runtime": self.runtime.id,
            "runtime_version": self.runtime.version.get("id"),
            "placement": p.kind,
            "context": e.context,
            "memory": {"required_bytes": p.required_bytes, "available_bytes": p.available_bytes,
                       "weights_bytes": e.weights_bytes, "kv_cache_bytes": e.kv_cache_bytes,
                       "overhead_bytes": p.required_bytes - e.weights_bytes - e.kv_cache_bytes,
                       "device_bytes": p.device_bytes, "host_bytes": p.host_bytes,
                       **({"cpu_repack_bytes": self.repacked_bytes, "resident_bytes": self.resident_bytes}
                          if self.resident_bytes is not None else {})},
            "gpu_layers": p.gpu_layers,
            "moe_cpu_layers": p.moe_cpu_layers,
            "layers": e.layers,
            "tensor_parallel": p.tensor_parallel,
            "max_context": p.max_context,
            "tokens_per_s": self.speed.to_dict() if self.speed else None,
            "prefill_tokens_per_s": round(self.speed.prefill_tokens_per_s, 0)
            if self.speed and self.speed.prefill_tokens_per_s else None,
            "time_to_first_token_s": round(self.speed.time_to_first_token_s, 2)
            if self.speed and self.speed.time_to_first_token_s else None,
            "interactive": self.interactive,
            "quality": self.quality_detail.to_dict() if self.quality_detail else
            {"rank_score": round(self.quality, 1), "estimated": self.quality_estimated},
            "licence": {"id": m.licence.id, "commercial": m.licence.commercial,
                        "conditions": m.licence.conditions},
            "artifact": self.artifact.to_dict(),
            "launch": self.launch.to_dict(),
            "notes": list(self.notes),
        }


@dataclass
class Result:
    plans: list[Plan]
    rejected: list[dict]
    licence_excluded: dict[str, list[str]] = field(default_factory=dict)
    context: int = 0
    notes: list[str] = field(default_factory=list)  # about the machine as the runtimes see it


# ---------------------------------------------------------------- filters


def licence_ok(model: ModelSpec, licence: str) -> str | None:
    """None if `model` passes the licence filter, else why not."""
    lic = model.licence
    if licence == "any":
        return None
    if lic.commercial == "unknown":
        return "licence unknown"
    if licence == "commercial":
        return None if lic.commercial in ("yes", "conditional") else "not for commercial use"
    if licence == "permissive":
        if lic.permissive:
            return None
        return "not for commercial use" if lic.commercial == "no" else f"{lic.id}: use conditions"
    raise UsageError(f"unknown licence filter {licence!r}", hint="use commercial, permissive or any")


# ---------------------------------------------------------------- quality


def quality(model: ModelSpec, cat: Catalog) -> tuple[float, bool]:
    """(general-scale score, whether it is estimated): planner/quality.py's figure or cautious rule."""
    q = qmod.general(model, cat)
    return q.value, q.estimated


# ---------------------------------------------------------------- sort keys


def _quant_tier(plan: Plan) -> float:
    # At 8 bits and above quantization loss is negligible: those tie, and speed decides.
    return min(plan.bits_per_weight, 8.0)


def _tps(plan: Plan) -> float:
    return plan.speed.expected if plan.speed else 0.0


def plan_key(plan: Plan) -> tuple:
    """THE ranking: interactive plans first; then model quality; then how well it runs here
    (one GPU / unified, several GPUs, partial offload, CPU); then quantization quality;
    then speed; then memory headroom; then a stable tie-breaker (id, runtime preference, quant)."""
    return (not plan.interactive, -round(plan.quality, 1), PLACEMENT_ORDER[plan.placement.kind],
            -round(_quant_tier(plan), 2), -round(_tps(plan), 1), -round(plan.placement.headroom, 3),
            plan.model.id, plan.runtime.rank, plan.runtime.id, plan.quant)


def best_per_model_key(plan: Plan) -> tuple:
    """Within one model: usable first, best placement; then the best quantization among usable
    plans, but the fastest among plans too slow to use; then runtime preference."""
    tier, tps = -round(_quant_tier(plan), 2), -round(_tps(plan), 1)
    return (not plan.interactive, PLACEMENT_ORDER[plan.placement.kind],
            (tier, tps) if plan.interactive else (tps, tier), plan.runtime.rank, plan.runtime.id, plan.quant)


# ---------------------------------------------------------------- planning


def plan(cat: Catalog, machine: Machine, request: Request, *, explain: bool = False) -> Result:
    constants = cat.constants
    context = request.context or int(constants["default_context"])
    rejected: list[dict] = []
    excluded: dict[str, list[str]] = {}
    _check_choices(cat, request)
    runtimes = _runtimes(cat, machine, request, rejected if explain else None)
    plans: list[Plan] = []
    for model in cat.models:
        if request.models and model.id not in request.models:
            continue
        why = licence_ok(model, request.licence)
        if why:
            excluded.setdefault(why, []).append(model.id)
            continue
        if request.use_cases and not set(request.use_cases) & set(model.use_cases):
            continue
        for runtime in runtimes:
            for qid in runtime.quants:
                if request.quants and qid.upper() not in request.quants:
                    continue
                out = candidate(cat, machine, model, qid, runtime, context, request.kv_cache_type, request.options,
                                use_cases=request.use_cases)
                if out is None:
                    continue
                if isinstance(out, str):
                    if explain:
                        rejected.append({"model": model.id, "quant": qid, "runtime": runtime.id, "reason": out})
                    continue
                if request.min_tps is not None and (out.speed is None or out.speed.expected < request.min_tps):
                    if explain:
                        got = f"{out.speed.expected:.1f}" if out.speed else "unknown"
                        rejected.append({"model": model.id, "quant": qid, "runtime": runtime.id,
                                         "reason": f"{got} tokens/s expected, below --min-tps {request.min_tps:g}"})
                    continue
                plans.append(out)
    plans.sort(key=plan_key)
    rejected.sort(key=lambda r: (r["model"], r["runtime"], r["quant"] or ""))
    return Result(plans=plans, rejected=rejected, licence_excluded=excluded, context=context,
                  notes=unused_gpu_notes(cat, machine, runtimes))


def machine_notes(cat: Catalog, machine: Machine, request: Request) -> list[str]:
    """What a user should know about the machine as the requested runtimes see it."""
    return unused_gpu_notes(cat, machine, _runtimes(cat, machine, request, None))


def unused_gpu_notes(cat: Catalog, machine: Machine, runtimes: list[RuntimeSpec]) -> list[str]:
    """GPUs that none of the planned runtimes can use (e.g. Intel GPUs): say so rather than plan
    on the CPU in silence."""
    out = []
    for g in machine.gpus:
        why = [w for rt in runtimes if (w := runtime_rules(rt).gpu_reason(g)) is not None]
        if runtimes and len(why) == len(runtimes):
            out.append(f"GPU {g.index} ({g.name}) is not used: no planned runtime has a GPU backend for {g.vendor} in "
                       f"the catalog; plans run on the other devices or the CPU")
    return out


def one_per_model(plans: list[Plan]) -> list[Plan]:
    best: dict[str, Plan] = {}
    for p in plans:
        cur = best.get(p.model.id)
        if cur is None or best_per_model_key(p) < best_per_model_key(cur):
            best[p.model.id] = p
    return sorted(best.values(), key=plan_key)


def runtime_id(name: str, cat: Catalog) -> str | None:
    """'llama.cpp', 'llamacpp', 'LM Studio', 'lmstudio', 'MLX-LM' -> the catalog id (or None)."""
    def key(text: str) -> str:
        return "".join(ch for ch in text.lower() if ch.isalnum())

    for r in cat.runtimes:
        if key(name) in (key(r.id), key(r.name.split(" (")[0])):
            return r.id
    return None


def _check_choices(cat: Catalog, request: Request) -> None:
    """An unknown --quant or --kv-cache-type is a usage error (exit 2), not "nothing fits"."""
    for q in request.quants:
        if q.upper() not in cat.quants:
            raise UsageError(f"unknown quantization {q!r}", hint="known: " + ", ".join(sorted(q.id for q in cat.quants.values())))
    kv = request.kv_cache_type
    if kv is not None:
        wanted = {runtime_id(r, cat) for r in request.runtimes} - {None}
        types = sorted({t for r in cat.runtimes if not wanted or r.id in wanted for t in r.kv_cache_types})
        if kv not in types:
            scope = f"{', '.join(sorted(wanted))} accepts" if wanted else "known"
            raise UsageError(f"unknown KV cache type {kv!r}", hint=f"{scope}: {', '.join(types)}")


def _runtimes(cat: Catalog, machine: Machine, request: Request, rejected: list | None) -> list[RuntimeSpec]:
    known = {r.id for r in cat.runtimes}
    wanted = set()
    for r in request.runtimes:
        rid = runtime_id(r, cat)
        if rid is not None:
            wanted.add(rid)
        else:
            import difflib

            close = difflib.get_close_matches(r, sorted(known), n=3, cutoff=0.4)
            raise UsageError(f"unknown runtime {r!r}",
                             hint=f"did you mean {', '.join(close)}?" if close else "known: " + ", ".join(sorted(known)))
    out = []
    for rt in cat.runtimes:
        if request.runtimes and rt.id not in wanted:
            continue
        why = fit.runtime_on_machine(machine, rt)
        if why:
            if rejected is not None:
                rejected.append({"model": "*", "quant": None, "runtime": rt.id, "reason": why})
            continue
        out.append(rt)
    return out


def candidate(cat: Catalog, machine: Machine, model: ModelSpec, qid: str, runtime: RuntimeSpec, context: int,
              kv_cache_type: str | None, options: Options = Options(), use_cases: tuple[str, ...] = ()) -> Plan | str | None:
    """A plan, a rejection reason, or None when the combination doesn't exist (no artifact)."""
    quant = cat.quants.get(qid.upper())
    if quant is None:
        return None
    fmt = memory.artifact_format(model, quant, runtime)
    if fmt is None or machine.os.system not in runtime.format_os.get(fmt, (machine.os.system,)):
        return None
    art = model.artifact(fmt, quant.id)
    if art is not None and art.source == "local" and not launch.loads_local_path(runtime.id):
        return f"{runtime.id} loads models from its own store, not from a path: use llama.cpp for a local file"
    limit = model.context_length_extended or model.context_length
    if context > limit:
        return f"context {context} exceeds the model's {limit} tokens"
    rules = runtime_rules(runtime)
    yarn_notes: list[str] = []
    if context > model.context_length:
        if rules.rope_args(model, context) is None:
            return (f"{runtime.id} has no RoPE/YaRN setting: {model.id} runs up to its native "
                    f"{model.context_length} tokens there")
        y = rules.yarn(model)
        yarn_notes.append(f"context beyond the native {model.context_length} tokens: YaRN rope scaling, factor "
                          f"{y['factor']:g}, as the model card gives; static YaRN applies to every request and may "
                          f"lower quality on short texts")
    kv = kv_cache_type if kv_cache_type in runtime.kv_cache_types else None
    if kv_cache_type and kv is None:
        return f"{runtime.id} has no {kv_cache_type} KV cache"
    gpus, _ = fit.runtime_gpus(machine, runtime, quant)
    try:
        est = memory.estimate(model, quant.id, runtime, cat, context=context, kv_cache_type=kv, gpu=bool(gpus),
                              options=options, devices=tuple(gpus))
        cpu_est = est if not gpus else memory.estimate(model, quant.id, runtime, cat, context=context,
                                                       kv_cache_type=kv, gpu=False, options=options)
    except PlannerError as e:
        return e.message
    if gpus:
        est = memory.scale_weights(est, *rules.weight_scale(model, quant, gpus))
    placed = fit.place(est, cpu_est, model, machine, runtime, quant, cat, options)
    if isinstance(placed, fit.Rejection):
        return placed.reason
    used_est = cpu_est if placed.kind == "cpu" else est
    spd = speed.estimate_speed(used_est, model, placed, machine, runtime, cat, prompt_tokens=min(context, 1024))
    threshold = float(cat.constants["interactive_tokens_per_s"])
    interactive = spd.expected >= threshold if spd else placed.kind in ("gpu", "multi-gpu", "unified")
    notes = list(used_est.notes) + yarn_notes + list(placed.notes)
    if placed.kind != "cpu":
        notes += list(rules.quant_notes([g for g in gpus if g.index in placed.gpus], quant))
    if placed.kind in ("cpu", "partial-offload", "moe-offload") and spd is not None:
        notes.append(speed.ram_bandwidth_note(machine, cat))
    repacked = 0
    if placed.kind == "cpu" and used_est.format in ("gguf", "ollama") and quant.gguf:
        from . import cpu_repack

        repacked, by_type = cpu_repack.repacked(cpu_repack.recipe_tensors(model.arch, quant, cat.constants),
                                                machine.cpu.flags)
        resident = used_est.total_bytes + repacked
        if repacked:
            notes.append(f"resident after loading: about {resident / 2**30:.1f} GiB: llama.cpp copies "
                         f"{repacked / 2**30:.1f} GiB of {'/'.join(sorted(by_type))} weights into its CPU_REPACK "
                         f"buffer for {machine.cpu.arch} ({'/'.join(sorted(set(machine.cpu.flags) & {'avx2', 'avx512f', 'neon', 'dotprod', 'i8mm'}))}); "
                         "the file's pages of those tensors stay cached but the kernel can drop them, and "
                         "--no-mmap loads them once")
    if spd is not None and not interactive:
        notes.append(f"about {spd.expected:.1f} tokens/s: too slow for interactive use "
                     f"(under {threshold:g} tokens/s)")
    if spd is None:
        notes.append("speed unknown: no memory bandwidth for this device")
    elif runtime.speed.get("note"):
        notes.append(runtime.speed["note"])
    lnch = launch.command(model, quant.id, art, used_est, placed, runtime, kv, machine=machine, options=options)
    notes += list(lnch.notes)
    q = qmod.score(model, quant.id, use_cases, cat)
    return Plan(model=model, quant=quant.id, runtime=runtime, artifact=art, estimate=used_est, placement=placed,
                speed=spd, launch=lnch, quality=q.rank_value, quality_estimated=q.estimated, interactive=interactive,
                notes=tuple(notes), quality_detail=q, repacked_bytes=repacked)


# ---------------------------------------------------------------- can-run: what would change the answer


def would_fit_with(cat: Catalog, machine: Machine, model: ModelSpec, request: Request, context: int) -> list[str]:
    """The smallest changes that give `model` a usable (interactive) plan."""
    out: list[str] = []
    base = replace(request, models=(model.id,))

    def usable(m: Machine, req: Request) -> Plan | None:
        res = plan(cat, m, req)
        good = [p for p in res.plans if p.interactive]
        return one_per_model(good)[0] if good else None

    best = usable(machine, base)
    if best is not None:
        return []
    limit = model.context_length_extended or model.context_length
    if context > limit:
        # A context-length limit of the model: no amount of memory changes it.
        return [f"a context of at most {limit} tokens: {model.id} is trained for {limit}"]
    allowed = _allowed_runtimes(cat, request)
    # 1. a smaller quantization than the catalog's files (community GGUF repos publish them)
    smaller = _smaller_quant(cat, machine, model, context, allowed)
    if smaller:
        out.append(smaller)
    # 2. a shorter context
    for ctx in (context // 2, context // 4, 4096, 2048):
        if 512 <= ctx < context:
            p = usable(machine, replace(base, context=ctx))
            if p:
                out.append(f"a shorter context: {ctx} tokens ({p.quant} on {p.runtime.id}, {p.placement.kind})")
                break
    # 3. a quantized KV cache (where an allowed runtime has one)
    if context >= 4096 and any("q8_0" in r.kv_cache_types for r in cat.runtimes if r.id in allowed):
        p = usable(machine, replace(base, kv_cache_type="q8_0"))
        if p:
            out.append(f"a q8_0 KV cache (--kv-cache-type q8_0: {p.quant} on {p.runtime.id})")
    # 4. more GPUs of the same kind (MIG instances are never pooled)
    if machine.gpus and not machine.gpus[0].unified_memory and not any(g.mig_instance for g in machine.gpus):
        g = machine.gpus[0]
        for n in (2, 4, 8):
            if n <= len(machine.gpus):
                continue
            m2 = replace(machine, gpus=tuple(replace(g, index=i) for i in range(n)))
            p = usable(m2, base)
            if p:
                out.append(f"{n} x {g.name} ({p.quant} on {p.runtime.id}, {p.placement.kind})")
                break
    # 5. more memory: the smallest GPU (or unified / RAM) size that fits the smallest artifact
    need = _smallest_need(cat, machine, model, context, allowed)
    if need:
        out.append(need)
    # 6. more RAM, where partial offload could then hold it (slowly)
    if machine.gpus and not machine.gpus[0].unified_memory and not plan(cat, machine, base).plans:
        for gib in (32, 64, 128, 256, 512, 1024):
            ram = gib << 30
            if ram <= machine.memory.usable_bytes:
                continue
            m2 = replace(machine, memory=replace(machine.memory, total_bytes=ram, available_bytes=ram, limit_bytes=None))
            res = plan(cat, m2, base)
            if res.plans:
                p = one_per_model(res.plans)[0]
                pace = f"~{p.speed.expected:.1f} tokens/s" if p.speed else "speed unknown"
                slow = "" if p.interactive else ", too slow for interactive use"
                out.append(f"{gib} GiB of RAM: {p.placement.kind} with {p.quant} on {p.runtime.id} ({pace}{slow})")
                break
    return out


def _smaller_quant(cat: Catalog, machine: Machine, model: ModelSpec, context: int,
                   allowed: set[str] | None = None) -> str | None:
    """The largest GGUF quantization below the catalogued ones that gives an interactive plan, on
    the preferred runtime that loads any GGUF file (community repos publish the smaller ones)."""
    rt = next((r for r in sorted(cat.runtimes, key=lambda r: (r.rank, r.id))
               if "gguf" in r.formats and (allowed is None or r.id in allowed)), None)
    if rt is None or fit.runtime_on_machine(machine, rt):
        return None
    have = [cat.quants[q.upper()] for q in model.quants() if q.upper() in cat.quants and "gguf" in cat.quants[q.upper()].formats]
    if not have:
        return None
    ladder = sorted((q for q in cat.quants.values() if q.gguf and q.id in rt.quants and q.id != "MXFP4"),
                    key=lambda q: -q.bpw("default"))
    smallest = min(q.bpw("default") for q in have)
    threshold = float(cat.constants["interactive_tokens_per_s"])
    for q in ladder:
        if q.bpw("default") >= smallest:
            continue
        gpus, _ = fit.runtime_gpus(machine, rt, q)
        try:
            est = memory.estimate(model, q.id, rt, cat, context=context, gpu=bool(gpus))
            cpu = memory.estimate(model, q.id, rt, cat, context=context, gpu=False)
        except PlannerError:
            continue
        placed = fit.place(est, cpu, model, machine, rt, q, cat)
        if isinstance(placed, fit.Rejection):
            continue
        spd = speed.estimate_speed(cpu if placed.kind == "cpu" else est, model, placed, machine, rt, cat)
        if spd is not None and spd.expected >= threshold:
            return (f"a smaller quantization: {q.id} ({placed.required_bytes / 2**30:.1f} GiB, {placed.kind}, "
                    f"~{spd.expected:.0f} tokens/s; not in the catalog: check that a GGUF repo publishes it)")
    return None


def _allowed_runtimes(cat: Catalog, request: Request) -> set[str]:
    """The runtimes a suggestion may use: those asked for with --runtime, else all."""
    if not request.runtimes:
        return {r.id for r in cat.runtimes}
    return {rid for r in request.runtimes if (rid := runtime_id(r, cat)) is not None}


def _smallest_need(cat: Catalog, machine: Machine, model: ModelSpec, context: int,
                   allowed: set[str] | None = None) -> str | None:
    """The memory the smallest artifact needs, on runtimes this machine's OS runs (and --runtime
    allows), in formats that load on this OS; None when the machine already has that much (then
    memory is not what stops it)."""
    sizes = []
    for rt in cat.runtimes:
        if (allowed is not None and rt.id not in allowed) or fit.runtime_on_machine(machine, rt):
            continue
        for qid in rt.quants:
            q = cat.quants.get(qid.upper())
            if q is None:
                continue
            fmt = memory.artifact_format(model, q, rt)
            if fmt is None or machine.os.system not in rt.format_os.get(fmt, (machine.os.system,)):
                continue
            try:
                est = memory.estimate(model, q.id, rt, cat, context=min(context, model.context_length),
                                      gpu=bool(machine.gpus))
            except PlannerError:
                continue
            sizes.append((est.total_bytes, q.id, rt.id))
    if not sizes:
        return None
    total, qid, rid = min(sizes)
    gib = total / 2**30
    constants = cat.constants
    if machine.gpus and machine.gpus[0].unified_memory:
        g = machine.gpus[0]
        have = fit.apple_working_set(g.memory_total_bytes, constants) if g.vendor == "apple" else \
            fit.usable_ram_bytes(machine, constants)
        if have >= total:
            return None
        what = "a Mac with more memory" if g.vendor == "apple" else "a machine with more unified memory"
        return f"about {gib:.0f} GiB for the model within the GPU working set ({qid} on {rid}): {what}"
    if machine.gpus:
        if sum(fit.usable_gpu_bytes(g) for g in machine.gpus) >= total:
            return None
        return f"GPU memory of at least {gib:.1f} GiB in total ({qid} on {rid})"
    if fit.usable_ram_bytes(machine, constants) >= total:
        return None
    return f"at least {gib / (1 - constants['cpu_os_reserve_fraction']):.0f} GiB of RAM ({qid} on {rid})"


