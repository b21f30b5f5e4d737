"""Fleet directories, `fleet plan` and `can-run --fleet`: the issue's done-when checks and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from planner import catalog, hardware, recommend
from planner.cli import cli
from planner.fleet import plan as fp
from planner.fleet.fleet import FleetError, load_fleet

FIX = Path(__file__).resolve().parent / "fixtures"
H100 = FIX / "fleet-h100x8-ib"
MIXED = FIX / "fleet-mixed"


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


# ---------------------------------------------------------------- two 8 x H100 SXM nodes on InfiniBand


def test_deepseek_r1_fp8_needs_both_h100_nodes():
    cat = catalog.load()
    one = hardware.enrich(hardware.load_machine(H100 / "gpu-a.yaml"), cat)
    alone = recommend.plan(cat, one, recommend.Request(models=("deepseek-r1",), quants=("FP8",)))
    assert alone.plans == []  # one node alone: no

    r = run("can-run", "deepseek-r1", "--quant", "FP8", "--fleet", str(H100), "--format", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["answer"] == "yes, multi-node" and doc["machines"] == []
    by_rt = {o["runtime"]: o for o in doc["multi_node"]}
    vllm, sglang = by_rt["vllm"], by_rt["sglang"]
    assert vllm["hosts"] == ["gpu-a", "gpu-b"] and vllm["network"]["kind"] == "infiniband"
    # vLLM: TP = GPUs per node, PP = nodes (parallelism_scaling.md), expert parallel for the MoE layers
    assert vllm["topology"]["links"] == {"intra": "nvlink", "inter": {"name": "ib0", "kind": "infiniband",
                                                                       "gbps": 400.0}}
    assert {k: v for k, v in vllm["topology"].items() if k != "links"} == {"kind": "tp-pp", "nodes": 2, "gpus_per_node": 8, "tensor_parallel": 8,
                                    "pipeline_parallel": 2, "tensor_parallel_spans_nodes": False,
                                    "expert_parallel": True}
    # SGLang's DeepSeek recipe: --tp 16 (spelled --tp-size, the parser's name) over two nodes
    assert sglang["topology"]["tensor_parallel"] == 16 and sglang["topology"]["tensor_parallel_spans_nodes"]
    assert vllm["per_gpu"]["total_bytes"] <= vllm["per_gpu"]["budget_bytes"]


def test_llama_405b_bf16_needs_both_nodes_and_fp8_fits_one():
    r = run("can-run", "llama-3.1-405b", "--quant", "BF16", "--fleet", str(H100), "--format", "json")
    doc = json.loads(r.output)
    assert r.exit_code == 0 and doc["answer"] == "yes, multi-node"
    assert {o["runtime"]: (o["topology"]["tensor_parallel"], o["topology"]["pipeline_parallel"])
            for o in doc["multi_node"]} == {"vllm": (8, 2), "sglang": (16, 1)}
    # "Llama 405B (fp8) can also be launched on a single node" (SGLang multi_node.md)
    r = run("can-run", "llama-3.1-405b", "--quant", "FP8", "--runtime", "vllm", "--fleet", str(H100),
            "--format", "json")
    doc = json.loads(r.output)
    assert doc["answer"] == "yes" and {m["host"] for m in doc["machines"]} == {"gpu-a", "gpu-b"}


def _nodes(doc: dict, runtime: str) -> dict:
    return next(o for o in doc["multi_node"] if o["runtime"] == runtime)


def test_vllm_commands_follow_the_published_recipe():
    doc = json.loads(run("can-run", "llama-3.1-405b", "--quant", "BF16", "--fleet", str(H100),
                         "--format", "json").output)
    dep = _nodes(doc, "vllm")
    head, worker = dep["nodes"]
    assert (head["machine"], head["role"], worker["machine"], worker["role"]) == ("gpu-a", "head", "gpu-b", "worker")
    assert head["argv"] == head["commands"][1]["argv"]  # the long-running command: vllm serve
    # run_cluster.sh: ray start --block --head --node-ip-address=HEAD --port=6379 / --address=HEAD:6379
    assert head["commands"][0]["argv"] == ["ray", "start", "--block", "--head", "--node-ip-address=10.0.0.1",
                                           "--port=6379"]
    assert worker["commands"][0]["argv"] == ["ray", "start", "--block", "--address=10.0.0.1:6379"]
    assert worker["commands"][0]["env"] == {"VLLM_HOST_IP": "10.0.0.2"}
    serve = head["commands"][1]["argv"]
    # parallelism_scaling.md: vllm serve MODEL --tensor-parallel-size 8 --pipeline-parallel-size 2
    #   --distributed-executor-backend ray
    assert serve[:9] == ["vllm", "serve", "meta-llama/Llama-3.1-405B-Instruct", "--tensor-parallel-size", "8",
                         "--pipeline-parallel-size", "2", "--distributed-executor-backend", "ray"]
    mp_head, mp_worker = dep["alternatives"]["multiprocessing (no Ray)"]
    recipe = ["--tensor-parallel-size", "8", "--pipeline-parallel-size", "2", "--nnodes", "2", "--node-rank"]
    assert mp_head["commands"][0]["argv"][3:10] == recipe and mp_worker["commands"][0]["argv"][3:10] == recipe
    assert mp_head["commands"][0]["argv"][10:13] == ["0", "--master-addr", "10.0.0.1"]
    assert mp_worker["commands"][0]["argv"][10:13] == ["1", "--master-addr", "10.0.0.1"]
    assert mp_worker["commands"][0]["argv"][-1] == "--headless" and "--headless" not in mp_head["commands"][0]["argv"]


def test_sglang_commands_follow_the_published_recipes():
    doc = json.loads(run("can-run", "deepseek-r1", "--quant", "FP8", "--fleet", str(H100), "--format",
                         "json").output)
    # benchmark/deepseek_v3/README.md: python -m sglang.launch_server --model-path deepseek-ai/DeepSeek-V3
    #   --tp 16 --dist-init-addr 10.0.0.1:5000 --nnodes 2 --node-rank {0,1} --trust-remote-code
    for rank, node in enumerate(_nodes(doc, "sglang")["nodes"]):
        argv = node["commands"][0]["argv"]
        assert argv[:13] == ["python3", "-m", "sglang.launch_server", "--model-path", "deepseek-ai/DeepSeek-R1",
                             "--tp-size", "16", "--dist-init-addr", "10.0.0.1:5000", "--nnodes", "2", "--node-rank",
                             str(rank)]
        assert "--trust-remote-code" in argv
    doc = json.loads(run("can-run", "llama-3.1-405b", "--quant", "BF16", "--fleet", str(H100), "--format",
                         "json").output)
    # multi_node.md: --model-path meta-llama/Meta-Llama-3.1-405B-Instruct --tp 16 --dist-init-addr H:P
    #   --nnodes 2 --node-rank {0,1}
    argv = _nodes(doc, "sglang")["nodes"][1]["commands"][0]["argv"]
    assert argv[5:13] == ["--tp-size", "16", "--dist-init-addr", "10.0.0.1:5000", "--nnodes", "2", "--node-rank", "1"]
    assert "--trust-remote-code" not in argv


def test_table_output_names_the_checks_and_the_assumption():
    r = run("can-run", "llama-3.1-405b", "--quant", "BF16", "--fleet", str(H100))
    assert r.exit_code == 0
    assert "multi-node: no machine runs it alone; 2 together do" in r.output
    assert "VLLM_HOST_IP=10.0.0.2 ray start --block --address=10.0.0.1:6379" in r.output
    assert "NET/IB/GDRDMA" in r.output and "same path on every node" in r.output
    assert "(assumed)" in r.output and "unencrypted" in r.output


# ---------------------------------------------------------------- a mixed fleet on Ethernet


WANT = "llama-3.3-70b,qwen2.5-coder-32b,qwen3-8b,gpt-oss-20b,qwen3-235b-a22b"


def test_mixed_fleet_want_assignment():
    r = run("fleet", "plan", str(MIXED), "--want", WANT, "--format", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    got = {a["model"]: a["hosts"] for a in doc["assignment"]}
    assert got == {"llama-3.3-70b": ["mac"], "qwen2.5-coder-32b": ["box-4090"], "qwen3-8b": ["box-3090-b"],
                   "gpt-oss-20b": ["box-3090-a"], "qwen3-235b-a22b": ["cpu-server"]}
    # one model per machine
    hosts = [h for a in doc["assignment"] for h in a["hosts"]]
    assert len(hosts) == len(set(hosts))
    slow = next(a for a in doc["assignment"] if a["model"] == "qwen3-235b-a22b")
    assert "too slow" in slow["notes"][0]


def test_no_tensor_parallel_across_ethernet():
    doc = json.loads(run("fleet", "plan", str(MIXED), "--format", "json").output)
    assert doc["multi_node"], "the mixed fleet has multi-node options (llama.cpp RPC over the LAN)"
    for o in doc["multi_node"]:
        assert o["network"]["kind"] == "ethernet"
        assert not o["topology"]["tensor_parallel_spans_nodes"]
    # and where vLLM is asked for explicitly, only pipeline parallel crosses the LAN
    cat = catalog.load()
    fleet = load_fleet(MIXED)
    opts, _ = fp.multinode_options(cat, fleet, cat.model("llama-3.1-70b"),
                                   recommend.Request(runtimes=("vllm",), quants=("AWQ",)), 4096)
    assert opts and all(not o.placement.layout.tp_spans_nodes for o in opts)
    assert all(o.placement.layout.tensor_parallel == 1 for o in opts)  # one GPU per box


def test_fleet_plan_is_deterministic():
    a = run("fleet", "plan", str(MIXED), "--want", WANT)
    b = run("fleet", "plan", str(MIXED), "--want", WANT)
    assert a.output == b.output and a.exit_code == 0


def test_fleet_plan_plans_each_distinct_machine_once(monkeypatch, tmp_path):
    calls = []
    real = recommend.plan

    def counting(cat, machine, request, **kw):
        calls.append(machine.name)
        return real(cat, machine, request, **kw)

    monkeypatch.setattr(recommend, "plan", counting)
    d = tmp_path / "fleet"
    d.mkdir()
    src = yaml.safe_load((MIXED / "box-3090-a.yaml").read_text())
    for i in range(12):
        src["memory"]["available_bytes"] = src["memory"]["total_bytes"] - i  # probes differ in free memory
        (d / f"box-{i:02d}.yaml").write_text(yaml.safe_dump(src))
    shutil.copy(MIXED / "mac.yaml", d / "mac.yaml")
    fleet = load_fleet(d)
    per = fp.machine_plans(catalog.load(), fleet, recommend.Request())
    assert len(per) == 13 and len(calls) == 2  # once per distinct hardware, not per file
    assert per[0].best == per[11].best


# ---------------------------------------------------------------- bad input


def _error(r) -> tuple[str, str]:
    lines = [ln for ln in r.output.splitlines() if ln.startswith(("Error:", "Hint:"))]
    return lines[0], lines[1]


def test_broken_machine_file_is_named_and_the_rest_planned(tmp_path):
    d = copy(MIXED, tmp_path)
    (d / "broken.yaml").write_text("schema: plan-deploy/machine/v1\nos: {system: Linux}\ncpu: [1, 2\n")
    (d / "nocpu.yaml").write_text("schema: plan-deploy/machine/v1\nos: {system: Linux}\nmemory: {total_bytes: 1}\n")
    r = CliRunner().invoke(cli, ["fleet", "plan", str(d), "--format", "json"])
    assert r.exit_code == 0
    assert "warning: skipped broken.yaml:" in r.stderr and "not valid YAML" in r.stderr
    assert "warning: skipped nocpu.yaml:" in r.stderr and "'cpu' is missing" in r.stderr
    doc = json.loads(r.stdout)
    assert [s["file"] for s in doc["fleet"]["skipped"]] == ["broken.yaml", "nocpu.yaml"]
    assert len(doc["machines"]) == 5


def test_duplicate_host_names_are_an_error(tmp_path):
    d = copy(MIXED, tmp_path)
    (d / "mac.json").write_text(json.dumps(yaml.safe_load((d / "mac.yaml").read_text())))
    with pytest.raises(FleetError, match="duplicate host name 'mac': mac.json and mac.yaml"):
        load_fleet(d)
    from planner.cli import main

    with pytest.raises(SystemExit) as e:
        main(["fleet", "plan", str(d)])
    assert e.value.code == 1


def test_duplicate_host_in_fleet_yaml(tmp_path):
    d = copy(H100, tmp_path)
    text = (d / "fleet.yaml").read_text().replace("hosts:\n", "hosts:\n  gpu-b: {address: 10.0.0.9}\n")
    (d / "fleet.yaml").write_text(text)
    with pytest.raises(FleetError, match="line 5: 'gpu-b' appears twice in one mapping"):
        load_fleet(d)


def test_host_entry_naming_an_unknown_machine(tmp_path):
    d = copy(H100, tmp_path)
    doc = yaml.safe_load((d / "fleet.yaml").read_text())
    doc["hosts"]["gpu-z"] = {"address": "10.0.0.26"}
    (d / "fleet.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(FleetError, match="hosts.gpu-z names an unknown host 'gpu-z'"):
        load_fleet(d)


def test_network_naming_an_unknown_host(tmp_path, capsys):
    d = copy(H100, tmp_path)
    doc = yaml.safe_load((d / "fleet.yaml").read_text())
    doc["networks"][0]["members"].append("gpu-c")
    (d / "fleet.yaml").write_text(yaml.safe_dump(doc))
    from planner.cli import main

    with pytest.raises(SystemExit) as e:
        main(["can-run", "deepseek-r1", "--fleet", str(d)])
    assert e.value.code == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("Error: ") and "networks[0].members names an unknown host 'gpu-c'" in err[0]
    assert err[1] == "Hint: hosts are the machine files: gpu-a, gpu-b"
    assert len(err) == 2  # no traceback


@pytest.mark.parametrize("network, message", [
    ({"kind": "wifi", "members": ["gpu-a", "gpu-b"]}, "kind must be one of nvlink, infiniband, roce, ethernet"),
    ({"kind": "roce", "gbps": -1, "members": ["gpu-a", "gpu-b"]}, "gbps must be a positive number"),
    ({"kind": "roce", "members": ["gpu-a"]}, "must list at least two host names"),
])
def test_bad_networks(tmp_path, network, message):
    d = copy(H100, tmp_path)
    (d / "fleet.yaml").write_text(yaml.safe_dump({"schema": "plan-deploy/fleet/v1", "networks": [network]}))
    with pytest.raises(FleetError, match=message):
        load_fleet(d)


def test_missing_or_empty_fleet_directory(tmp_path, capsys):
    from planner.cli import main

    with pytest.raises(SystemExit) as e:
        main(["fleet", "plan", str(tmp_path / "nope")])
    assert e.value.code == 1
    assert capsys.readouterr().err.splitlines()[1].startswith("Hint: make one with `plan-deploy probe --save")
    with pytest.raises(FleetError, match="fleet directory not found"):
        load_fleet(tmp_path / "nope")
    with pytest.raises(FleetError, match="no usable machine file"):
        load_fleet(tmp_path)


def test_wanted_model_that_fits_nowhere_says_the_closest_option(capsys):
    from planner.cli import main

    with pytest.raises(SystemExit) as e:
        # at Q4_K_M: at a low-bit type (IQ1_S, 127 GiB) DeepSeek-R1 does fit the CPU server's RAM
        main(["fleet", "plan", str(MIXED), "--want", "deepseek-r1,qwen3-8b", "--quant", "Q4_K_M"])
    assert e.value.code == 3
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("  deepseek-r1 -> "))
    assert "not placed: fits nowhere in this fleet" in line
    assert "closest: cpu-server with 256 GiB of RAM" in line and "needs about" in line
    assert "qwen3-8b -> box-4090" in out


def test_unknown_wanted_model_is_a_usage_error(capsys):
    from planner.cli import main

    with pytest.raises(SystemExit) as e:
        main(["fleet", "plan", str(MIXED), "--want", "no-such-model-xyz"])
    assert e.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("Error: ") and len(err) == 2


def test_without_networks_there_is_no_multi_node_plan(tmp_path):
    d = copy(H100, tmp_path)
    (d / "fleet.yaml").unlink()
    r = run("can-run", "deepseek-r1", "--quant", "FP8", "--fleet", str(d))
    assert r.exit_code == 3
    assert "NO" in r.output and "no network declared in fleet.yaml" in r.output


def test_unequal_nodes_get_a_warning_and_llama_cpp_rpc():
    doc = json.loads(run("fleet", "plan", str(MIXED), "--format", "json").output)
    (w,) = doc["warnings"]
    assert w.startswith("network lan joins unequal nodes: ")
    assert "box-3090-a, box-3090-b: 1 x NVIDIA GeForce RTX 3090" in w and "box-4090: 1 x NVIDIA GeForce RTX 4090" in w
    assert {o["runtime"] for o in doc["multi_node"]} == {"llama.cpp"}
    split = doc["multi_node"][0]
    assert split["topology"]["kind"] == "layer-split"
    assert any("unequal devices" in n for n in split["notes"])


def test_nodes_without_nvlink_use_pipeline_parallel_inside(tmp_path):
    # Two nodes of two RTX 4090s each (PCIe only: NVML reports no active NVLink) on InfiniBand.
    d = tmp_path / "fleet"
    d.mkdir()
    box = yaml.safe_load((MIXED / "box-4090.yaml").read_text())
    box["gpus"] = [dict(box["gpus"][0], index=i) for i in range(2)]
    box["links"] = {"nvlink_links": [0, 0], "nvlink_p2p": False}
    for n in ("a", "b"):
        (d / f"{n}.yaml").write_text(yaml.safe_dump(box))
    (d / "fleet.yaml").write_text(yaml.safe_dump({"networks": [
        {"name": "ib", "kind": "infiniband", "gbps": 200, "members": ["a", "b"]}]}))
    cat = catalog.load()
    opts, why = fp.multinode_options(cat, load_fleet(d), cat.model("llama-3.1-70b"),
                                     recommend.Request(runtimes=("vllm",), quants=("AWQ",)), 8192)
    assert opts, why
    lay = opts[0].placement.layout
    assert (lay.tensor_parallel, lay.pipeline_parallel, lay.tp_spans_nodes) == (1, 4, False)
    assert any("no NVLink between this node's GPUs" in n for n in opts[0].notes)


def test_llama_cpp_rpc_commands_follow_the_rpc_readme():
    doc = json.loads(run("fleet", "plan", str(MIXED), "--format", "json").output)
    split = next(o for o in doc["multi_node"] if o["runtime"] == "llama.cpp")
    workers = [n for n in split["nodes"] if n["role"] == "worker"]
    head = next(n for n in split["nodes"] if n["role"] == "head")
    # tools/rpc/README.md: each worker `ggml-rpc-server -H HOST -p 50052` (rpc-server before the rename);
    # the head `llama-server ... -ngl 99 --rpc host:50052,host:50052`
    assert [w["argv"] for w in workers] == [["ggml-rpc-server", "-H", "192.168.1.21", "-p", "50052"],
                                            ["ggml-rpc-server", "-H", "192.168.1.22", "-p", "50052"]]
    rpc = head["argv"][head["argv"].index("--rpc") + 1]
    assert rpc == "192.168.1.21:50052,192.168.1.22:50052"
    assert head["argv"][0] == "llama-server" and head["argv"][head["argv"].index("-ngl") + 1] == "99"
    assert split["nodes"][-1]["role"] == "head"  # workers listed first: they must be up before the head
    assert any("insecure" in c for c in split["checks"])


def test_licence_filter_applies_to_multi_node_plans():
    r = run("can-run", "llama-3.1-405b", "--quant", "BF16", "--licence", "permissive", "--fleet", str(H100),
            "--format", "json")
    doc = json.loads(r.output)
    assert r.exit_code == 3 and doc["answer"] == "no" and doc["multi_node"] == []
    assert doc["why_not"][0].startswith("llama-3.1-405b is left out by --licence permissive")


def test_fleet_without_a_subcommand_is_a_usage_error(capsys):
    from planner.cli import main

    with pytest.raises(SystemExit) as e:
        main(["fleet"])
    assert e.value.code == 2
    assert capsys.readouterr().err.splitlines() == ["Error: Missing command.", "Hint: see `plan-deploy fleet --help`"]


def test_want_gives_each_multi_node_model_its_own_free_machines(tmp_path):
    d = tmp_path / "fleet"
    d.mkdir()
    box = (MIXED / "box-3090-a.yaml").read_text()
    names = [f"box-{i}" for i in range(4)]
    for n in names:
        (d / f"{n}.yaml").write_text(box)
    (d / "fleet.yaml").write_text(yaml.safe_dump({"networks": [
        {"name": "lan", "kind": "ethernet", "gbps": 10, "members": names}]}))
    r = run("fleet", "plan", str(d), "--want", "llama-3.3-70b,llama-3.1-70b", "--format", "json")
    assert r.exit_code == 0, r.output
    placed = {a["model"]: a["hosts"] for a in json.loads(r.output)["assignment"]}
    assert len(placed["llama-3.3-70b"]) == 2 and len(placed["llama-3.1-70b"]) == 2
    assert not set(placed["llama-3.3-70b"]) & set(placed["llama-3.1-70b"])


def test_json_keys_follow_the_documented_contract():
    doc = json.loads(run("fleet", "plan", str(MIXED), "--want", "qwen3-8b", "--format", "json").output)
    assert set(doc) == {"fleet", "request", "machines", "warnings", "multi_node", "assignment"}
    assert set(doc["fleet"]) == {"directory", "hosts", "networks", "skipped"}
    o = doc["multi_node"][0]
    assert set(o) == {"model", "quant", "runtime", "placement", "network", "hosts", "topology", "nodes",
                      "alternatives", "checks", "ports", "per_gpu", "gpu_share", "context", "max_context",
                      "weights_bytes", "speed", "interactive", "notes"}
    assert {"nodes", "gpus_per_node", "tensor_parallel", "pipeline_parallel", "links"} <= set(o["topology"])
    assert set(o["nodes"][0]) == {"machine", "address", "role", "rank", "argv", "env", "commands"}
    assert set(doc["assignment"][0]) >= {"model", "placed", "hosts", "notes"}


def test_shell_rendering_quotes_what_needs_quoting():
    from planner.fleet.commands import Step
    from planner.fleet.render import shell_line

    step = Step(("vllm", "serve", "/models/my model", "--port", "8000"), {"VLLM_HOST_IP": "10.0.0.1", "X": "a b"})
    assert shell_line(step) == "VLLM_HOST_IP=10.0.0.1 X='a b' vllm serve '/models/my model' --port 8000"
