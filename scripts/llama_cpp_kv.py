"""llama.cpp's own memory figures for a GGUF: start the real server from the xllamacpp wheel on
the CPU, and print its KV-cache, model and compute buffer log lines next to plan-deploy's estimate.

    pip install xllamacpp
    python scripts/llama_cpp_kv.py MODEL.gguf [--ctx 2048]

The server loads the model, allocates its buffers, and is stopped after a moment; nothing is
served. This is how tests/test_sources.py's pinned KV figure for the SmolLM2-135M Q4_1 GGUF
(45.00 MiB at n_ctx 2048, xllamacpp 2026.10.11549) was read.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from importlib.metadata import version

_SERVER = """
import sys, time
import xllamacpp as x
p = x.CommonParams()
p.model.path = sys.argv[1]
p.n_ctx = int(sys.argv[2])
p.n_parallel = 1
p.n_gpu_layers = 0
p.warmup = False
p.verbosity = 5
p.cpuparams.n_threads = 1
s = x.Server(p)
time.sleep(2)
"""
_LINES = re.compile(r"(KV buffer size|llama_kv_cache: size|model buffer size|compute buffer size =)")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf")
    ap.add_argument("--ctx", type=int, default=2048)
    args = ap.parse_args()
    run = subprocess.run([sys.executable, "-c", _SERVER, args.gguf, str(args.ctx)], capture_output=True, text=True,
                         timeout=300)
    print(f"xllamacpp {version('xllamacpp')}, n_ctx {args.ctx}")
    for line in (run.stderr + run.stdout).splitlines():
        if _LINES.search(line):
            print("  llama.cpp:", line.split(" ", 1)[-1].strip())
    est = subprocess.run([sys.executable, "-c", "import sys; from planner.cli import main; main(sys.argv[1:])",
                          "estimate", args.gguf, "--runtime", "llama.cpp", "--context", str(args.ctx),
                          "--format", "json"], capture_output=True, text=True)
    if est.returncode == 0:
        doc = json.loads(est.stdout)
        print(f"  plan-deploy: weights {doc['weights_bytes']:,} bytes ({doc['weights_bytes'] / 2**20:.2f} MiB), "
              f"KV cache {doc['kv_cache_bytes']:,} bytes ({doc['kv_cache_bytes'] / 2**20:.2f} MiB)")
    else:
        print("  plan-deploy:", est.stderr.strip())
    return run.returncode


if __name__ == "__main__":
    raise SystemExit(main())
