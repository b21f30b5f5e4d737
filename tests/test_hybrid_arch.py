"""Architectures beyond dense/standard MoE: chunked attention, linear-attention hybrids, interleaved and
dense-first MoE, KV sharing. Each is pinned against a published count or a runtime's own figure."""

from __future__ import annotations

import shutil

import pytest
import yaml

from planner import catalog, memory
from planner.catalog import Architecture, LinearAttention, Moe
from planner.errors import CatalogError

MIB = 2**20

# Models whose architecture needs the extended schema (chunked, hybrid linear attention, interleaved or
# dense-first MoE with MLA or gated attention).
ARCH_MODELS = ["llama-4-scout", "llama-4-maverick", "qwen3-next-80b-a3b", "qwen3-coder-next", "qwen3.5-2b",
               "qwen3.5-9b", "qwen3.5-27b", "qwen3.5-35b-a3b", "glm-4.5", "glm-4.5-air", "kimi-k2", "deepseek-v3.1"]

# Labs that state active parameters in one significant figure ("3B activated", "A3B"): the figure must
# be a computed count, under one of the conventions below, rounded to that figure.
ROUNDED_ACTIVE = {"qwen3-next-80b-a3b", "qwen3.5-35b-a3b"}


@pytest.fixture(scope="module")
def cat():
    return catalog.load()


def _kv(cat, mid, runtime="llama.cpp", context=8192):
    rt = cat.runtime(runtime)
    bits = next(iter(rt.kv_cache_types.values()))
    return memory.kv_bytes_per_token(cat.model(mid).arch, bits, context=context,
                                     sliding_window_cache=rt.sliding_window_cache, mla_cache=rt.mla_cache)


def test_the_new_architectures_are_catalogued_with_sources(cat):
    ids = {m.id for m in cat.models}
    for mid in ARCH_MODELS:
        assert mid in ids, mid
        assert cat.model(mid).sources
    assert len(cat.models) >= 53 + len(ARCH_MODELS)


@pytest.mark.parametrize("mid", ARCH_MODELS)
def test_parameter_count_follows_from_the_architecture(cat, mid):
    m = cat.model(mid)
    computed = memory.computed_params(m.arch)
    assert abs(computed - m.params) / m.params < 0.02, (computed, m.params)
    if not m.is_moe:
        return
    active = memory.computed_active_params(m.arch)
    embed = m.arch.vocab_size * m.arch.hidden_size
    # Labs count active parameters with the embedding table, without it (Kimi, DeepSeek), or without
    # both the embedding table and the output head (Z.ai's GLM-4.5: 32.1B computed, "32B" stated).
    conventions = [active, active - embed, active - 2 * embed * (not m.arch.tied_embeddings)]
    if mid in ROUNDED_ACTIVE:
        digits = len(str(m.active_params).rstrip("0"))
        scale = 10 ** (len(str(m.active_params)) - digits)
        assert any(round(c / scale) * scale == m.active_params for c in conventions), conventions
    else:
        assert min(abs(c - m.active_params) for c in conventions) / m.active_params < 0.02, conventions


def test_qwen3_coder_next_matches_the_hub_parameter_count_to_the_tensor(cat):
    # Hub total 79,674,391,296 (config-derived and published); the formula leaves out only the 48
    # shared-expert gates (1 x 2048 each) and the 12 full-attention layers' q/k norms (2 x 256).
    a = cat.model("qwen3-coder-next").arch
    assert memory.computed_params(a) == 79_674_391_296 - 48 * 2048 - 12 * 2 * 256
    # active: the Hub total minus the inactive routed experts (3,874,929,408), same two omissions
    assert memory.computed_active_params(a) == 3_874_929_408 - 48 * 2048 - 12 * 2 * 256


# ---------------------------------------------------------------- linear-attention hybrids


def test_qwen35_2b_kv_cache_and_recurrent_state_match_llama_cpp(cat):
    """llama.cpp b9140 loading Qwen3.5-2B-Q8_0.gguf with -c 0 (262144 cells) and 4 sequences printed:
    KV cache 3072.00 MiB over 6 layers (f16); recurrent state 77.06 MiB for 4 sequences, R (f32)
    5.06 MiB, S (f32) 72.00 MiB; model buffer 1908.35 MiB."""
    m = cat.model("qwen3.5-2b")
    a = m.arch
    assert a.kv_layers == 6 and a.linear_layers == 18
    assert _kv(cat, "qwen3.5-2b", context=262144) * 262144 == 3072 * MIB
    state = memory.recurrent_state_bytes(a, cat.constants["recurrent_state_bits"])
    la = a.linear_attention
    conv = a.linear_layers * (la.conv_kernel - 1) * (2 * la.key_dim + la.value_dim) * 4
    ssm = a.linear_layers * la.value_heads * la.key_head_dim * la.value_head_dim * 4
    assert state == conv + ssm
    assert round(4 * conv / MIB, 2) == 5.06 and round(4 * ssm / MIB, 2) == 72.00
    assert round(4 * state / MIB, 2) == 77.06
    w = memory.weights(m, cat.quants["Q8_0"], "gguf", cat, use_artifact=False)
    assert abs(w.total_bytes / MIB - 1908.35) < 0.05  # the GGUF recipe gives the file's tensor bytes


def test_qwen35_9b_q8_kv_cache_and_state_match_llama_cpp(cat):
    """llama.cpp loading Qwen3.5-9B-Q4_K_S.gguf with a q8_0 KV cache at 262144 cells, one sequence:
    KV 4352.00 MiB over 8 layers; recurrent state 50.25 MiB, R (f32) 2.25 MiB, S (f32) 48.00 MiB;
    model params 8.95 B."""
    a = cat.model("qwen3.5-9b").arch
    assert round(memory.computed_params(a) / 1e7) == 895
    q8 = cat.runtime("llama.cpp").kv_cache_types["q8_0"]
    per_token = memory.kv_bytes_per_token(a, q8, context=262144, sliding_window_cache=True, mla_cache=True)
    assert per_token * 262144 == 4352 * MIB
    assert memory.recurrent_state_bytes(a, cat.constants["recurrent_state_bits"]) == int(50.25 * MIB)


@pytest.mark.parametrize("mid,gib,bpw", [("qwen3.5-27b", 15.58, 4.98), ("qwen3.5-35b-a3b", 20.70, 5.13)])
def test_parameter_count_matches_llama_cpps_file_size_and_bits_per_weight(cat, mid, gib, bpw):
    # llama.cpp prints "file size = X GiB (Y BPW)" with BPW = bytes x 8 / its own parameter count, so
    # the two printed figures give that count to about 0.2% (their rounding).
    implied = gib * 2**30 * 8 / bpw
    assert abs(memory.computed_params(cat.model(mid).arch) - implied) / implied < 0.002


def test_the_recurrent_state_is_per_sequence_and_does_not_grow_with_context(cat):
    rt = cat.runtime("llama.cpp")
    m = cat.model("qwen3-next-80b-a3b")
    short = memory.estimate(m, "Q4_K_M", rt, cat, context=4096)
    long = memory.estimate(m, "Q4_K_M", rt, cat, context=65536)
    # 36 Gated DeltaNet layers x (3 x 8192 conv + 32 x 128 x 128 state) x 4 bytes = 79,036,416
    assert short.kv_state_bytes == long.kv_state_bytes == 36 * (3 * 8192 + 32 * 128 * 128) * 4
    # 12 gated full-attention layers x K and V x 2 KV heads x 256 x 2 bytes = 24,576 per token
    assert short.kv_bytes_per_token == 24576
    assert long.kv_cache_bytes - short.kv_cache_bytes == 24576 * (65536 - 4096)
    two = memory.estimate(m, "Q4_K_M", rt, cat, context=4096, batch=2)
    assert two.kv_cache_bytes == 2 * short.kv_cache_bytes
    assert any("linear attention" in n for n in short.notes)
    assert short.to_dict()["kv_state_bytes"] == short.kv_state_bytes
    assert "kv_state_bytes" not in memory.estimate(cat.model("llama-3.1-8b"), "Q4_K_M", rt, cat,
                                                   context=4096).to_dict()


def test_a_hybrid_keeps_a_quarter_of_the_dense_kv_cache(cat):
    a = cat.model("qwen3-next-80b-a3b").arch
    dense = memory.kv_bytes_per_token(Architecture(**{**_fields(a), "linear_attention": None}), 16,
                                      context=8192, sliding_window_cache=True, mla_cache=True)
    assert _kv(cat, "qwen3-next-80b-a3b") * 4 == dense


def test_context_within_leaves_room_for_the_recurrent_state(cat):
    rt = cat.runtime("llama.cpp")
    est = memory.estimate(cat.model("qwen3-next-80b-a3b"), "Q4_K_M", rt, cat, context=4096)
    budget = est.total_bytes
    fits = memory.context_within(budget, est, 262144)
    assert fits == pytest.approx(4096, abs=1)  # the whole budget: weights, overhead, state, 4096 tokens


# ---------------------------------------------------------------- chunked attention, interleaved MoE


def test_llama4_chunked_layers_stop_growing_at_the_chunk(cat):
    a = cat.model("llama-4-scout").arch
    per_layer = 2 * 8 * 128 * 2
    assert a.sliding_layers == 36 and a.kv_layers == 48
    assert _kv(cat, "llama-4-scout", context=8192) == per_layer * 48
    # llama.cpp: LLAMA_SWA_TYPE_CHUNKED, n_swa 8192, 3 chunked - 1 full (set_swa_pattern(4))
    assert _kv(cat, "llama-4-scout", context=131072) == pytest.approx(per_layer * (12 + 36 * 8192 / 131072))
    # a runtime that allocates every layer at full length (MLX-LM here) pays for all 48
    assert _kv(cat, "llama-4-scout", runtime="mlx-lm", context=131072) == per_layer * 48
    est = memory.estimate(cat.model("llama-4-scout"), "Q4_K_M", cat.runtime("llama.cpp"), cat, context=131072)
    assert any("8192-token chunk" in n for n in est.notes)


def test_maverick_interleaves_moe_and_dense_layers(cat):
    a = cat.model("llama-4-maverick").arch
    groups = memory.tensor_groups(a)
    moe_layers = sorted({g.layer for g in groups if g.expert})
    assert moe_layers == list(range(1, 48, 2))  # Transformers: moe_layers = range(step - 1, 48, step)
    dense_ffn = [g for g in groups if g.cls == "ffn_down" and not g.expert and g.layer % 2 == 0]
    assert len(dense_ffn) == 24 and all(g.ncols == 16384 for g in dense_ffn)
    # every MoE layer also has one shared expert of the expert width
    shared = [g for g in groups if g.cls == "ffn_down" and not g.expert and g.layer % 2 == 1]
    assert len(shared) == 24 and all(g.ncols == 8192 for g in shared)
    # Scout (step 1) puts experts in all 48 layers
    assert len({g.layer for g in memory.tensor_groups(cat.model("llama-4-scout").arch) if g.expert}) == 48


@pytest.mark.parametrize("mid,dense", [("glm-4.5", 3), ("glm-4.5-air", 1), ("kimi-k2", 1), ("deepseek-v3.1", 3)])
def test_dense_first_layers_carry_no_experts(cat, mid, dense):
    a = cat.model(mid).arch
    layers = sorted({g.layer for g in memory.tensor_groups(a) if g.expert})
    assert layers[0] == dense and len(layers) == a.layers - dense


def test_kimi_k2_mla_cache_and_glm_gqa_cache(cat):
    assert _kv(cat, "kimi-k2") == (512 + 64) * 61 * 2  # one latent per layer, like DeepSeek-V3
    assert _kv(cat, "deepseek-v3.1") == _kv(cat, "deepseek-v3")
    assert _kv(cat, "glm-4.5") == 2 * 92 * 8 * 128 * 2  # the MTP layer holds no cache in llama.cpp


# ---------------------------------------------------------------- KV sharing (Gemma 3n)


def test_kv_shared_layers_own_no_cache():
    """Gemma 3n E4B (config.json: 35 layers, num_kv_shared_layers 15, sliding window 512, every 5th layer
    global, 2 KV heads x 256): llama.cpp's has_kv() gives a cache to the first 20 layers only; of those,
    layers 4, 9, 14 and 19 are global."""
    a = Architecture(layers=35, hidden_size=2048, attention_heads=8, kv_heads=2, head_dim=256,
                     intermediate_size=16384, vocab_size=262400, tied_embeddings=True, attention="sliding",
                     sliding_window=512, global_every=5, kv_shared_layers=15)
    assert a.kv_layers == 20 and a.sliding_layers == 16
    per_layer = 2 * 2 * 256 * 2
    at_32k = memory.kv_bytes_per_token(a, 16, context=32768, sliding_window_cache=True, mla_cache=True)
    assert at_32k == pytest.approx(per_layer * (4 + 16 * 512 / 32768))
    assert memory.kv_bytes_per_token(a, 16, context=32768, sliding_window_cache=False, mla_cache=True) == per_layer * 20


# ---------------------------------------------------------------- the schema


def _fields(a: Architecture) -> dict:
    return {k: getattr(a, k) for k in Architecture.__slots__}


def test_moe_layer_rule():
    m = Moe(experts=8, experts_per_token=2, expert_intermediate_size=64, dense_layers=1, every=2)
    assert [i for i in range(8) if m.is_moe_layer(i)] == [1, 3, 5, 7]
    assert [i for i in range(4) if Moe(experts=8, experts_per_token=2, expert_intermediate_size=64,
                                       dense_layers=2).is_moe_layer(i)] == [2, 3]


def test_linear_attention_state_formula():
    la = LinearAttention(full_every=4, key_heads=16, value_heads=32, key_head_dim=128, value_head_dim=128,
                         conv_kernel=4)
    # llama.cpp n_embd_r = (d_conv - 1) x (d_inner + 2 x n_group x d_state); n_embd_s = d_state x d_inner
    assert la.state_elements == 3 * (4096 + 2 * 16 * 128) + 128 * 4096


def test_to_dict_shows_the_new_fields(cat):
    d = cat.model("qwen3-next-80b-a3b").arch.to_dict()
    assert d["linear_attention"]["full_every"] == 4 and d["attn_output_gate"] is True
    assert cat.model("llama-4-maverick").arch.to_dict()["moe"]["every"] == 2
    assert "every" not in cat.model("llama-4-scout").arch.to_dict()["moe"]
    assert cat.model("llama-4-scout").arch.to_dict()["attention_chunk_size"] == 8192


@pytest.fixture()
def data_copy(tmp_path):
    d = tmp_path / "data"
    shutil.copytree(catalog.data_dir(), d)
    return d


def _edit(d, mid, edit):
    doc = yaml.safe_load((d / "models.yaml").read_text())
    entry = next(m for m in doc["models"] if m["id"] == mid)
    edit(entry["architecture"])
    (d / "models.yaml").write_text(yaml.safe_dump(doc))


@pytest.mark.parametrize("mid,edit,message", [
    ("llama-4-scout", lambda a: a.pop("attention_chunk_size"), "attention 'chunked' needs 'attention_chunk_size'"),
    ("llama-4-scout", lambda a: a.update(attention="full"), "'attention_chunk_size' needs attention 'chunked'"),
    ("qwen3-next-80b-a3b", lambda a: a["linear_attention"].update(full_every=1), "'full_every' must be at least 2"),
    ("qwen3-next-80b-a3b", lambda a: a["linear_attention"].update(value_heads=24),
     "'value_heads' \\(24\\) must be a multiple of 'key_heads' \\(16\\)"),
    ("qwen3-next-80b-a3b", lambda a: a["linear_attention"].pop("conv_kernel"), "'conv_kernel' is missing"),
    ("qwen3-next-80b-a3b", lambda a: a["linear_attention"].update(conv_kernal=4), "unknown field 'conv_kernal'"),
    ("llama-4-maverick", lambda a: a["moe"].update(every=0), "'every' must be positive"),
    ("glm-4.5", lambda a: a["moe"].update(dense_layers=92), "'dense_layers' \\(92\\) must be below 'layers'"),
    ("glm-4.5", lambda a: a.update(kv_shared_layers=92), "'kv_shared_layers' \\(92\\) must be below 'layers'"),
])
def test_bad_architecture_fields_are_named(data_copy, mid, edit, message):
    _edit(data_copy, mid, edit)
    with pytest.raises(CatalogError, match=message) as e:
        catalog.load(data_copy)
    assert f"({mid})" in e.value.message


@pytest.mark.parametrize("layers,shared,global_every,full_every", [
    (35, 15, 5, None), (48, 0, 4, None), (42, 0, 2, None), (26, 0, None, None), (48, 0, None, 4),
    (30, 0, 3, 4), (27, 3, 2, 3), (24, 0, None, None)])
def test_layer_counts_match_the_per_layer_rules(layers, shared, global_every, full_every):
    """The closed-form counts agree with walking the layers one by one."""
    a = Architecture(layers=layers, hidden_size=64, attention_heads=4, kv_heads=2, head_dim=16,
                     intermediate_size=128, vocab_size=100, tied_embeddings=True,
                     attention="sliding" if global_every or layers == 26 else "full",
                     sliding_window=512 if global_every or layers == 26 else None, global_every=global_every,
                     kv_shared_layers=shared,
                     linear_attention=None if full_every is None else LinearAttention(
                         full_every=full_every, key_heads=2, value_heads=2, key_head_dim=8, value_head_dim=8,
                         conv_kernel=4))
    own = range(layers - shared)
    assert a.kv_layers == sum(1 for i in own if not a.is_linear_layer(i))
    assert a.sliding_layers == sum(1 for i in own if a.is_local_layer(i) and not a.is_linear_layer(i))
    assert a.linear_layers == sum(1 for i in range(layers) if a.is_linear_layer(i))
