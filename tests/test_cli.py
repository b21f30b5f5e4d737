"""The command line as a user meets it: golden outputs, exit codes, errors without tracebacks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from planner.cli import main

HERE = Path(__file__).resolve().parent
MACHINES = HERE / "machines"
GOLDEN = HERE / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def run(*args: str) -> tuple[int, str, str]:
    """The installed entry point (main: error translation, exit codes) under click's CliRunner."""
    runner = CliRunner()
    with runner.isolation() as (out, err, _):
        try:
            main(list(args))
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        return code, out.getvalue().decode(), err.getvalue().decode()


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE or not path.exists():
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; rerun with UPDATE_GOLDEN=1 if intended"


@pytest.mark.parametrize("machine", ["cpu-box", "laptop-8gb", "gpu-24gb", "gpu-80gb", "h100x8", "m3-max"])
def test_plan_golden_json(machine):
    code, out, err = run("plan", "--machine", str(MACHINES / f"{machine}.yaml"), "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["plans"] and doc["plans"][0]["rank"] == 1
    golden(f"plan-{machine}.json", out)


@pytest.mark.parametrize("machine", ["cpu-box", "gpu-24gb"])
def test_plan_golden_table(machine):
    code, out, _ = run("--machine", str(MACHINES / f"{machine}.yaml"), "--licence", "commercial")
    assert code == 0
    assert "Traceback" not in out
    golden(f"plan-{machine}.txt", out)


def test_ten_runs_give_byte_identical_json():
    outs = {run("plan", "--machine", str(MACHINES / "gpu-24gb.yaml"), "--format", "json", "--all")[1]
            for _ in range(10)}
    assert len(outs) == 1


def test_cpu_box_plans_small_models_on_cpu_runtimes():
    code, out, _ = run("--machine", str(MACHINES / "cpu-box.yaml"), "--licence", "commercial", "--format", "json")
    doc = json.loads(out)
    assert all(p["placement"] == "cpu" for p in doc["plans"])
    assert all(p["runtime"] in ("llama.cpp", "ollama", "lm-studio", "transformers") for p in doc["plans"])
    assert all(p["memory"]["required_bytes"] <= p["memory"]["available_bytes"] for p in doc["plans"])
    assert all(p["launch"]["command"] for p in doc["plans"])


@pytest.mark.parametrize("machine", ["cpu-box", "gpu-24gb", "h100x8"])
def test_licence_filters(machine):
    from planner import catalog

    cat = catalog.load()
    _, out, _ = run("--machine", str(MACHINES / f"{machine}.yaml"), "--licence", "commercial", "--format", "json",
                    "--all")
    for p in json.loads(out)["plans"]:
        assert cat.model(p["model"]).licence.commercial in ("yes", "conditional")
    _, out, _ = run("--machine", str(MACHINES / f"{machine}.yaml"), "--licence", "permissive", "--format", "json",
                    "--all")
    doc = json.loads(out)
    assert doc["plans"]
    for p in doc["plans"]:
        assert cat.model(p["model"]).licence.id in ("apache-2.0", "mit")
    assert "not for commercial use" in doc["licence_excluded"]


def test_licence_filter_says_what_it_left_out():
    _, out, _ = run("--machine", str(MACHINES / "cpu-box.yaml"), "--licence", "commercial")
    assert "models left out" in out and "not for commercial use" in out


def test_can_run_70b_on_h100():
    code, out, _ = run("can-run", "llama-3.3-70b", "--gpu", "h100-sxm", "--format", "json")
    doc = json.loads(out)
    assert code == 0 and doc["answer"] == "yes"
    assert doc["best"]["placement"] == "gpu" and doc["quants"]
    assert {o["runtime"] for o in doc["options"]} >= {"llama.cpp", "ollama"}


def test_can_run_70b_on_4090_only_low_bit_on_the_gpu_or_offloaded_and_slowly():
    code, out, _ = run("can-run", "llama-3.3-70b", "--gpu", "RTX 4090", "--ram", "64G", "--format", "json")
    doc = json.loads(out)
    assert code == 0 and doc["answer"] == "yes"
    best = doc["best"]
    # On the GPU only at a low-bit quantization (a file to make), and said so.
    assert best["placement"] == "gpu" and best["quant"].startswith("IQ2")
    assert best["artifact"]["source"] == "convert" and any("low-bit" in n for n in best["notes"])
    # At a normal precision only through partial offload, too slow to use.
    normal = [o for o in doc["options"] if o["runtime"] == "lm-studio"]
    assert normal and all(o["placement"] == "partial-offload" and not o["interactive"] for o in normal)
    code, text, _ = run("can-run", "llama-3.3-70b", "--gpu", "RTX 4090", "--ram", "64G")
    assert "low-bit" in text and "partial-offload" in text


def test_can_run_405b_on_a_laptop_says_no_and_what_would_change_that():
    code, out, _ = run("can-run", "llama-3.1-405b", "--gpu", "RTX 4060 Laptop", "--ram", "16G", "--format", "json")
    doc = json.loads(out)
    assert code == 3 and doc["answer"] == "no" and doc["best"] is None
    assert doc["why_not"] and doc["would_fit_with"]
    assert any("GPU memory of at least" in w for w in doc["would_fit_with"])


def test_can_run_size_question_answers_every_model_of_that_size():
    code, out, _ = run("can-run", "70b", "--gpu", "h100-sxm", "--format", "json")
    docs = json.loads(out)
    assert code == 0 and {d["model"] for d in docs} >= {"llama-3.3-70b", "llama-3.1-70b"}


def test_estimate_json_contract():
    code, out, _ = run("estimate", "llama-3.1-8b", "--quant", "q4_k_m", "--runtime", "llama.cpp", "--context", "8k",
                       "--format", "json")
    doc = json.loads(out)
    assert code == 0
    assert set(doc) >= {"model", "hf_repo", "quant", "runtime", "context", "batch", "kv_cache_type", "weights_bytes",
                        "kv_cache_bytes", "overhead_bytes", "total_bytes", "notes"}
    assert doc["context"] == 8192 and doc["kv_cache_bytes"] == 131072 * 8192
    code, out, _ = run("estimate", "llama-3.1-8b", "--quant", "Q4_K_M", "--runtime", "llama.cpp")
    assert "GiB" in out and "KV cache" in out


def test_probe_save_and_read_back(tmp_path):
    saved = tmp_path / "me.json"
    code, out, _ = run("probe", "--format", "json", "--save", str(saved))
    assert code == 0
    doc = json.loads(out)
    assert doc["schema"] == "plan-deploy/machine/v1"
    code, back, _ = run("probe", "--machine", str(saved), "--format", "json")
    assert json.loads(back) == doc


@pytest.mark.parametrize("args,code,message", [
    (("can-run", "lama-70"), 2, "unknown model"),
    (("--gpu", "RTX 4095"), 2, "unknown GPU"),
    (("--ram", "-4G", "--gpu", "RTX 4090"), 2, "must not be negative"),
    (("--machine", "/nonexistent/box.yaml"), 1, "machine file not found"),
    (("estimate", "llama-3.1-8b", "--quant", "Q4_K_M", "--runtime", "vllm"), 1, "does not load"),
    (("--runtime", "olama"), 2, "unknown runtime"),
    (("--context", "lots"), 2, "invalid --context"),
    (("bogus",), 2, "No such command"),
    (("--format", "xml"), 2, "'xml' is not one of"),
])
def test_errors_are_one_line_and_never_a_traceback(args, code, message):
    got, out, err = run(*args)
    assert got == code
    assert message in err
    assert "Traceback" not in err + out
    assert len([line for line in err.splitlines() if line.startswith("Error")]) == 1
    assert len([line for line in err.splitlines() if not line.startswith("note:")]) <= 2


def test_bad_machine_file_names_file_and_field(tmp_path):
    p = tmp_path / "box.yaml"
    p.write_text("os: {system: Linux}\ncpu: {model: x, arch: x86_64, physical_cores: 2}\nmemory: {total_bytes: 1}\n")
    code, _, err = run("--machine", str(p))
    assert code == 1 and str(p) in err and "'cpu.logical_cores' is missing" in err


def test_nothing_fits_exits_3():
    # 256k, not 128k: Qwen3.5-2B's hybrid attention (6 of 24 layers cache K/V) fits 128k in BF16 on 8 GB.
    code, out, _ = run("--gpu", "RTX 4060 Laptop", "--ram", "16G", "--context", "256k", "--quant", "BF16",
                       "--runtime", "vllm")
    assert code == 3 and "No plan fits" in out


def test_explain_lists_rejections():
    _, out, _ = run("--machine", str(MACHINES / "laptop-8gb.yaml"), "--explain", "--format", "json")
    doc = json.loads(out)
    assert any(r["runtime"] == "vllm" and "Windows" in r["reason"] for r in doc["rejected"])
    assert any("layers would fit" in r["reason"] for r in doc["rejected"])


def test_catalog_commands():
    code, out, _ = run("models", "--licence", "commercial", "--format", "json")
    ids = {m["id"] for m in json.loads(out)}
    assert "command-r-35b" not in ids and "qwen2.5-3b" not in ids and "llama-3.3-70b" in ids
    for m in json.loads(out):
        assert {"id", "hf_repo", "aliases", "family", "params", "active_params", "context_length", "licence",
                "quants", "architecture"} <= set(m)
    code, out, _ = run("models", "--licence", "permissive", "--format", "json")
    assert {m["licence"]["id"] for m in json.loads(out)} <= {"apache-2.0", "mit"}
    assert run("runtimes")[0] == 0 and "vllm" in run("runtimes")[1]
    assert run("gpus")[0] == 0 and "rtx-4090" in run("gpus")[1]


def test_probe_measures_bandwidth_only_when_asked():
    _, out, _ = run("probe", "--format", "json")
    assert json.loads(out)["memory"]["bandwidth_bytes_per_s"] is None
    _, out, _ = run("probe", "--format", "json", "--measure-bandwidth")
    doc = json.loads(out)
    assert doc["memory"]["bandwidth_bytes_per_s"] > 10**8
    assert any("RAM bandwidth measured" in n for n in doc["notes"])


def test_quant_filter_is_case_insensitive():
    _, out, _ = run("--gpu", "m3-max-64", "--quant", "4bit", "--format", "json", "--all")
    quants = {p["quant"] for p in json.loads(out)["plans"]}
    assert quants == {"4bit"}
    _, out, _ = run("--gpu", "RTX 4090", "--quant", "q4_k_m", "--format", "json", "--all")
    assert {p["quant"] for p in json.loads(out)["plans"]} == {"Q4_K_M"}


@pytest.mark.parametrize("name", ["llamacpp", "LLaMA.cpp", "LM Studio", "lmstudio", "MLX-LM", "Ollama"])
def test_runtime_names_match_loosely(name):
    quant = "4bit" if name == "MLX-LM" else "Q4_K_M"
    code, _, err = run("estimate", "llama-3.1-8b", "--quant", quant, "--runtime", name, "--format", "json")
    assert code == 0, err
    code, _, err = run("--gpu", "m3-max-64", "--runtime", name, "--format", "json", "--top", "1")
    assert code == 0, err


def test_plan_golden_server_table():
    # --concurrency: a server for 32 users; per-user and aggregate speed, the largest load memory holds
    code, out, _ = run("--machine", str(MACHINES / "h100x8.yaml"), "--concurrency", "32", "--top", "5")
    assert code == 0
    assert "tokens/s per user at 32" in out and "max users" in out
    golden("plan-h100x8-c32.txt", out)


def test_gpu_none_plans_a_cpu_only_box():
    code, out, err = run("plan", "--gpu", "none", "--ram", "32G", "--cpu-cores", "8", "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["machine"]["gpus"] == [] and {p["placement"] for p in doc["plans"]} == {"cpu"}
    code, _, err = run("plan", "--gpu", "none", "--vram", "24G")
    assert code == 2 and err.startswith("Error:") and "Hint:" in err
