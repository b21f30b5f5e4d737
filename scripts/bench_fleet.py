"""Wall time of `plan-deploy fleet plan DIR --format json` for fleets of 25 to 200 machine files.

    python scripts/bench_fleet.py [--runs 3] [--sizes 25,50,100,200] [--bin PATH] [--distinct]

Each fleet is written to a temporary directory: machine files of six hardware kinds (8 x H100
SXM nodes, RTX 4090 and RTX 3090 desktops, an M3 Max, CPU servers), every file with its own name
and its own free-memory readings as separate probes would give, racks of eight on one network
each (InfiniBand for the H100 nodes, Ethernet for the rest) declared in fleet.yaml. Whole
processes are timed (start-up included); the median of `--runs` is printed with the cost per
machine. Target: 200 machines under 5 s on a 2-core machine, growing linearly.

The per-machine engine runs once per distinct hardware (a fleet plan ignores free memory), so
the cost is (distinct kinds x one single-machine plan) + (machines x file reading, grouping and
lookup) + (multi-node options per network group). `--distinct` gives every machine its own RAM
size, so every file is distinct hardware: the worst case, one single-machine plan per file.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
KINDS = [  # (machine file to copy, network kind of its racks, share of the fleet)
    (ROOT / "tests/fixtures/fleet-h100x8-ib/gpu-a.yaml", "infiniband", 4),
    (ROOT / "tests/fixtures/fleet-mixed/box-4090.yaml", "ethernet", 4),
    (ROOT / "tests/fixtures/fleet-mixed/box-3090-a.yaml", "ethernet", 4),
    (ROOT / "tests/fixtures/fleet-mixed/mac.yaml", "ethernet", 2),
    (ROOT / "tests/fixtures/fleet-mixed/cpu-server.yaml", "ethernet", 2),
    (ROOT / "tests/machines/cpu-box.yaml", "ethernet", 1),
]


def write_fleet(directory: Path, n: int, distinct: bool = False) -> None:
    """n machine files and a fleet.yaml with racks of eight machines of one kind per network."""
    weights = [w for _, _, w in KINDS]
    counts = [n * w // sum(weights) for w in weights]
    counts[0] += n - sum(counts)
    hosts: dict[str, dict] = {}
    networks: list[dict] = []
    i = 0
    for (src, net_kind, _), count in zip(KINDS, counts):
        doc = yaml.safe_load(src.read_text())
        rack: list[str] = []
        for j in range(count):
            name = f"{src.stem}-{j:03d}"
            doc["name"] = name
            # every probe reads a slightly different amount of free memory
            if distinct:
                doc["memory"]["total_bytes"] = yaml.safe_load(src.read_text())["memory"]["total_bytes"] + i * 2**30
            doc["memory"]["available_bytes"] = doc["memory"]["total_bytes"] - (i + 1) * 1_000_000
            for g in doc.get("gpus", []):
                g["memory_free_bytes"] = g["memory_total_bytes"] - (i + 1) * 1_000_000
            (directory / f"{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
            hosts[name] = {"address": f"10.{i // 250}.{i % 250}.1"}
            rack.append(name)
            i += 1
            if len(rack) == 8 or j == count - 1:
                if len(rack) >= 2:
                    networks.append({"name": f"rack-{len(networks):02d}", "kind": net_kind,
                                     "gbps": 400 if net_kind == "infiniband" else 10, "members": rack})
                rack = []
    (directory / "fleet.yaml").write_text(yaml.safe_dump(
        {"schema": "plan-deploy/fleet/v1", "hosts": hosts, "networks": networks}, sort_keys=False))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sizes", default="25,50,100,200")
    ap.add_argument("--bin", default=None, help="the plan-deploy executable (default: next to this Python, or PATH)")
    ap.add_argument("--distinct", action="store_true", help="every machine distinct hardware (worst case)")
    args = ap.parse_args()
    exe = args.bin or str(Path(sys.executable).with_name("plan-deploy"))
    if not Path(exe).exists():
        exe = shutil.which("plan-deploy") or exe
    base = [exe] if Path(exe).exists() else [sys.executable, "-c", "from planner.cli import main; main()"]
    results = {}
    for n in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            write_fleet(Path(tmp), n, args.distinct)
            times = []
            for _ in range(args.runs):
                t = time.perf_counter()
                out = subprocess.run([*base, "fleet", "plan", tmp, "--format", "json"], capture_output=True,
                                     check=False, cwd=ROOT)
                times.append(time.perf_counter() - t)
                if out.returncode != 0:
                    print(out.stderr.decode(), file=sys.stderr)
                    return 1
        med = statistics.median(times)
        results[n] = med
        print(f"{n:4d} machines: {med:6.2f} s  ({med / n * 1000:6.1f} ms per machine, median of {args.runs})")
    sizes = sorted(results)
    if len(sizes) >= 2:
        a, b = sizes[-2], sizes[-1]
        print(f"growth {a} -> {b} machines: x{results[b] / results[a]:.2f} time for x{b / a:.2f} machines; "
              f"{(results[b] - results[a]) / (b - a) * 1000:.1f} ms per added machine")
    if 200 in results:
        verdict = "under" if results[200] < 5 else "OVER"
        print(f"200-machine fleet plan: {results[200]:.2f} s ({verdict} the 5 s target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
