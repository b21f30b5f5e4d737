"""The speed model against published llama.cpp runs (tests/data/llama_cpp_bench.yaml), and properties."""

from __future__ import annotations

import statistics
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner import catalog, speed
from planner.fit import Placement
from planner.hardware import Cpu, Gpu, Machine, Memory, OsInfo
from planner.memory import MemoryEstimate

from .bench_data import load_rows, load_runtime_rows


@pytest.fixture(scope="module")
def cat():
    return catalog.load()


@pytest.fixture(scope="module")
def rows(cat):
    return [r for r in load_rows(cat) if r.test.startswith("tg")]


VENDOR = {"cuda": "nvidia", "cuda-hbm": "nvidia", "metal": "apple", "vulkan": "amd", "cpu": None}
KIND = {"cuda": "rtx-4090", "cuda-hbm": "h100-sxm"}


def predict(cat, row, runtime="llama.cpp"):
    """The planner's range for one published run: a GPU with the run's bandwidth, a near-empty context."""
    est = MemoryEstimate(model=row.model.id, hf_repo="-", quant=row.quant, runtime="llama.cpp", format="gguf",
                         context=128, batch=1, kv_cache_type="f16", weights_bytes=row.weights_bytes,
                         kv_cache_bytes=0, overhead_bytes=0, layers=row.layers,
                         per_layer_bytes=row.weights_bytes // row.layers, non_layer_bytes=0,
                         kv_bytes_per_token=0.0, weights_source="formula",
                         weights_read_bytes=int(row.bytes_per_token))
    hw = row.klass.split("/")[-1]
    vendor = VENDOR[hw]
    gpus = ()
    if vendor:
        gpus = tuple(Gpu(index=i, vendor=vendor, name=row.hardware, memory_total_bytes=1 << 40,
                         memory_bandwidth_bytes_per_s=int(row.bandwidth), catalog_id=KIND.get(hw),
                         unified_memory=vendor == "apple") for i in range(row.gpus))
    machine = Machine(os=OsInfo(system="Linux"), cpu=Cpu(model="x", arch="x86_64", physical_cores=8, logical_cores=8,
                                                         usable_cores=8),
                      memory=Memory(total_bytes=1 << 40, available_bytes=1 << 40,
                                    bandwidth_bytes_per_s=int(row.bandwidth) if not vendor else None), gpus=gpus)
    kind = "cpu" if not vendor else ("multi-gpu" if row.gpus > 1 else "gpu")
    placement = Placement(kind=kind, required_bytes=1, available_bytes=2, device_bytes=1, host_bytes=0,
                          gpus=tuple(g.index for g in gpus))
    return speed.estimate_speed(est, row.model, placement, machine, cat.runtime(runtime), cat)


def test_published_runs_fall_inside_the_predicted_range(cat, rows):
    table = {}
    inside = 0
    for r in rows:
        s = predict(cat, r)
        err = (s.expected - r.tokens_per_s) / r.tokens_per_s
        table.setdefault(r.klass, []).append(abs(err))
        inside += s.low <= r.tokens_per_s <= s.high
    errors = [e for v in table.values() for e in v]
    assert len(rows) >= 100
    assert any(r.model.is_moe for r in rows)
    assert statistics.median(errors) < 0.15
    assert inside / len(rows) >= 0.8
    for klass, errs in table.items():
        assert statistics.median(errs) < 0.15, klass


def test_vllm_and_mlx_single_request_runs(cat):
    rows = load_runtime_rows(cat)
    errs, inside = [], 0
    for r in rows:
        s = predict(cat, r, runtime=r.backend)
        errs.append(abs(s.expected - r.tokens_per_s) / r.tokens_per_s)
        inside += s.low <= r.tokens_per_s <= s.high
    assert len(rows) >= 10 and {r.backend for r in rows} == {"vllm", "mlx-lm"}
    assert statistics.median(errs) < 0.15
    assert inside / len(rows) >= 0.8


def test_the_same_gpu_named_differently_gets_the_same_speed(cat):
    """The H100 SXM gets its own bandwidth whatever it is called, never PCIe's."""
    from planner.hardware import hypothetical

    a = hypothetical(cat, gpu="h100-sxm", vram=None, ram=None, cpu_cores=None)
    b = hypothetical(cat, gpu="NVIDIA H100 80GB HBM3", vram=None, ram=None, cpu_cores=None)
    c = hypothetical(cat, gpu="h100-pcie", vram=None, ram=None, cpu_cores=None)
    assert a.gpus[0].memory_bandwidth_bytes_per_s == b.gpus[0].memory_bandwidth_bytes_per_s
    assert c.gpus[0].memory_bandwidth_bytes_per_s < a.gpus[0].memory_bandwidth_bytes_per_s


def test_moe_decode_follows_active_parameters(cat):
    moe = cat.model("qwen3-30b-a3b")
    dense = cat.model("qwen3-32b")
    assert speed.read_fraction(moe) < 0.15 < 0.9 < speed.read_fraction(dense)


def _machine(bw: int) -> Machine:
    g = Gpu(index=0, vendor="nvidia", name="x", memory_total_bytes=1 << 40, memory_bandwidth_bytes_per_s=bw)
    return Machine(os=OsInfo(system="Linux"), cpu=Cpu(model="x", arch="x86_64", physical_cores=8, logical_cores=8,
                                                      usable_cores=8),
                   memory=Memory(total_bytes=1 << 40, available_bytes=1 << 40), gpus=(g,))


def _est(weights: int, kv_per_token: float = 0.0) -> MemoryEstimate:
    return MemoryEstimate(model="llama-3.1-8b", hf_repo="-", quant="Q4_K_M", runtime="llama.cpp", format="gguf",
                          context=8192, batch=1, kv_cache_type="f16", weights_bytes=weights, kv_cache_bytes=0,
                          overhead_bytes=0, layers=32, per_layer_bytes=weights // 32, non_layer_bytes=0,
                          kv_bytes_per_token=kv_per_token, weights_source="formula")


PLACEMENT = Placement(kind="gpu", required_bytes=1, available_bytes=2, device_bytes=1, host_bytes=0, gpus=(0,))


@settings(max_examples=80, deadline=None)
@given(bw=st.integers(10**10, 10**13), more=st.integers(1, 10**12), w=st.integers(10**8, 10**11))
def test_more_bandwidth_is_never_slower(bw, more, w):
    cat = catalog.load()
    m, rt = cat.model("llama-3.1-8b"), cat.runtime("llama.cpp")
    slow = speed.estimate_speed(_est(w), m, PLACEMENT, _machine(bw), rt, cat)
    fast = speed.estimate_speed(_est(w), m, PLACEMENT, _machine(bw + more), rt, cat)
    assert fast.expected >= slow.expected and fast.low >= slow.low and fast.high >= slow.high


@settings(max_examples=80, deadline=None)
@given(w=st.integers(10**8, 10**11), extra=st.integers(1, 10**10))
def test_more_bits_per_weight_are_never_faster(w, extra):
    cat = catalog.load()
    m, rt = cat.model("llama-3.1-8b"), cat.runtime("llama.cpp")
    small = speed.estimate_speed(_est(w), m, PLACEMENT, _machine(10**12), rt, cat)
    big = speed.estimate_speed(_est(w + extra), m, PLACEMENT, _machine(10**12), rt, cat)
    assert big.expected <= small.expected


def test_partial_offload_runs_at_the_pace_of_ram(cat):
    m, rt = cat.model("llama-3.1-70b"), cat.runtime("llama.cpp")
    full = speed.estimate_speed(_est(40 * 10**9), m, PLACEMENT, _machine(10**12), rt, cat)
    off = replace(PLACEMENT, kind="partial-offload", gpu_layers=16)
    est = replace(_est(40 * 10**9), layers=80)
    part = speed.estimate_speed(est, m, off, _machine(10**12), rt, cat)
    assert part.expected < full.expected / 5


def test_apple_prefill_comes_from_the_chips_measured_prompt_rate(cat):
    from planner import recommend
    from planner.hardware import hypothetical

    mac = hypothetical(cat, gpu="m2-max-64", vram=None, ram=None, cpu_cores=None)
    res = recommend.plan(cat, mac, recommend.Request(models=("llama-3.1-8b",), runtimes=("llama.cpp",),
                                                    quants=("Q4_K_M",)))
    (p,) = res.plans
    # discussion #4167: M2 Max 38-core, LLaMA 7B Q4_0 pp512 = 671.31 tokens/s, scaled by parameters
    expected = 671.31 * 6738415616 / cat.model("llama-3.1-8b").params
    assert p.speed.prefill_tokens_per_s == pytest.approx(expected, rel=0.01)
