"""Candidates, filters and the one sort key that orders plans.

A candidate is model x quantization x runtime. It is kept when the runtime runs on the machine,
can load that quantization's format here, a file exists or can be made (see `artifact_for`), and
the memory engine finds a placement.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import NamedTuple

from . import convert, fit, launch, memory, serving, speed
from . import quality as qmod
from .catalog import Artifact, Catalog, ModelSpec, QuantSpec, RuntimeSpec
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
    # --concurrency N: plan a server for N users decoding at once (None: one interactive user)
    concurrency: int | None = None

    def __post_init__(self) -> None:
        if self.concurrency is not None and self.concurrency < 1:
            raise UsageError(f"--concurrency {self.concurrency} is out of range",
                             hint="allowed: a whole number of users at once, 1 or more, e.g. --concurrency 32")
        if self.min_tps is not None and self.min_tps < 0:
            raise UsageError(f"--min-tps {self.min_tps:g} is out of range", hint="allowed: 0 or more tokens/s")

    def to_dict(self, context: int) -> dict:
        d = {"licence": self.licence, "context": context, "runtimes": list(self.runtimes),
             "quants": list(self.quants), "use_cases": list(self.use_cases), "min_tps": self.min_tps,
             "kv_cache_type": self.kv_cache_type}
        if self.concurrency is not None:
            d["concurrency"] = self.concurrency
        if self.options != Options():
            d["gpu_memory_utilization"] = self.options.gpu_memory_utilization
            d["enforce_eager"] = self.options.enforce_eager
        return d


class _Later:
    """What `candidate` leaves undone: a function returning {field name: value} for the plan's
    `launch`, `notes` and `repacked_bytes`.

    Most evaluated plans are never shown (the search in `plan` keeps one per model), and the launch
    command (with the notes that follow it) and a CPU plan's repacked bytes are the costliest parts
    of a plan to build, and no ranking reads them; they are made on the first read of any of those
    fields, from the same inputs, so they are the same values."""

    __slots__ = ("finish",)

    def __init__(self, finish) -> None:
        self.finish = finish


class _Deferred:
    """A `Plan` field that may be given as a `_Later`: computed on first read, then stored.

    A data descriptor, so the frozen dataclass's `__init__` (object.__setattr__) and
    `dataclasses.replace` go through it; every read returns the finished value."""

    def __init__(self, *default) -> None:
        self.default = default  # () : the field has no default

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, obj, owner=None):
        if obj is None:  # the dataclass asks the class for the field's default
            if not self.default:
                raise AttributeError(self.name)
            return self.default[0]
        try:
            value = obj.__dict__[self.name]
        except KeyError:
            raise AttributeError(self.name) from None
        if isinstance(value, _Later):
            for name, done in value.finish().items():
                if obj.__dict__.get(name) is value:  # a field given its own value stays as given
                    obj.__dict__[name] = done
            value = obj.__dict__[self.name]
        return value

    def __set__(self, obj, value) -> None:
        obj.__dict__[self.name] = value


@dataclass(frozen=True)
class Plan:
    """One model x quantization x runtime that fits. `launch`, `notes` and `repacked_bytes` may be
    built on first read (see `_Later`): `candidate` gives them one `_Later`."""

    model: ModelSpec
    quant: str
    runtime: RuntimeSpec
    artifact: Artifact
    estimate: memory.MemoryEstimate
    placement: fit.Placement
    speed: speed.Speed | None
    launch: launch.Launch = _Deferred()  # type: ignore[assignment]
    quality: float
    quality_estimated: bool
    interactive: bool
    notes: tuple[str, ...] = _Deferred(())  # type: ignore[assignment]
    # llama.cpp CPU plans: weights copied into the CPU_REPACK buffer at load
    repacked_bytes: int = _Deferred(0)  # type: ignore[assignment]

    @property
    def resident_bytes(self) -> int | None:
        """RSS right after loading a llama.cpp CPU plan with mmap: file + repacked copy + KV + buffers."""
        if self.placement.kind != "cpu" or self.estimate.format not in ("gguf", "ollama"):
            return None
        return self.estimate.total_bytes + self.repacked_bytes
    quality_detail: qmod.Quality | None = None  # the benchmark, figure, source and quantization penalty
    low_bit: bool = False  # the quantization's `low_bit` flag (quants.yaml)
    # Points a file that must be made gives up in the ranking (data/constants.yaml convert_quality_margin)
    convert_margin: float = 0.0
    serving: serving.Serving | None = None  # --concurrency N: the plan's figures at N users
    # Servers: 0 when the quantization loses under constants serving.quant_loss_tolerance points, else 1
    loss_class: int = 0

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
            **({"serving": self.serving.to_dict()} if self.serving is not None else {}),
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
    # The quality the quantization keeps: the model's figure less the quantization's published loss
    # (data/quality.yaml quant_loss), less CONVERT_MARGIN for a file that must be made. Q8_0 and the
    # model's own precision lose 0.0 and tie, so speed decides between them; a lab's own release
    # format (gpt-oss MXFP4) loses nothing. Bits per weight do not order quality: Q4_1 is larger
    # than Q4_K_M and loses more (0.9 vs 0.6 points).
    return plan.quality - plan.convert_margin


def _low_bit(plan: Plan) -> bool:
    # Low-bit recipes (quants.yaml `low_bit`) lose enough quality that a bigger model squeezed into
    # them ranks after every plan at a normal precision.
    return plan.low_bit


def _tps(plan: Plan) -> float:
    return plan.speed.expected if plan.speed else 0.0


def _user_tps(plan: Plan) -> float:
    """Tokens/s one user sees: at the planned load for a server (--concurrency), else alone."""
    if plan.serving is not None:
        return plan.serving.per_user_tokens_per_s
    return _tps(plan)


def _made(plan: Plan) -> bool:
    # A file that must be converted and quantized first ranks below an otherwise equal one that
    # downloads (or is already on disk); it still counts as a plan: can-run answers YES for it.
    return plan.artifact.source == "convert"


def placement_class(plan: Plan) -> int:
    """How well the placement runs here, 0 best: all on one GPU, unified memory, or tensor parallel
    over several GPUs (decode reads each GPU's share at once, so speed scales); 1 layers split across
    GPUs (memory adds up, speed does not); 2 MoE experts in RAM; 3 partial offload; 4 CPU."""
    p = plan.placement
    if p.kind == "multi-gpu" and p.tensor_parallel:
        return 0
    return PLACEMENT_ORDER[p.kind]


# The ranking keys' terms, in order: the first term where two plans differ decides (planner/explain.py
# names it). Each key function below returns one value per name.
INTERACTIVE_TERMS = ("usable", "precision", "quality", "placement", "quality (to 0.01)", "file", "speed",
                     "headroom", "model id", "runtime preference", "runtime id", "quantization")
SERVING_TERMS = ("usable at load", "precision", "quantization loss", "model quality", "throughput",
                 "quality (to 0.01)", "file", "speed per user", "headroom", "model id", "runtime preference",
                 "runtime id", "quantization")


def _model_tier(plan: Plan) -> float:
    # The model's own figure before the quantization's loss, less the convert margin (servers).
    q = plan.quality_detail
    return (q.value if q is not None else plan.quality) - plan.convert_margin


def plan_key(plan: Plan) -> tuple:
    """THE ranking. One user (no --concurrency): interactive plans first; then plans at a normal
    precision before low-bit ones; then model quality (0.1 point); then how well it runs here
    (`placement_class`); then quantization quality; then a downloadable file before one to make;
    then speed; then memory headroom; then a stable tie-breaker (id, runtime preference, quant).

    A server (`plan.serving`, --concurrency N): plans whose every user gets an interactive speed at
    N users first; then precision as above; then quantizations that lose under
    serving.quant_loss_tolerance points before those that lose more (`Plan.loss_class`); then the
    model's own quality (0.1 point, before the quantization's loss); then aggregate throughput at N
    users in place of placement (which it already prices: tensor parallel adds bandwidth, offload
    removes it): so a server runs the best model at the quantization that serves the most tokens
    among those that keep its quality within the tolerance; then the rest as above with the per-user
    speed. Term names: INTERACTIVE_TERMS / SERVING_TERMS."""
    tier = _quant_tier(plan)
    tail = (-round(_quant_tier(plan), 2), _made(plan))
    ids = (plan.model.id, plan.runtime.rank, plan.runtime.id, plan.quant)
    if plan.serving is not None:
        s = plan.serving
        return (not plan.interactive, _low_bit(plan), plan.loss_class, -round(_model_tier(plan), 1),
                -round(s.aggregate_tokens_per_s, 0), *tail, -round(s.per_user_tokens_per_s, 1),
                -round(plan.placement.headroom, 3), *ids)
    return (not plan.interactive, _low_bit(plan), -round(tier, 1), placement_class(plan), *tail,
            -round(_tps(plan), 1), -round(plan.placement.headroom, 3), *ids)


def key_terms(plan: Plan) -> tuple[str, ...]:
    """The names of `plan_key(plan)`'s terms, in order."""
    return SERVING_TERMS if plan.serving is not None else INTERACTIVE_TERMS


def best_per_model_key(plan: Plan) -> tuple:
    """Within one model: usable first, then a normal precision before a low-bit one, best placement; then the best quantization among usable
    plans, but the fastest among plans too slow to use; then a file to download before one to
    make; then runtime preference. A server (--concurrency): usable at load, precision, loss class,
    model quality, then aggregate throughput (as in plan_key)."""
    tier, tps = -round(_quant_tier(plan), 2), -round(_tps(plan), 1)
    if plan.serving is not None:
        return (not plan.interactive, _low_bit(plan), plan.loss_class, -round(_model_tier(plan), 1),
                -round(plan.serving.aggregate_tokens_per_s, 0), tier, _made(plan), plan.runtime.rank,
                plan.runtime.id, plan.quant)
    return (not plan.interactive, _low_bit(plan), placement_class(plan),
            (tier, tps) if plan.interactive else (tps, tier), _made(plan), plan.runtime.rank, plan.runtime.id,
            plan.quant)


def best_key_terms(plan: Plan) -> tuple[str, ...]:
    """The names of `best_per_model_key(plan)`'s terms, its nested pair flattened, in order."""
    if plan.serving is not None:
        return ("usable at load", "precision", "quantization loss", "model quality", "throughput",
                "quality (to 0.01)", "file", "runtime preference", "runtime id", "quantization")
    pair = ("quality (to 0.01)", "speed") if plan.interactive else ("speed", "quality (to 0.01)")
    return ("usable", "precision", "placement", *pair, "file", "runtime preference", "runtime id", "quantization")


# ---------------------------------------------------------------- planning


def plan(cat: Catalog, machine: Machine, request: Request, *, explain: bool = False,
         best_only: bool = False) -> Result:
    """Every fitting model x quantization x runtime plan, sorted by `plan_key`.

    `best_only`: evaluate only what can be a model's best plan (for `one_per_model`), see
    `_search_best`; `plan --all`, `--explain` and `can-run` evaluate every candidate.
    """
    constants = cat.constants
    context = request.context or int(constants["default_context"])
    if request.concurrency is not None:
        # The bisection's premises are those of the one-user key (placement before quality, single
        # speed); a server's key differs, so every candidate is evaluated.
        best_only = False
    rejected: list[dict] = []
    excluded: dict[str, list[str]] = {}
    _check_choices(cat, request)
    runtimes = _runtimes(cat, machine, request, rejected if explain else None)
    from .cpu_kernels import speed_factor

    # Types whose CPU kernels are slower than memory: kept out of the bisection (see _search_all).
    slow_kernels = frozenset(q.id for q in cat.quants.values()
                             if speed_factor(q.id, machine.cpu.arch, machine.cpu.flags) is not None)
    capacity = sum(g.memory_total_bytes for g in machine.gpus) + machine.memory.total_bytes
    try:
        table = qmod.load_table()  # read once here, not per candidate
    except PlannerError:
        table = None  # each candidate reads it and reports the error where it always has
    system = machine.os.system
    # Per runtime, the quantizations it loads that the request allows (before the per-model checks).
    allowed = {runtime.id: [_route(quant, runtime, system) for qid in runtime.quants
                            if (quant := cat.quants.get(qid.upper())) is not None
                            and (qid.upper() in request.quants if request.quants else quant.candidate)]
               for runtime in runtimes}
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
            # (quantization, quality kept, weight bytes, published) of every candidate with a file
            options = _options(cat, model, allowed[runtime.id], table, best_only)
            seen: dict[str, Plan | None] = {}

            def evaluate(option, model=model, runtime=runtime, seen=seen) -> Plan | None:
                """The option's plan (kept in `plans`), or None (rejected: kept in `rejected`)."""
                key = option[0].id
                if key in seen:
                    return seen[key]
                out = candidate(cat, machine, model, key, runtime, context, request.kv_cache_type, request.options,
                                use_cases=request.use_cases, concurrency=request.concurrency, quality_table=table)
                if isinstance(out, str):
                    if explain:
                        rejected.append({"model": model.id, "quant": option[0].id, "runtime": runtime.id,
                                         "reason": out})
                    out = None
                elif out is not None and request.min_tps is not None and (
                        out.speed is None or _user_tps(out) < request.min_tps):
                    if explain:
                        got = f"{_user_tps(out):.1f}" if out.speed else "unknown"
                        each = f" per user at {request.concurrency} users" if out.serving else ""
                        rejected.append({"model": model.id, "quant": option[0].id, "runtime": runtime.id,
                                         "reason": f"{got} tokens/s expected{each}, below --min-tps "
                                                   f"{request.min_tps:g}"})
                    out = None
                if out is not None:
                    plans.append(out)
                seen[key] = out
                return out

            if not best_only:
                for option in options:
                    evaluate(option)
                continue
            # Largest file first; weights that exceed every byte of the machine never fit.
            options = sorted((o for o in options if o[2] <= capacity), key=lambda o: (-o[2], o[0].id))
            margin = float(constants["convert_quality_margin"])
            _search_all(options, evaluate, margin, slow_kernels,
                        one_class=not (machine.gpus and fit.runtime_gpus(machine, runtime)[0]))
    plans.sort(key=plan_key)
    # Per model and runtime, the smallest file first: its reason is the one closest to fitting.
    rejected.sort(key=lambda r: (r["model"], r["runtime"], _rejected_size(cat, r), r["quant"] or ""))
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


def _rejected_size(cat: Catalog, r: dict) -> int:
    q = cat.quants.get((r["quant"] or "").upper())
    if q is None or r["model"] == "*":
        return 0
    try:
        return memory.weights(cat.model(r["model"]), q, (q.formats or ("gguf",))[0], cat).total_bytes
    except KeyError:
        return 0


def _size(cat: Catalog, model: ModelSpec, quant: QuantSpec, fmt: str | None,
          table: qmod.Table | None = None) -> tuple[float, int]:
    """(quality kept, weight bytes) of this quantization in `fmt`, the runtime's first format that
    carries it (None: none does; (0.0, 0)): quality kept is minus the quantization's published loss
    (the order `_quant_tier` ranks by, less the convert margin the search does not know of: ties
    are evaluated, and plan_key decides)."""
    if fmt is None:
        return 0.0, 0
    w = memory.weights(model, quant, fmt, cat)
    return -qmod.quant_penalty(model, quant.id, cat, table), w.total_bytes


# Types whose bytes read per token do not follow their file size: MXFP4 files keep every tensor but the
# experts at 8 bits (quants.yaml), so a MXFP4 file reads more per token than a same-sized IQ4 one.
# Evaluated on their own, outside the bisection (one plan per MoE model and runtime).
IRREGULAR = frozenset({"MXFP4"})


def _search_all(options: list, evaluate, margin: float, slow: frozenset[str], one_class: bool = False) -> None:
    """Evaluate what can be the best plan of one model and runtime: the normal-precision files by
    `_search_best`; only when none is interactive, the low-bit ones.

    Types whose CPU kernels are slower than memory (`slow`, planner/cpu_kernels.py) break the
    search's premise that a smaller file is never slower, so they are kept out of the bisection and
    evaluated one by one, unless the search already found an interactive plan in the best placement
    class (or `one_class`: the runtime has no GPU here, every plan is a CPU plan): there a slow type cannot win (it keeps less quality than every other file of its
    precision, and `best_per_model_key` ranks quality right after placement)."""
    got: list[Plan] = []

    def ev(option):
        p = evaluate(option)
        if p is not None:
            got.append(p)
        return p

    for group in ([o for o in options if not o[0].low_bit], [o for o in options if o[0].low_bit]):
        found = _search_best([o for o in group if o[0].id not in slow and o[0].id not in IRREGULAR], ev, margin)
        for o in (o for o in group if o[0].id in IRREGULAR):
            p = ev(o)
            found = found or bool(p is not None and p.interactive)
        usable = [p for p in got if p.interactive]
        if found and usable and (one_class or placement_class(min(usable, key=best_per_model_key)) == 0):
            return
        hit = False
        for o in (o for o in group if o[0].id in slow):
            p = ev(o)
            hit = hit or bool(p is not None and p.interactive)
        if found or hit:
            return


def _search_best(options: list, evaluate, margin: float = 0.0) -> bool:
    """Evaluate, among `options` ((quantization, quality kept, weight bytes, published) of one model and
    runtime, largest file first), the candidates that can be the best by `best_per_model_key`; True when one
    is interactive.

    Assumes what holds for one model and runtime: a smaller file never gets a worse placement or
    a lower speed. So the smallest file is the best of the group unless it is interactive; then
    the best are the files with its placement that stay interactive and keep the most quality,
    found by bisection (a handful of evaluations instead of one per quantization). When those are
    files to make, the best published file within `margin` points is evaluated too: it may outrank
    them (convert_quality_margin).
    """
    if not options:
        return False

    def good(p, kind) -> bool:
        return p is not None and p.interactive and PLACEMENT_ORDER[p.placement.kind] == kind

    def ties(group: list) -> None:
        top = max(round(o[1], 2) for o in group)
        best = [o for o in group if round(o[1], 2) == top]
        for o in best:
            evaluate(o)
        if margin and not any(o[3] for o in best):
            # the best are files to make: the best published file within the margin may outrank them
            near = [o for o in group if o[3] and round(o[1], 2) >= top - margin - 1e-9]
            if near:
                keep = max(round(o[1], 2) for o in near)
                for o in near:
                    if round(o[1], 2) == keep:
                        evaluate(o)

    first = evaluate(options[0])
    if good(first, 0):
        ties(options)
        return True
    last = evaluate(options[-1])
    if last is None:
        return False  # nothing fits
    if not last.interactive:
        # The smallest file is the fastest and best placed: the best of the group, with any larger
        # file of the same placement and (rounded) speed, which then wins on quality.
        for o in reversed(options[:-1]):
            p = evaluate(o)
            if p is None or p.placement.kind != last.placement.kind or round(_tps(p), 1) != round(_tps(last), 1):
                break
        return False
    kind = PLACEMENT_ORDER[last.placement.kind]
    lo, hi = 0, len(options) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if good(evaluate(options[mid]), kind):
            hi = mid
        else:
            lo = mid + 1
    ties(options[lo:])
    return True


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
            import difflib

            close = difflib.get_close_matches(q.upper(), sorted(cat.quants), n=3, cutoff=0.5)
            raise UsageError(f"unknown quantization {q!r}",
                             hint=f"did you mean {', '.join(close)}?" if close else
                             "known: " + ", ".join(sorted(x.id for x in cat.quants.values())))
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


def artifact_for(model: ModelSpec, quant: QuantSpec, runtime: RuntimeSpec, system: str) -> Artifact | None:
    """Where the runtime's file for this model and quantization comes from, or None.

    1. a catalogued artifact in one of the runtime's formats (source "catalog");
    2. Ollama without a library tag: a catalogued single-file GGUF through `hf.co/{repo}:{quant}`
       (huggingface.co/docs/hub/ollama; split GGUFs are not served that way);
    3. a GGUF the runtime can load from a path (planner/runtimes: `loads_local_files`): made with
       llama.cpp's converter and quantizer (source "convert", steps from planner/convert.py).
    Other formats (AWQ, GPTQ, FP8, MLX) need a catalogued repository.
    """
    fmts, _ = _routes(quant, runtime, system)
    index = _artifact_index(model)
    for fmt in fmts:
        art = index.get((fmt, quant.id.upper()))
        if art is not None:
            return art
    gguf_like = [f for f in fmts if f in ("gguf", "ollama")]
    if not gguf_like:
        return None
    fmt = gguf_like[0]
    hub = index.get(("gguf", quant.id.upper()))
    if hub is not None and hub.source == "local" and launch.loads_local_path(runtime.id):
        return hub  # a GGUF on this disk: Ollama imports it with a Modelfile
    if fmt == "ollama" and hub is not None and hub.file and "-00001-of-" not in hub.file:
        return Artifact(format="ollama", quant=quant.id, repo=hub.repo, file=hub.file, size_bytes=hub.size_bytes,
                        tag=f"hf.co/{hub.repo}:{quant.id}")
    if not launch.loads_local_path(runtime.id):  # the runtime keeps its own model store
        return None
    if _has_local(model):  # a model read from a file: plan that file
        return None
    return Artifact(format=fmt, quant=quant.id, repo=model.hf_repo, source="convert",
                    path=convert.output_file(model.id, quant.id))


class _Route(NamedTuple):
    """How a runtime gets a quantization's file on one OS (`_route`)."""

    quant: QuantSpec
    runtime: RuntimeSpec
    formats: list[str]  # the runtime's formats for this quantization on this OS
    makeable: bool  # a GGUF can be made for it (and the runtime loads it from a path)
    first_format: str | None  # the first of memory.carrying_formats (any OS), None: none
    key: str  # the quantization id in upper case, as `_artifact_index` keys it
    ollama: bool  # "ollama" in formats
    loads_path: bool  # launch.loads_local_path(runtime.id)


_ROUTES: dict[tuple, _Route] = {}


def _routes(quant: QuantSpec, runtime: RuntimeSpec, system: str) -> tuple[list[str], bool]:
    """The runtime's formats for this quantization on this OS, and whether a GGUF can be made for it."""
    r = _route(quant, runtime, system)
    return r.formats, r.makeable


def _route(quant: QuantSpec, runtime: RuntimeSpec, system: str) -> _Route:
    """The `_Route` of a quantization and runtime on an OS, memoized per object, never a stale one."""
    key = (id(quant), id(runtime), system)
    hit = _ROUTES.get(key)
    if hit is None or hit.quant is not quant or hit.runtime is not runtime:
        carrying = memory.carrying_formats(quant, runtime)
        fmts = [f for f in carrying if system in runtime.format_os.get(f, (system,))]
        path = launch.loads_local_path(runtime.id)
        hit = _ROUTES[key] = _Route(quant, runtime, fmts, any(f in ("gguf", "ollama") for f in fmts) and path,
                                    carrying[0] if carrying else None, quant.id.upper(), "ollama" in fmts, path)
    return hit


def _options(cat: Catalog, model: ModelSpec, routes: list[_Route], table: qmod.Table | None,
             best_only: bool) -> list[tuple[QuantSpec, float, int, bool]]:
    """(quantization, quality kept, weight bytes, published) of each route's quantization (in order)
    that `artifact_for` finds a file for; quality kept and weight bytes (`_size`) and published only
    with `best_only` (else 0.0, 0, False)."""
    index = _artifact_index(model)
    local = _has_local(model)
    out = []
    for route in routes:
        quant = route.quant
        if quant.moe_only and not model.is_moe:
            continue
        can_get, published = _availability(index, local, route)
        if not can_get:
            continue
        if best_only:
            out.append((quant, *_size(cat, model, quant, route.first_format, table), published))
        else:
            out.append((quant, 0.0, 0, False))
    return out


def _availability(index: dict, local: bool, route: _Route) -> tuple[bool, bool]:
    """(`artifact_for(...)` is not None, it is a file to download or already here rather than one to
    make), without building the artifact, for a model with this `_artifact_index` and `_has_local`."""
    q = route.key
    published = any((f, q) in index for f in route.formats)
    if not published and route.ollama:
        hub = index.get(("gguf", q))
        published = hub is not None and ((hub.source == "local" and route.loads_path)
                                         or (bool(hub.file) and "-00001-of-" not in hub.file))
    return published or (route.makeable and not local), published


_INDEX: dict[int, tuple[ModelSpec, dict, bool]] = {}


def _indexed(model: ModelSpec) -> tuple[ModelSpec, dict, bool]:
    """(model, `_artifact_index`, `_has_local`), memoized per model object."""
    hit = _INDEX.get(id(model))
    if hit is None or hit[0] is not model:
        index: dict[tuple[str, str], Artifact] = {}
        for a in model.artifacts:
            index.setdefault((a.format, a.quant.upper()), a)
        hit = _INDEX[id(model)] = (model, index, any(a.source == "local" for a in model.artifacts))
    return hit


def _artifact_index(model: ModelSpec) -> dict[tuple[str, str], Artifact]:
    """(format, QUANT) -> the model's first catalogued artifact, as ModelSpec.artifact finds it."""
    return _indexed(model)[1]


def _has_local(model: ModelSpec) -> bool:
    """The model has an artifact on this disk (a model read from a file)."""
    return _indexed(model)[2]


def candidate(cat: Catalog, machine: Machine, model: ModelSpec, qid: str, runtime: RuntimeSpec, context: int,
              kv_cache_type: str | None, options: Options = Options(), use_cases: tuple[str, ...] = (), *,
              art: Artifact | None = None, concurrency: int | None = None,
              quality_table: qmod.Table | None = None) -> Plan | str | None:
    """A plan, a rejection reason, or None when the combination doesn't exist (no file to get or make).

    `concurrency`: plan a server for that many users at once: KV cache for that many sequences of
    `context` tokens, the runtime's way of serving them (planner/runtimes `serving_reason`,
    `batching`), per-user and aggregate speed (planner/serving.py); None: one interactive user.
    `quality_table`: data/quality.yaml as `quality.load_table()` reads it (given: not looked up again)."""
    quant = cat.quants.get(qid.upper())
    if quant is None or (quant.moe_only and not model.is_moe):
        return None
    art = art or artifact_for(model, quant, runtime, machine.os.system)
    if art is None:
        return None
    if art.source == "local" and not launch.loads_local_path(runtime.id):
        return f"{runtime.id} loads models from its own store, not from a path: use llama.cpp for a local file"
    if art.source == "convert" and not art.steps:
        art = _with_steps(art, model, quant)
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
    users = concurrency or 1
    if concurrency is not None:
        why = rules.serving_reason(concurrency, model)
        if why:
            return why
    gpus, _ = fit.runtime_gpus(machine, runtime, quant)
    try:
        est = memory.estimate(model, quant.id, runtime, cat, context=context, kv_cache_type=kv, gpu=bool(gpus),
                              options=options, devices=tuple(gpus), batch=users)
    except PlannerError as e:
        return e.message
    if gpus:
        device_est, made = est, []

        def cpu_est() -> memory.MemoryEstimate:
            """The estimate without device-only costs (its overhead is arithmetic that cannot fail),
            made once, when a placement in RAM is tried: most candidates of a GPU machine never need it."""
            if not made:
                made.append(memory.on_cpu(device_est, model, runtime, cat, options))
            return made[0]

        est = memory.scale_weights(est, *rules.weight_scale(model, quant, gpus))
    else:
        cpu_est = est
    placed = fit.place(est, cpu_est, model, machine, runtime, quant, cat, options)
    if isinstance(placed, fit.Rejection):
        return placed.reason
    used_est = (cpu_est() if callable(cpu_est) else cpu_est) if placed.kind == "cpu" else est
    spd = speed.estimate_speed(used_est, model, placed, machine, runtime, cat, prompt_tokens=min(context, 1024))
    threshold = float(cat.constants["interactive_tokens_per_s"])
    interactive = spd.expected >= threshold if spd else placed.kind in ("gpu", "multi-gpu", "unified")
    served = None
    if concurrency is not None:
        served = serving.estimate(used_est, model, placed, machine, runtime, cat, concurrency, spd,
                                  rules.batching(concurrency))
        if served is not None:
            interactive = served.per_user_tokens_per_s >= threshold
            if runtime.serving.get("batching", "none") == "none":
                served = replace(served, max_concurrency=1)
    notes = list(used_est.notes) + yarn_notes + list(placed.notes)
    if served is not None:
        notes += serving_notes(served, threshold, placed, machine, runtime.serving.get("batching") == "slots")
    if placed.kind != "cpu":
        notes += list(rules.quant_notes([g for g in gpus if g.index in placed.gpus], quant))
    if placed.kind in ("cpu", "partial-offload", "moe-offload") and spd is not None:
        notes.append(speed.ram_bandwidth_note(machine, cat))
        from .cpu_kernels import speed_factor

        factor = speed_factor(quant.id, machine.cpu.arch, machine.cpu.flags)
        if factor:
            notes.append(f"{quant.id} on a CPU: llama.cpp's kernels for this type decode at about {factor:.2f} of "
                         f"the memory-bound rate of its weights (data/cpu_kernels.yaml): the speed counts that")

    def finish() -> dict:
        """The fields no ranking reads (built on first read): the CPU_REPACK bytes of a llama.cpp CPU
        plan, the launch command, and the plan's notes, the command's own among them."""
        out = list(notes)
        repacked = 0
        if placed.kind == "cpu" and used_est.format in ("gguf", "ollama") and quant.gguf:
            from . import cpu_repack

            repacked, by_type = cpu_repack.recipe_repacked(model.arch, quant, cat.constants, machine.cpu.flags)
            resident = used_est.total_bytes + repacked
            if repacked:
                out.append(f"resident after loading: about {resident / 2**30:.1f} GiB: llama.cpp copies "
                           f"{repacked / 2**30:.1f} GiB of {'/'.join(sorted(by_type))} weights into its CPU_REPACK "
                           f"buffer for {machine.cpu.arch} ({'/'.join(sorted(set(machine.cpu.flags) & {'avx2', 'avx512f', 'neon', 'dotprod', 'i8mm'}))}); "
                           "the file's pages of those tensors stay cached but the kernel can drop them, and "
                           "--no-mmap loads them once")
        if spd is not None and not interactive and served is None:
            out.append(f"about {spd.expected:.1f} tokens/s: too slow for interactive use "
                       f"(under {threshold:g} tokens/s)")
        if spd is None:
            out.append("speed unknown: no memory bandwidth for this device")
        elif runtime.speed.get("note"):
            out.append(runtime.speed["note"])
        lnch = launch.command(model, quant.id, art, used_est, placed, runtime, kv, machine=machine, options=options)
        out += list(lnch.notes)
        if art.source == "convert":
            out += convert.notes(model, quant)
        if quant.low_bit:
            out.append(f"{quant.id} is a low-bit quantization: expect a clear quality loss (ranked after "
                       f"plans at 3.5+ bits)")
        return {"launch": lnch, "notes": tuple(out), "repacked_bytes": repacked}

    later = _Later(finish)
    q = _score(model, quant.id, use_cases, cat, quality_table)
    return Plan(model=model, quant=quant.id, runtime=runtime, artifact=art, estimate=used_est, placement=placed,
                speed=spd, launch=later, quality=q.rank_value, quality_estimated=q.estimated, interactive=interactive,
                notes=later, quality_detail=q, repacked_bytes=later, low_bit=quant.low_bit,
                convert_margin=float(cat.constants["convert_quality_margin"]) if art.source == "convert" else 0.0,
                serving=served,
                loss_class=int(q.quant_penalty >= float(cat.constants["serving"]["quant_loss_tolerance"])))


_STEPS: dict[tuple, tuple] = {}


def _with_steps(art: Artifact, model: ModelSpec, quant: QuantSpec) -> Artifact:
    """A file to make, with the steps that make it (planner/convert.py), memoized per (model,
    quantization) objects and artifact: llama.cpp and LM Studio plan the same file, and can-run
    plans again and again."""
    key = (id(model), id(quant), art)
    hit = _STEPS.get(key)
    if hit is None or hit[0] is not model or hit[1] is not quant:
        if len(_STEPS) > 16384:
            _STEPS.clear()
        hit = _STEPS[key] = (model, quant, replace(art, steps=tuple(tuple(step) for step in convert.steps(model, quant))))
    return hit[2]


_SCORES: dict[tuple, tuple] = {}


def _score(model: ModelSpec, qid: str, use_cases: tuple[str, ...], cat: Catalog,
           table: qmod.Table | None) -> qmod.Quality:
    """`quality.score`, memoized per (model, quantization, use cases, catalog, table) objects: the
    runtimes that load the same quantization of a model ask for the same (immutable) answer."""
    if table is None:
        return qmod.score(model, qid, use_cases, cat)
    key = (id(model), qid, use_cases, id(cat), id(table))
    hit = _SCORES.get(key)
    if hit is None or hit[0] is not model or hit[1] is not cat or hit[2] is not table:
        if len(_SCORES) > 65536:
            _SCORES.clear()
        hit = _SCORES[key] = (model, cat, table, qmod.score(model, qid, use_cases, cat, table))
    return hit[3]


def serving_notes(s: serving.Serving, threshold: float, placed: fit.Placement, machine: Machine,
                  slots: bool = False) -> list[str]:
    """What a server plan's reader needs: the load, how it is served, what bounds it, the limit."""
    bound = s.bound if "assumed" in s.bound else f"{s.bound} bound"
    out = [f"{s.concurrency} user{'s' if s.concurrency > 1 else ''} at once: ~{s.per_user_tokens_per_s:.1f} "
           f"tokens/s each, ~{s.aggregate_tokens_per_s:,.0f} tokens/s in all ({bound}); {s.batching}"]
    if s.max_concurrency is not None and slots and s.concurrency > 1:
        out.append(f"the command fixes {s.concurrency} slots: request {s.concurrency + 1} waits in the queue; memory "
                   f"would hold about {s.max_concurrency:,} slots of the full context (relaunch with more slots)")
    elif s.max_concurrency is not None:
        out.append(f"memory holds up to {s.max_concurrency:,} sequences of the full context at once"
                   + (" (more requests wait in the queue)" if s.max_concurrency >= s.concurrency else ""))
    if s.per_user_tokens_per_s < threshold:
        out.append(f"at {s.concurrency} users each gets under {threshold:g} tokens/s: too slow for interactive "
                   f"use at this load")
    n_gpus = len([g for g in machine.gpus if not g.unified_memory])
    used = len(placed.gpus)
    if placed.kind in ("gpu", "multi-gpu") and used and n_gpus >= 2 * used:
        out.append(f"uses {used} of {n_gpus} GPUs: {n_gpus // used} copies behind a load balancer (or the "
                   f"runtime's data parallel) would serve about {n_gpus // used}x the load")
    return out


# ---------------------------------------------------------------- can-run: what would change the answer


def would_fit_with(cat: Catalog, machine: Machine, model: ModelSpec, request: Request, context: int) -> list[str]:
    """The smallest changes that give `model` a usable (interactive) plan, at a normal precision
    unless --quant asked for a low-bit one."""
    out: list[str] = []
    base = replace(request, models=(model.id,))

    def usable(m: Machine, req: Request) -> Plan | None:
        res = plan(cat, m, req, best_only=True)
        good = [p for p in res.plans if p.interactive and (req.quants or not p.low_bit)]
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
    smaller = _smaller_quant(cat, machine, model, base)
    if smaller:
        out.append(smaller)
    # 2. a shorter context
    for ctx in (context // 2, context // 4, 4096, 2048):
        if 512 <= ctx < context:
            p = usable(machine, replace(base, context=ctx))
            if p:
                out.append(f"a shorter context: {ctx} tokens ({p.quant} on {p.runtime.id}, {p.placement.kind})")
                break
    # 3. a quantized KV cache (where an allowed runtime has one): q8_0 (llama.cpp, Ollama), fp8 (vLLM)
    if context >= 4096 or (request.concurrency or 1) > 1:
        for kv_type in ("q8_0", "fp8"):
            if any(kv_type in r.kv_cache_types for r in cat.runtimes if r.id in allowed):
                p = usable(machine, replace(base, kv_cache_type=kv_type))
                if p:
                    out.append(f"a {kv_type} KV cache (--kv-cache-type {kv_type}: {p.quant} on {p.runtime.id}"
                               + (f", {_user_tps(p):.0f} tokens/s per user" if p.serving else "") + ")")
    # 3b. a server: fewer users at this context (the most the best one-user plan's memory holds)
    if (request.concurrency or 1) > 1:
        p = usable(machine, replace(base, concurrency=1))
        if p is not None and p.serving is not None and p.serving.max_concurrency and \
                p.serving.max_concurrency < (request.concurrency or 1):  # memory, not speed, is the limit
            out.append(f"fewer users: memory holds about {p.serving.max_concurrency:,} sequences of {context} "
                       f"tokens ({p.quant} on {p.runtime.id}); further requests would wait in its queue")
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
    if machine.gpus and not machine.gpus[0].unified_memory and not plan(cat, machine, base, best_only=True).plans:
        for gib in (32, 64, 128, 256, 512, 1024):
            ram = gib << 30
            if ram <= machine.memory.usable_bytes:
                continue
            m2 = replace(machine, memory=replace(machine.memory, total_bytes=ram, available_bytes=ram, limit_bytes=None))
            res = plan(cat, m2, base, best_only=True)
            if res.plans:
                p = one_per_model(res.plans)[0]
                pace = f"~{p.speed.expected:.1f} tokens/s" if p.speed else "speed unknown"
                slow = "" if p.interactive else ", too slow for interactive use"
                out.append(f"{gib} GiB of RAM: {p.placement.kind} with {p.quant} on {p.runtime.id} ({pace}{slow})")
                break
    return out


def _smaller_quant(cat: Catalog, machine: Machine, model: ModelSpec, request: Request) -> str | None:
    """With --quant given: the most faithful GGUF quantization whose file is smaller than every
    asked one and that gives an interactive plan (without --quant every one was already tried)."""
    if not request.quants:
        return None
    sizes = {}
    for q in cat.quants.values():
        if q.gguf and q.candidate and not (q.moe_only and not model.is_moe):
            w = memory.weights(model, q, "gguf", cat)
            sizes[q.id] = (w.total_bytes, -qmod.quant_penalty(model, q.id, cat), q)
    asked = [sizes[q][0] for q in sizes if q.upper() in request.quants]
    if not asked:
        return None
    ladder = sorted((v for v in sizes.values() if v[0] < min(asked)), key=lambda v: (v[2].low_bit, -v[1], v[0]))
    for size, _, q in ladder:
        res = plan(cat, machine, replace(request, quants=(q.id.upper(),)), best_only=True)
        good = [p for p in res.plans if p.interactive]
        if good:
            p = one_per_model(good)[0]
            where = "a published file" if p.artifact.source == "catalog" else "a file to convert"
            return (f"a smaller quantization: {q.id} ({size / 2**30:.1f} GiB of weights, {p.placement.kind} on "
                    f"{p.runtime.id}, ~{p.speed.expected if p.speed else 0:.0f} tokens/s; {where})")
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
            if q is None or q.low_bit or not q.candidate or (q.moe_only and not model.is_moe) \
                    or artifact_for(model, q, rt, machine.os.system) is None:
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


