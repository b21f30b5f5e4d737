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
    """(rules, llama.cpp version they follow) from data/cpu_repack.yaml, as compiled with the catalog."""
    from .catalog import load
    from .errors import CatalogError

    doc = load().constants["cpu_repack"]
    try:
        rules = tuple(RepackRule(type=str(r["type"]).upper(), all_of=frozenset(r["all_of"]),
                                 rows_multiple=int(r["rows_multiple"])) for r in doc["rules"])
        return rules, str(doc["version"])
    except (KeyError, TypeError, ValueError) as e:
        raise CatalogError(f"cpu_repack.yaml: {e}", hint="reinstall plan-deploy") from None


@functools.lru_cache(maxsize=64)
def _rules_for(flags: frozenset[str]) -> dict[str, RepackRule]:
    """ggml type -> the first rule (llama.cpp's order) whose features this CPU has."""
    out: dict[str, RepackRule] = {}
    for r in load_rules()[0]:
        if r.all_of <= flags:
            out.setdefault(r.type, r)
    return out


def rule_for(ggml_type: str, cpu_flags: Iterable[str]) -> RepackRule | None:
    """The first rule (llama.cpp's order) whose features the CPU has, for this ggml type."""
    return _rules_for(frozenset(cpu_flags)).get(ggml_type.upper())


def repacked(tensors: Iterable[Tensor], cpu_flags: Iterable[str]) -> tuple[int, dict[str, int]]:
    """(bytes copied into CPU_REPACK, bytes per ggml type) for these tensors on this CPU."""
    rules = _rules_for(frozenset(cpu_flags))
    total, by_type = 0, {}
    for t in tensors:
        if not t.matmul:
            continue
        r = rules.get(t.type)
        if r is not None and t.rows % r.rows_multiple == 0:
            total += t.n_bytes
            by_type[t.type] = by_type.get(t.type, 0) + t.n_bytes
    return total, by_type


_RECIPE_MEMO: dict[tuple, tuple[int, dict[str, int]]] = {}


def recipe_repacked(arch, quant, constants: dict, cpu_flags: Iterable[str]) -> tuple[int, dict[str, int]]:
    """repacked(recipe_tensors(...)), memoized per (architecture, quantization recipe, CPU features):
    the plan search asks the same question for every runtime that loads GGUF files."""
    import json

    key = (arch, quant.id, json.dumps(quant.gguf, sort_keys=True, default=str), frozenset(cpu_flags))
    hit = _RECIPE_MEMO.get(key)
    if hit is None:
        hit = _RECIPE_MEMO[key] = repacked(recipe_tensors(arch, quant, constants), cpu_flags)
    return hit[0], dict(hit[1])


@functools.lru_cache(maxsize=256)
def _layout(arch) -> tuple[dict[str, int], dict[str, list], dict[str, list]]:
    """Per tensor class: the layer-position count, every group in order (for position-dependent
    recipe rules), and the groups collapsed by shape (class, width, expert, global) with summed
    parameters (for the rest)."""
    from .memory import tensor_groups

    counts: dict[str, int] = {}
    ordered: dict[str, list] = {}
    collapsed: dict[str, dict] = {}
    for g in tensor_groups(arch):
        if not g.quantized:
            continue
        if g.layer is not None:
            counts[g.cls] = counts.get(g.cls, 0) + 1
        ordered.setdefault(g.cls, []).append(g)
        sig = (g.ncols, g.expert, g.layer is None, g.params)
        rep, n = collapsed.setdefault(g.cls, {}).get(sig, (g, 0))
        collapsed[g.cls][sig] = (rep, n + 1)
    return counts, ordered, {c: list(v.values()) for c, v in collapsed.items()}


def _rows(arch, g) -> int:
    rows = g.params // g.ncols if g.ncols else 0
    if g.expert and arch.moe is not None:
        rows //= arch.moe.experts  # a 3-D expert tensor: ne[1] is one expert's output dimension
    return rows


def recipe_tensors(arch, quant, constants: dict) -> list[Tensor]:
    """The tensors llama-quantize's recipe gives a catalog architecture at `quant` (a QuantSpec
    with a GGUF recipe), each with its ggml type and bytes (params x bits / 8), grouped: tensors of
    one class, type and row count are summed into one entry (the repack rules only read those)."""
    from .memory import gguf_tensor_type

    bits = constants["ggml_type_bits"]
    counts, ordered, collapsed = _layout(arch)
    sums: dict[tuple, int] = {}

    def add(g, t, n):
        key = (g.cls, t.upper(), _rows(arch, g), g.cls != "embed")
        sums[key] = sums.get(key, 0) + int(g.params * bits[t] / 8) * n

    for cls, groups in ordered.items():
        count = counts.get(cls, 1) or 1
        if isinstance(quant.gguf.get(cls), list):  # the type depends on the tensor's position
            nth = 0
            for g in groups:
                add(g, gguf_tensor_type(quant, arch, g, nth, count, constants), 1)
                if g.layer is not None:
                    nth += 1
        else:
            for g, n in collapsed[cls]:
                add(g, gguf_tensor_type(quant, arch, g, 0, count, constants), n)
    return [Tensor(name=cls, type=t, rows=rows, n_bytes=n, matmul=mm) for (cls, t, rows, mm), n in sums.items()]