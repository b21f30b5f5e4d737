"""Any GPU: catalogued cards take their facts from data (NVML totals from real readings), an
uncatalogued card is described with --vram/--bandwidth/--cc/--vendor, unified-memory devices are
placed on their shared pool."""

from __future__ import annotations

import json

import pytest

from planner import catalog, hardware
from planner.errors import CatalogError, UsageError
from planner.units import MIB, parse_bandwidth, parse_compute_capability

from .test_cli import run


@pytest.fixture(scope="module")
def cat():
    return catalog.load()


def machine(cat, gpu, **kw):
    args = {"vram": None, "ram": None, "cpu_cores": None} | kw
    return hardware.hypothetical(cat, gpu=gpu, **args)


@pytest.mark.parametrize("gpu, mib", [
    ("L4", 23034),        # nvidia-smi captures of real L4s (sources in data/gpus.yaml)
    ("A10", 23028),
    ("T4", 15360),
    ("h100-sxm", 81559),  # the recorded H100 in tests/fixtures
    ("h200", 143771),     # the recorded H200 in tests/fixtures
    ("V100", 32768),
    ("A100-SXM4-40GB", 40960),
    ("A100 80GB PCIe", 81920),
])
def test_catalogued_nvidia_cards_show_their_real_nvml_total(cat, gpu, mib):
    m = machine(cat, gpu)
    assert m.gpus[0].memory_total_bytes == mib * MIB
    assert not any("visible" in n or "label" in n for n in m.notes)


def test_a_card_without_a_reading_says_its_memory_is_assumed(cat):
    m = machine(cat, "RTX 3060")
    assert any("no NVML reading" in n for n in m.notes)


@pytest.mark.parametrize("gpu, cc", [("V100", "7.0"), ("gb10", "12.1"), ("jetson agx orin", "8.7"),
                                      ("RTX 2080 Ti", "7.5")])
def test_new_cards_carry_their_compute_capability(cat, gpu, cc):
    assert machine(cat, gpu).gpus[0].compute_capability == cc


def test_uncatalogued_card_is_described_on_the_command_line(cat):
    m = machine(cat, "Mystery 9000", vram=48 * 10**9, bandwidth=900 * 10**9, cc="8.6")
    g = m.gpus[0]
    assert (g.name, g.vendor, g.memory_total_bytes, g.memory_bandwidth_bytes_per_s, g.compute_capability) == \
        ("Mystery 9000", "nvidia", 48 * 10**9, 900 * 10**9, "8.6")
    assert any("not in the GPU catalog" in n for n in m.notes)


def test_uncatalogued_card_without_vram_is_a_usage_error_that_says_how(cat):
    with pytest.raises(UsageError) as e:
        machine(cat, "Mystery 9000")
    assert "--vram" in e.value.hint


def test_mystery_card_plans_with_speeds():
    code, out, err = run("plan", "--gpu", "Mystery 9000", "--vram", "48G", "--bandwidth", "900GB/s",
                         "--format", "json")
    assert code == 0, err
    plans = json.loads(out)["plans"]
    assert plans and all(p["tokens_per_s"]["expected"] > 0 for p in plans)
    assert any(p["placement"] == "gpu" for p in plans)


@pytest.mark.parametrize("args, what", [
    (("--gpu", "Mystery 9000"), "--vram"),
    (("--gpu", "Mystery 9000", "--vram", "48G", "--bandwidth", "fast"), "--bandwidth"),
    (("--gpu", "Mystery 9000", "--vram", "48G", "--cc", "eight"), "--cc"),
    (("--gpu", "Mystery 9000", "--vram", "48G", "--vendor", "via"), "--vendor"),
    (("--bandwidth", "900GB/s"), "--gpu"),
])
def test_bad_gpu_descriptions_are_usage_errors(args, what):
    code, out, err = run("plan", *args)
    assert code == 2
    assert err.startswith("Error:") and what in err and "Traceback" not in err
    assert out == ""


@pytest.mark.parametrize("text, value", [("900GB/s", 900 * 10**9), ("900 GB/s", 900 * 10**9),
                                         ("3.35TB/s", 3350 * 10**9), ("900", 900 * 10**9), ("900GBps", 900 * 10**9)])
def test_bandwidth_parsing(text, value):
    assert parse_bandwidth(text) == value


@pytest.mark.parametrize("text", ["0", "-5GB/s", "fast", "9PB/s", ""])
def test_bandwidth_parsing_rejects(text):
    with pytest.raises(UsageError):
        parse_bandwidth(text)


def test_compute_capability_parsing():
    assert parse_compute_capability(" 8.6 ") == "8.6"
    with pytest.raises(UsageError):
        parse_compute_capability("86")


def test_strix_halo_gpu_gets_the_kernel_default_half_of_its_memory(cat):
    from planner import fit, memory

    m = hardware.enrich(machine(cat, "strix-halo-128"), cat)
    assert m.gpus[0].unified_memory and m.gpus[0].memory_total_bytes == 128 * 2**30
    assert m.cpu.arch == "x86_64"
    rt = cat.runtime("llama.cpp")
    model = cat.model("llama-3.3-70b")
    est = memory.estimate(model, "Q4_K_M", rt, cat, context=8192)
    placed = fit.place(est, est, model, m, rt, cat.quants["Q4_K_M"], cat)
    assert isinstance(placed, fit.Placement) and placed.kind == "unified"
    assert placed.available_bytes == 64 * 2**30  # half of 128 GiB: the TTM page limit's default
    q8 = memory.estimate(model, "Q8_0", rt, cat, context=8192)
    rejected = fit.place(q8, q8, model, m, rt, cat.quants["Q8_0"], cat)
    assert isinstance(rejected, fit.Rejection) and "default share (50%)" in rejected.reason


def test_gb10_is_a_unified_arm_machine(cat):
    m = machine(cat, "DGX Spark")
    assert m.gpus[0].unified_memory and m.cpu.arch == "aarch64" and m.os.system == "Linux"
    assert m.gpus[0].memory_total_bytes == 128 * 2**30


def test_m3_ultra_offers_256_gib(cat):
    m = machine(cat, "m3-ultra-256")
    assert m.gpus[0].memory_total_bytes == 256 * 2**30


def test_catalog_rejects_an_nvml_total_that_contradicts_the_label(tmp_path):
    import shutil

    src = catalog.data_dir()
    for f in src.glob("*.yaml"):
        shutil.copy(f, tmp_path / f.name)
    text = (tmp_path / "gpus.yaml").read_text().replace("nvml_total_mib: 23034", "nvml_total_mib: 2303")
    (tmp_path / "gpus.yaml").write_text(text)
    with pytest.raises(CatalogError, match=r"\(l4\)\.nvml_total_mib"):
        catalog.load(tmp_path)
