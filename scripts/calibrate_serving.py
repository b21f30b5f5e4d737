"""Fit and check the batched-decode ratio of planner/serving.py against published batched runs.

    python scripts/calibrate_serving.py           # error table of the shipped constant
    python scripts/calibrate_serving.py --fit     # also search the ratio that fits the in-sample run best

Runs: tests/data/batch_runs.yaml (llama.cpp batched-bench: per user = S_TG / B). Two checks:

1. scaling: the formula with the run's own measured single-stream step (B = 1) and prompt rate, so
   only the batch model is tested: t(B) = t(1) + extra bytes x t(1) / bytes(1) + (B - 1) / (r x prefill).
   r is fitted to the run marked `fit: ratio` (dense), the MoE exponent to the run marked `fit: moe`.
2. planner: the per-user speed `plan-deploy can-run MODEL --gpu gb10 --concurrency B` gives (the
   whole path: single-stream bandwidth model, catalog prefill figure, memory), at the context PP + TG.
3. served: the `online` sweeps of running servers (vLLM, SGLang), per user = 1000 / TPOT, against
   the planner's per-user figure at that many users; all held out, listed, not summarised.

Errors are (predicted - measured) / measured per point with B > 1; the summary gives the median
and largest absolute error, in-sample (the run marked `fit: true`) and held out (every other run).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from planner import catalog, hardware, memory, recommend, serving, speed  # noqa: E402

RUNS = ROOT / "tests" / "data" / "batch_runs.yaml"


def load_runs() -> list[dict]:
    return yaml.safe_load(RUNS.read_text())["runs"]


def scaling_points(cat, run: dict, ratio: float, exponent: float | None = None) -> list[tuple[int, int, float, float]]:
    """(PP, B, predicted per-user tokens/s, measured) for B > 1, from the run's own B = 1 step."""
    model = cat.model(run["model"])
    rt = cat.runtime(run["runtime"])
    out = []
    single = {pp: s for pp, b, s in run["rows"] if b == 1}
    for pp, b, s_tg in run["rows"]:
        if b == 1:
            continue
        est = memory.estimate(model, run["quant"], rt, cat, context=pp + run["tg"], gpu=True)
        w, _ = speed.decode_bytes(est, model, 0.0)
        kv = est.kv_bytes_per_token * (pp + run["tg"] / 2)
        t1 = 1 / single[pp]
        a = serving.moe_batch_exponent(cat) if exponent is None else exponent
        t = serving.step_seconds(t1, w, kv, b, model.arch, t1 / (w + kv), run["prefill"], ratio, a)
        out.append((pp, b, 1 / t, s_tg / b))
    return out


def planner_points(cat, run: dict) -> list[tuple[int, int, float, float]]:
    """(PP, B, the planner's per-user tokens/s, measured) for every row, on the catalog GPU."""
    machine = hardware.enrich(hardware.hypothetical(cat, gpu=run["gpu"], vram=None, ram=None, cpu_cores=None), cat)
    model = cat.model(run["model"])
    rt = cat.runtime(run["runtime"])
    out = []
    for pp, b, s_tg in run["rows"]:
        p = recommend.candidate(cat, machine, model, run["quant"], rt, pp + run["tg"], None, concurrency=b)
        if not isinstance(p, recommend.Plan) or p.serving is None:
            continue
        out.append((pp, b, p.serving.per_user_tokens_per_s, s_tg / b))
    return out


def online_points(cat, run: dict) -> list[tuple[int, int, float, float]]:
    """(context, users, the planner's per-user tokens/s, measured 1000 / TPOT) of a served sweep."""
    machine = hardware.enrich(hardware.hypothetical(cat, gpu=run["gpu"], vram=None, ram=None, cpu_cores=None), cat)
    out = []
    for c, tpot_ms, _ in run["rows"]:
        res = recommend.plan(cat, machine, recommend.Request(models=(run["model"],), quants=(run["quant"],),
                                                             runtimes=(run["runtime"],), context=run["context"],
                                                             concurrency=c))
        if res.plans and res.plans[0].serving is not None:
            out.append((run["context"], c, res.plans[0].serving.per_user_tokens_per_s, 1000 / tpot_ms))
    return out


def errors(points) -> list[float]:
    return [(pred - meas) / meas for _, b, pred, meas in points if b > 1]


def summary(errs: list[float]) -> str:
    if not errs:
        return "no points"
    a = [abs(e) for e in errs]
    return f"median |error| {statistics.median(a):.1%}, largest {max(a):.1%}, n={len(a)}"


def fit_ratio(cat, runs: list[dict]) -> float:
    """The ratio (0.05 .. 3.00) with the least median |error| over the dense in-sample run's scaling points."""
    fit_runs = [r for r in runs if r.get("fit") == "ratio"]
    best = None
    for i in range(5, 301):
        r = i / 100
        med = statistics.median(abs(e) for run in fit_runs for e in errors(scaling_points(cat, run, r)))
        if best is None or med < best[0]:
            best = (med, r)
    return best[1]


def fit_exponent(cat, runs: list[dict], ratio: float) -> float:
    """The MoE effective-batch exponent (0.20 .. 1.00) with the least median |error| over the MoE in-sample run."""
    fit_runs = [r for r in runs if r.get("fit") == "moe"]
    best = None
    for i in range(20, 101, 2):
        a = i / 100
        med = statistics.median(abs(e) for run in fit_runs for e in errors(scaling_points(cat, run, ratio, a)))
        if best is None or med < best[0]:
            best = (med, a)
    return best[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fit", action="store_true", help="search the ratio that fits the in-sample run best")
    args = ap.parse_args()
    cat = catalog.load()
    runs = load_runs()
    ratio = serving.batch_decode_ratio(cat)
    if args.fit:
        best = fit_ratio(cat, runs)
        print(f"fitted batch_decode_ratio: {best:.2f} (shipped: {ratio:.2f})")
        a = fit_exponent(cat, runs, ratio)
        print(f"fitted moe_batch_exponent: {a:.2f} (shipped: {serving.moe_batch_exponent(cat):.2f})")
    print(f"batch_decode_ratio {ratio:.2f}, moe_batch_exponent {serving.moe_batch_exponent(cat):.2f}\n")
    print(f"{'run':34} {'check':8} {'PP':>5} {'B':>3} {'predicted':>10} {'measured':>9} {'error':>7}")
    groups: dict[tuple[str, bool], list[float]] = {}
    for run in runs:
        for check, pts in (("scaling", scaling_points(cat, run, ratio)), ("planner", planner_points(cat, run))):
            for pp, b, pred, meas in pts:
                print(f"{run['id']:34} {check:8} {pp:5} {b:3} {pred:10.1f} {meas:9.1f} {(pred - meas) / meas:7.1%}")
            groups.setdefault((check, bool(run.get("fit"))), []).extend(errors(pts))
    online = yaml.safe_load(RUNS.read_text()).get("online", [])
    for run in online:  # served sweeps, all held out
        for ctx, c, pred, meas in online_points(cat, run):
            print(f"{run['id']:34} {'served':8} {ctx:5} {c:3} {pred:10.1f} {meas:9.1f} {(pred - meas) / meas:7.1%}")
    print()
    for check in ("scaling", "planner"):
        print(f"{check:8} in-sample: {summary(groups.get((check, True), []))}")
        print(f"{check:8} held out:  {summary(groups.get((check, False), []))}")


if __name__ == "__main__":
    main()
