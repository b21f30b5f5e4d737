"""Placements: one GPU, several, partial offload, CPU, unified memory; rejections keep their reasons."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner import catalog, fit, hardware, memory, recommend, runtimes
from planner.hardware import Cpu, Gpu, Machine, Memory, OsInfo

GIB = 1 << 30


@pytest.fixture(scope="module")
def cat():
    return catalog.load()


def box(gpus=(), ram=64 * GIB, system="Linux"):
    return Machine(os=OsInfo(system=system), cpu=Cpu(model="x", arch="x86_64", physical_cores=8, logical_cores=8,
                                                     usable_cores=8, flags=("avx2",)),
                   memory=Memory(total_bytes=ram, available_bytes=ram), gpus=tuple(gpus))


def nvidia(vram, n=1, bw=1008 * 10**9, cc="8.9"):
    return [Gpu(index=i, vendor="nvidia", name="NVIDIA GeForce RTX 4090", memory_total_bytes=vram,
                memory_bandwidth_bytes_per_s=bw, compute_capability=cc) for i in range(n)]


def place(cat, mid, quant, rt, machine, context=8192, kv=None):
    m, r = cat.model(mid), cat.runtime(rt)
    gpus, _ = fit.runtime_gpus(machine, r, cat.quants[quant])
    est = memory.estimate(m, quant, r, cat, context=context, kv_cache_type=kv, gpu=bool(gpus))
    cpu = memory.estimate(m, quant, r, cat, context=context, kv_cache_type=kv, gpu=False)
    return fit.place(est, cpu, m, machine, r, cat.quants[quant], cat)


def test_single_gpu(cat):
    p = place(cat, "llama-3.1-8b", "Q4_K_M", "llama.cpp", box(nvidia(24 * GIB)))
    assert p.kind == "gpu" and p.gpus == (0,) and p.required_bytes < p.available_bytes


def test_partial_offload_reports_the_layers(cat):
    p = place(cat, "llama-3.3-70b", "Q4_K_M", "llama.cpp", box(nvidia(24 * GIB), ram=64 * GIB))
    assert p.kind == "partial-offload" and 20 < p.gpu_layers < 80
    assert p.device_bytes <= 24 * GIB and p.host_bytes > 20 * GIB


def test_rejection_keeps_its_reason(cat):
    r = place(cat, "llama-3.3-70b", "Q4_K_M", "llama.cpp", box(nvidia(8 * GIB), ram=16 * GIB))
    assert isinstance(r, fit.Rejection)
    assert "needs 43.1 GiB" in r.reason and "of 80 layers would fit" in r.reason
    assert r.gpu_layers_fit and r.gpu_layers_fit < 20


def test_layer_split_over_two_gpus(cat):
    p = place(cat, "llama-3.3-70b", "Q4_K_M", "llama.cpp", box(nvidia(24 * GIB, n=2)))
    assert p.kind == "multi-gpu" and p.gpus == (0, 1) and p.tensor_parallel is None


def test_tensor_parallel_needs_heads_divisible_by_gpu_count(cat):
    p = place(cat, "llama-3.3-70b", "BF16", "vllm", box(nvidia(48 * GIB, n=4, cc="9.0")))
    assert p.kind == "multi-gpu" and p.tensor_parallel == 4
    assert cat.model("llama-3.3-70b").arch.attention_heads % p.tensor_parallel == 0
    # 3 GPUs of 48 GiB hold 141 GB, but 64 heads don't split three ways and 2 GPUs are too small
    r = place(cat, "llama-3.3-70b", "BF16", "vllm", box(nvidia(48 * GIB, n=3, cc="9.0")))
    assert isinstance(r, fit.Rejection) and "tensor parallel 2" in r.reason


def test_vllm_reports_the_context_its_kv_pool_reaches(cat):
    p = place(cat, "llama-3.1-8b", "BF16", "vllm", box(nvidia(80 * GIB, cc="9.0")))
    assert p.kind == "gpu" and p.gpu_share == 0.9
    assert p.max_context == cat.model("llama-3.1-8b").context_length  # 128K tokens fit beside 15 GiB


def test_fp8_runs_weight_only_on_turing_and_ampere(cat):
    """vLLM runs FP8 checkpoints from compute capability 7.5 as weight-only W8A16 through FP8-Marlin
    (vllm-project/vllm#5975; docs features/quantization/fp8): placed on Ampere and Turing, and the
    same weight memory as on Hopper."""
    hopper = place(cat, "llama-3.1-8b", "FP8", "vllm", box(nvidia(80 * GIB, cc="9.0")))
    ampere = place(cat, "llama-3.1-8b", "FP8", "vllm", box(nvidia(80 * GIB, cc="8.0")))
    turing = place(cat, "llama-3.1-8b", "FP8", "vllm", box(nvidia(80 * GIB, cc="7.5")))
    assert hopper.kind == ampere.kind == turing.kind == "gpu"
    assert ampere.required_bytes == hopper.required_bytes
    rt = runtimes.get(cat.runtime("vllm"))
    gpu = box(nvidia(80 * GIB, cc="8.0")).gpus[0]
    assert "weight-only" in rt.quant_notes([gpu], cat.quants["FP8"])[0]
    assert rt.quant_notes([box(nvidia(80 * GIB, cc="9.0")).gpus[0]], cat.quants["FP8"]) == ()


def test_cpu_only_and_container_limit(cat):
    p = place(cat, "llama-3.2-3b", "Q4_K_M", "llama.cpp", box(ram=8 * GIB))
    assert p.kind == "cpu"
    limited = replace(box(ram=64 * GIB), memory=Memory(total_bytes=64 * GIB, available_bytes=60 * GIB,
                                                         limit_bytes=4 * GIB))
    r = place(cat, "llama-3.1-8b", "Q4_K_M", "llama.cpp", limited)
    assert isinstance(r, fit.Rejection) and "container limit" in r.reason


def test_unified_memory_uses_metals_working_set(cat):
    mac = hardware.hypothetical(cat, gpu="m3-max-64", vram=None, ram=None, cpu_cores=None)
    p = place(cat, "llama-3.3-70b", "Q4_K_M", "llama.cpp", mac)
    assert p.kind == "unified" and p.available_bytes == int(64 * GIB * 0.75)
    small = hardware.hypothetical(cat, gpu="m2-16", vram=None, ram=None, cpu_cores=None)
    r = place(cat, "llama-3.1-8b", "Q8_0", "llama.cpp", small)
    assert isinstance(r, fit.Rejection) or r.available_bytes == int(16 * GIB * 0.6667)


def test_a_gpu_machine_never_gets_a_cpu_plan_when_the_gpu_fits(cat):
    res = recommend.plan(cat, box(nvidia(24 * GIB)), recommend.Request())
    small = [p for p in res.plans if p.placement.required_bytes < 16 * GIB and p.runtime.id != "transformers"]
    assert small and all(p.placement.kind == "gpu" for p in small)


def test_a_mac_never_gets_a_cuda_only_runtime(cat):
    mac = hardware.hypothetical(cat, gpu="m3-max-128", vram=None, ram=None, cpu_cores=None)
    res = recommend.plan(cat, mac, recommend.Request())
    assert {p.runtime.id for p in res.plans} <= {"llama.cpp", "ollama", "lm-studio", "mlx-lm", "transformers"}
    assert "mlx-lm" in {p.runtime.id for p in res.plans}


@settings(max_examples=40, deadline=None)
@given(vram=st.integers(2, 96), extra=st.integers(1, 64), ram=st.integers(8, 256),
       mid=st.sampled_from(["llama-3.1-8b", "llama-3.3-70b", "gemma-2-27b", "qwen3-30b-a3b", "phi-3.5-mini"]),
       quant=st.sampled_from(["Q4_K_M", "Q8_0"]), rt=st.sampled_from(["llama.cpp", "ollama"]))
def test_more_vram_never_turns_a_fit_into_a_rejection(vram, extra, ram, mid, quant, rt):
    cat = catalog.load()
    if cat.model(mid).artifact("ollama" if rt == "ollama" else "gguf", quant) is None:
        return
    a = place(cat, mid, quant, rt, box(nvidia(vram * GIB), ram=ram * GIB))
    b = place(cat, mid, quant, rt, box(nvidia((vram + extra) * GIB), ram=ram * GIB))
    if isinstance(a, fit.Placement):
        assert isinstance(b, fit.Placement)
        order = recommend.PLACEMENT_ORDER
        assert order[b.kind] <= order[a.kind]


def test_mlx_artifacts_are_planned_on_macs_only(cat):
    linux = recommend.plan(cat, box(nvidia(24 * GIB)), recommend.Request())
    assert all(p.artifact.format != "mlx" for p in linux.plans)
    mac = hardware.hypothetical(cat, gpu="m3-max-64", vram=None, ram=None, cpu_cores=None)
    assert any(p.artifact.format == "mlx" for p in recommend.plan(cat, mac, recommend.Request()).plans)
