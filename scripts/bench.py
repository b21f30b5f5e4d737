"""Wall time of whole `plan-deploy` processes (start-up included), with the shipped catalog and
with a synthetic catalog of 1,000 models.

    python scripts/bench.py [--runs 15] [--models 1000] [--bin PATH]

Targets on a 2-core machine: a full `plan --format json` under 150 ms median; `probe --format json`
under 150 ms. Each command runs once first (it compiles byte code and the cached catalog), then
--runs times; min, median and max are printed. The compiled catalog lives in a temporary cache
directory, so the numbers never depend on a cache left by another run. The synthetic catalog
repeats the shipped models under new ids (same architectures and files) in a temporary data
directory that $PLAN_DEPLOY_DATA_DIR points the loader at.

Without --bin the planner runs from this checkout (`python -c "from planner.cli import main; ..."`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MACHINE = ROOT / "tests" / "machines" / "gpu-24gb.yaml"

COMMANDS = {
    "probe --format json": ["probe", "--format", "json"],
    "plan --format json": ["plan", "--format", "json"],
    "plan --format json --machine gpu-24gb": ["plan", "--format", "json", "--machine", str(MACHINE)],
    "plan --licence commercial (table)": ["--licence", "commercial"],
    "can-run llama-3.3-70b --gpu 'RTX 4090' --ram 64G": ["can-run", "llama-3.3-70b", "--gpu", "RTX 4090", "--ram", "64G"],
}
SYNTHETIC = ("plan --format json", "plan --format json --machine gpu-24gb")


def synthetic_catalog(n_models: int, into: Path) -> Path:
    """A copy of the shipped data whose models.yaml repeats the shipped models up to `n_models`."""
    import yaml

    src = ROOT / "data"
    shutil.copytree(src, into)
    doc = yaml.load((src / "models.yaml").read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    base = doc["models"]
    models = list(base)
    i = 0
    while len(models) < n_models:
        m = dict(base[i % len(base)])
        k = i // len(base) + 1
        m["id"] = f"{m['id']}-syn{k}"
        m["name"] = f"{m['name']} (synthetic {k})"
        m["hf_repo"] = f"{m['hf_repo']}-syn{k}"
        m["aliases"] = []
        models.append(m)
        i += 1
    doc["models"] = models
    (into / "models.yaml").write_text(yaml.dump(doc, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper),
                                                sort_keys=False))
    return into


def timed(cmd: list[str], env: dict, runs: int) -> tuple[float, list[float]]:
    """(seconds of the first run, seconds of each later run)."""
    times = []
    for _ in range(runs + 1):
        t = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT, check=False)
        times.append(time.perf_counter() - t)
    return times[0], times[1:]


def report(label: str, first: float, times: list[float]) -> None:
    ms = [t * 1000 for t in times]
    print(f"{label:58} median {statistics.median(ms):6.0f} ms  (min {min(ms):.0f}, max {max(ms):.0f}, "
          f"{len(ms)} runs; first run {first * 1000:.0f} ms)")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--models", type=int, default=1000, help="models in the synthetic catalog")
    ap.add_argument("--bin", default=None, help="a plan-deploy executable (default: this checkout's planner)")
    args = ap.parse_args()
    base = [args.bin] if args.bin else [sys.executable, "-c", "from planner.cli import main; main()"]
    with tempfile.TemporaryDirectory(prefix="plan-deploy-bench-") as tmp:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PLAN_DEPLOY_NO_CACHE",
                                                                 "PLAN_DEPLOY_DATA_DIR")}
        env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["PLAN_DEPLOY_CACHE_DIR"] = str(Path(tmp) / "cache")
        print(f"shipped catalog ({ROOT / 'data'})")
        for label, argv in COMMANDS.items():
            report(label, *timed(base + argv, env, args.runs))
        no_cache = dict(env, PLAN_DEPLOY_NO_CACHE="1")
        report("plan --format json  (no compiled catalog)", *timed(base + COMMANDS["plan --format json"], no_cache,
                                                                   args.runs))
        data = synthetic_catalog(args.models, Path(tmp) / "data")
        syn = dict(env, PLAN_DEPLOY_DATA_DIR=str(data), PLAN_DEPLOY_CACHE_DIR=str(Path(tmp) / "cache-synthetic"))
        print(f"\nsynthetic catalog of {args.models} models (first run: validates and compiles it)")
        for label in SYNTHETIC:
            report(label, *timed(base + COMMANDS[label], syn, args.runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
