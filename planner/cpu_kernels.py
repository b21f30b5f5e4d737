"""CPU decode for ggml types whose kernels are slower than memory (data/cpu_kernels.yaml).

llama.cpp decodes most types on a CPU as fast as RAM delivers the weights, but the sub-4-bit
i-quants and the low k-quants spend more time dequantizing than reading. Each such type has a
factor: its measured bytes/s (file bytes x tokens/s) over that of Q4_K_S on the same CPU and
threads. planner/speed.py divides the memory-bound rate of those weights by nothing more than
this factor (decode takes the slower of memory and kernel).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable


def load() -> dict:
    """data/cpu_kernels.yaml, as compiled with the catalog (planner/catalog.py)."""
    from .catalog import load as catalog

    return catalog().constants["cpu_kernels"]


def _table(cpu_arch: str) -> dict | None:
    arch = {"aarch64": "arm64"}.get(cpu_arch, cpu_arch)
    return load()["tables"].get(arch)


def speed_factor(quant: str, cpu_arch: str, cpu_flags: Iterable[str] = ()) -> float | None:
    """The share (0-1) of the memory-bound decode rate llama.cpp's CPU kernels reach for file type
    `quant` (e.g. "IQ3_S") on a CPU of `cpu_arch` (x86_64 | arm64); None where decode is
    memory-bound (no row, another architecture, or the type is repacked on this CPU:
    data/cpu_repack.yaml)."""
    return _factor(quant.upper(), cpu_arch, frozenset(cpu_flags))


@functools.lru_cache(maxsize=256)
def _factor(quant: str, cpu_arch: str, flags: frozenset[str]) -> float | None:
    doc = load()
    table = _table(cpu_arch)
    if table is None:
        return None
    measured = doc["same_kernel"].get(quant, quant)
    row, base = table["rows"].get(measured), table["rows"][doc["baseline"]]
    if row is None or measured == doc["baseline"]:
        return None
    repack = doc.get("repack_type", {}).get(measured)
    if repack is not None:
        from .cpu_repack import rule_for

        if rule_for(repack, flags) is not None:
            return None
    factor = row[0] * row[1] / (base[0] * base[1])
    return factor if factor < 1.0 else None
