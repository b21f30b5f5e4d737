"""Any model, not only the catalog's: local GGUF files, checkpoint directories, config.json files
and Hugging Face repo ids, through the CLI as a user meets them; and their bad-input cases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from planner.catalog import load
from planner.memory import computed_params
from planner.sources import hfconfig
from planner.sources.resolve import resolve
from tests.checkpoint_fixtures import config_for, write_checkpoint, write_safetensors
from tests.gguf_fixtures import llama_metadata, llama_tensors, smollm2_gguf, write_gguf
from .test_cli import run

ROOT = Path(__file__).resolve().parent.parent
MACHINES = ROOT / "tests" / "machines"

# llama.cpp's own KV cache for the SmolLM2-135M Q4_1 GGUF at n_ctx 2048, from the real server of
# the xllamacpp wheel 2026.10.11549 (CommonParams: n_ctx 2048, n_parallel 1, n_gpu_layers 0), log:
#   llama_kv_cache:        CPU KV buffer size =    45.00 MiB
#   llama_kv_cache: size =   45.00 MiB (  2048 cells,  30 layers,  1/1 seqs), K (f16):   22.50 MiB, V (f16):   22.50 MiB
# and its weights: "load_tensors:   CPU_Mapped model buffer size =    92.10 MiB" (96,576,768 bytes).
LLAMA_CPP_KV_2048 = 45 * 2**20  # 47,185,920 bytes
SMOLLM2_TENSOR_BYTES = 96_576_768




def errors_only(code: int, out: str, err: str) -> list[str]:
    """A bad input: exit 1 or 2, nothing on stdout, one Error line and one Hint line, no traceback."""
    assert code in (1, 2), (code, err)
    assert out == ""
    lines = [ln for ln in err.splitlines() if not ln.startswith("note: ")]
    assert len(lines) == 2 and lines[0].startswith("Error: ") and lines[1].startswith("Hint: "), err
    assert "Traceback" not in err
    return lines


# ---------------------------------------------------------------- the real SmolLM2 GGUF


def test_estimate_of_a_local_gguf_is_its_tensor_bytes_and_llama_cpps_kv_cache():
    code, out, err = run("estimate", str(smollm2_gguf()), "--runtime", "llama.cpp", "--context", "2048",
                         "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["weights_bytes"] == SMOLLM2_TENSOR_BYTES
    assert doc["kv_cache_bytes"] == LLAMA_CPP_KV_2048
    assert (doc["quant"], doc["weights_source"], doc["context"]) == ("Q4_1", "artifact", 2048)
    assert "same architecture as catalog model smollm2-135m" in err


def test_can_run_a_local_gguf_launches_that_file():
    code, out, err = run("can-run", str(smollm2_gguf()), "--machine", str(MACHINES / "cpu-box.yaml"),
                         "--licence", "commercial", "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["answer"] == "yes"
    best = doc["best"]
    assert best["artifact"]["source"] == "local" and best["artifact"]["path"] == str(smollm2_gguf())
    assert best["artifact"]["size_bytes"] == SMOLLM2_TENSOR_BYTES
    assert str(smollm2_gguf()) in best["launch"]["command"]  # llama.cpp -m PATH, or Ollama's Modelfile FROM PATH
    llama = next(o for o in doc["options"] if o["runtime"] == "llama.cpp")
    assert llama["launch"]["argv"][:3] == ["llama-server", "-m", str(smollm2_gguf())]
    assert best["licence"]["id"] == "apache-2.0"


def test_plan_model_option_restricts_to_the_file():
    code, out, err = run("plan", "--model", str(smollm2_gguf()), "--machine", str(MACHINES / "gpu-24gb.yaml"),
                         "--format", "json", "--all")
    assert code == 0, err
    plans = json.loads(out)["plans"]
    assert plans and {p["model"] for p in plans} == {smollm2_gguf().name}
    # llama.cpp loads the path; Ollama imports it with a Modelfile; LM Studio only fetches from its hub
    assert {p["runtime"] for p in plans} == {"llama.cpp", "ollama"}
    ollama = next(p for p in plans if p["runtime"] == "ollama")
    assert f"FROM {smollm2_gguf()}" in ollama["launch"]["command"]


def test_can_run_a_file_takes_milliseconds():
    cat = load()
    resolve(str(smollm2_gguf()), cat)
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        r = resolve(str(smollm2_gguf()), cat)
        best = min(best, time.perf_counter() - t)
    assert best < 0.2, best
    assert r.models[0].params == 134_515_008


def test_catalog_names_still_win_and_unknown_names_still_get_suggestions():
    cat = load()
    assert resolve("llama-3.1-8b", cat).catalog is cat
    assert [m.id for m in resolve("meta-llama/Llama-3.1-8B-Instruct", cat).models] == ["llama-3.1-8b"]
    code, out, err = run("can-run", "lama-3.1-8b", "--machine", str(MACHINES / "cpu-box.yaml"))
    assert errors_only(code, out, err)[0] == "Error: unknown model 'lama-3.1-8b'"
    assert code == 2


# ---------------------------------------------------------------- 70B-class generated fixtures


@pytest.fixture(scope="module")
def llama70b():
    return load().model("llama-3.1-70b")


def test_sparse_70b_gguf_through_estimate(tmp_path, llama70b):
    a = llama70b.arch
    path = tmp_path / "big-Q4_K_M.gguf"
    md = llama_metadata("llama", layers=a.layers, hidden=a.hidden_size, heads=a.attention_heads, kv_heads=a.kv_heads,
                        ffn=a.intermediate_size, vocab=a.vocab_size, context=131072, file_type=15, name="Big")
    expected = write_gguf(path, "llama", md, llama_tensors(layers=a.layers, hidden=a.hidden_size,
                                                           kv_dim=a.kv_heads * a.head_dim, ffn=a.intermediate_size,
                                                           vocab=a.vocab_size))
    t = time.perf_counter()
    code, out, err = run("estimate", str(path), "--runtime", "llama.cpp", "--context", "8192", "--format", "json")
    elapsed = time.perf_counter() - t
    assert code == 0, err
    doc = json.loads(out)
    assert doc["weights_bytes"] == expected and doc["quant"] == "Q4_K_M"
    assert abs(doc["weights_bytes"] - expected) <= 0.005 * expected
    # 80 layers x 8 KV heads x 128 x 2 (K, V) x 2 bytes = 327,680 bytes per token
    assert doc["kv_cache_bytes_per_token"] == 327_680
    assert elapsed < 1.0, elapsed
    assert "same architecture as catalog models llama-3.1-70b" in err


def test_sparse_70b_safetensors_checkpoint_is_sized_from_its_headers(tmp_path, llama70b):
    directory = tmp_path / "Llama-70B"
    expected = write_checkpoint(directory, llama70b.arch, "llama", llama70b.context_length, shards=4)
    assert expected > 140e9
    t = time.perf_counter()
    code, out, err = run("estimate", str(directory), "--runtime", "vllm", "--context", "8192", "--format", "json")
    elapsed = time.perf_counter() - t
    assert code == 0, err
    doc = json.loads(out)
    assert doc["weights_bytes"] == expected and doc["quant"] == "BF16" and doc["weights_source"] == "artifact"
    assert elapsed < 1.0, elapsed
    # the architecture's own count, as the planner computes it without the headers: within 0.5%
    assert abs(computed_params(llama70b.arch) * 2 - expected) <= 0.005 * expected
    # the bare config.json (no weights): sized from the recipe, within 0.5% of the tensor bytes
    code, out, err = run("estimate", str(directory / "config.json"), "--runtime", "vllm", "--quant", "BF16",
                         "--context", "8192", "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["weights_source"] == "formula"
    assert abs(doc["weights_bytes"] - expected) <= 0.005 * expected


def test_checkpoint_directory_plans_with_vllm_from_its_path(tmp_path):
    arch = load().model("qwen2.5-0.5b").arch
    directory = tmp_path / "qwen-small"
    write_checkpoint(directory, arch, "qwen2", 32768)
    (directory / "README.md").write_text("---\nlicense: apache-2.0\nlibrary_name: transformers\n---\n# card\n")
    code, out, err = run("can-run", str(directory), "--gpu", "RTX 4090", "--runtime", "vllm", "--format", "json")
    assert code == 0, err
    best = json.loads(out)["best"]
    assert best["launch"]["argv"][:3] == ["vllm", "serve", str(directory)]
    assert best["licence"]["id"] == "apache-2.0"


def test_unknown_licence_is_left_out_by_the_commercial_filter(tmp_path):
    arch = load().model("qwen2.5-0.5b").arch
    directory = tmp_path / "no-card"
    write_checkpoint(directory, arch, "qwen2", 32768)
    code, out, err = run("can-run", str(directory), "--gpu", "RTX 4090", "--licence", "commercial")
    assert code == 3
    assert "left out by the licence filter (licence unknown), not by this machine" in out


# ---------------------------------------------------------------- config.json -> Architecture


@pytest.mark.parametrize("model_id, model_type, extra", [
    ("llama-3.1-8b", "llama", {}),
    ("mistral-7b", "mistral", {}),
    ("qwen2.5-7b", "qwen2", {}),
    ("qwen3-8b", "qwen3", {}),
    ("qwen3-30b-a3b", "qwen3_moe", {}),
    ("mixtral-8x7b", "mixtral", {}),
    ("phi-3.5-mini", "phi3", {}),
    ("gemma-2-9b", "gemma2", {}),
    ("gemma-3-1b", "gemma3_text", {}),
    ("deepseek-v3", "deepseek_v3", {}),
    ("gpt-oss-20b", "gpt_oss", {}),
    ("smollm2-135m", "some_new_llama_like", {}),
])
def test_config_json_gives_the_catalogs_architecture(model_id, model_type, extra):
    m = load().model(model_id)
    config = config_for(m.arch, model_type, m.context_length, **extra)
    a, context, notes = hfconfig.architecture(config, "config.json")
    assert context == m.context_length
    want = m.arch
    for f in ("layers", "hidden_size", "attention_heads", "kv_heads", "head_dim", "intermediate_size", "vocab_size",
              "tied_embeddings", "attention", "sliding_window", "global_every", "mla", "moe"):
        assert getattr(a, f) == getattr(want, f), f
    if model_type == "some_new_llama_like":
        assert "generic llama-like" in notes[0]


def test_gemma3_multimodal_config_reads_its_text_config():
    m = load().model("gemma-3-27b")
    text = config_for(m.arch, "gemma3_text", m.context_length)
    a, _, notes = hfconfig.architecture({"model_type": "gemma3", "text_config": text}, "config.json")
    assert replace(a, qkv_bias=m.arch.qkv_bias, extra_params=m.arch.extra_params) == m.arch
    assert any("vision tower" in n for n in notes)


# ---------------------------------------------------------------- bad input


def _listing(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def test_truncated_gguf(tmp_path):
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(smollm2_gguf().read_bytes()[:500_000])
    before = _listing(tmp_path)
    lines = errors_only(*run("can-run", str(cut), "--machine", str(MACHINES / "cpu-box.yaml")))
    assert "header ends early" in lines[0] and "download it again" in lines[1]
    assert _listing(tmp_path) == before


def test_gguf_of_an_unknown_architecture(tmp_path):
    path = tmp_path / "mamba.gguf"
    write_gguf(path, "mamba", {"mamba.block_count": 2, "mamba.context_length": 512},
               [("token_embd.weight", "F32", (64, 100))], sparse=False)
    lines = errors_only(*run("estimate", str(path), "--runtime", "llama.cpp"))
    assert "general.architecture = 'mamba'" in lines[0] and "llama" in lines[1]


def test_gguf_missing_a_needed_field_names_it(tmp_path):
    path = tmp_path / "nohead.gguf"
    write_gguf(path, "llama", {"llama.block_count": 2, "llama.context_length": 512, "llama.embedding_length": 64,
                               "llama.feed_forward_length": 128},
               [("token_embd.weight", "F32", (64, 100))], sparse=False)
    lines = errors_only(*run("estimate", str(path), "--runtime", "llama.cpp"))
    assert "lacks llama.attention.head_count" in lines[0]


def test_config_json_that_is_not_json(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"model_type": "llama", "hidden_size": 4096,,}')
    lines = errors_only(*run("estimate", str(path), "--runtime", "vllm", "--quant", "BF16"))
    assert "not valid JSON (line 1" in lines[0]


def test_config_json_of_an_unknown_model_type_names_the_field(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "mamba", "architectures": ["MambaForCausalLM"], "hidden_size": 768,
                                "num_hidden_layers": 24, "vocab_size": 50280}))
    lines = errors_only(*run("estimate", str(path), "--runtime", "vllm", "--quant", "BF16"))
    assert "model_type = 'mamba'" in lines[0] and "num_attention_heads is missing" in lines[0]


def test_safetensors_header_that_lies_about_its_length(tmp_path):
    arch = load().model("smollm2-135m").arch
    directory = tmp_path / "liar"
    write_checkpoint(directory, arch, "llama", 8192)
    write_safetensors(directory / "model.safetensors", [("model.norm.weight", [576])], lie=10**9)
    lines = errors_only(*run("can-run", str(directory), "--gpu", "RTX 4090"))
    assert "header claims" in lines[0] and "model.safetensors" in lines[0]


def test_directory_without_config_json(tmp_path):
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "model-Q4_K_M.gguf").write_bytes(b"")
    lines = errors_only(*run("estimate", str(tmp_path / "weights"), "--runtime", "llama.cpp"))
    assert "directory without config.json" in lines[0] and "model-Q4_K_M.gguf" in lines[1]


def test_missing_path_is_one_error(tmp_path):
    lines = errors_only(*run("can-run", str(tmp_path / "nope.gguf"), "--gpu", "RTX 4090"))
    assert "no such file or directory" in lines[0]


# ---------------------------------------------------------------- Hugging Face ids (offline here)


def _cli(args: list[str], env: dict) -> subprocess.CompletedProcess:
    code = "import sys; from planner.cli import main; main(sys.argv[1:])"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60)


def test_hf_repo_offline_is_one_error_naming_what_to_pass_instead(tmp_path):
    p = _cli(["can-run", "mistralai/Mistral-Large-Instruct-2411", "--gpu", "RTX 4090"],
             {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    lines = errors_only(p.returncode, p.stdout, p.stderr)
    assert "mistralai/Mistral-Large-Instruct-2411 is not in the catalog" in lines[0] and "HF_HUB_OFFLINE" in lines[0]
    assert ".gguf file" in lines[1] and "config.json" in lines[1]
    assert not (tmp_path / "hf" / "hub").exists() or not any((tmp_path / "hf" / "hub").rglob("config.json"))


def test_hf_repo_from_the_hub_cache_works_offline(tmp_path):
    """A repo fetched once is read from huggingface_hub's own cache with HF_HUB_OFFLINE=1."""
    m = load().model("qwen2.5-0.5b")
    snap = tmp_path / "hf" / "hub" / "models--acme--tiny-chat" / "snapshots" / ("a" * 40)
    snap.mkdir(parents=True)
    (snap.parent.parent / "refs").mkdir()
    (snap.parent.parent / "refs" / "main").write_text("a" * 40)
    (snap / "config.json").write_text(json.dumps(config_for(m.arch, "qwen2", 32768)))
    (snap / "README.md").write_text("---\nlicense: mit\n---\n")
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    p = _cli(["estimate", "acme/tiny-chat", "--runtime", "vllm", "--quant", "BF16", "--context", "4096",
              "--format", "json"], env)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["model"] == "acme/tiny-chat" and doc["weights_source"] == "formula"
    assert "same architecture as catalog model qwen2.5-0.5b" in p.stderr
    # with the safetensors index cached too, the weights are its total_size, and the card's licence counts
    (snap / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": 988_097_536}, "weight_map": {"lm_head.weight": "model.safetensors"}}))
    p = _cli(["can-run", "acme/tiny-chat", "--gpu", "RTX 4090", "--runtime", "vllm", "--licence", "permissive",
              "--format", "json"], env)
    assert p.returncode == 0, p.stderr
    best = json.loads(p.stdout)["best"]
    assert best["memory"]["weights_bytes"] == 988_097_536 and best["licence"]["id"] == "mit"
    assert best["artifact"] == {"format": "safetensors", "quant": "BF16", "repo": "acme/tiny-chat",
                                "size_bytes": 988_097_536, "source": "hub"}
    assert best["launch"]["argv"][:3] == ["vllm", "serve", "acme/tiny-chat"]


def test_hf_repo_without_huggingface_hub_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    lines = errors_only(*run("can-run", "acme/not-in-catalog", "--gpu", "RTX 4090"))
    assert "needs the optional huggingface_hub package" in lines[0] and "plan-deploy[hub]" in lines[1]


def test_catalog_names_do_not_import_the_readers():
    code = ("import sys; from planner.cli import main\n"
            "try:\n    main(['can-run', 'llama-3.1-8b', '--gpu', 'RTX 4090', '--format', 'json'])\n"
            "except SystemExit:\n    pass\n"
            "bad = [m for m in ('gguf', 'numpy', 'huggingface_hub', 'httpx', 'planner.sources.gguf') if m in sys.modules]\n"
            "print(bad)")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.stdout.strip().splitlines()[-1] == "[]", p.stdout + p.stderr


def test_hf_repo_with_no_network_fails_fast_with_the_same_advice(tmp_path):
    t = time.perf_counter()
    p = _cli(["estimate", "acme/not-cached", "--runtime", "vllm", "--quant", "BF16"],
             {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "0"})
    lines = errors_only(p.returncode, p.stdout, p.stderr)
    assert "no network connection to http://127.0.0.1:9" in lines[0]
    assert time.perf_counter() - t < 15


def test_checkpoint_index_naming_a_missing_shard(tmp_path):
    arch = load().model("smollm2-135m").arch
    directory = tmp_path / "partial"
    write_checkpoint(directory, arch, "llama", 8192, shards=3)
    (directory / "model-00002-of-00003.safetensors").unlink()
    lines = errors_only(*run("estimate", str(directory), "--runtime", "vllm"))
    assert "model-00002-of-00003.safetensors, which is missing" in lines[0]
    assert "config.json alone" in lines[1]


def test_plan_model_option_takes_catalog_names_too():
    code, out, err = run("plan", "--model", "qwen2.5-0.5b", "--machine", str(MACHINES / "cpu-box.yaml"),
                         "--format", "json")
    assert code == 0, err
    assert {p["model"] for p in json.loads(out)["plans"]} == {"qwen2.5-0.5b"}
