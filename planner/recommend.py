"""Candidates, filters and the one sort key that orders plans.

A candidate is model x quantization x runtime. It is kept when the runtime runs on the machine,
the catalog lists an artifact for that quantization, and the memory engine finds a placement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from . import fit, launch, memory, speed
from .catalog import Artifact, Catalog, ModelSpec, RuntimeSpec
from .errors import PlannerError, UsageError
from .hardware import Machine

LICENCE_FILTERS = ("any", "commercial", "permissive")
PLACEMENT_ORDER = {"gpu": 0, "unified": 0, "multi-gpu": 1, "partial-offload": 2, "cpu": 3}
# Benchmarks on one scale (the lab's MMLU variants); others are not compared with them.
MMLU_FAMILY = ("MMLU", "MMLU-redux", "MMLU (CoT)")


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

    def to_dict(self, context: int) -> dict:
        return {"licence": self.licence, "context": context, "runtimes": list(self.runtimes),
                "quants": list(self.quants), "use_cases": list(self.use_cases), "min_tps": self.min_tps,
                "kv_cache_type": self.kv_cache_type}


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
            "placement": p.kind,
            "context": e.context,
            "memory": {"required_bytes": p.required_bytes, "available_bytes": p.available_bytes,
                       "weights_bytes": e.weights_bytes, "kv_cache_bytes": e.kv_cache_bytes,
                       "overhead_bytes": p.required_bytes - e.weights_bytes - e.kv_cache_bytes,
                       "device_bytes": p.device_bytes, "host_bytes": p.host_bytes},
            "gpu_layers": p.gpu_layers,
            "layers": e.layers,
            "tensor_parallel": p.tensor_parallel,
            "max_context": p.max_context,
            "tokens_per_s": self.speed.to_dict() if self.speed else None,
            "prefill_tokens_per_s": round(self.speed.prefill_tokens_per_s, 0)
            if self.speed and self.speed.prefill_tokens_per_s else None,
            "time_to_first_token_s": round(self.speed.time_to_first_token_s, 2)
            if self.speed and self.speed.time_to_first_token_s else None,
            "interactive": self.interactive,
            "quality": {"benchmark": m.quality.benchmark if m.quality else None,
                        "score": m.quality.score if m.quality else None,
                        "rank_score": round(self.quality, 1), "estimated": self.quality_estimated},
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


_QUALITY_FIT: dict[int, tuple[float, float, float]] = {}


def _quality_fit(cat: Catalog) -> tuple[float, float, float]:
    """score ~ a + b log10(params) over the catalog's MMLU-family scores, and the residuals' spread."""
    key = id(cat)
    if key not in _QUALITY_FIT:
        pts = [(math.log10(m.params), m.quality.score) for m in cat.models
               if m.quality and m.quality.benchmark in MMLU_FAMILY]
        n = len(pts)
        mx = sum(x for x, _ in pts) / n
        my = sum(y for _, y in pts) / n
        sxx = sum((x - mx) ** 2 for x, _ in pts) or 1.0
        b = sum((x - mx) * (y - my) for x, y in pts) / sxx
        a = my - b * mx
        spread = math.sqrt(sum((y - a - b * x) ** 2 for x, y in pts) / max(1, n - 2))
        _QUALITY_FIT[key] = (a, b, spread)
    return _QUALITY_FIT[key]


def quality(model: ModelSpec, cat: Catalog) -> tuple[float, bool]:
    """(score on the MMLU scale, whether it is estimated from the parameter count).

    Without a published MMLU-family score, the fit over the catalog's scores by log10(parameters)
    gives the estimate, less one standard deviation of its residuals: a cautious figure, so a model
    with no published score never outranks one with an equal published score.
    """
    if model.quality and model.quality.benchmark in MMLU_FAMILY:
        return model.quality.score, False
    a, b, spread = _quality_fit(cat)
    return min(100.0, a + b * math.log10(model.params) - spread), True


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
                out = candidate(cat, machine, model, qid, runtime, context, request.kv_cache_type)
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
    return Result(plans=plans, rejected=rejected, licence_excluded=excluded, context=context)


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
              kv_cache_type: str | None) -> Plan | str | None:
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
    kv = kv_cache_type if kv_cache_type in runtime.kv_cache_types else None
    if kv_cache_type and kv is None:
        return f"{runtime.id} has no {kv_cache_type} KV cache"
    gpus, _ = fit.runtime_gpus(machine, runtime, quant)
    try:
        est = memory.estimate(model, quant.id, runtime, cat, context=context, kv_cache_type=kv, gpu=bool(gpus))
        cpu_est = est if not gpus else memory.estimate(model, quant.id, runtime, cat, context=context,
                                                       kv_cache_type=kv, gpu=False)
    except PlannerError as e:
        return e.message
    placed = fit.place(est, cpu_est, model, machine, runtime, quant, cat)
    if isinstance(placed, fit.Rejection):
        return placed.reason
    used_est = cpu_est if placed.kind == "cpu" else est
    spd = speed.estimate_speed(used_est, model, placed, machine, runtime, cat, prompt_tokens=min(context, 1024))
    threshold = float(cat.constants["interactive_tokens_per_s"])
    interactive = spd.expected >= threshold if spd else placed.kind in ("gpu", "multi-gpu", "unified")
    notes = list(used_est.notes) + list(placed.notes)
    if spd is not None and not interactive:
        notes.append(f"about {spd.expected:.1f} tokens/s: too slow for interactive use "
                     f"(under {threshold:g} tokens/s)")
    if spd is None:
        notes.append("speed unknown: no memory bandwidth for this device")
    elif runtime.speed.get("note"):
        notes.append(runtime.speed["note"])
    lnch = launch.command(model, quant.id, art, used_est, placed, runtime, kv)
    notes += list(lnch.notes)
    q, estimated = quality(model, cat)
    return Plan(model=model, quant=quant.id, runtime=runtime, artifact=art, estimate=used_est, placement=placed,
                speed=spd, launch=lnch, quality=q, quality_estimated=estimated, interactive=interactive,
                notes=tuple(notes))


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
    # 1. a smaller quantization than the catalog's files (community GGUF repos publish them)
    smaller = _smaller_quant(cat, machine, model, context)
    if smaller:
        out.append(smaller)
    # 2. a shorter context
    for ctx in (context // 2, context // 4, 4096, 2048):
        if 512 <= ctx < context:
            p = usable(machine, replace(base, context=ctx))
            if p:
                out.append(f"a shorter context: {ctx} tokens ({p.quant} on {p.runtime.id}, {p.placement.kind})")
                break
    # 3. a quantized KV cache
    if context >= 4096:
        p = usable(machine, replace(base, kv_cache_type="q8_0"))
        if p:
            out.append(f"a q8_0 KV cache (--kv-cache-type q8_0: {p.quant} on {p.runtime.id})")
    # 4. more GPUs of the same kind
    if machine.gpus and not machine.gpus[0].unified_memory:
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
    need = _smallest_need(cat, machine, model, context)
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


def _smaller_quant(cat: Catalog, machine: Machine, model: ModelSpec, context: int) -> str | None:
    """The largest llama.cpp quantization below the catalogued ones that gives an interactive plan."""
    rt = next((r for r in cat.runtimes if r.id == "llama.cpp"), None)
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


def _smallest_need(cat: Catalog, machine: Machine, model: ModelSpec, context: int) -> str | None:
    sizes = []
    for rt in cat.runtimes:
        if fit.runtime_on_machine(machine, rt):
            continue
        for qid in rt.quants:
            q = cat.quants.get(qid.upper())
            if q is None or memory.artifact_format(model, q, rt) is None:
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
    if machine.gpus and machine.gpus[0].unified_memory:
        return f"about {gib:.0f} GiB for the model within the GPU working set ({qid} on {rid}): a Mac with more memory"
    if machine.gpus:
        return f"GPU memory of at least {gib:.1f} GiB in total ({qid} on {rid})"
    return f"at least {gib / (1 - cat.constants['cpu_os_reserve_fraction']):.0f} GiB of RAM ({qid} on {rid})"


