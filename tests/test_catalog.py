"""The catalog holds itself to account: counts from the architecture, sources, licences, uniqueness."""

from __future__ import annotations

import shutil

import pytest
import yaml

from planner import catalog, memory
from planner.errors import CatalogError, UsageError

BRIEF_MODELS = ["llama-3.3-70b", "llama-3.1-8b", "mistral-7b", "mistral-nemo-12b", "gemma-2-9b", "phi-3.5-mini",
                "qwen2.5-72b", "deepseek-v3"]
FAMILY_MODELS = [
    "llama-3.1-70b", "llama-3.1-405b", "llama-3.2-1b", "llama-3.2-3b", "mistral-small-3-24b", "mixtral-8x7b",
    "mixtral-8x22b", "codestral-22b", "gemma-2-2b", "gemma-2-27b", "gemma-3-1b", "gemma-3-4b", "gemma-3-12b",
    "gemma-3-27b", "phi-3.5-moe", "phi-4", "phi-4-mini", "qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-3b",
    "qwen2.5-7b", "qwen2.5-14b", "qwen2.5-32b", "qwen2.5-coder-7b", "qwen2.5-coder-32b", "qwen3-0.6b",
    "qwen3-1.7b", "qwen3-4b", "qwen3-8b", "qwen3-14b", "qwen3-32b", "qwen3-30b-a3b", "qwen3-235b-a22b",
    "deepseek-r1", "deepseek-r1-distill-llama-8b", "deepseek-r1-distill-llama-70b", "deepseek-r1-distill-qwen-7b",
    "deepseek-r1-distill-qwen-14b", "deepseek-r1-distill-qwen-32b", "gpt-oss-20b", "gpt-oss-120b",
    "smollm2-135m", "smollm2-360m", "smollm2-1.7b", "command-r-35b"]
# Current releases that fit the dense / standard-MoE / full-or-sliding attention schema.
CURRENT_MODELS = [
    "qwen3-4b-instruct-2507", "qwen3-4b-thinking-2507", "qwen3-30b-a3b-instruct-2507", "qwen3-30b-a3b-thinking-2507",
    "qwen3-235b-a22b-instruct-2507", "qwen3-coder-30b-a3b", "qwen3-coder-480b-a35b", "gemma-3-270m", "smollm3-3b",
    "phi-4-reasoning", "phi-4-reasoning-plus", "phi-4-mini-reasoning", "mistral-small-3.1-24b", "mistral-small-3.2-24b",
    "magistral-small-2509", "devstral-small-2507", "magistral-small-2506", "devstral-small-2505",
    "olmo-3.1-32b-instruct", "devstral-small-2-24b", "seed-oss-36b", "exaone-4.0-32b"]


@pytest.fixture(scope="module")
def cat():
    return catalog.load()


def test_every_named_model_is_present_with_sources(cat):
    ids = {m.id for m in cat.models}
    assert len(cat.models) >= 50
    for mid in BRIEF_MODELS + FAMILY_MODELS + CURRENT_MODELS:
        assert mid in ids, mid
        assert cat.model(mid).sources


@pytest.mark.parametrize("mid", sorted(BRIEF_MODELS + FAMILY_MODELS + CURRENT_MODELS))
def test_parameter_count_follows_from_the_architecture(cat, mid):
    m = cat.model(mid)
    computed = memory.computed_params(m.arch)
    assert abs(computed - m.params) / m.params < 0.02, (computed, m.params)
    if m.active_params:
        # Labs count active parameters with or without the input embedding table (gpt-oss without).
        active = memory.computed_active_params(m.arch)
        without_embed = active - m.arch.vocab_size * m.arch.hidden_size * (not m.arch.tied_embeddings)
        assert min(abs(active - m.active_params), abs(without_embed - m.active_params)) / m.active_params < 0.02


def test_architecture_invariants(cat):
    for m in cat.models:
        a = m.arch
        assert a.attention_heads % a.kv_heads == 0, m.id
        assert a.layers > 0 and a.head_dim > 0
        if a.attention == "sliding":
            assert a.sliding_window and (a.global_every is None or a.global_every >= 2), m.id
        if a.moe:
            assert a.moe.experts_per_token <= a.moe.experts and m.active_params, m.id
        assert m.context_length >= 2048, m.id


def test_facts_the_brief_got_wrong_follow_the_primary_sources(cat):
    assert cat.model("llama-3.3-70b").context_length == 131072
    assert cat.model("gemma-2-9b").licence.commercial == "conditional"
    assert cat.model("qwen2.5-3b").licence.commercial == "no"
    assert cat.model("qwen2.5-72b").licence.id == "qwen" and cat.model("qwen2.5-72b").licence.commercial == "conditional"
    assert cat.model("qwen2.5-7b").licence.id == "apache-2.0"
    assert cat.model("command-r-35b").licence.commercial == "no"
    for m in cat.models:
        if m.licence.id.startswith("llama"):
            assert "compete" not in (m.licence.conditions or "").lower(), m.id
    # head_dim is not hidden / heads everywhere
    assert cat.model("mistral-nemo-12b").arch.head_dim == 128 != 5120 // 32
    assert cat.model("phi-3.5-mini").arch.kv_heads == cat.model("phi-3.5-mini").arch.attention_heads


def test_every_model_has_a_licence_class_and_every_artifact_a_runtime(cat):
    loadable = {(fmt, q) for r in cat.runtimes for fmt in r.formats for q in r.quants}
    for m in cat.models:
        assert m.licence.commercial in ("yes", "conditional", "no", "unknown")
        assert m.licence.name and m.licence.id
        for a in m.artifacts:
            fmt = "gguf" if a.format == "ollama" else a.format
            assert any(q.upper() == a.quant.upper() for f, q in loadable if f in (fmt, a.format)), (m.id, a)


def test_ids_and_aliases_are_unique(cat):
    seen = {}
    for m in cat.models:
        for name in (m.id, *m.aliases):
            assert seen.setdefault(name.lower(), m.id) == m.id, name


def test_gpu_catalog_has_the_names_users_type(cat):
    ids = {g.id for g in cat.gpus}
    for gid in ("rtx-3060", "rtx-4090", "rtx-5090", "rtx-4060-laptop", "t4", "l4", "a10", "l40s", "a100-40",
                "a100-80", "h100-pcie", "h100-sxm", "h100-nvl", "h200", "b200", "rx-7900-xtx", "mi300x",
                "m1", "m2-ultra", "m3-max-40c", "m4-max-40c"):
        assert gid in ids, gid
    for g in cat.gpus:
        assert g.sources and g.bandwidth_gbps


def test_runtimes_cover_the_brief(cat):
    ids = {r.id for r in cat.runtimes}
    assert {"ollama", "llama.cpp", "lm-studio", "vllm", "transformers", "sglang", "mlx-lm"} <= ids
    vllm = cat.runtime("vllm")
    assert vllm.os == ("Linux",) and vllm.accelerators["nvidia"]["min_compute_capability"] == "7.5"
    # FP8: W8A8 from 8.9, weight-only FP8-Marlin from 7.5 (rules in planner/runtimes/vllm.py)
    assert vllm.rules["fp8_native_min_cc"] == "8.9" and vllm.rules["fp8_weight_only_min_cc"] == "7.5"
    for r in cat.runtimes:
        assert r.sources and r.launch["argv"]


def test_find_models_by_id_alias_repo_tag_and_size(cat):
    assert [m.id for m in catalog.find_models("llama3.3:70b", cat)] == ["llama-3.3-70b"]
    assert [m.id for m in catalog.find_models("meta-llama/Llama-3.3-70B-Instruct", cat)] == ["llama-3.3-70b"]
    assert "llama-3.3-70b" in [m.id for m in catalog.find_models("70b", cat)]
    with pytest.raises(UsageError) as e:
        catalog.find_models("lama-3.3-70", cat)
    assert "llama-3.3-70b" in e.value.hint


# ---------------------------------------------------------------- loader errors


@pytest.fixture()
def data_copy(tmp_path):
    d = tmp_path / "data"
    shutil.copytree(catalog.data_dir(), d)
    return d


def _edit_model(d, index, key, value):
    doc = yaml.safe_load((d / "models.yaml").read_text())
    if value is None:
        del doc["models"][index]["architecture"][key]
    else:
        doc["models"][index]["architecture"][key] = value
    (d / "models.yaml").write_text(yaml.safe_dump(doc))


def test_error_names_file_entry_and_field(data_copy):
    _edit_model(data_copy, 1, "kv_heads", "eight")
    with pytest.raises(CatalogError) as e:
        catalog.load(data_copy)
    assert e.value.message == "models.yaml: models[1] (llama-3.1-70b).architecture: 'kv_heads' must be an integer, not 'eight'"


def test_missing_field_and_unknown_field(data_copy, tmp_path):
    _edit_model(data_copy, 0, "layers", None)
    with pytest.raises(CatalogError, match=r"models\[0\] \(llama-3.1-8b\).architecture: 'layers' is missing"):
        catalog.load(data_copy)
    _edit_model(data_copy, 0, "layers", 32)
    _edit_model(data_copy, 0, "layerz", 32)
    with pytest.raises(CatalogError, match="unknown field 'layerz'"):
        catalog.load(data_copy)


def test_malformed_yaml_is_one_clear_error(data_copy):
    (data_copy / "gpus.yaml").write_text("gpus: [\n  - id: x\n")
    with pytest.raises(CatalogError, match=r"gpus.yaml: not valid YAML"):
        catalog.load(data_copy)


def test_negative_size_is_rejected(data_copy):
    _edit_model(data_copy, 2, "hidden_size", -4096)
    with pytest.raises(CatalogError, match="must not be negative"):
        catalog.load(data_copy)


# ---------------------------------------------------------------- current releases


def _qk_norms(a) -> int:
    """Qwen3 / Gemma 3 per-head q_norm and k_norm weights, which tensor_groups leaves out (< 0.01%)."""
    return a.layers * 2 * a.head_dim


def test_current_release_params_reproduce_published_safetensors_totals(cat):
    # Qwen3-Coder-30B-A3B-Instruct model.safetensors.index.json: total_size 61,064,245,248 BF16 bytes
    # (github ztxz16/fastllm @f8f04c33). The formula plus q/k norms gives the exact count, and the
    # 2507 30B-A3B builds share those shapes.
    for mid in ("qwen3-coder-30b-a3b", "qwen3-30b-a3b-instruct-2507", "qwen3-30b-a3b-thinking-2507"):
        a = cat.model(mid).arch
        assert memory.computed_params(a) + _qk_norms(a) == 61_064_245_248 // 2 == cat.model(mid).params, mid
    # EXAONE 4.0 32B: 32,003,216,384 parameters in a published listing; the formula + per-head q/k norms.
    e = cat.model("exaone-4.0-32b")
    assert memory.computed_params(e.arch) + _qk_norms(e.arch) == 32_003_216_384 == e.params
    assert e.licence.commercial == "no" and e.arch.sliding_layers == 48
    # Mistral-Small-24B-2501 model.safetensors.index.json: total_size 47,144,806,400 BF16 bytes; Devstral
    # is that text model without a vision tower.
    for mid in ("devstral-small-2507", "devstral-small-2505", "magistral-small-2506"):
        assert memory.computed_params(cat.model(mid).arch) == 47_144_806_400 // 2 == cat.model(mid).params, mid
    # Mistral Small 3.1/3.2 and Magistral 2509 add the Pixtral tower + projector on top of that text model.
    for mid in ("mistral-small-3.1-24b", "mistral-small-3.2-24b", "magistral-small-2509", "devstral-small-2-24b"):
        m = cat.model(mid)
        assert m.params == 47_144_806_400 // 2 + m.arch.extra_params == memory.computed_params(m.arch), mid
        vision = 24 * (2 * 1024 + 4 * 1024 ** 2 + 3 * 1024 * 4096) + 14 * 14 * 3 * 1024 + 1024
        projector = 1024 + 4 * 1024 * 1024 + 1024 * 5120 + 5120 * 5120
        assert m.arch.extra_params == vision + projector, mid


def test_current_release_params_follow_from_the_config_with_norms(cat):
    # Derived counts are stated exactly in the catalog: the formula + the norms it leaves out.
    for mid in ("qwen3-4b-instruct-2507", "qwen3-4b-thinking-2507", "qwen3-235b-a22b-instruct-2507",
                "qwen3-coder-480b-a35b"):
        a = cat.model(mid).arch
        assert memory.computed_params(a) + _qk_norms(a) == cat.model(mid).params, mid
    g = cat.model("gemma-3-270m").arch  # Gemma 3: pre/post FFN norms (2 x hidden) and q/k norms per layer
    assert memory.computed_params(g) + g.layers * 2 * g.hidden_size + _qk_norms(g) == cat.model("gemma-3-270m").params
    assert memory.computed_params(cat.model("smollm3-3b").arch) == cat.model("smollm3-3b").params
    assert memory.computed_params(cat.model("seed-oss-36b").arch) == cat.model("seed-oss-36b").params
    o = cat.model("olmo-3.1-32b-instruct")  # Olmo 3 QK-norm spans the whole q (40 x 128) and k (8 x 128) projections
    assert memory.computed_params(o.arch) + o.arch.layers * (40 + 8) * 128 == o.params
    # Phi-4 reasoning models are Phi-4 / Phi-4-mini checkpoints (cards: "same architecture").
    for mid, base in (("phi-4-reasoning", "phi-4"), ("phi-4-reasoning-plus", "phi-4"),
                      ("phi-4-mini-reasoning", "phi-4-mini")):
        assert cat.model(mid).arch == cat.model(base).arch and cat.model(mid).params == cat.model(base).params


def test_2507_updates_are_their_own_entries_with_their_own_context(cat):
    for new, old in (("qwen3-4b-instruct-2507", "qwen3-4b"), ("qwen3-30b-a3b-instruct-2507", "qwen3-30b-a3b"),
                     ("qwen3-235b-a22b-instruct-2507", "qwen3-235b-a22b")):
        assert cat.model(new).context_length == 262144 > cat.model(old).context_length == 32768
        repo = cat.model(new).hf_repo
        assert [m.id for m in catalog.find_models(repo, cat)] == [new]
    assert [m.id for m in catalog.find_models("qwen3:30b-a3b-instruct-2507-q4_K_M", cat)] == [
        "qwen3-30b-a3b-instruct-2507"]


def test_kv_cache_of_current_releases(cat):
    # Gemma 3 270M: layer_types put full attention on layers 5, 11 and 17; the other 15 slide over 512 tokens.
    g = cat.model("gemma-3-270m").arch
    assert g.sliding_layers == 15
    per_layer = 2 * 1 * 256 * 2  # K and V, 1 KV head x 256, F16
    assert memory.kv_bytes_per_token(g, 16, context=32768, sliding_window_cache=True, mla_cache=True) == \
        per_layer * (3 + 15 * 512 / 32768)
    # Olmo 3 32B: layer_types repeat 3 x sliding (4096) + 1 x full, 16 times.
    o = cat.model("olmo-3.1-32b-instruct").arch
    assert o.sliding_layers == 48 and o.layers - o.sliding_layers == 16
    assert memory.kv_bytes_per_token(o, 16, context=65536, sliding_window_cache=True, mla_cache=True) == \
        2 * 8 * 128 * 2 * (16 + 48 * 4096 / 65536)
    # SmolLM3's NoPE layers only skip RoPE: all 36 layers cache 4 KV heads x 128.
    s = cat.model("smollm3-3b").arch
    assert memory.kv_bytes_per_token(s, 16, context=65536, sliding_window_cache=True, mla_cache=True) == \
        36 * 2 * 4 * 128 * 2


def test_gguf_formula_matches_the_published_files_of_current_releases(cat):
    # Held out: these byte counts come from the GGUF repos and were not used to set any constant.
    # Qwen3-Coder-30B-A3B-Instruct-Q4_K_M.gguf is 18,556,689,568 bytes in a public installer table.
    checked = {("qwen3-coder-30b-a3b", "Q4_K_M"): 18_556_689_568}
    for mid in CURRENT_MODELS:
        for a in cat.model(mid).artifacts:
            if a.format == "gguf" and a.size_bytes:
                checked[(mid, a.quant)] = a.size_bytes
    assert ("mistral-small-3.2-24b", "Q4_K_M") in checked and ("qwen3-4b-instruct-2507", "Q4_K_M") in checked
    for (mid, quant), size in checked.items():
        w = memory.weights(cat.model(mid), cat.quants[quant], "gguf", cat, use_artifact=False).total_bytes
        assert abs(w - size) / size < 0.005, (mid, quant, w, size)
