"""Probe this machine: NVIDIA GPUs through NVML, AMD through sysfs/amdsmi, Apple through sysctl,
CPU and RAM through psutil, /proc and cgroups.

The only module that touches hardware libraries. It never raises and never hangs: every failure
becomes a line in `Machine.notes`, and subprocesses run with a timeout. Everything it reads goes
through a `ProbeEnv`, so tests replay recorded readings of real machines call by call.
"""

from __future__ import annotations

import math
import os
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .hardware import Cpu, Gpu, Links, Machine, Memory, OsInfo

_SUBPROCESS_TIMEOUT_S = 2.0

# ISA extensions that matter for CPU inference kernels (llama.cpp, oneDNN, MLX).
_X86_FLAGS = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
              "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16")
_ARM_FLAGS = {  # /proc/cpuinfo "Features" name -> our name
    "asimd": "neon", "asimddp": "dotprod", "i8mm": "i8mm", "sve": "sve", "sve2": "sve2",
    "fphp": "fp16", "asimdhp": "fp16", "bf16": "bf16",
}
_MAC_ARM_FLAGS = {  # sysctl hw.optional.* -> our name
    "hw.optional.AdvSIMD": "neon", "hw.optional.arm.FEAT_DotProd": "dotprod",
    "hw.optional.arm.FEAT_I8MM": "i8mm", "hw.optional.arm.FEAT_FP16": "fp16",
    "hw.optional.arm.FEAT_BF16": "bf16", "hw.optional.arm.FEAT_SME": "sme",
}


def _read_file(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _run(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=_SUBPROCESS_TIMEOUT_S,
                             check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _affinity() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


@dataclass
class ProbeEnv:
    """Where the probe reads from. The defaults read this machine; tests replace each part."""

    system: str = field(default_factory=platform.system)
    release: str = field(default_factory=platform.release)
    arch: str = field(default_factory=platform.machine)
    read_file: Callable[[str], str | None] = _read_file
    listdir: Callable[[str], list[str]] = _listdir
    run: Callable[[list[str]], str | None] = _run
    affinity: Callable[[], int | None] = _affinity
    psutil: Any = None  # the psutil module, imported lazily
    nvml: Any = None  # the pynvml module, imported lazily; False = skip NVML
    amdsmi: Any = None  # the amdsmi module if installed; False = skip


def probe(env: ProbeEnv | None = None) -> Machine:
    env = env or ProbeEnv()
    notes: list[str] = []
    system = {"darwin": "Darwin", "linux": "Linux", "windows": "Windows"}.get(env.system.lower(), env.system)
    os_info = OsInfo(system=system, release=env.release, distro=_distro(env) if system == "Linux" else None)
    ps = env.psutil
    if ps is None and system != "Linux":
        # Linux answers from /proc and /sys directly (importing psutil costs ~30 ms of start-up).
        try:
            import psutil as ps  # noqa: PLC0415 - imported lazily: start-up time
        except ImportError:
            ps = None
            notes.append("psutil is not installed: CPU and RAM figures come from sysctl")
    cpu = _probe_cpu(env, ps, system, notes)
    memory = _probe_memory(env, ps, system, notes)
    gpus: list[Gpu] = []
    nvlink: dict = {}
    if system == "Darwin":
        gpus += _probe_apple(env, memory, notes)
    else:
        gpus += _probe_nvidia(env, memory, notes, nvlink)
        if system == "Linux":
            gpus += _probe_amd(env, len(gpus), notes)
    if not gpus:
        notes.append("no GPU found: plans will use the CPU and RAM")
    links = _links(env, nvlink) if system == "Linux" else None
    return Machine(os=os_info, cpu=cpu, memory=memory, gpus=tuple(gpus), name=platform.node() or None,
                   notes=tuple(notes), links=links)


# ---------------------------------------------------------------- OS, CPU, RAM


def _distro(env: ProbeEnv) -> str | None:
    text = env.read_file("/etc/os-release")
    if not text:
        return None
    for line in text.splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return None


def _norm_arch(arch: str) -> str:
    a = arch.lower()
    return {"amd64": "x86_64", "x64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(a, a)


def _probe_cpu(env: ProbeEnv, ps: Any, system: str, notes: list[str]) -> Cpu:
    arch = _norm_arch(env.arch)
    model, flags = "unknown CPU", []
    logical = physical = None
    if ps is not None:
        try:
            logical = ps.cpu_count(logical=True)
            physical = ps.cpu_count(logical=False)
        except Exception as e:  # noqa: BLE001 - psutil raises several OS-specific types
            notes.append(f"psutil.cpu_count failed: {e}")
    if system == "Darwin":
        model = (env.run(["sysctl", "-n", "machdep.cpu.brand_string"]) or model).strip()
        for key, name in _MAC_ARM_FLAGS.items():
            if (env.run(["sysctl", "-n", key]) or "").strip() == "1":
                flags.append(name)
    else:
        info = env.read_file("/proc/cpuinfo") or ""
        model, flags = _parse_cpuinfo(info, arch)
    if system == "Linux" and logical is None:
        logical, physical = _linux_core_counts(env)
    logical = logical or os.cpu_count() or 1
    physical = physical or logical
    usable = logical
    affinity = env.affinity()
    if affinity:
        usable = min(usable, affinity)
    quota = _cgroup_cpu_quota(env) if system == "Linux" else None
    if quota is not None and quota < usable:
        usable = max(1, quota)
        notes.append(f"cgroup CPU quota limits this process to {quota} cores")
    return Cpu(model=model, arch=arch, physical_cores=physical, logical_cores=logical,
               usable_cores=usable, flags=tuple(sorted(set(flags))))


def _linux_core_counts(env: ProbeEnv) -> tuple[int | None, int | None]:
    """(logical, physical) from /proc/cpuinfo: processors, and distinct (physical id, core id)."""
    text = env.read_file("/proc/cpuinfo") or ""
    logical, cores, phys = 0, set(), "0"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "processor":
            logical += 1
        elif key == "physical id":
            phys = value.strip()
        elif key == "core id":
            cores.add((phys, value.strip()))
    if not logical:
        return None, None
    return logical, (len(cores) or logical)


def _parse_cpuinfo(text: str, arch: str) -> tuple[str, list[str]]:
    model, raw = "unknown CPU", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and model == "unknown CPU":
            model = value.strip()
        elif key in ("flags", "features") and not raw:
            raw = set(value.split())
    if arch == "arm64":
        flags = sorted({ours for theirs, ours in _ARM_FLAGS.items() if theirs in raw})
    else:
        flags = [f for f in _X86_FLAGS if f in raw]
    return model, flags


def _cgroup_path(env: ProbeEnv) -> str:
    text = env.read_file("/proc/self/cgroup") or ""
    for line in text.splitlines():
        if line.startswith("0::"):
            return line[3:].strip()
    return "/"


def _cgroup_cpu_quota(env: ProbeEnv) -> int | None:
    rel = _cgroup_path(env).rstrip("/")
    for path in (f"/sys/fs/cgroup{rel}/cpu.max", "/sys/fs/cgroup/cpu.max"):
        text = env.read_file(path)
        if text:
            parts = text.split()
            if len(parts) == 2 and parts[0] != "max":
                try:
                    return math.ceil(int(parts[0]) / int(parts[1]))
                except (ValueError, ZeroDivisionError):
                    return None
            return None
    q = env.read_file("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
    p = env.read_file("/sys/fs/cgroup/cpu/cpu.cfs_period_us")
    try:
        if q and p and int(q) > 0:
            return math.ceil(int(q) / int(p))
    except (ValueError, ZeroDivisionError):
        pass
    return None


def _cgroup_memory_limit(env: ProbeEnv) -> int | None:
    rel = _cgroup_path(env).rstrip("/")
    for path in (f"/sys/fs/cgroup{rel}/memory.max", "/sys/fs/cgroup/memory.max",
                 "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        text = env.read_file(path)
        if text is None:
            continue
        text = text.strip()
        if text == "max":
            return None
        try:
            value = int(text)
        except ValueError:
            return None
        # cgroup v1 writes "no limit" as a huge page-aligned number (about 2^63).
        return value if value < (1 << 60) else None
    return None


def _probe_memory(env: ProbeEnv, ps: Any, system: str, notes: list[str]) -> Memory:
    total = available = None
    if ps is not None:
        try:
            vm = ps.virtual_memory()
            total, available = int(vm.total), int(vm.available)
        except Exception as e:  # noqa: BLE001 - psutil raises several OS-specific types
            notes.append(f"psutil.virtual_memory failed: {e}")
    if total is None and system == "Darwin":
        memsize = env.run(["sysctl", "-n", "hw.memsize"])
        if memsize and memsize.strip().isdigit():
            total = available = int(memsize.strip())
    if total is None:
        meminfo = env.read_file("/proc/meminfo") or ""
        fields = {}
        for line in meminfo.splitlines():
            k, _, v = line.partition(":")
            parts = v.split()
            if parts and parts[0].isdigit():
                fields[k] = int(parts[0]) * 1024
        total = fields.get("MemTotal")
        available = fields.get("MemAvailable", total)
    if total is None:
        notes.append("could not read the RAM size")
        total = available = 0
    limit = _cgroup_memory_limit(env) if system == "Linux" else None
    if limit is not None and limit < total:
        notes.append(f"container memory limit {limit / 2**30:.1f} GiB is below the host's "
                     f"{total / 2**30:.1f} GiB: plans use the limit")
        available = min(available or limit, limit)
    elif limit is not None:
        limit = None  # a limit above the RAM changes nothing
    return Memory(total_bytes=total, available_bytes=available or 0, limit_bytes=limit)


# ---------------------------------------------------------------- NVIDIA (NVML)


class _Nvml:
    """Calls into NVML with one default per field, recording what failed (nvitop's nvmlQuery idea)."""

    def __init__(self, lib: Any, notes: list[str]):
        self.lib = lib
        self.notes = notes

    def __call__(self, what: str, fn: str, *args: Any, default: Any = None, quiet: bool = False, **kw: Any):
        try:
            return getattr(self.lib, fn)(*args, **kw)
        except self.lib.NVMLError as e:
            if not quiet:
                self.notes.append(f"{what}: {_nvml_error_text(e)}")
            return default
        except (AttributeError, TypeError):
            # An older pynvml without this call (or this keyword): the field stays unknown.
            if not quiet:
                self.notes.append(f"{what}: not available in this pynvml version")
            return default


def _nvml_error_text(e: Exception) -> str:
    text = str(e) or type(e).__name__
    return text.replace("NVMLError_", "")


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _probe_nvidia(env: ProbeEnv, memory: Memory, notes: list[str], nvlink: dict | None = None) -> list[Gpu]:
    lib = env.nvml
    if lib is False:
        return []
    if lib is None:
        if env.system == "Linux" and not _nvidia_driver_present(env):
            notes.append("NVIDIA: no driver loaded (no /proc/driver/nvidia, /dev/nvidiactl or /dev/dxg)")
            return []
        try:
            import pynvml as lib  # noqa: PLC0415 - imported lazily: start-up time
        except ImportError:
            notes.append("NVIDIA: the pynvml module (nvidia-ml-py) is not installed; NVIDIA GPUs not probed")
            return []
    try:
        lib.nvmlInit()
    except lib.NVMLError as e:
        text = _nvml_error_text(e)
        if "LibraryNotFound" in type(e).__name__ or "Library Not Found" in text or "not found" in text.lower():
            notes.append("NVIDIA: NVML library not found (no NVIDIA driver installed)")
        elif "DriverNotLoaded" in type(e).__name__ or "Driver Not Loaded" in text:
            notes.append("NVIDIA: driver not loaded")
        else:
            notes.append(f"NVIDIA: NVML failed to start: {text}")
        return []
    except OSError as e:  # a broken library on the loader path
        notes.append(f"NVIDIA: NVML could not be loaded: {e}")
        return []
    q = _Nvml(lib, notes)
    gpus: list[Gpu] = []
    try:
        driver = q("NVIDIA driver version", "nvmlSystemGetDriverVersion")
        driver = _text(driver) if driver is not None else None
        cuda_raw = q("NVIDIA CUDA driver version", "nvmlSystemGetCudaDriverVersion")
        cuda = f"{cuda_raw // 1000}.{cuda_raw % 1000 // 10}" if isinstance(cuda_raw, int) else None
        count = q("NVIDIA device count", "nvmlDeviceGetCount", default=0)
        handles = []
        for i in range(count):
            handle = q(f"GPU {i}", "nvmlDeviceGetHandleByIndex", i)
            if handle is None:
                continue
            handles.append(handle)
            gpus += _nvidia_device(q, lib, handle, i, driver, cuda, memory, len(gpus))
        if nvlink is not None and handles:
            nvlink.update(_nvlink(lib, handles))
    finally:
        try:
            lib.nvmlShutdown()
        except lib.NVMLError:
            pass
    return gpus


def _nvidia_device(q: _Nvml, lib: Any, h: Any, i: int, driver: str | None, cuda: str | None,
                   memory: Memory, next_index: int) -> list[Gpu]:
    name = q(f"GPU {i} name", "nvmlDeviceGetName", h)
    if name is None:
        q.notes.append(f"GPU {i}: lost while being read; skipped")
        return []
    name = _text(name)
    cc = q(f"GPU {i} compute capability", "nvmlDeviceGetCudaComputeCapability", h)
    cc_text = f"{cc[0]}.{cc[1]}" if cc else None
    bus = q(f"GPU {i} memory bus width", "nvmlDeviceGetMemoryBusWidth", h)
    clock = q(f"GPU {i} max memory clock", "nvmlDeviceGetMaxClockInfo", h,
              getattr(lib, "NVML_CLOCK_MEM", 2))
    # Peak bandwidth = bus width in bytes x memory clock x 2 (double data rate).
    # NVML reports the effective clock for GDDR (RTX 4090: 10501 MHz, 384 bit -> 1008 GB/s)
    # and HBM (H100 SXM: 2619 MHz, 5120 bit -> 3352 GB/s).
    bandwidth = int(bus // 8 * clock * 1_000_000 * 2) if bus and clock else None
    pcie_gen = q(f"GPU {i} PCIe generation", "nvmlDeviceGetMaxPcieLinkGeneration", h)
    pcie_width = q(f"GPU {i} PCIe width", "nvmlDeviceGetMaxPcieLinkWidth", h)
    total, free, reserved = _nvidia_memory(q, lib, h, f"GPU {i}")
    unified = False
    if total is None:
        # Devices that share host memory (Jetson, GB10) report no memory of their own.
        unified = True
        total, free = memory.usable_bytes, memory.available_bytes
        q.notes.append(f"GPU {i} ({name}) reports no memory of its own: treated as sharing host RAM")
    base = dict(vendor="nvidia", compute_capability=cc_text, driver_version=driver, cuda_version=cuda,
                pcie_generation=pcie_gen, pcie_width=pcie_width)
    mig = q(f"GPU {i} MIG mode", "nvmlDeviceGetMigMode", h, quiet=True)
    if mig and mig[0] == 1:
        instances = _mig_instances(q, lib, h, i, name, total, bandwidth, base, next_index)
        if instances:
            q.notes.append(f"GPU {i} ({name}) is in MIG mode: its {len(instances)} instances are listed "
                           f"instead of the whole card")
            return instances
        q.notes.append(f"GPU {i} ({name}) is in MIG mode with no instances created: nothing to run on")
        return []
    return [Gpu(index=next_index, name=name, memory_total_bytes=total, memory_free_bytes=free,
                memory_bandwidth_bytes_per_s=bandwidth, unified_memory=unified,
                memory_reserved_bytes=reserved, **base)]


def _nvidia_driver_present(env: ProbeEnv) -> bool:
    """Cheap check before importing pynvml (tens of milliseconds): is any NVIDIA driver here?"""
    if env.read_file("/proc/driver/nvidia/version") is not None:
        return True
    devices = env.listdir("/dev")
    return "nvidiactl" in devices or "dxg" in devices  # dxg: WSL2's GPU paravirtualization


def _nvidia_memory(q: _Nvml, lib: Any, h: Any, what: str) -> tuple[int | None, int | None, int | None]:
    v2 = getattr(lib, "nvmlMemory_v2", None)
    if v2 is not None:
        info = q(f"{what} memory (v2)", "nvmlDeviceGetMemoryInfo", h, version=v2, quiet=True)
        if info is not None:
            return int(info.total), int(info.free), int(getattr(info, "reserved", 0)) or None
    info = q(f"{what} memory", "nvmlDeviceGetMemoryInfo", h)
    if info is None:
        return None, None, None
    return int(info.total), int(info.free), None


def _mig_instances(q: _Nvml, lib: Any, h: Any, i: int, name: str, parent_total: int,
                   parent_bandwidth: int | None, base: dict, next_index: int) -> list[Gpu]:
    out = []
    n = q(f"GPU {i} MIG device count", "nvmlDeviceGetMaxMigDeviceCount", h, default=0)
    for k in range(n):
        mh = q(f"GPU {i} MIG {k}", "nvmlDeviceGetMigDeviceHandleByIndex", h, k, quiet=True)
        if mh is None:
            continue
        mname = q(f"GPU {i} MIG {k} name", "nvmlDeviceGetName", mh, default=name)
        total, free, _ = _nvidia_memory(q, lib, mh, f"GPU {i} MIG {k}")
        if total is None:
            continue
        profile = _text(mname).rsplit(" ", 1)[-1] if "MIG" in _text(mname) else None
        # A MIG instance gets memory slices with their share of the memory controllers, so its
        # bandwidth is the card's in proportion to its memory.
        bw = int(parent_bandwidth * total / parent_total) if parent_bandwidth and parent_total else None
        out.append(Gpu(index=next_index + len(out), name=_text(mname), memory_total_bytes=total,
                       memory_free_bytes=free, memory_bandwidth_bytes_per_s=bw, mig_instance=profile,
                       **base))
    return out


def _nvlink(lib: Any, handles: list) -> dict:
    """Active NVLink links per GPU and whether every pair is peer-to-peer over NVLink.

    nvmlDeviceGetNvLinkState(handle, link) answers per link (up to NVML_NVLINK_MAX_LINKS); a GPU
    without NVLink answers "Not Supported", read as 0 links. nvmlDeviceGetP2PStatus with
    NVML_P2P_CAPS_INDEX_NVLINK answers NVML_P2P_STATUS_OK for pairs joined by NVLink/NVSwitch.
    Quiet: a missing NVLink is a normal answer, not a note.
    """
    max_links = int(getattr(lib, "NVML_NVLINK_MAX_LINKS", 18))
    counts = []
    for h in handles:
        n = 0
        for link in range(max_links):
            try:
                state = lib.nvmlDeviceGetNvLinkState(h, link)
            except (lib.NVMLError, AttributeError, TypeError):
                break
            n += 1 if state == getattr(lib, "NVML_FEATURE_ENABLED", 1) else 0
        counts.append(n)
    p2p = None
    if len(handles) > 1:
        index = getattr(lib, "NVML_P2P_CAPS_INDEX_NVLINK", 3)
        ok = getattr(lib, "NVML_P2P_STATUS_OK", 0)
        try:
            p2p = all(lib.nvmlDeviceGetP2PStatus(a, b, index) == ok
                      for i, a in enumerate(handles) for b in handles[i + 1:])
        except (lib.NVMLError, AttributeError, TypeError):
            p2p = None
    return {"nvlink_links": tuple(counts), "nvlink_p2p": p2p}


# ---------------------------------------------------------------- network links (sysfs)


def _links(env: ProbeEnv, nvlink: dict) -> Links | None:
    """InfiniBand/RoCE ports from /sys/class/infiniband, NIC speeds from /sys/class/net.

    Port files: `state` ("4: ACTIVE"), `rate` ("400 Gb/sec (4X NDR)"), `link_layer`
    ("InfiniBand", or "Ethernet" for RoCE). A NIC's `speed` is in Mb/s; -1 or unreadable when
    the link is down or virtual, and such interfaces are left out, as is the loopback.
    """
    ports = []
    for dev in env.listdir("/sys/class/infiniband"):
        base = f"/sys/class/infiniband/{dev}/ports"
        for port in env.listdir(base):
            state = (env.read_file(f"{base}/{port}/state") or "").strip()
            rate_text = (env.read_file(f"{base}/{port}/rate") or "").strip()
            rate = None
            head = rate_text.split(" ", 1)[0]
            try:
                rate = float(head) if head else None
            except ValueError:
                rate = None
            ports.append({"device": dev, "port": int(port) if port.isdigit() else port,
                          "state": state.split(":")[-1].strip() or None, "rate_gbps": rate,
                          "link_layer": (env.read_file(f"{base}/{port}/link_layer") or "").strip() or None})
    nics = []
    for name in env.listdir("/sys/class/net"):
        if name == "lo":
            continue
        text = (env.read_file(f"/sys/class/net/{name}/speed") or "").strip()
        if text.lstrip("-").isdigit() and int(text) > 0:
            nics.append({"name": name, "speed_mbps": int(text)})
    links = Links(nvlink_links=nvlink.get("nvlink_links", ()), nvlink_p2p=nvlink.get("nvlink_p2p"),
                  infiniband=tuple(ports), nics=tuple(nics))
    return None if links.empty else links


# ---------------------------------------------------------------- AMD (sysfs, amdsmi)


_AMD_MIN_DISCRETE_VRAM = 2 << 30  # below this, a card*/ entry is an APU's carve-out, not a discrete GPU


def _probe_amd(env: ProbeEnv, first_index: int, notes: list[str]) -> list[Gpu]:
    names = _amdsmi_names(env, notes)
    gpus = []
    for card in env.listdir("/sys/class/drm"):
        if not card.startswith("card") or "-" in card:
            continue
        dev = f"/sys/class/drm/{card}/device"
        vendor = (env.read_file(f"{dev}/vendor") or "").strip()
        if vendor != "0x1002":
            continue
        total_text = env.read_file(f"{dev}/mem_info_vram_total")
        if total_text is None:
            notes.append(f"AMD {card}: mem_info_vram_total unreadable; skipped")
            continue
        try:
            total = int(total_text.strip())
            used = int((env.read_file(f"{dev}/mem_info_vram_used") or "0").strip())
        except ValueError:
            notes.append(f"AMD {card}: unreadable memory size; skipped")
            continue
        if total < _AMD_MIN_DISCRETE_VRAM:
            notes.append(f"AMD {card}: {total / 2**20:.0f} MiB of VRAM, an integrated GPU's carve-out; "
                         f"not counted as a GPU")
            continue
        device_id = (env.read_file(f"{dev}/device") or "").strip()
        name = names.get(len(gpus)) or (env.read_file(f"{dev}/product_name") or "").strip() \
            or f"AMD GPU {device_id}".strip()
        gpus.append(Gpu(index=first_index + len(gpus), vendor="amd", name=name, memory_total_bytes=total,
                        memory_free_bytes=max(0, total - used)))
    return gpus


def _amdsmi_names(env: ProbeEnv, notes: list[str]) -> dict[int, str]:
    lib = env.amdsmi
    if lib is False:
        return {}
    if lib is None:
        try:
            import amdsmi as lib  # noqa: PLC0415 - optional
        except ImportError:
            return {}
    names: dict[int, str] = {}
    try:
        lib.amdsmi_init()
        try:
            for k, handle in enumerate(lib.amdsmi_get_processor_handles()):
                info = lib.amdsmi_get_gpu_asic_info(handle)
                if info.get("market_name"):
                    names[k] = str(info["market_name"])
        finally:
            lib.amdsmi_shut_down()
    except Exception as e:  # noqa: BLE001 - amdsmi raises its own hierarchy; names are optional
        notes.append(f"AMD: amdsmi failed ({type(e).__name__}); names read from sysfs")
    return names


# ---------------------------------------------------------------- Apple Silicon


def _probe_apple(env: ProbeEnv, memory: Memory, notes: list[str]) -> list[Gpu]:
    if _norm_arch(env.arch) != "arm64":
        notes.append("Intel Mac: no Metal GPU offload for LLM runtimes; plans use the CPU")
        return []
    chip = (env.run(["sysctl", "-n", "machdep.cpu.brand_string"]) or "Apple Silicon").strip()
    memsize = (env.run(["sysctl", "-n", "hw.memsize"]) or "").strip()
    total = int(memsize) if memsize.isdigit() else memory.total_bytes
    if not memsize.isdigit():
        notes.append("sysctl hw.memsize unreadable: unified memory taken from psutil")
    cores = None
    ioreg = env.run(["ioreg", "-rc", "AGXAccelerator", "-d", "1"]) or ""
    for line in ioreg.splitlines():
        if '"gpu-core-count"' in line:
            tail = line.split("=", 1)[-1].strip()
            cores = int(tail) if tail.isdigit() else None
    name = f"{chip} ({cores}-core GPU)" if cores else chip
    wired = (env.run(["sysctl", "-n", "iogpu.wired_limit_mb"]) or "").strip()
    if wired.isdigit() and int(wired) > 0:
        notes.append(f"Metal working-set limit raised by iogpu.wired_limit_mb to {int(wired)} MiB")
    return [Gpu(index=0, vendor="apple", name=name, memory_total_bytes=total,
                memory_free_bytes=memory.available_bytes, unified_memory=True)]


# ---------------------------------------------------------------- RAM bandwidth (only when asked)
