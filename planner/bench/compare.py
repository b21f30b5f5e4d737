"""The plan's prediction beside the measurement: which catalog model, quantization and runtime a
served model is, what the planner predicts for it on this machine, and the verdict.

verdict: "inside" when low <= measured <= high of the plan's tokens/s range, else "below"/"above".
The measured figure compared is the median client-side decode tokens/s of single requests
(concurrency 1): the planner predicts one stream's decode rate. Each concurrency level also gets
the planner's per-user range at that many users (`predict(..., concurrency=c)`, planner/serving.py)
and its own verdict against that level's median per-request decode tokens/s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath

from ..errors import PlannerError, UsageError

QUANT_RE = re.compile(r"(?i)(?:^|[-_.:])(IQ\d_[A-Z]+|Q\d_K_[SML]|Q\d_K|Q\d_\d|BF16|F16|F32|MXFP4|FP8)(?=$|[-_.])")


@dataclass(frozen=True)
class Target:
    model: str     # catalog id
    quant: str
    runtime: str   # catalog runtime id
    matched_from: str  # "--plan" or what the server said


@dataclass(frozen=True)
class Prediction:
    low: float
    expected: float
    high: float
    prefill_tokens_per_s: float | None
    placement: str
    basis: str

    def to_dict(self) -> dict:
        return {"tokens_per_s": {"low": round(self.low, 1), "expected": round(self.expected, 1),
                                 "high": round(self.high, 1)},
                "prefill_tokens_per_s": round(self.prefill_tokens_per_s, 0) if self.prefill_tokens_per_s else None,
                "placement": self.placement, "basis": self.basis}

    def ttft_s(self, prompt_tokens: float | None) -> float | None:
        """Predicted time to first token for `prompt_tokens` (prefill only; no queueing, no network)."""
        if not self.prefill_tokens_per_s or not prompt_tokens:
            return None
        return prompt_tokens / self.prefill_tokens_per_s


def verdict(measured: float | None, pred: Prediction) -> str | None:
    if measured is None:
        return None
    if measured < pred.low:
        return "below"
    if measured > pred.high:
        return "above"
    return "inside"


def _stem(name: str) -> str:
    base = PureWindowsPath(name).name if "\\" in name else PurePosixPath(name).name
    return re.sub(r"(?i)\.gguf$", "", base)


def quant_from_name(name: str) -> str | None:
    """Q4_K_M from 'Llama-3.1-8B-Instruct-Q4_K_M.gguf', Q4_1 from 'SmolLM2-135M-Instruct.Q4_1.gguf'."""
    m = QUANT_RE.search(_stem(name))
    return m.group(1).upper() if m else None


def model_from_name(name: str, cat):
    """The catalog model a served name or GGUF file name stands for, or None."""
    from ..catalog import find_models

    try:
        found = find_models(name, cat)
        return found[0] if len(found) == 1 else None
    except PlannerError:
        pass
    stem = _stem(name).lower()
    for m in cat.models:
        for a in m.artifacts:
            # llama.cpp's older cache names files "{user}_{repo}_{file}"
            if a.file and (stem == _stem(a.file).lower() or stem.endswith("_" + _stem(a.file).lower())):
                return m
    bare = QUANT_RE.sub("", stem).strip("-_.").lower()
    for m in cat.models:
        repos = [m.hf_repo, *(a.repo for a in m.artifacts if a.repo)]
        for repo in repos:
            tail = repo.split("/")[-1].lower()
            if bare and bare in (tail, tail.removesuffix("-gguf")):
                return m
    return None


def target(cat, ep, plan_model: str | None, quant: str | None, runtime: str | None) -> Target | None:
    """What to compare with: --plan/--quant/--runtime, filled in from the endpoint where left out."""
    from .. import catalog as catalog_mod
    from ..recommend import runtime_id

    if plan_model:
        models = catalog_mod.find_models(plan_model, cat)
        if len(models) != 1:
            raise UsageError(f"--plan {plan_model!r} names {len(models)} models", hint="give one catalog id")
        model = models[0]
        source = "--plan"
    else:
        model = None
        for name in (ep.model_file, ep.model):
            if name:
                model = model_from_name(name, cat)
                if model:
                    break
        if model is None:
            return None
        source = ep.model_file or ep.model
    q = quant or ep.quant or quant_from_name(ep.model_file or "") or quant_from_name(ep.model or "")
    rt_name = runtime or ep.runtime
    if not q or not rt_name:
        if plan_model:
            missing = "--quant" if not q else "--runtime"
            raise UsageError(f"--plan needs {missing}: the server does not say it",
                             hint="e.g. --plan smollm2-135m --quant Q4_1 --runtime llama.cpp")
        return None
    rid = runtime_id(rt_name, cat)
    if rid is None:
        raise UsageError(f"unknown runtime {rt_name!r}", hint="known: " + ", ".join(r.id for r in cat.runtimes))
    return Target(model=model.id, quant=q.upper() if q.lower() not in ("4bit", "8bit") else q.lower(),
                  runtime=rid, matched_from=source)


def predict(cat, machine, t: Target, context: int | None = None, concurrency: int | None = None) -> Prediction:
    """The planner's speed range for `t` on `machine` (per user at `concurrency` users when given).
    PlannerError when no plan exists, with the reason."""
    from ..recommend import Request, plan

    req = Request(models=(t.model,), quants=(t.quant,), runtimes=(t.runtime,), context=context,
                  concurrency=concurrency)
    res = plan(cat, machine, req, explain=True)
    if not res.plans:
        reasons = [r["reason"] for r in res.rejected if r["model"] in (t.model, "*")]
        why = reasons[0] if reasons else f"the catalog has no {t.quant} artifact of {t.model} for {t.runtime}"
        raise PlannerError(f"no plan for {t.model} {t.quant} on {t.runtime} on this machine: {why}",
                           hint="check --plan/--quant/--runtime, or leave them out to bench without a verdict")
    p = res.plans[0]
    if p.speed is None:
        raise PlannerError(f"the plan for {t.model} {t.quant} on {t.runtime} has no speed estimate "
                           "(memory bandwidth unknown)", hint="give --machine FILE with memory bandwidths")
    s = p.serving.per_user if p.serving is not None else p.speed
    return Prediction(low=s.low, expected=s.expected, high=s.high,
                      prefill_tokens_per_s=p.speed.prefill_tokens_per_s, placement=p.placement.kind,
                      basis=p.serving.basis if p.serving is not None else p.speed.basis)
