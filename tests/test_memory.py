"""Memory estimates against real numbers: GGUF files, KV caches, an H100 measurement; properties."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner import catalog, memory
from planner.errors import PlannerError, UsageError

TRUTH = json.loads((Path(__file__).parent / "data" / "h100-transformers-memory.json").read_text())


@pytest.fixture(scope="module")
def cat():
    return catalog.load()


# ggml-org/llama.cpp tools/quantize/README.md: meta-llama/Llama-3.1-8B, bits/weight and size (GiB) per quant.
LLAMA_31_8B_TABLE = {
    "IQ1_S": (2.0042, 1.87), "IQ1_M": (2.1460, 2.01), "IQ2_XXS": (2.3824, 2.23), "IQ2_XS": (2.5882, 2.42),
    "IQ2_S": (2.7403, 2.56), "IQ2_M": (2.9294, 2.74), "IQ3_XXS": (3.2548, 3.04), "IQ3_XS": (3.4977, 3.27),
    "IQ3_S": (3.6606, 3.42), "IQ3_M": (3.7628, 3.52), "IQ4_XS": (4.4597, 4.17), "IQ4_NL": (4.6818, 4.38),
    "Q2_K_S": (2.9697, 2.78), "Q2_K": (3.1593, 2.95), "Q3_K_S": (3.6429, 3.41), "Q3_K_L": (4.2979, 4.02),
    "Q4_K_S": (4.6672, 4.36), "Q4_K_M": (4.8944, 4.58), "Q5_K_S": (5.5704, 5.21), "Q5_K_M": (5.7036, 5.33),
    "Q6_K": (6.5633, 6.14), "Q8_0": (8.5008, 7.95), "F16": (16.0005, 14.96),
}
# tools/quantize/quantize.cpp QUANT_OPTIONS: size in GiB on Llama-3-8B (same shapes as 3.1, vocab 128256)
LLAMA_3_8B_SIZES = {"Q4_0": 4.34, "Q4_1": 4.78, "Q5_0": 5.21, "Q5_1": 5.65, "Q3_K_M": 3.74}


@pytest.mark.parametrize("quant,gib", sorted(LLAMA_3_8B_SIZES.items()))
def test_legacy_and_q3_k_m_recipes_reproduce_llama_quantize_help(cat, quant, gib):
    w = memory.weights(cat.model("llama-3.1-8b"), cat.quants[quant], "gguf", cat, use_artifact=False)
    assert abs(w.total_bytes / 2**30 - gib) < 0.01


def test_ggml_type_sizes_match_the_gguf_package(cat):
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    for name, bits in cat.constants["ggml_type_bits"].items():
        block, size = GGML_QUANT_SIZES[GGMLQuantizationType[name]]
        assert bits == size * 8 / block, name


@pytest.mark.parametrize("quant,expected", sorted(LLAMA_31_8B_TABLE.items()))
def test_gguf_recipes_reproduce_llama_cpp_quantize_table(cat, quant, expected):
    bpw, gib = expected
    m = cat.model("llama-3.1-8b")
    w = memory.weights(m, cat.quants[quant], "gguf", cat, use_artifact=False)
    assert abs(w.total_bytes * 8 / m.params - bpw) / bpw < 0.001
    assert abs(w.total_bytes / 2**30 - gib) < 0.01


def _sized_artifacts():
    cat = catalog.load()
    return [(m.id, a.format, a.quant, a.size_bytes) for m in cat.models for a in m.artifacts if a.size_bytes]


@pytest.mark.parametrize("mid,fmt,quant,size", _sized_artifacts())
def test_weight_formula_within_3_percent_of_real_files(cat, mid, fmt, quant, size):
    m = cat.model(mid)
    w = memory.weights(m, cat.quants[quant.upper()], fmt, cat, use_artifact=False)
    assert abs(w.total_bytes - size) / size < 0.03, (w.total_bytes, size)


def test_estimate_uses_the_real_file_size_when_known(cat):
    est = memory.estimate(cat.model("llama-3.1-8b"), "Q4_K_M", cat.runtime("llama.cpp"), cat, context=4096)
    assert est.weights_bytes == 4920739232 and est.weights_source == "artifact"


def _kv(cat, mid, runtime="llama.cpp", context=8192, kv=None):
    rt = cat.runtime(runtime)
    m = cat.model(mid)
    bits = rt.kv_cache_types[kv or next(iter(rt.kv_cache_types))]
    return memory.kv_bytes_per_token(m.arch, bits, context=context, sliding_window_cache=rt.sliding_window_cache,
                                     mla_cache=rt.mla_cache)


def test_gqa_kv_cache_matches_the_h100_measurement(cat):
    # 2 (K,V) x 32 layers x 8 KV heads x 128 x 2 bytes = 131072 B/token; Transformers measured exactly that
    assert _kv(cat, "llama-3.1-8b", "transformers") == 131072
    measured = TRUTH["models"]["llama-3.1-8b"]["contexts"]["8192"]["kv_bytes"]
    assert memory.kv_cache(cat.model("llama-3.1-8b").arch, 8192, 1, 16, sliding_window_cache=False,
                           mla_cache=True) == measured
    q = TRUTH["models"]["qwen2.5-7b"]["contexts"]["32768"]["kv_bytes"]
    assert memory.kv_cache(cat.model("qwen2.5-7b").arch, 32768, 1, 16, sliding_window_cache=False,
                           mla_cache=True) == q


def test_full_attention_without_gqa_is_three_times_llama(cat):
    assert _kv(cat, "phi-3.5-mini") == 393216 == 3 * _kv(cat, "llama-3.1-8b")


def test_sliding_window_layers_stop_growing_at_the_window(cat):
    a = cat.model("gemma-2-9b").arch
    full = 2 * a.layers * a.kv_heads * a.head_dim * 2
    assert _kv(cat, "gemma-2-9b", context=4096) == full  # inside the window every layer holds every token
    at_8k = _kv(cat, "gemma-2-9b", context=8192)
    assert at_8k == pytest.approx(full * (21 + 21 * 4096 / 8192) / 42)
    # a runtime that allocates every layer at full length pays the full price
    assert _kv(cat, "gemma-2-9b", runtime="mlx-lm", context=8192) == full


def test_mla_caches_the_latent_seventy_times_smaller(cat):
    latent = _kv(cat, "deepseek-v3")
    assert latent == (512 + 64) * 61 * 2
    m = cat.model("deepseek-v3").arch
    expanded = memory.kv_bytes_per_token(m, 16, context=8192, sliding_window_cache=True, mla_cache=False)
    assert 70 < expanded / latent < 72


def test_quantized_kv_cache_bits(cat):
    f16 = _kv(cat, "llama-3.1-8b")
    assert _kv(cat, "llama-3.1-8b", kv="q8_0") == f16 * 8.5 / 16
    assert _kv(cat, "llama-3.1-8b", kv="q4_0") == f16 * 4.5 / 16


def test_moe_memory_follows_total_parameters(cat):
    m = cat.model("mixtral-8x7b")
    w = memory.weights(m, cat.quants["Q4_K_M"], "gguf", cat, use_artifact=False)
    assert w.total_bytes * 8 / m.params > 4.5  # all 46.7B parameters, not the 12.9B active


def test_transformers_bf16_llama_8b_at_8k_within_5_percent_of_the_h100(cat):
    t = TRUTH["models"]["llama-3.1-8b"]
    c = t["contexts"]["8192"]
    # measured: weights + prefill peak above them + everything else NVML saw beyond torch's allocations
    beyond = t["nvml_used_after_load"] - t["allocated_after_load"]
    measured = t["param_bytes"] + c["peak_prefill_over_weights"] + beyond
    est = memory.estimate(cat.model("llama-3.1-8b"), "BF16", cat.runtime("transformers"), cat, context=8192)
    assert est.weights_bytes == t["param_bytes"]
    assert est.kv_cache_bytes == c["kv_bytes"]
    driver_reserve = TRUTH["env"]["nvml_used_before_cuda_init"]  # the fit subtracts it from the GPU instead
    assert abs(est.total_bytes - (measured - driver_reserve)) / (measured - driver_reserve) < 0.05
    assert abs(est.total_bytes - measured) / measured < 0.05


@pytest.mark.parametrize("mid", ["llama-3.1-8b", "qwen2.5-7b"])
@pytest.mark.parametrize("ctx", ["1024", "8192", "32768"])
def test_transformers_prefill_peak_per_context(cat, mid, ctx):
    c = TRUTH["models"][mid]["contexts"][ctx]
    est = memory.estimate(cat.model(mid), "BF16", cat.runtime("transformers"), cat, context=int(ctx))
    predicted = est.kv_cache_bytes + memory.activation_bytes_per_token(cat.model(mid).arch, cat.constants) * int(ctx)
    assert abs(predicted - c["peak_prefill_over_weights"]) / c["peak_prefill_over_weights"] < 0.05


def test_every_model_quantization_and_runtime_answers(cat):
    n = 0
    for m in cat.models:
        for rt in cat.runtimes:
            for q in rt.quants:
                est = memory.estimate(m, q, rt, cat, context=min(4096, m.context_length))
                assert est.total_bytes > est.weights_bytes > 0
                catalogued = memory.artifact_format(m, cat.quants[q.upper()], rt) is not None
                assert catalogued or any("no " in n and "artifact" in n for n in est.notes)
                n += 1
    assert n > 1000


def test_estimate_errors_are_plain(cat):
    m = cat.model("llama-3.1-8b")
    with pytest.raises(UsageError, match="unknown quantization"):
        memory.estimate(m, "Q9_X", cat.runtime("llama.cpp"), cat)
    with pytest.raises(PlannerError, match="does not load"):
        memory.estimate(m, "AWQ", cat.runtime("llama.cpp"), cat)
    with pytest.raises(UsageError, match="exceeds"):
        memory.estimate(m, "Q4_K_M", cat.runtime("llama.cpp"), cat, context=10**7)


# ---------------------------------------------------------------- properties

# File types whose sizes keep this order on every architecture. Types of about the same size swap
# places between architectures (Q4_1 / Q4_K_M, IQ4_NL / Q4_K_S, IQ3_XXS / Q2_K ...): their recipes
# upgrade different tensors, so they are left out of the chain.
LADDER = ["IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "Q2_K", "IQ3_S", "IQ3_M", "Q3_K_M", "Q3_K_L",
          "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "Q8_0", "F16", "F32"]


def test_the_ladder_holds_for_every_catalog_model(cat):
    for m in cat.models:
        sizes = [memory.weights(m, cat.quants[q], "gguf", cat, use_artifact=False).total_bytes for q in LADDER]
        assert sizes == sorted(sizes), m.id


MODEL_IDS = [m.id for m in catalog.load().models]


@settings(max_examples=60, deadline=None)
@given(mid=st.sampled_from(MODEL_IDS), i=st.integers(0, len(LADDER) - 2))
def test_fewer_bits_never_need_more_memory(mid, i):
    cat = catalog.load()
    m = cat.model(mid)
    lo = memory.weights(m, cat.quants[LADDER[i]], "gguf", cat, use_artifact=False).total_bytes
    hi = memory.weights(m, cat.quants[LADDER[i + 1]], "gguf", cat, use_artifact=False).total_bytes
    assert lo <= hi


@settings(max_examples=60, deadline=None)
@given(mid=st.sampled_from(MODEL_IDS), a=st.integers(256, 32768), b=st.integers(256, 32768),
       rt=st.sampled_from(["llama.cpp", "transformers", "vllm", "mlx-lm"]))
def test_a_longer_context_never_needs_less(mid, a, b, rt):
    cat = catalog.load()
    m = cat.model(mid)
    runtime = cat.runtime(rt)
    a, b = sorted((min(a, m.context_length), min(b, m.context_length)))
    bits = next(iter(runtime.kv_cache_types.values()))
    kw = dict(sliding_window_cache=runtime.sliding_window_cache, mla_cache=runtime.mla_cache)
    assert memory.kv_cache(m.arch, a, 1, bits, **kw) <= memory.kv_cache(m.arch, b, 1, bits, **kw)


def test_on_cpu_equals_an_estimate_without_a_gpu(cat):
    for mid, q, rt in (("llama-3.1-8b", "Q4_K_M", "llama.cpp"), ("qwen2.5-7b", "BF16", "transformers"),
                       ("gpt-oss-20b", "MXFP4", "vllm"), ("gemma-2-9b", "IQ2_M", "ollama")):
        m, r = cat.model(mid), cat.runtime(rt)
        gpu = memory.estimate(m, q, r, cat, context=4096)
        assert memory.on_cpu(gpu, m, r, cat) == memory.estimate(m, q, r, cat, context=4096, gpu=False)
