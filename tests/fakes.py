"""Recorded hardware, replayed call by call: a fake NVML, a fake psutil, a fake file system.

The H100 and H200 scenarios replay readings taken on real machines (tests/fixtures/*/readings.json);
the others are built from the same call shapes with the values each scenario needs.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pynvml

from planner.probe import ProbeEnv

FIXTURES = Path(__file__).resolve().parent / "fixtures"
GIB = 1 << 30


def readings(name: str) -> dict:
    return json.loads((FIXTURES / name / "readings.json").read_text())


class NVMLError(pynvml.NVMLError):
    """pynvml's own error type, so the probe's `except lib.NVMLError` sees the real hierarchy."""

    def __new__(cls, value):
        return Exception.__new__(cls)

    def __init__(self, value):
        self.value = value

    def __str__(self):
        return {pynvml.NVML_ERROR_NOT_SUPPORTED: "Not Supported",
                pynvml.NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
                pynvml.NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
                pynvml.NVML_ERROR_GPU_IS_LOST: "GPU is lost"}.get(self.value, f"error {self.value}")


class FakeNvml:
    """The subset of pynvml the probe calls, answering from a list of device dicts."""

    NVMLError = NVMLError
    NVML_CLOCK_MEM = pynvml.NVML_CLOCK_MEM
    nvmlMemory_v2 = pynvml.nvmlMemory_v2

    def __init__(self, devices: list[dict], driver="580.159.04", cuda=13000, init_error: int | None = None):
        self.devices = devices
        self.driver = driver
        self.cuda = cuda
        self.init_error = init_error
        self.calls: list[str] = []
        self.shutdown = False

    # -- helpers
    def _answer(self, handle, key):
        value = handle[key] if isinstance(handle, dict) else None
        if isinstance(value, str) and value.startswith("ERR"):
            code = pynvml.NVML_ERROR_GPU_IS_LOST if "Lost" in value else pynvml.NVML_ERROR_NOT_SUPPORTED
            raise NVMLError(code)
        if value is None:
            raise NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return value

    # -- system
    def nvmlInit(self):
        self.calls.append("init")
        if self.init_error is not None:
            raise NVMLError(self.init_error)

    def nvmlShutdown(self):
        self.shutdown = True

    def nvmlSystemGetDriverVersion(self):
        return self.driver

    def nvmlSystemGetCudaDriverVersion(self):
        return self.cuda

    def nvmlDeviceGetCount(self):
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, i):
        return self.devices[i]

    # -- device
    def nvmlDeviceGetName(self, h):
        return self._answer(h, "nvmlDeviceGetName")

    def nvmlDeviceGetCudaComputeCapability(self, h):
        return tuple(self._answer(h, "nvmlDeviceGetCudaComputeCapability"))

    def nvmlDeviceGetMemoryBusWidth(self, h):
        return self._answer(h, "nvmlDeviceGetMemoryBusWidth")

    def nvmlDeviceGetMaxClockInfo(self, h, clock):
        assert clock == pynvml.NVML_CLOCK_MEM
        return self._answer(h, "maxclock_NVML_CLOCK_MEM")

    def nvmlDeviceGetMaxPcieLinkGeneration(self, h):
        return self._answer(h, "nvmlDeviceGetMaxPcieLinkGeneration")

    def nvmlDeviceGetMaxPcieLinkWidth(self, h):
        return self._answer(h, "nvmlDeviceGetMaxPcieLinkWidth")

    def nvmlDeviceGetMigMode(self, h):
        return self._answer(h, "nvmlDeviceGetMigMode")

    def nvmlDeviceGetMemoryInfo(self, h, version=None):
        if version is not None:
            info = self._answer(h, "memory_info_v2")
            return SimpleNamespace(**info)
        return SimpleNamespace(**self._answer(h, "nvmlDeviceGetMemoryInfo"))

    def nvmlDeviceGetMaxMigDeviceCount(self, h):
        return len(h.get("mig", []))

    def nvmlDeviceGetMigDeviceHandleByIndex(self, h, k):
        return h["mig"][k]


class FakePsutil:
    def __init__(self, logical: int, physical: int, total: int, available: int):
        self.logical, self.physical = logical, physical
        self.total, self.available = total, available

    def cpu_count(self, logical=True):
        return self.logical if logical else self.physical

    def virtual_memory(self):
        return SimpleNamespace(total=self.total, available=self.available)


def fake_env(*, files: dict[str, str] | None = None, dirs: dict[str, list[str]] | None = None,
             commands: dict[tuple, str] | None = None, nvml: Any = False, psutil: Any = None,
             system="Linux", arch="x86_64", release="6.8.0", affinity: int | None = None, amdsmi: Any = False):
    files = dict(files or {})
    dirs = dict(dirs or {})
    commands = dict(commands or {})
    return ProbeEnv(system=system, release=release, arch=arch,
                    read_file=lambda p: files.get(p), listdir=lambda p: sorted(dirs.get(p, [])),
                    run=lambda argv: commands.get(tuple(argv)), affinity=lambda: affinity,
                    psutil=psutil, nvml=nvml, amdsmi=amdsmi)


def recorded_env(name: str, **overrides) -> ProbeEnv:
    """A ProbeEnv that replays one fixture machine exactly."""
    r = readings(name)
    vm = r["virtual_memory"]
    files = {"/proc/cpuinfo": r["cpuinfo_first"], "/proc/meminfo": r["meminfo"],
             "/etc/os-release": r["os_release"], "/proc/driver/nvidia/version": "NVRM version: " + r["nvml"]["driver"]}
    kwargs = dict(files=files, nvml=FakeNvml(r["nvml"]["devices"], driver=r["nvml"]["driver"],
                                             cuda=r["nvml"]["cuda_driver"]),
                  psutil=FakePsutil(r["cpu_count_logical"], r["cpu_count_physical"], vm["total"], vm["available"]),
                  release=r["uname"]["release"], affinity=r["sched_getaffinity"])
    kwargs.update(overrides)
    return fake_env(**kwargs)


def device(name: str, total: int, *, bus: int, mem_clock: int, cc=(8, 9), free: int | None = None,
           reserved: int = 0, mig=(0, 0), **extra) -> dict:
    """One NVML device in the fixture's shape."""
    free = total - reserved if free is None else free
    d = {"nvmlDeviceGetName": name,
         "nvmlDeviceGetMemoryInfo": {"total": total, "free": free, "used": total - free},
         "memory_info_v2": {"total": total, "free": free, "used": total - free - reserved, "reserved": reserved},
         "nvmlDeviceGetCudaComputeCapability": list(cc), "nvmlDeviceGetMemoryBusWidth": bus,
         "maxclock_NVML_CLOCK_MEM": mem_clock, "nvmlDeviceGetMaxPcieLinkGeneration": 4,
         "nvmlDeviceGetMaxPcieLinkWidth": 16, "nvmlDeviceGetMigMode": list(mig)}
    d.update(extra)
    return d


# RTX 4090: 24563 MiB shown, 384-bit bus at 10501 MHz -> 1008 GB/s (NVIDIA/nvbench PR #207 output).
RTX_4090 = dict(total=24563 * (1 << 20), bus=384, mem_clock=10501, cc=(8, 9))
