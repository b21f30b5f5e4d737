"""The machine schema (plan-deploy/machine/v1): Gpu, Cpu, Memory, Machine; reading and writing files."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import MachineFileError
from .units import GIB, MIB

SCHEMA = "plan-deploy/machine/v1"
VENDORS = ("nvidia", "amd", "apple", "intel")


@dataclass(frozen=True, slots=True, kw_only=True)
class Gpu:
    index: int
    vendor: str
    name: str
    memory_total_bytes: int
    memory_free_bytes: int | None = None
    memory_bandwidth_bytes_per_s: int | None = None
    compute_capability: str | None = None
    driver_version: str | None = None
    cuda_version: str | None = None
    unified_memory: bool = False
    # Extensions of the schema (optional everywhere):
    memory_reserved_bytes: int | None = None  # NVML v2: the driver's reserve, inside total
    pcie_generation: int | None = None
    pcie_width: int | None = None
    mig_instance: str | None = None  # e.g. "1g.10gb" when this entry is a MIG instance
    catalog_id: str | None = None  # data/gpus.yaml id, when matched or hypothetical
    bf16_tflops: float | None = None  # dense tensor throughput, from the GPU catalog
    prefill_tflops: float | None = None  # measured prompt-processing FLOP/s, from the GPU catalog

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "index": self.index,
            "vendor": self.vendor,
            "name": self.name,
            "memory_total_bytes": self.memory_total_bytes,
            "memory_free_bytes": self.memory_free_bytes,
            "memory_bandwidth_bytes_per_s": self.memory_bandwidth_bytes_per_s,
            "compute_capability": self.compute_capability,
            "driver_version": self.driver_version,
            "cuda_version": self.cuda_version,
            "unified_memory": self.unified_memory,
        }
        for key in ("memory_reserved_bytes", "pcie_generation", "pcie_width", "mig_instance",
                    "catalog_id", "bf16_tflops", "prefill_tflops"):
            value = getattr(self, key)
            if value is not None:
                d[key] = value
        return d


@dataclass(frozen=True, slots=True, kw_only=True)
class Cpu:
    model: str
    arch: str
    physical_cores: int
    logical_cores: int
    usable_cores: int
    flags: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "arch": self.arch,
            "physical_cores": self.physical_cores,
            "logical_cores": self.logical_cores,
            "usable_cores": self.usable_cores,
            "flags": list(self.flags),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Memory:
    total_bytes: int
    available_bytes: int
    limit_bytes: int | None = None
    bandwidth_bytes_per_s: int | None = None
    # How bandwidth_bytes_per_s was obtained, e.g. "measured: streaming read (memchr) on 2 processes ..."
    bandwidth_source: str | None = None

    @property
    def usable_bytes(self) -> int:
        """What a process may use: the container limit where it is below the host's RAM."""
        if self.limit_bytes is not None and self.limit_bytes < self.total_bytes:
            return self.limit_bytes
        return self.total_bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "total_bytes": self.total_bytes,
            "available_bytes": self.available_bytes,
            "limit_bytes": self.limit_bytes,
            "bandwidth_bytes_per_s": self.bandwidth_bytes_per_s,
            **({"bandwidth_source": self.bandwidth_source} if self.bandwidth_source else {}),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class OsInfo:
    system: str
    release: str = ""
    distro: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"system": self.system, "release": self.release, "distro": self.distro}


@dataclass(frozen=True, slots=True, kw_only=True)
class Links:
    """What the probe can read of the machine's interconnects (every field optional).

    nvlink_links: active NVLink links per GPU, in GPU order (NVML nvmlDeviceGetNvLinkState);
    nvlink_p2p: every GPU pair reaches the others peer-to-peer over NVLink (nvmlDeviceGetP2PStatus);
    infiniband: one entry per HCA port from /sys/class/infiniband (device, port, state, rate_gbps,
    link_layer: InfiniBand or Ethernet for RoCE); nics: network interfaces with a link speed from
    /sys/class/net/*/speed (name, speed_mbps).
    """

    nvlink_links: tuple[int, ...] = ()
    nvlink_p2p: bool | None = None
    infiniband: tuple[dict, ...] = ()
    nics: tuple[dict, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"nvlink_links": list(self.nvlink_links), "nvlink_p2p": self.nvlink_p2p,
                "infiniband": [dict(p) for p in self.infiniband], "nics": [dict(n) for n in self.nics]}

    @property
    def empty(self) -> bool:
        return not (self.nvlink_links or self.infiniband or self.nics) and self.nvlink_p2p is None


@dataclass(frozen=True, slots=True, kw_only=True)
class Machine:
    os: OsInfo
    cpu: Cpu
    memory: Memory
    gpus: tuple[Gpu, ...] = ()
    name: str | None = None
    notes: tuple[str, ...] = field(default=())
    links: Links | None = None  # interconnects, when probed (optional in the schema)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"schema": SCHEMA}
        if self.name is not None:
            d["name"] = self.name
        d["os"] = self.os.to_dict()
        d["cpu"] = self.cpu.to_dict()
        d["memory"] = self.memory.to_dict()
        d["gpus"] = [g.to_dict() for g in self.gpus]
        if self.links is not None and not self.links.empty:
            d["links"] = self.links.to_dict()
        d["notes"] = list(self.notes)
        return d

    def with_notes(self, *notes: str) -> "Machine":
        return replace(self, notes=self.notes + tuple(n for n in notes if n not in self.notes))


# ---------------------------------------------------------------- reading a machine document


class _Reader:
    """Pulls typed fields out of a dict, naming the file and the field in every error."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, path: str, why: str) -> MachineFileError:
        return MachineFileError(f"{self.source}: field '{path}' {why}",
                                hint="see `plan-deploy probe --format yaml` for a complete example")

    def section(self, d: Any, key: str, path: str) -> dict:
        if not isinstance(d, dict) or key not in d:
            raise self.fail(path, "is missing")
        value = d[key]
        if not isinstance(value, dict):
            raise self.fail(path, "must be a mapping")
        return value

    def get(self, d: dict, key: str, path: str, kind: type | tuple, *, required: bool = True,
            default: Any = None, minimum: int | None = 0) -> Any:
        if key not in d or d[key] is None:
            if required:
                raise self.fail(path, "is missing")
            return default
        value = d[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            raise self.fail(path, f"must be {_kind_name(kinds)}, not {value!r}")
        if float in kinds and isinstance(value, int):
            value = float(value)
        if not isinstance(value, kinds):
            raise self.fail(path, f"must be {_kind_name(kinds)}, not {value!r}")
        if minimum is not None and isinstance(value, (int, float)) and not isinstance(value, bool) \
                and value < minimum:
            raise self.fail(path, f"must not be negative ({value})")
        return value


def _kind_name(kinds: tuple) -> str:
    names = {int: "an integer", str: "a string", bool: "true or false", float: "a number", list: "a list"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def machine_from_dict(doc: Any, source: str = "machine file") -> Machine:
    """Build a Machine from a machine-schema document; optional fields may be left out."""
    r = _Reader(source)
    if not isinstance(doc, dict):
        raise MachineFileError(f"{source}: expected a mapping in the machine schema ({SCHEMA})")
    schema = doc.get("schema", SCHEMA)
    if schema != SCHEMA:
        raise r.fail("schema", f"must be {SCHEMA!r}, not {schema!r}")
    notes: list[str] = []
    raw_notes = r.get(doc, "notes", "notes", list, required=False, default=[])
    notes.extend(str(n) for n in raw_notes)

    os_d = r.section(doc, "os", "os")
    os_info = OsInfo(system=r.get(os_d, "system", "os.system", str),
                     release=str(r.get(os_d, "release", "os.release", (str, int, float), required=False,
                                       default="")),
                     distro=r.get(os_d, "distro", "os.distro", str, required=False))

    cpu_d = r.section(doc, "cpu", "cpu")
    logical = r.get(cpu_d, "logical_cores", "cpu.logical_cores", int)
    if logical < 1:
        raise r.fail("cpu.logical_cores", "must be at least 1")
    flags = r.get(cpu_d, "flags", "cpu.flags", list, required=False, default=[])
    cpu = Cpu(model=r.get(cpu_d, "model", "cpu.model", str),
              arch=_arch(r.get(cpu_d, "arch", "cpu.arch", str)),
              physical_cores=r.get(cpu_d, "physical_cores", "cpu.physical_cores", int),
              logical_cores=logical,
              usable_cores=r.get(cpu_d, "usable_cores", "cpu.usable_cores", int, required=False,
                                 default=logical),
              flags=tuple(str(f) for f in flags))

    mem_d = r.section(doc, "memory", "memory")
    total = r.get(mem_d, "total_bytes", "memory.total_bytes", int)
    available = r.get(mem_d, "available_bytes", "memory.available_bytes", int, required=False)
    if available is None:
        available = total
        notes.append("memory.available_bytes not given: assuming an idle machine")
    memory = Memory(total_bytes=total, available_bytes=available,
                    limit_bytes=r.get(mem_d, "limit_bytes", "memory.limit_bytes", int, required=False),
                    bandwidth_bytes_per_s=r.get(mem_d, "bandwidth_bytes_per_s",
                                                "memory.bandwidth_bytes_per_s", int, required=False),
                    bandwidth_source=r.get(mem_d, "bandwidth_source", "memory.bandwidth_source", str,
                                           required=False))

    gpus_raw = r.get(doc, "gpus", "gpus", list, required=False, default=[])
    gpus = []
    for i, g in enumerate(gpus_raw):
        p = f"gpus[{i}]"
        if not isinstance(g, dict):
            raise r.fail(p, "must be a mapping")
        vendor = r.get(g, "vendor", f"{p}.vendor", str)
        if vendor not in VENDORS:
            raise r.fail(f"{p}.vendor", f"must be one of {', '.join(VENDORS)}, not {vendor!r}")
        cc = g.get("compute_capability")
        gpus.append(Gpu(
            index=r.get(g, "index", f"{p}.index", int, required=False, default=i),
            vendor=vendor,
            name=r.get(g, "name", f"{p}.name", str),
            memory_total_bytes=r.get(g, "memory_total_bytes", f"{p}.memory_total_bytes", int),
            memory_free_bytes=r.get(g, "memory_free_bytes", f"{p}.memory_free_bytes", int, required=False),
            memory_bandwidth_bytes_per_s=r.get(g, "memory_bandwidth_bytes_per_s",
                                               f"{p}.memory_bandwidth_bytes_per_s", int, required=False),
            compute_capability=None if cc is None else str(cc),
            driver_version=_opt_str(g.get("driver_version")),
            cuda_version=_opt_str(g.get("cuda_version")),
            unified_memory=r.get(g, "unified_memory", f"{p}.unified_memory", bool, required=False,
                                 default=vendor == "apple"),
            memory_reserved_bytes=r.get(g, "memory_reserved_bytes", f"{p}.memory_reserved_bytes", int,
                                        required=False),
            pcie_generation=r.get(g, "pcie_generation", f"{p}.pcie_generation", int, required=False),
            pcie_width=r.get(g, "pcie_width", f"{p}.pcie_width", int, required=False),
            mig_instance=_opt_str(g.get("mig_instance")),
            catalog_id=_opt_str(g.get("catalog_id")),
            bf16_tflops=r.get(g, "bf16_tflops", f"{p}.bf16_tflops", float, required=False),
            prefill_tflops=r.get(g, "prefill_tflops", f"{p}.prefill_tflops", float, required=False),
        ))
    name = doc.get("name")
    return Machine(os=os_info, cpu=cpu, memory=memory, gpus=tuple(gpus),
                   name=None if name is None else str(name), notes=tuple(notes), links=_links(r, doc))


def _links(r: _Reader, doc: dict) -> Links | None:
    d = doc.get("links")
    if d is None:
        return None
    if not isinstance(d, dict):
        raise r.fail("links", "must be a mapping")
    nv = r.get(d, "nvlink_links", "links.nvlink_links", list, required=False, default=[])
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in nv):
        raise r.fail("links.nvlink_links", "must be a list of link counts (integers)")
    ports = []
    for i, p in enumerate(r.get(d, "infiniband", "links.infiniband", list, required=False, default=[])):
        if not isinstance(p, dict):
            raise r.fail(f"links.infiniband[{i}]", "must be a mapping")
        rate = r.get(p, "rate_gbps", f"links.infiniband[{i}].rate_gbps", float, required=False)
        ports.append({"device": str(p.get("device", "")), "port": p.get("port"), "state": p.get("state"),
                      "rate_gbps": rate, "link_layer": p.get("link_layer")})
    nics = []
    for i, n in enumerate(r.get(d, "nics", "links.nics", list, required=False, default=[])):
        if not isinstance(n, dict):
            raise r.fail(f"links.nics[{i}]", "must be a mapping")
        nics.append({"name": str(n.get("name", "")),
                     "speed_mbps": r.get(n, "speed_mbps", f"links.nics[{i}].speed_mbps", int, required=False)})
    return Links(nvlink_links=tuple(nv),
                 nvlink_p2p=r.get(d, "nvlink_p2p", "links.nvlink_p2p", bool, required=False),
                 infiniband=tuple(ports), nics=tuple(nics))


def _opt_str(v: Any) -> str | None:
    return None if v is None else str(v)


def _arch(value: str) -> str:
    v = value.lower()
    return {"amd64": "x86_64", "x64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(v, v)


def load_machine(path: str | os.PathLike) -> Machine:
    """Read a machine file (YAML or JSON, YAML being a superset) with a clear one-line error."""
    import yaml

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MachineFileError(f"machine file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise MachineFileError(f"cannot read machine file {p}: {e}") from None
    try:
        doc = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as e:
        where = ""
        mark = getattr(e, "problem_mark", None)
        if mark is not None:
            where = f" (line {mark.line + 1}, column {mark.column + 1})"
        raise MachineFileError(f"{p}: not valid YAML or JSON{where}",
                               hint=str(getattr(e, "problem", "") or "")) from None
    return machine_from_dict(doc, source=str(p))


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename: never a half-written file."""
    p = Path(path)
    directory = p.parent if str(p.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=directory)
    except OSError as e:
        raise MachineFileError(f"cannot write {p}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise MachineFileError(f"cannot write {p}: {e.strerror or e}") from None


def dump_machine(machine: Machine, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(machine.to_dict(), indent=2) + "\n"
    import yaml

    return yaml.dump(machine.to_dict(), sort_keys=False, default_flow_style=False)


# ---------------------------------------------------------------- GPU catalog matching, hypothetical machines


def _key(text: str) -> str:
    t = text.lower()
    for word in ("nvidia", "geforce", "apple", "amd", "radeon", "tesla"):
        t = t.replace(word, "")
    return "".join(ch for ch in t if ch.isalnum())


def match_gpu(name: str, specs) -> "object | None":
    """The catalog GPU a driver-reported or user-typed name means, or None."""
    want = name.strip().lower()
    for s in specs:  # exact driver string first: it is what NVML reports
        if want in (d.lower() for d in s.driver_names):
            return s
    k = _key(name)
    for s in specs:
        if k in {_key(s.id), _key(s.name), *(_key(a) for a in s.aliases)}:
            return s
    return None


def _apple_probe_match(name: str, specs):
    """'Apple M3 Max (40-core GPU)' -> the m3-max-40c entry (chip, then GPU cores)."""
    import re

    m = re.search(r"\b(m\d)(?:\s+(pro|max|ultra))?\b", name.lower())
    if not m:
        return None
    chip = m.group(1) + (f"-{m.group(2)}" if m.group(2) else "")
    cores = re.search(r"(\d+)-core gpu", name.lower())
    fam = [s for s in specs if s.vendor == "apple" and (s.id == chip or s.id.startswith(chip + "-"))
           and (s.id == chip or s.id[len(chip) + 1:].endswith("c"))]
    if cores:
        for s in fam:
            if s.gpu_cores == int(cores.group(1)):
                return s
    return fam[0] if len(fam) == 1 else None


def enrich(machine: Machine, catalog) -> Machine:
    """Fill what a probe or a hand-written file left out from the GPU catalog, and say so."""
    gpus, notes = [], []
    for g in machine.gpus:
        spec = _apple_probe_match(g.name, catalog.gpus) if g.vendor == "apple" else match_gpu(g.name, catalog.gpus)
        if spec is None and g.mig_instance:
            spec = match_gpu(g.name.split(" MIG ")[0], catalog.gpus)
        if spec is None:
            gpus.append(g)
            if not g.memory_bandwidth_bytes_per_s:
                notes.append(f"GPU {g.index} ({g.name}) is not in the GPU catalog: speed unknown")
            continue
        upd: dict = {"catalog_id": spec.id}
        if g.bf16_tflops is None and spec.bf16_tflops and not g.mig_instance:
            upd["bf16_tflops"] = spec.bf16_tflops
        if g.prefill_tflops is None and spec.prefill_tflops:
            upd["prefill_tflops"] = spec.prefill_tflops
        if not g.memory_bandwidth_bytes_per_s and spec.bandwidth_gbps:
            upd["memory_bandwidth_bytes_per_s"] = int(spec.bandwidth_gbps * 1e9)
            notes.append(f"GPU {g.index}: bandwidth {spec.bandwidth_gbps:g} GB/s from the GPU catalog ({spec.id})")
        if g.compute_capability is None and spec.compute_capability:
            upd["compute_capability"] = spec.compute_capability
        gpus.append(replace(g, **upd))
    return replace(machine, gpus=tuple(gpus)).with_notes(*notes)


def parse_gpu_arg(text: str) -> tuple[str, int]:
    """'h100-sxm x8', 'RTX 4090x2', 'a100-80*4' -> (name, count)."""
    import re

    # The multiplier: " x8" / " x 8" (after a space), "4090x2" (right after a digit), or "*4".
    m = re.fullmatch(r"\s*(.+?)(?:\s+[x×]\s*|(?<=\d)[x×]|\s*\*\s*)(\d+)\s*", text, flags=re.IGNORECASE)
    if m:
        return m.group(1), int(m.group(2))
    return text.strip(), 1


def hypothetical(catalog, *, gpu: str | None, vram: int | None, ram: int | None, cpu_cores: int | None,
                 bandwidth: int | None = None, cc: str | None = None, vendor: str | None = None) -> Machine:
    """A machine described by flags: --gpu NAME[xCOUNT] (or `none`: a CPU-only box), --vram, --ram,
    --cpu-cores, and for a GPU the catalog lacks, --bandwidth (bytes/s), --cc ("8.6") and --vendor
    (nvidia|amd|intel|apple).

    A catalogued NVIDIA card gets the memory NVML reports for it (`nvml_total_mib` in data/gpus.yaml,
    from a real reading) or, without a reading, its label times the H100's visible fraction (said in a
    note). An uncatalogued name needs --vram. Raises UsageError for an unknown name without --vram.
    """
    import difflib

    from .errors import UsageError

    notes: list[str] = ["hypothetical machine described on the command line"]
    gpus: list[Gpu] = []
    system, arch = "Linux", "x86_64"
    ram_total = ram
    if vendor is not None and vendor not in VENDORS:
        raise UsageError(f"unknown --vendor {vendor!r}", hint="one of " + ", ".join(VENDORS))
    if gpu is not None and gpu.strip().lower() == "none":  # --gpu none: a CPU-only box
        if vram is not None:
            raise UsageError("--vram describes a GPU, and --gpu none has none", hint="drop one of them")
        gpu = None
    if gpu:
        name, count = parse_gpu_arg(gpu)
        spec, mem_gib = _resolve_gpu_name(name, catalog)
        if spec is None and vram is None:
            names = sorted({s.id for s in catalog.gpus} | {a for s in catalog.gpus for a in s.aliases})
            close = difflib.get_close_matches(name, names, n=5, cutoff=0.4) or \
                difflib.get_close_matches(_key(name), [_key(n) for n in names], n=5, cutoff=0.4)
            close = list(dict.fromkeys(close))
            raise UsageError(f"unknown GPU {name!r}",
                             hint=(f"close names: {', '.join(close)}; or describe it: " if close else "describe it: ")
                             + f'--gpu "{name}" --vram 48G [--bandwidth 900GB/s] [--cc 8.6] [--vendor nvidia]')
        c = catalog.constants
        if spec is None:
            v = vendor or "nvidia"
            if v == "apple":
                raise UsageError("an uncatalogued Apple chip cannot be described on the command line",
                                 hint="use a catalogued chip, e.g. --gpu m4-max-128 (see `plan-deploy gpus`)")
            notes.append(f"{name!r} is not in the GPU catalog: described by --vram"
                         + (", --bandwidth" if bandwidth else "") + (", --cc" if cc else "")
                         + ("" if vendor else "; vendor nvidia assumed (set --vendor)")
                         + ("" if bandwidth else "; speed unknown without --bandwidth"))
            if v == "nvidia" and cc is None:
                notes.append("compute capability unknown (set --cc): runtimes with a minimum are not checked")
            for i in range(count):
                gpus.append(Gpu(index=i, vendor=v, name=name, memory_total_bytes=vram,
                                memory_bandwidth_bytes_per_s=bandwidth, compute_capability=cc if v == "nvidia" else None))
        elif spec.vendor == "apple" or spec.unified_memory:
            if count != 1:
                raise UsageError(f"{spec.name} comes one to a machine", hint=f"use --gpu {spec.id}-<memory GiB>"
                                 if spec.memory_options_gib else f"use --gpu {spec.id}")
            options = spec.memory_options_gib or ((spec.memory_gib,) if spec.memory_gib else ())
            if mem_gib is None:
                mem_gib = options[0]
                if len(options) > 1:
                    notes.append(f"{spec.id}: {mem_gib:g} GiB unified memory assumed (options: "
                                 f"{', '.join(f'{o:g}' for o in options)}; e.g. --gpu {spec.id}-{options[-1]:g})")
            total = int(vram or mem_gib * GIB)
            if spec.vendor == "apple":
                system, arch = "Darwin", "arm64"
            else:
                arch = spec.host_arch or arch
            ram_total = total if ram is None else ram
            bw = bandwidth or (int(spec.bandwidth_gbps * 1e9) if spec.bandwidth_gbps else None)
            gpus.append(Gpu(index=0, vendor=spec.vendor, name=spec.name, memory_total_bytes=total,
                            memory_bandwidth_bytes_per_s=bw, unified_memory=True, catalog_id=spec.id,
                            compute_capability=cc or spec.compute_capability,
                            prefill_tflops=spec.prefill_tflops, bf16_tflops=spec.bf16_tflops))
        else:
            if vram is not None:
                total, reserved = vram, None
            elif spec.vendor == "nvidia" and spec.nvml_total_mib:
                total = spec.nvml_total_mib * MIB
                reserved = int(total * c["nvidia_reserved_fraction"])
            elif spec.vendor == "nvidia":
                # Cards show a little less than their label; the driver reserves part of it.
                label = int((spec.memory_gib or 0) * GIB)
                total = int(label * c["nvidia_visible_fraction"])
                reserved = int(total * c["nvidia_reserved_fraction"])
                notes.append(f"{spec.id}: no NVML reading in the GPU catalog; memory taken as "
                             f"{c['nvidia_visible_fraction']:.2%} of its {spec.memory_gib:g} GiB label (an H100's share)")
            else:
                total, reserved = int((spec.memory_gib or 0) * GIB), None
            bw = bandwidth or (int(spec.bandwidth_gbps * 1e9) if spec.bandwidth_gbps else None)
            if bandwidth or cc:
                notes.append(f"{spec.id}: " + " and ".join(
                    x for x in ("--bandwidth" if bandwidth else "", "--cc" if cc else "") if x)
                    + " override the GPU catalog")
            for i in range(count):
                gpus.append(Gpu(index=i, vendor=spec.vendor, name=spec.name, memory_total_bytes=total,
                                memory_bandwidth_bytes_per_s=bw, compute_capability=cc or spec.compute_capability,
                                memory_reserved_bytes=reserved, catalog_id=spec.id, bf16_tflops=spec.bf16_tflops))
    elif vram is not None:
        v = vendor or "nvidia"
        gpus.append(Gpu(index=0, vendor=v, name="GPU (hypothetical)", memory_total_bytes=vram,
                        memory_bandwidth_bytes_per_s=bandwidth, compute_capability=cc if v == "nvidia" else None))
        notes.append(f"--vram without --gpu: a{'n' if v[0] in 'aeiou' else ''} {v} GPU is assumed"
                     + ("" if bandwidth else " (speed unknown: set --bandwidth)"))
    elif bandwidth is not None or cc is not None or vendor is not None:
        raise UsageError("--bandwidth, --cc and --vendor describe a GPU", hint='add --gpu NAME --vram SIZE')
    if ram_total is None:
        ram_total = 32 * GIB
        notes.append("RAM not given: 32 GiB assumed (set it with --ram)")
    cores = cpu_cores or 8
    if cpu_cores is None:
        notes.append("CPU cores not given: 8 assumed (set them with --cpu-cores)")
    cpu = Cpu(model="hypothetical CPU", arch=arch, physical_cores=cores, logical_cores=cores, usable_cores=cores,
              flags=("avx2", "fma", "f16c") if arch == "x86_64" else ("neon", "dotprod"))
    return Machine(os=OsInfo(system=system, release="", distro=None), cpu=cpu,
                   memory=Memory(total_bytes=ram_total, available_bytes=ram_total), gpus=tuple(gpus),
                   name="hypothetical", notes=tuple(notes))


def _resolve_gpu_name(name: str, catalog):
    """(spec, unified memory GiB or None) for names such as 'RTX 4090', 'h100-sxm', 'm3-max-128'."""
    import re

    spec = match_gpu(name, catalog.gpus)
    if spec is not None:
        return spec, None
    m = re.fullmatch(r"(.+?)[-\s]?(\d+)\s*(?:g|gb|gib)?", name.strip().lower())
    if m:
        base, mem = m.group(1), float(m.group(2))
        fam = [s for s in catalog.gpus if (s.vendor == "apple" or s.unified_memory) and
               (_key(s.id) == _key(base) or _key(s.id).startswith(_key(base)))]
        offering = [s for s in fam if mem in s.memory_options_gib]
        if offering:
            return sorted(offering, key=lambda s: -(s.bandwidth_gbps or 0))[0], mem
    fam = [s for s in catalog.gpus if s.vendor == "apple" and _key(s.id).startswith(_key(name)) and _key(name)]
    if fam:
        return sorted(fam, key=lambda s: -(s.bandwidth_gbps or 0))[0], None
    return None, None
