"""CPU decode for ggml types whose kernels are slower than memory (data/cpu_kernels.yaml).

llama.cpp decodes most types on a CPU as fast as RAM delivers the weights, but the sub-4-bit
i-quants and the low k-quants spend more time dequantizing than reading: their measured rate per
core (file bytes x tokens/s / threads, from runs with few threads) caps decode at
cores x rate bytes of weights per second. planner/speed.py applies the cap to the weights a CPU reads.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

GIB = 1 << 30


@functools.lru_cache(maxsize=1)
def load() -> dict:
    """data/cpu_kernels.yaml as parsed YAML."""
    import yaml

    from .catalog import data_dir
    from .errors import CatalogError

    path = data_dir() / "cpu_kernels.yaml"
    try:
        return yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError) as e:
        raise CatalogError(f"cpu_kernels.yaml: {e}", hint="reinstall plan-deploy") from None


def _table(cpu_arch: str) -> dict | None:
    arch = {"aarch64": "arm64"}.get(cpu_arch, cpu_arch)
    return load()["tables"].get(arch)


def bytes_per_core(quant: str, cpu_arch: str, cpu_flags: Iterable[str] = ()) -> float | None:
    """Weight bytes one core decodes per second for file type `quant` (e.g. "IQ3_S") on a CPU of
    `cpu_arch` (x86_64 | arm64), or None where decode is memory-bound (no row, another architecture,
    or the type is repacked on this CPU: data/cpu_repack.yaml)."""
    return _rate(quant.upper(), cpu_arch, frozenset(cpu_flags))


@functools.lru_cache(maxsize=256)
def _rate(quant: str, cpu_arch: str, flags: frozenset[str]) -> float | None:
    doc = load()
    table = _table(cpu_arch)
    if table is None:
        return None
    measured = doc["same_kernel"].get(quant, quant)
    row = table["rows"].get(measured)
    if row is None:
        return None
    repack = doc.get("repack_type", {}).get(measured)
    if repack is not None:
        from .cpu_repack import rule_for

        if rule_for(repack, flags) is not None:
            return None
    size_gib, tokens_per_s = row
    return size_gib * GIB * tokens_per_s / int(table["threads"])


def source(cpu_arch: str) -> str | None:
    """Where the rates for this CPU architecture come from."""
    table = _table(cpu_arch)
    return table["source"] if table else None
