"""The probe against recorded readings of real machines and named hardware scenarios."""

from __future__ import annotations

import pynvml
import pytest

from planner.probe import probe

from .fakes import GIB, RTX_4090, FakeNvml, FakePsutil, device, fake_env, readings, recorded_env


def test_h100_reproduces_the_recorded_readings_exactly():
    m = probe(recorded_env("nvidia-h100-80gb-hbm3"))
    r = readings("nvidia-h100-80gb-hbm3")
    (g,) = m.gpus
    assert g.name == "NVIDIA H100 80GB HBM3"
    assert g.memory_total_bytes == 85520809984
    assert g.memory_free_bytes == 85017493504
    assert g.memory_reserved_bytes == 503316480  # NVML v2: the driver's reserve (480 MiB in nvidia-smi)
    assert g.compute_capability == "9.0"
    # 5120-bit bus at 2619 MHz, double data rate: 5120 / 8 x 2619e6 x 2 = 3.352 TB/s (H100 SXM sheet: 3.35 TB/s)
    assert g.memory_bandwidth_bytes_per_s == 5120 // 8 * 2619 * 1_000_000 * 2 == 3_352_320_000_000
    assert g.driver_version == "580.159.04" and g.cuda_version == "13.0"
    assert (g.pcie_generation, g.pcie_width) == (5, 16)
    assert not g.unified_memory and g.vendor == "nvidia"
    assert m.memory.total_bytes == r["virtual_memory"]["total"]
    assert m.memory.available_bytes == r["virtual_memory"]["available"]
    assert m.memory.limit_bytes is None
    assert (m.cpu.logical_cores, m.cpu.physical_cores, m.cpu.usable_cores) == (16, 16, 16)
    assert m.cpu.model == "Intel(R) Xeon(R) Processor"
    assert {"avx2", "avx512f", "amx_bf16", "fma", "f16c"} <= set(m.cpu.flags)
    assert m.os.distro == "Ubuntu 24.04.3 LTS"
    # the NUMA and NVLink queries that answered "Not Supported" are not asked for; nothing failed
    assert not [n for n in m.notes if "GPU 0" in n]


def test_h100_matches_nvidia_smi_csv_of_the_same_machine():
    r = readings("nvidia-h100-80gb-hbm3")
    header, row = [line.split(", ") for line in r["nvidia_smi_csv"].strip().splitlines()]
    smi = dict(zip(header, row, strict=True))
    (g,) = probe(recorded_env("nvidia-h100-80gb-hbm3")).gpus
    assert g.name == smi["name"]
    assert g.memory_total_bytes // (1 << 20) == int(smi["memory.total [MiB]"].split()[0])  # 81559 MiB
    assert g.memory_reserved_bytes // (1 << 20) == int(smi["memory.reserved [MiB]"].split()[0])  # 480 MiB
    assert g.compute_capability == smi["compute_cap"]
    assert str(g.pcie_generation) == smi["pcie.link.gen.max"]


def test_h200_bandwidth_from_bus_and_clock():
    (g,) = probe(recorded_env("nvidia-h200")).gpus
    assert g.name == "NVIDIA H200"
    assert g.memory_total_bytes == 150754820096
    # 6016-bit at 3201 MHz: 4.81 TB/s (H200 sheet: 4.8 TB/s)
    assert round(g.memory_bandwidth_bytes_per_s / 1e12, 2) == 4.81


@pytest.mark.parametrize("bus,clock,sheet_gbps", [
    (384, 10501, 1008),  # RTX 4090 (NVIDIA/nvbench PR #207: "384-bit DDR @10501MHz", 1008 GB/s)
    (192, 7501, 360),    # RTX 3060 12GB: 360 GB/s sheet
    (5120, 2619, 3352),  # H100 SXM: 3.35 TB/s
])
def test_bandwidth_formula_against_spec_sheets(bus, clock, sheet_gbps):
    env = fake_env(nvml=FakeNvml([device("GPU", 12 * GIB, bus=bus, mem_clock=clock)]),
                   psutil=FakePsutil(8, 8, 32 * GIB, 30 * GIB))
    (g,) = probe(env).gpus
    assert abs(g.memory_bandwidth_bytes_per_s / 1e9 - sheet_gbps) / sheet_gbps < 0.005


def test_no_gpu_machine_is_a_normal_answer():
    m = probe(fake_env(nvml=False, psutil=FakePsutil(2, 2, 24 * GIB, 20 * GIB)))
    assert m.gpus == ()
    assert any("no GPU" in n for n in m.notes)
    assert m.memory.total_bytes == 24 * GIB


def test_nvml_library_missing_becomes_a_note():
    env = fake_env(nvml=FakeNvml([], init_error=pynvml.NVML_ERROR_LIBRARY_NOT_FOUND),
                   psutil=FakePsutil(4, 4, 16 * GIB, 8 * GIB))
    m = probe(env)
    assert m.gpus == ()
    assert any("NVML library not found" in n for n in m.notes)


def test_driver_not_loaded_becomes_a_note():
    env = fake_env(nvml=FakeNvml([], init_error=pynvml.NVML_ERROR_DRIVER_NOT_LOADED),
                   psutil=FakePsutil(4, 4, 16 * GIB, 8 * GIB))
    assert any("driver not loaded" in n for n in probe(env).notes)


def test_linux_without_nvidia_driver_skips_nvml_without_importing_it():
    env = fake_env(nvml=None, files={"/proc/cpuinfo": "processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: avx2\n",
                                     "/proc/meminfo": "MemTotal: 8000000 kB\nMemAvailable: 4000000 kB\n"},
                   dirs={"/dev": ["null", "tty"]})
    m = probe(env)
    assert m.gpus == ()
    assert any("no driver loaded" in n for n in m.notes)
    assert m.memory.total_bytes == 8000000 * 1024 and m.cpu.model == "Test CPU"


def test_two_rtx_4090s():
    nv = FakeNvml([device("NVIDIA GeForce RTX 4090", **RTX_4090), device("NVIDIA GeForce RTX 4090", **RTX_4090)])
    m = probe(fake_env(nvml=nv, psutil=FakePsutil(32, 16, 64 * GIB, 60 * GIB)))
    assert [g.index for g in m.gpus] == [0, 1]
    assert all(g.memory_total_bytes == 24563 << 20 for g in m.gpus)
    assert all(round(g.memory_bandwidth_bytes_per_s / 1e9) == 1008 for g in m.gpus)
    assert nv.shutdown


def test_one_field_not_supported_keeps_the_rest():
    d = device("NVIDIA GeForce RTX 4090", **RTX_4090)
    d["nvmlDeviceGetMemoryBusWidth"] = "ERR NVMLError_NotSupported: Not Supported"
    m = probe(fake_env(nvml=FakeNvml([d]), psutil=FakePsutil(8, 8, 32 * GIB, 30 * GIB)))
    (g,) = m.gpus
    assert g.memory_bandwidth_bytes_per_s is None
    assert g.memory_total_bytes == 24563 << 20 and g.compute_capability == "8.9"
    assert any("memory bus width: Not Supported" in n for n in m.notes)


def test_gpu_lost_mid_query_is_skipped_with_a_note():
    lost = device("x", 8 * GIB, bus=128, mem_clock=9000)
    lost["nvmlDeviceGetName"] = "ERR GPU Lost"
    ok = device("NVIDIA GeForce RTX 4090", **RTX_4090)
    m = probe(fake_env(nvml=FakeNvml([lost, ok]), psutil=FakePsutil(8, 8, 32 * GIB, 30 * GIB)))
    assert [g.name for g in m.gpus] == ["NVIDIA GeForce RTX 4090"]
    assert any("lost" in n for n in m.notes)


def test_mig_enabled_offers_its_instances_not_the_card():
    total = 85520809984
    instances = [
        {"nvmlDeviceGetName": "NVIDIA H100 80GB HBM3 MIG 3g.40gb",
         "memory_info_v2": {"total": 42 * GIB, "free": 42 * GIB, "used": 0, "reserved": 0}},
        {"nvmlDeviceGetName": "NVIDIA H100 80GB HBM3 MIG 1g.10gb",
         "memory_info_v2": {"total": 10 * GIB, "free": 10 * GIB, "used": 0, "reserved": 0}},
    ]
    card = device("NVIDIA H100 80GB HBM3", total, bus=5120, mem_clock=2619, cc=(9, 0), mig=(1, 1))
    card["mig"] = instances
    m = probe(fake_env(nvml=FakeNvml([card]), psutil=FakePsutil(16, 16, 128 * GIB, 120 * GIB)))
    assert [g.mig_instance for g in m.gpus] == ["3g.40gb", "1g.10gb"]
    assert [g.memory_total_bytes for g in m.gpus] == [42 * GIB, 10 * GIB]
    assert m.gpus[1].memory_bandwidth_bytes_per_s < m.gpus[0].memory_bandwidth_bytes_per_s
    assert any("MIG mode" in n for n in m.notes)


def test_device_sharing_host_memory_is_unified():
    d = device("NVIDIA GB10", 0, bus=256, mem_clock=4266, cc=(12, 1))
    d["nvmlDeviceGetMemoryInfo"] = "ERR NVMLError_NotSupported: Not Supported"
    d["memory_info_v2"] = "ERR NVMLError_NotSupported: Not Supported"
    m = probe(fake_env(nvml=FakeNvml([d]), psutil=FakePsutil(20, 20, 128 * GIB, 120 * GIB)))
    (g,) = m.gpus
    assert g.unified_memory and g.memory_total_bytes == 128 * GIB


MAC_COMMANDS = {
    ("sysctl", "-n", "machdep.cpu.brand_string"): "Apple M2 Max\n",
    ("sysctl", "-n", "hw.memsize"): str(96 * GIB) + "\n",
    ("sysctl", "-n", "hw.optional.AdvSIMD"): "1\n",
    ("sysctl", "-n", "hw.optional.arm.FEAT_DotProd"): "1\n",
    ("sysctl", "-n", "hw.optional.arm.FEAT_I8MM"): "0\n",
    ("sysctl", "-n", "iogpu.wired_limit_mb"): "0\n",
    ("ioreg", "-rc", "AGXAccelerator", "-d", "1"): '  "gpu-core-count" = 38\n',
}


def test_apple_m2_max_from_sysctl():
    env = fake_env(system="Darwin", arch="arm64", commands=MAC_COMMANDS,
                   psutil=FakePsutil(12, 12, 96 * GIB, 80 * GIB))
    m = probe(env)
    (g,) = m.gpus
    assert g.vendor == "apple" and g.unified_memory
    assert g.name == "Apple M2 Max (38-core GPU)"
    assert g.memory_total_bytes == 96 * GIB
    assert m.cpu.arch == "arm64" and set(m.cpu.flags) == {"neon", "dotprod"}
    assert m.os.system == "Darwin"


def test_apple_without_sysctl_still_answers():
    env = fake_env(system="Darwin", arch="arm64", commands={}, psutil=FakePsutil(8, 8, 16 * GIB, 10 * GIB))
    m = probe(env)
    assert m.gpus[0].memory_total_bytes == 16 * GIB
    assert any("hw.memsize" in n for n in m.notes)


def test_amd_card_from_sysfs():
    dev = "/sys/class/drm/card1/device"
    files = {f"{dev}/vendor": "0x1002\n", f"{dev}/mem_info_vram_total": str(24 * GIB) + "\n",
             f"{dev}/mem_info_vram_used": str(1 * GIB) + "\n", f"{dev}/device": "0x744c\n",
             f"{dev}/product_name": "AMD Radeon RX 7900 XTX\n",
             "/sys/class/drm/card0/device/vendor": "0x1002\n",
             "/sys/class/drm/card0/device/mem_info_vram_total": str(512 << 20) + "\n"}
    env = fake_env(files=files, dirs={"/sys/class/drm": ["card0", "card1", "card1-DP-1", "renderD128"]},
                   psutil=FakePsutil(16, 8, 64 * GIB, 60 * GIB))
    m = probe(env)
    (g,) = m.gpus
    assert g.vendor == "amd" and g.name == "AMD Radeon RX 7900 XTX"
    assert g.memory_total_bytes == 24 * GIB and g.memory_free_bytes == 23 * GIB
    assert any("integrated" in n for n in m.notes)  # card0's 512 MiB carve-out is not a GPU


def test_container_limit_below_host_ram():
    files = {"/proc/self/cgroup": "0::/docker/abc\n", "/sys/fs/cgroup/docker/abc/memory.max": str(16 * GIB) + "\n",
             "/sys/fs/cgroup/docker/abc/cpu.max": "400000 100000\n"}
    m = probe(fake_env(files=files, psutil=FakePsutil(16, 8, 64 * GIB, 60 * GIB)))
    assert m.memory.total_bytes == 64 * GIB
    assert m.memory.limit_bytes == 16 * GIB
    assert m.memory.usable_bytes == 16 * GIB
    assert m.memory.available_bytes <= 16 * GIB
    assert m.cpu.usable_cores == 4
    assert any("container memory limit" in n for n in m.notes)


def test_cgroup_v1_unlimited_is_no_limit():
    files = {"/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n"}
    m = probe(fake_env(files=files, psutil=FakePsutil(4, 4, 8 * GIB, 6 * GIB)))
    assert m.memory.limit_bytes is None


def test_probe_never_raises_on_garbage():
    files = {"/proc/self/cgroup": "garbage", "/sys/fs/cgroup/memory.max": "not-a-number",
             "/sys/fs/cgroup/cpu.max": "x y", "/proc/cpuinfo": "\x00\x01"}
    m = probe(fake_env(files=files, psutil=FakePsutil(1, 1, GIB, GIB)))
    assert m.cpu.usable_cores >= 1


def test_real_probe_of_this_machine_does_not_raise():
    m = probe()
    assert m.cpu.logical_cores >= 1 and m.memory.total_bytes > 0
