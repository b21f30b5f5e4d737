"""Every per-node command of a multi-node plan passes the same recorded option tables as single-
machine launches (planner/runtimes/flags.py, data/runtime_flags/): vLLM (Ray and multiprocessing),
SGLang and llama.cpp's head, at the versions data/runtimes.yaml targets."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from planner import catalog
from planner.cli import cli
from planner.runtimes import flags

from .test_fleet import H100, MIXED

RUNTIME_OF = {"vllm": "vllm", "llama-server": "llama.cpp"}


def _runtime(argv: list[str]) -> str | None:
    if argv[:3] == ["python3", "-m", "sglang.launch_server"]:
        return "sglang"
    return RUNTIME_OF.get(argv[0])


def _node_steps(doc) -> list[tuple[str, list[str], dict]]:
    """(runtime id, argv, env) of every runtime step in every option of a can-run --fleet answer."""
    out = []
    options = doc.get("multi_node") or doc.get("options") or []
    for opt in options:
        node_lists = [opt.get("nodes", []), *(opt.get("alternatives") or {}).values()]
        for nodes in node_lists:
            for node in nodes:
                for step in node.get("commands", [node]):
                    rid = _runtime(step["argv"])
                    if rid:
                        out.append((rid, step["argv"], step.get("env", {})))
    return out


@pytest.mark.parametrize("args", [
    ("can-run", "deepseek-r1", "--quant", "FP8", "--fleet", str(H100)),
    ("can-run", "llama-3.1-405b", "--quant", "BF16", "--fleet", str(H100)),
    ("can-run", "llama-3.1-405b", "--quant", "BF16", "--runtime", "sglang", "--fleet", str(H100)),
    ("fleet", "plan", str(MIXED)),  # llama.cpp RPC over the LAN: the head's llama-server command
])
def test_every_multi_node_flag_is_one_the_runtime_accepts(args):
    r = CliRunner().invoke(cli, [*args, "--format", "json"])
    doc = json.loads(r.output)
    docs = doc if isinstance(doc, list) else [doc]
    steps = [s for d in docs for s in _node_steps(d)]
    assert steps, "no per-node runtime command to check"
    cat = catalog.load()
    for rid, argv, env in steps:
        version = cat.runtime(rid).version["id"]
        table = flags.load_table(rid, version)
        assert table is not None, (rid, version)
        problems = flags.check_argv(table, argv) + flags.check_env(table, env)
        assert not problems, (rid, argv, problems)


def test_the_check_catches_a_misspelt_multi_node_flag():
    cat = catalog.load()
    table = flags.load_table("vllm", cat.runtime("vllm").version["id"])
    good = ["vllm", "serve", "deepseek-ai/DeepSeek-R1", "--tensor-parallel-size", "8", "--pipeline-parallel-size", "2"]
    assert flags.check_argv(table, good) == []
    assert flags.check_argv(table, [*good[:-2], "--pipeline-paralel-size", "2"])
