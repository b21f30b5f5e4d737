"""Published llama.cpp runs (tests/data/llama_cpp_bench.yaml) with what the speed model needs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from planner.catalog import Architecture, Catalog, Licence, ModelSpec
from planner.memory import weights
from planner.speed import hardware_class

BENCH = Path(__file__).resolve().parent / "data" / "llama_cpp_bench.yaml"


@dataclass(frozen=True)
class Row:
    hardware: str
    backend: str
    model: ModelSpec
    quant: str
    test: str
    tokens_per_s: float
    bandwidth: float  # bytes/s
    weights_bytes: int
    gpus: int
    source: str
    klass: str

    read_share: float = 1.0  # weights read per token / all weights (formula; MoE experts in use)
    holdout: bool = False  # kept out of the fit: scored as a held-out run

    @property
    def bytes_per_token(self) -> float:
        return self.weights_bytes * self.read_share

    @property
    def layers(self) -> int:
        return self.model.arch.layers


def reference_models(doc: dict) -> dict[str, ModelSpec]:
    out = {}
    for mid, spec in doc["reference_models"].items():
        arch = Architecture(**spec["architecture"])
        out[mid] = ModelSpec(id=mid, name=mid, family=mid, hf_repo=mid, params=1, context_length=4096, arch=arch,
                             licence=Licence(id="-", name="-", commercial="unknown"), sources=(spec["source"],))
    return out


def load_rows(cat: Catalog) -> list[Row]:
    doc = yaml.safe_load(BENCH.read_text())
    refs = reference_models(doc)
    gpus = {g.id: g for g in cat.gpus}
    rows = []
    for r in doc["benchmarks"]:
        bw = r.get("bandwidth_gbps") or (gpus[r["gpu"]].bandwidth_gbps if r.get("gpu") in gpus else None)
        if not bw:
            continue
        model = refs.get(r["model"]) or cat.model(r["model"])
        formula = weights(model, cat.quants[r["quant"]], "gguf", cat, use_artifact=False)
        w = int(r["model_size_gib"] * 2**30) if r.get("model_size_gib") else formula.total_bytes
        spec = gpus.get(r.get("gpu"))
        vendor = {"CUDA": "nvidia", "Metal": "apple", "Vulkan": "amd", "CPU": None}[r["backend"]]
        klass = hardware_class(vendor, spec.memory_type if spec else None)
        rows.append(Row(klass=klass, read_share=formula.read_bytes / formula.total_bytes, hardware=r["hardware"], backend=r["backend"], model=model, quant=r["quant"], test=r["test"],
                        tokens_per_s=float(r["tokens_per_s"]), bandwidth=bw * 1e9, weights_bytes=w,
                        gpus=r.get("gpus", 1), source=r["source"]))
    return rows


RUNTIME_BENCH = Path(__file__).resolve().parent / "data" / "runtime_bench.yaml"


def load_runtime_rows(cat: Catalog) -> list[Row]:
    """Single-request vLLM / MLX-LM runs: bytes read per token include the KV cache at `context`."""
    from planner.memory import kv_bytes_per_token

    doc = yaml.safe_load(RUNTIME_BENCH.read_text())
    gpus = {g.id: g for g in cat.gpus}
    rows = []
    for r in doc["runs"]:
        spec = gpus[r["gpu"]]
        model = cat.model(r["model"])
        rt = cat.runtime(r["runtime"])
        w = weights(model, cat.quants[r["quant"].upper()],
                    r["format"], cat, use_artifact=False)
        ctx = max(1, r.get("context", 0))
        kv = kv_bytes_per_token(model.arch, 16, context=ctx, sliding_window_cache=rt.sliding_window_cache,
                                mla_cache=rt.mla_cache) * ctx
        rows.append(Row(klass=f"{rt.speed['class']}/{hardware_class(spec.vendor, spec.memory_type)}",
                        read_share=(w.read_bytes + kv) / w.total_bytes, hardware=r["hardware"],
                        backend=r["runtime"], model=model, quant=r["quant"], test="tg",
                        tokens_per_s=float(r["tokens_per_s"]), bandwidth=spec.bandwidth_gbps * 1e9,
                        weights_bytes=w.total_bytes, gpus=1, source=r["source"], holdout=bool(r.get("holdout"))))
    return rows
