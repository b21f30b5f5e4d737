"""Which weights llama.cpp copies into its CPU_REPACK buffer, and how many bytes that is.

The rules (per ggml type: the CPU features needed and a row multiple) are data, in
data/cpu_repack.yaml, read from llama.cpp's ggml/src/ggml-cpu/repack.cpp. This module applies
them to a tensor list: the real tensors of a GGUF file, or the tensors the quantization recipe
gives a catalog model (planner.memory.tensor_groups + gguf_tensor_type).

Resident memory of a llama.cpp CPU run (see `cpu_resident`):
  mmap (default):  mapped file + repacked copy + KV cache + compute and output buffers
  --no-mmap:       file bytes (read into anonymous buffers; repacked tensors go straight into
                   CPU_REPACK, the rest into the CPU buffer) + KV cache + compute and output buffers
With mmap, the file pages of repacked tensors are only read once at load: the kernel may drop
them (page cache) under memory pressure, so they count in RSS but not in what the plan needs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True, slots=True)
class RepackRule:
    type: str
    all_of: frozenset[str]
    rows_multiple: int


@dataclass(frozen=True, slots=True)
class Tensor:
    """One weight tensor: ggml type name (upper case, e.g. "Q4_K"), rows (ne[1]: output features),
    bytes in the file, and whether a matrix multiplication reads it (False for the embedding)."""

    name: str
    type: str
    rows: int
    n_bytes: int
    matmul: bool = True


@functools.lru_cache(maxsize=1)
def load_rules() -> tuple[tuple[RepackRule, ...], str]:
    """(rules, llama.cpp version they follow) from data/cpu_repack.yaml."""
    import yaml

    from .catalog import data_dir
    from .errors import CatalogError

    path = data_dir() / "cpu_repack.yaml"
    try:
        doc = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        rules = tuple(RepackRule(type=str(r["type"]).upper(), all_of=frozenset(r["all_of"]),
                                 rows_multiple=int(r["rows_multiple"])) for r in doc["rules"])
        return rules, str(doc["version"])
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as e:
        raise CatalogError(f"cpu_repack.yaml: {e}", hint="reinstall plan-deploy") from None


def rule_for(ggml_type: str, cpu_flags: Iterable[str]) -> RepackRule | None:
    """The first rule (llama.cpp's order) whose features the CPU has, for this ggml type."""
    flags = set(cpu_flags)
    for r in load_rules()[0]:
        if r.type == ggml_type.upper() and r.all_of <= flags:
            return r
    return None


def repacked(tensors: Iterable[Tensor], cpu_flags: Iterable[str]) -> tuple[int, dict[str, int]]:
    """(bytes copied into CPU_REPACK, bytes per ggml type) for these tensors on this CPU."""
    flags = tuple(cpu_flags)
    total, by_type = 0, {}
    for t in tensors:
        if not t.matmul:
            continue
        r = rule_for(t.type, flags)
        if r is not None and t.rows % r.rows_multiple == 0:
            total += t.n_bytes
            by_type[t.type] = by_type.get(t.type, 0) + t.n_bytes
    return total, by_type


def recipe_tensors(arch, quant, constants: dict) -> list[Tensor]:
    """The tensors llama-quantize's recipe gives a catalog architecture at `quant` (a QuantSpec
    with a GGUF recipe), each with its ggml type and bytes (params x bits / 8)."""
    from .memory import gguf_tensor_type, tensor_groups

    bits = constants["ggml_type_bits"]
    groups = tensor_groups(arch)
    counts: dict[str, int] = {}
    for g in groups:
        if g.layer is not None:
            counts[g.cls] = counts.get(g.cls, 0) + 1
    seen: dict[str, int] = {}
    out = []
    for g in groups:
        nth = seen.get(g.cls, 0)
        t = gguf_tensor_type(quant, arch, g, nth, counts.get(g.cls, 1) or 1, constants)
        if g.layer is not None:
            seen[g.cls] = nth + 1
        if not g.quantized:
            continue
        rows = g.params // g.ncols if g.ncols else 0
        if g.expert and arch.moe is not None:
            rows //= arch.moe.experts  # a 3-D expert tensor: ne[1] is one expert's output dimension
        out.append(Tensor(name=f"{g.cls}.{g.layer}", type=t.upper(), rows=rows, n_bytes=int(g.params * bits[t] / 8),
                          matmul=g.cls != "embed"))
    return out
