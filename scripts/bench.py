"""Median wall time of whole `plan-deploy` processes (start-up included).

    python scripts/bench.py [--runs 15] [--bin PATH]

Targets on a 2-core machine: `probe --format json` under 150 ms, a full `plan --format json`
under 300 ms. Install non-editable (`pip install .`) so the byte code is compiled once.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = {
    "probe --format json": ["probe", "--format", "json"],
    "plan --format json": ["plan", "--format", "json"],
    "plan --licence commercial (table)": ["--licence", "commercial"],
    "can-run llama-3.3-70b --gpu 'RTX 4090' --ram 64G": ["can-run", "llama-3.3-70b", "--gpu", "RTX 4090", "--ram", "64G"],
}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--bin", default=None, help="the plan-deploy executable (default: next to this Python, or PATH)")
    args = ap.parse_args()
    exe = args.bin or str(Path(sys.executable).with_name("plan-deploy"))
    if not Path(exe).exists():
        exe = shutil.which("plan-deploy") or exe
    for label, argv in COMMANDS.items():
        times = []
        for _ in range(args.runs + 1):
            t = time.perf_counter()
            subprocess.run([exe, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            times.append(time.perf_counter() - t)
        times = times[1:]  # the first run warms the file cache
        print(f"{label:55} median {statistics.median(times) * 1000:6.0f} ms  "
              f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}, {args.runs} runs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
