"""Fit the decode-speed constants in data/constants.yaml to the published llama.cpp runs.

    python scripts/calibrate_speed.py            # fit the constants
    python scripts/calibrate_speed.py --report   # error table of the shipped constants
    python scripts/calibrate_speed.py --records DIR   # measured vs predicted in saved bench records

Model: seconds per token = bytes read / (efficiency x bandwidth) + layers x per-layer overhead.
For each backend it grid-searches (efficiency, per-layer overhead) for the least median absolute
error, then prints the error spread that sets the low/high range.
"""

from __future__ import annotations

import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from planner import catalog  # noqa: E402
from planner.speed import seconds_per_token  # noqa: E402
from tests.bench_data import load_rows, load_runtime_rows  # noqa: E402


def predict(r, k: dict, moe_factor: float = 1.0) -> float:
    """Tokens/s of one published run under constants `k`, by the planner's own formula."""
    return 1 / seconds_per_token(r.bytes_per_token, r.bandwidth, r.layers, k, moe_factor if r.model.is_moe else 1.0)


def fit(sel):
    """(median |error|, efficiency, per-layer overhead in us, relative errors) minimising the median error."""
    best = None
    for e100 in range(40, 101):
        e = e100 / 100
        for us in range(0, 301, 5):
            k = {"efficiency": e, "layer_overhead_us": us}
            errs = [(predict(r, k) - r.tokens_per_s) / r.tokens_per_s for r in sel]
            med = statistics.median(abs(x) for x in errs)
            if best is None or med < best[0]:
                best = (med, e, us, errs)
    return best


def measured_over_predicted(r, e: float, us: float) -> float:
    return r.tokens_per_s / predict(r, {"efficiency": e, "layer_overhead_us": us})


def fit_step(sel, moe_factor: float):
    """(loss, efficiency, per-layer us, per-step us) over `sel` (dense and MoE runs), least squares of
    log(measured / predicted):
    a per-step cost that does not shrink with the model (scheduler, sampler, Python) beside the
    per-layer one."""
    best = None
    # Efficiency at most 0.90 of the peak bandwidth (policy: the share decode kernels reach on a
    # large model); per-layer cost kept at the dense fit's 20 us: with runs of 28-48 layers it
    # cannot be told apart from a per-step cost.
    for e100 in range(50, 91, 1):
        for us in (20,):
            for step in range(0, 4001, 25):
                k = {"efficiency": e100 / 100, "layer_overhead_us": us, "step_overhead_us": step}
                # Least squares on log(measured / predicted): every run counts, small models included.
                loss = sum(math.log(r.tokens_per_s / predict(r, k, moe_factor)) ** 2 for r in sel)
                if best is None or loss < best[0] - 1e-12:
                    best = (loss, e100 / 100, us, step)
    return best


def fit_vllm_step(cat) -> None:
    """vLLM: efficiency, per-layer and per-step cost over the single-request runs that are not held
    out (small models and MoE included); prints in-sample and held-out errors."""
    mf = cat.constants["speed"]["moe_efficiency_factor"]
    rows = [r for r in load_runtime_rows(cat) if r.backend == "vllm"]
    fit_rows = [r for r in rows if not r.holdout]
    med, e, us, step = fit_step(fit_rows, mf)
    k = {"efficiency": e, "layer_overhead_us": us, "step_overhead_us": step}
    print(f"vllm      fit on {len(fit_rows)} runs: efficiency={e:.2f} layer_overhead_us={us} "
          f"step_overhead_us={step}")
    for r in rows:
        pred = predict(r, k, mf)
        print(f"  {'held-out' if r.holdout else 'in-sample':9} {r.model.id:14} {r.quant:5} {r.hardware[:28]:28} "
              f"measured {r.tokens_per_s:7.1f} predicted {pred:7.1f} error {(pred - r.tokens_per_s) / r.tokens_per_s:+.1%}")
    for name, sel in (("in-sample", fit_rows), ("held-out", [r for r in rows if r.holdout])):
        if sel:
            errs = [abs(predict(r, k, mf) - r.tokens_per_s) / r.tokens_per_s for r in sel]
            print(f"  {name}: median |error| {statistics.median(errs):.1%}, max {max(errs):.1%} over {len(sel)} runs")
    ratios = sorted(r.tokens_per_s / predict(r, k, mf) for r in rows)
    print(f"  measured/predicted min={ratios[0]:.2f} max={ratios[-1]:.2f}")


def fit_runtimes(cat) -> None:
    """MLX-LM: one (efficiency, overhead) over its dense single-request runs (vLLM: fit_vllm_step)."""
    rows = load_runtime_rows(cat)
    fit_vllm_step(cat)
    for runtime in sorted({r.klass.split("/")[0] for r in rows} - {"vllm"}):
        sel = [r for r in rows if r.klass.startswith(runtime + "/") and not r.model.is_moe]
        med, e, us, _ = fit(sel)
        ratios = sorted(measured_over_predicted(r, e, us) for r in sel)
        print(f"{runtime:9} rows={len(sel):3} efficiency={e:.2f} layer_overhead_us={us:3d} median_abs_err={med:.1%} "
              f"measured/predicted min={ratios[0]:.2f} max={ratios[-1]:.2f}")


def main() -> None:
    cat = catalog.load()
    fit_runtimes(cat)
    rows = [r for r in load_rows(cat) if r.test.startswith("tg")]
    moe = [r for r in rows if r.model.is_moe]
    rows = [r for r in rows if not r.model.is_moe]
    for backend in sorted({r.klass for r in rows}):
        sel = [r for r in rows if r.klass == backend]
        med, e, us, _ = fit(sel)
        n = len(sel)
        ratios = sorted(measured_over_predicted(r, e, us) for r in sel)
        print(f"{backend:9} rows={n:3} efficiency={e:.2f} layer_overhead_us={us:3d} median_abs_err={med:.1%} "
              f"measured/predicted p5={ratios[int(n * 0.05)]:.2f} p95={ratios[min(n - 1, int(n * 0.95))]:.2f} "
              f"min={ratios[0]:.2f} max={ratios[-1]:.2f}")
    table = cat.constants["speed"]["decode"]["gguf"]
    factors = []
    for r in moe:
        factors.append(r.tokens_per_s / predict(r, table[r.klass]))
    if factors:
        print(f"MoE runs={len(factors)} measured/predicted with the shipped dense constants: "
              f"{', '.join(f'{f:.2f}' for f in factors)} -> moe_efficiency_factor {statistics.median(factors):.2f}")




def score(rows, k: dict, moe_factor: float) -> tuple[list[float], int]:
    """Relative errors of the expected figure, and how many runs fall inside the low-high range."""
    errs, inside = [], 0
    for r in rows:
        pred = predict(r, k, moe_factor)
        errs.append(abs(pred - r.tokens_per_s) / r.tokens_per_s)
        inside += pred * k["low"] <= r.tokens_per_s <= pred * k["high"]
    return errs, inside


def report() -> None:
    """Error table of the shipped constants (data/constants.yaml) per hardware class, and of a
    one-constant baseline (tokens/s = e x bandwidth / model bytes, e fitted over all runs)."""
    cat = catalog.load()
    rows = [r for r in load_rows(cat) if r.test.startswith("tg")]
    table = cat.constants["speed"]["decode"]["gguf"]
    mf = cat.constants["speed"]["moe_efficiency_factor"]
    base_e = statistics.median(r.tokens_per_s * r.weights_bytes / r.bandwidth for r in rows)
    print(f"{'class':9} {'runs':>4} {'median |err|':>12} {'in range':>9} {'baseline |err|':>15}")
    all_err, all_in, all_base = [], 0, []
    for klass in sorted({r.klass for r in rows}):
        k = table[klass]
        sel = [x for x in rows if x.klass == klass]
        errs, inside = score(sel, k, mf)
        base = [abs(base_e * r.bandwidth / r.weights_bytes - r.tokens_per_s) / r.tokens_per_s for r in sel]
        all_err += errs
        all_base += base
        all_in += inside
        print(f"{klass:9} {len(errs):4d} {statistics.median(errs):12.1%} {inside / len(errs):9.0%} "
              f"{statistics.median(base):15.1%}")
    print(f"{'all':9} {len(all_err):4d} {statistics.median(all_err):12.1%} {all_in / len(all_err):9.0%} "
          f"{statistics.median(all_base):15.1%}   (baseline efficiency {base_e:.2f})")
    print()
    print(f"{'runtime/class':18} {'runs':>4} {'median |err|':>12} {'in range':>9}")
    rrows = load_runtime_rows(cat)
    for klass in sorted({r.klass for r in rrows}):
        runtime_class, hw = klass.split("/")
        k = cat.constants["speed"]["decode"][runtime_class].get(hw) or table[hw]
        errs, inside = score([x for x in rrows if x.klass == klass], k, mf)
        print(f"{klass:18} {len(errs):4d} {statistics.median(errs):12.1%} {inside / len(errs):9.0%}")


def records_report(directory: str) -> None:
    """Measured (single-request decode tokens/s) vs predicted for each `plan-deploy bench` record in
    `directory` (default location: see planner/bench/records.py), and how many fall in the range."""
    from planner.bench.records import load

    recs = [r for r in load(directory) if r.get("prediction") and (r.get("measured") or {}).get("decode_tokens_per_s")]
    print(f"{'record':44} {'model':18} {'quant':7} {'runtime':10} {'predicted (low-high)':>24} {'measured':>9} verdict")
    errs = []
    for r in recs:
        t, p = r["target"], r["prediction"]["tokens_per_s"]
        m = r["measured"]["decode_tokens_per_s"]
        errs.append(abs(p["expected"] - m) / m)
        print(f"{Path(r['_path']).name[:44]:44} {t['model']:18} {t['quant']:7} {t['runtime']:10} "
              f"{p['expected']:8.1f} ({p['low']:.1f}-{p['high']:.1f}) {m:9.1f} {r['verdict']}")
    if errs:
        inside = sum(r["verdict"] == "inside" for r in recs)
        print(f"records={len(recs)} median |predicted-measured|/measured={statistics.median(errs):.1%} "
              f"inside the range={inside}/{len(recs)}")
    else:
        print(f"no bench records with a prediction in {directory}")


if __name__ == "__main__":
    if "--records" in sys.argv:
        i = sys.argv.index("--records")
        if i + 1 >= len(sys.argv):
            sys.exit("usage: calibrate_speed.py --records DIR")
        records_report(sys.argv[i + 1])
    else:
        report() if "--report" in sys.argv else main()
