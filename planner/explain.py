"""Why a plan ranks where it does: the ranking key's terms in words, and the term that decides.

The ranking (`recommend.plan_key`) is a tuple compared term by term: the first term where two plans
differ decides their order. `term_values` names each term of a plan's key with a short value,
`deciding_term` finds the term that puts one plan before another, and `why_model` answers
`plan --why MODEL`: the model's rank and what ranks above it, each with its deciding term.

`by="within-model"` explains `recommend.best_per_model_key` instead: the order of one model's
plans (how `can-run` orders its best plan per runtime). No click, no printing: the CLI renders.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import recommend
from .catalog import ModelSpec
from .recommend import Plan, Request, Result

RANK = "rank"  # recommend.plan_key: the order of `plan` (models against each other)
WITHIN_MODEL = "within-model"  # recommend.best_per_model_key: one model's plans (can-run's options)
ID_TERMS = ("model id", "runtime preference", "runtime id", "quantization")


def _key(plan: Plan, by: str) -> tuple[tuple, tuple[str, ...]]:
    """(the key's values, nested pairs flattened; the terms' names) of `plan` under key `by`."""
    if by == RANK:
        return recommend.plan_key(plan), recommend.key_terms(plan)
    if by == WITHIN_MODEL:
        flat: list = []
        for v in recommend.best_per_model_key(plan):
            flat.extend(v) if isinstance(v, tuple) else flat.append(v)
        return tuple(flat), recommend.best_key_terms(plan)
    raise ValueError(f"unknown key {by!r}")


def _value(name: str, plan: Plan, threshold: float | None) -> str:
    """The short human value of term `name` of `plan`'s key."""
    s, spd = plan.serving, plan.speed
    bar = f" >= {threshold:g}" if threshold is not None else ""
    if name == "usable":
        if spd is None:
            return "yes (speed unknown, on the GPU)" if plan.interactive else "unknown speed, off the GPU"
        return (f"yes ({spd.expected:.1f} tokens/s{bar})" if plan.interactive
                else f"too slow ({spd.expected:.1f} tokens/s)")
    if name == "usable at load":
        each = f"{s.per_user_tokens_per_s:.1f} tokens/s each at {s.concurrency} user{'s' if s.concurrency > 1 else ''}"
        return f"yes ({each}{bar})" if plan.interactive else f"too slow ({each})"
    if name == "precision":
        return f"low-bit ({plan.quant})" if plan.low_bit else "normal"
    if name in ("quality", "quality (to 0.01)"):
        tier = plan.quality - plan.convert_margin
        q = plan.quality_detail
        if name == "quality (to 0.01)":
            return f"{q.benchmark + ' ' if q else ''}{tier:.2f}"
        convert = f", -{plan.convert_margin:g} to convert" if plan.convert_margin else ""
        if q is None:
            return f"{tier:.1f}" + (f" ({plan.quality:.1f}{convert[1:]})" if convert else "")
        how = "estimated" if q.estimated else "published"
        return f"{q.benchmark} {tier:.1f} ({how} {q.value:.1f}, quantization -{abs(q.quant_penalty):.1f}{convert})"
    if name == "quantization loss":
        pen = plan.quality_detail.quant_penalty if plan.quality_detail else 0.0
        return (f"{'within' if plan.loss_class == 0 else 'beyond'} the server tolerance "
                f"({plan.quant} loses {pen:.1f} points)")
    if name == "model quality":
        q = plan.quality_detail
        convert = f", -{plan.convert_margin:g} to convert" if plan.convert_margin else ""
        value = (q.value if q else plan.quality) - plan.convert_margin
        return f"{q.benchmark + ' ' if q else ''}{value:.1f} (before quantization{convert})"
    if name == "placement":
        p = plan.placement
        n = len(p.gpus)
        if p.kind == "multi-gpu":
            return f"tensor parallel over {n} GPUs" if p.tensor_parallel else f"layers split over {n} GPUs"
        if p.kind == "partial-offload":
            return f"partial offload ({p.gpu_layers}/{plan.estimate.layers} layers on the GPU)"
        return {"gpu": "one GPU", "unified": "unified memory", "moe-offload": "MoE experts in RAM",
                "cpu": "CPU"}.get(p.kind, p.kind)
    if name == "file":
        return {"convert": "convert first", "local": "on disk"}.get(plan.artifact.source, "download")
    if name == "speed":
        return f"{spd.expected:.1f} tokens/s" if spd else "unknown"
    if name == "throughput":
        return f"{s.aggregate_tokens_per_s:,.0f} tokens/s at {s.concurrency} user{'s' if s.concurrency > 1 else ''}"
    if name == "speed per user":
        return f"{s.per_user_tokens_per_s:.1f} tokens/s each"
    if name == "headroom":
        return f"{plan.placement.headroom * 100:.1f}% memory free"
    if name == "model id":
        return plan.model.id
    if name == "runtime preference":
        return f"{plan.runtime.rank} ({plan.runtime.id}; lower first)"
    if name == "runtime id":
        return plan.runtime.id
    if name == "quantization":
        return plan.quant
    raise ValueError(f"no value for key term {name!r}")


def term_values(plan: Plan, by: str = RANK, *, threshold: float | None = None) -> list[tuple[str, str]]:
    """(name, short value) for each term of `plan`'s key, in the key's order; one per term.

    `threshold`: the interactive speed (data/constants.yaml interactive_tokens_per_s), shown in the
    usable term when given."""
    _, names = _key(plan, by)
    return [(name, _value(name, plan, threshold)) for name in names]


def deciding_term(a: Plan, b: Plan, by: str = RANK, *, threshold: float | None = None) -> tuple[str, str, str]:
    """(name, a's value, b's value) of the first term where a's and b's keys differ.

    Plans whose keys are equal (the same plan) give the first id term. Under --concurrency a plan
    without a serving estimate (speed unknown) has the one-user key: where the two keys' term names
    differ, the name is "a's name / b's name" and each value is of its own term."""
    (ka, na), (kb, nb) = _key(a, by), _key(b, by)
    i = next((i for i, (x, y) in enumerate(zip(ka, kb)) if x != y), None)
    if i is None:
        i = next(j for j, n in enumerate(na) if n in ID_TERMS)
    name = na[i] if na[i] == nb[i] else f"{na[i]} / {nb[i]}"
    return name, _value(na[i], a, threshold), _value(nb[i], b, threshold)


def rejection_reasons(rejected: list[dict], model_id: str) -> list[str]:
    """One reason per runtime for `model_id` (or for every model: a runtime this machine lacks), in
    `Result.rejected`'s order: there the smallest file comes first, the one closest to fitting."""
    seen: set[str] = set()
    out = []
    for r in rejected:
        if r["runtime"] not in seen and r["model"] in (model_id, "*"):
            seen.add(r["runtime"])
            out.append(f"{r['runtime']}" + (f" {r['quant']}" if r["quant"] else "") + f": {r['reason']}")
    return out


@dataclass(frozen=True)
class Above:
    """A plan ranked above the asked model's, and the term that puts it there."""

    rank: int
    plan: Plan
    term: str
    value: str  # this plan's value of `term`
    model_value: str  # the asked model's value of `term`


@dataclass(frozen=True)
class Why:
    """`plan --why MODEL`: the model's best plan and its rank among `of` models with a plan, the
    plans ranked just above it (nearest first), or, without a plan, why not."""

    model: str
    plan: Plan | None
    rank: int | None
    of: int
    above: tuple[Above, ...] = ()
    why_not: tuple[str, ...] = ()
    key: tuple[tuple[str, str], ...] = ()  # the plan's key terms: (name, value)

    def to_dict(self) -> dict:
        return {"model": self.model, "rank": self.rank, "of": self.of,
                "plan": self.plan.to_dict(self.rank) if self.plan else None,
                "key": [{"term": n, "value": v} for n, v in self.key],
                "above": [{"rank": a.rank, "model": a.plan.model.id, "quant": a.plan.quant,
                           "runtime": a.plan.runtime.id, "term": a.term, "value": a.value,
                           "model_value": a.model_value} for a in self.above],
                "why_not": list(self.why_not)}


def why_model(plans: list[Plan], model: ModelSpec, top: int = 5, *, result: Result | None = None,
              request: Request | None = None, threshold: float | None = None) -> Why:
    """Why `model` ranks where it does among `plans` (one plan per model, sorted by plan_key, as
    `recommend.one_per_model` gives them).

    With a plan: its rank and the `top` plans just above it, nearest first, each with the term of
    `plan_key` that puts it above. Without: why not, in this order: left out by --model, --use-case
    or --licence (`request`, `result.licence_excluded`), else one rejection reason per runtime from
    `result.rejected` (a plan(..., explain=True) result), smallest file first."""
    for rank, p in enumerate(plans, 1):
        if p.model.id == model.id:
            above = tuple(Above(r, q, *deciding_term(q, p, threshold=threshold))
                          for r, q in reversed(list(enumerate(plans[max(0, rank - 1 - top):rank - 1],
                                                              max(1, rank - top)))))
            return Why(model.id, p, rank, len(plans), above, key=tuple(term_values(p, threshold=threshold)))
    req = request or Request()
    why: list[str] = []
    if req.models and model.id not in req.models:
        why.append(f"left out by --model: only {', '.join(req.models)} planned")
    elif req.use_cases and not set(req.use_cases) & set(model.use_cases):
        why.append(f"left out by --use-case {', '.join(req.use_cases)}: {model.id} is tagged "
                   f"{', '.join(model.use_cases) or 'for no use case'}")
    elif result is not None:
        why += [f"left out by --licence {req.licence}: {reason}"
                for reason, ids in result.licence_excluded.items() if model.id in ids]
        if not why:
            why += rejection_reasons(result.rejected, model.id)
    if not why:
        why.append("no candidate: no file of this model for the runtimes and quantizations asked for")
    return Why(model.id, None, None, len(plans), why_not=tuple(why))


def explain_list(plans: list[Plan], by: str = RANK, *, threshold: float | None = None) -> list[dict]:
    """For each plan of an ordered list, the `explain` object of the JSON output:
    {"key": [{"term", "value"}], "below_previous_on": {"term", "this", "previous"} | None}; None for
    the first plan, and where the previous plan does not rank above this one by the key (a list
    reordered by --prefer-local)."""
    out = []
    for i, p in enumerate(plans):
        below = None
        if i and _key(plans[i - 1], by)[0] < _key(p, by)[0]:
            term, this, previous = deciding_term(p, plans[i - 1], by, threshold=threshold)
            below = {"term": term, "this": this, "previous": previous}
        out.append({"key": [{"term": n, "value": v} for n, v in term_values(p, by, threshold=threshold)],
                    "below_previous_on": below})
    return out
