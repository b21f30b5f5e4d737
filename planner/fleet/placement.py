"""Multi-node placement: memory per GPU at the worst pipeline stage, KV per GPU, speed per token.

Two shapes, as the runtimes implement them:

tensor x pipeline parallel (vLLM, SGLang)
  TP GPUs share every layer of a stage (weights and attention heads split by TP); PP stages hold
  consecutive layers. Rules (sources in data/multinode.yaml):
  - TP spans nodes only over InfiniBand/RoCE (or an NVLink domain); over Ethernet only PP crosses
    nodes. Inside a node without NVLink, pipeline parallel replaces TP (vLLM's advice for L40S).
  - attention heads divide by TP (vLLM: "Total number of attention heads must be divisible by
    tensor parallel size"); each stage holds at most ceil(layers / PP) layers.
  - per GPU: (stage layers x bytes per layer + the embedding on the first stage, the output head
    on the last) / TP, plus the runtime's per-GPU overhead. A tied embedding is needed at both ends.
  - KV per GPU: stage layers x KV per layer x ceil(kv_heads / TP) / kv_heads (heads split by TP,
    replicated once TP exceeds the KV heads); MLA's latent is not split by heads: every TP rank
    holds all of it (SGLang: "KV cache will be duplicated among all TP ranks").
layer split over RPC (llama.cpp)
  ggml-rpc-server on every worker exposes its devices; weights and KV go to every device in
  proportion to its memory; each device keeps its own compute buffer.

Speed of one stream: the stages run one after another, so a token costs the sum of every stage's
memory reads (the single-machine decode formula, planner.speed) plus the communication per token:
2 all-reduces per layer when TP crosses nodes (ring: 2(n-1)/n of hidden x 2 bytes per GPU), one
hidden-state send per stage boundary, each with a per-message latency taken from an ASSUMED range
(data/multinode.yaml communication.latency_us). The range is stated with the plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .. import fit
from ..catalog import Catalog, ModelSpec, RuntimeSpec
from ..hardware import Gpu, Machine
from ..memory import MemoryEstimate
from ..speed import Speed, decode_constants, gpu_class, seconds_per_token


@dataclass(frozen=True, slots=True)
class Layout:
    """How a model is cut over `nodes` machines of `gpus_per_node` GPUs each."""

    kind: str  # "tp-pp" (vLLM, SGLang) | "layer-split" (llama.cpp RPC)
    nodes: int
    gpus_per_node: int
    tensor_parallel: int = 1
    pipeline_parallel: int = 1
    tp_spans_nodes: bool = False
    expert_parallel: bool = False

    def to_dict(self) -> dict:
        return {"kind": self.kind, "nodes": self.nodes, "gpus_per_node": self.gpus_per_node,
                "tensor_parallel": self.tensor_parallel, "pipeline_parallel": self.pipeline_parallel,
                "tensor_parallel_spans_nodes": self.tp_spans_nodes, "expert_parallel": self.expert_parallel}


@dataclass(frozen=True, slots=True)
class GpuMemory:
    """Bytes on one GPU at the worst stage."""

    weights_bytes: int
    kv_cache_bytes: int
    overhead_bytes: int
    budget_bytes: int
    layers: int

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_cache_bytes + self.overhead_bytes

    def to_dict(self) -> dict:
        return {"weights_bytes": self.weights_bytes, "kv_cache_bytes": self.kv_cache_bytes,
                "overhead_bytes": self.overhead_bytes, "total_bytes": self.total_bytes,
                "budget_bytes": self.budget_bytes, "layers": self.layers}


@dataclass(frozen=True, slots=True)
class MultiNodePlacement:
    layout: Layout
    per_gpu: GpuMemory  # worst stage (tp-pp) or the fullest device (layer split)
    gpu_share: float | None
    max_context: int
    speed: Speed | None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"layout": self.layout.to_dict(), "per_gpu": self.per_gpu.to_dict(), "gpu_share": self.gpu_share,
                "max_context": self.max_context, "speed": None if self.speed is None else self.speed.to_dict(),
                "notes": list(self.notes)}


@dataclass(frozen=True, slots=True)
class Link:
    """The network between nodes: kind (nvlink|infiniband|roce|ethernet) and Gb/s (None: unknown)."""

    kind: str
    gbps: float | None


# ---------------------------------------------------------------- pure terms


def stage_layers(layers: int, pp: int) -> int:
    """Layers on the fullest pipeline stage: ceil(layers / PP) (an uneven split puts one more somewhere)."""
    return math.ceil(layers / pp)


def end_bytes(est: MemoryEstimate, tied: bool) -> tuple[int, int]:
    """(embedding bytes on the first stage, output-head bytes on the last stage).

    Untied: the non-layer bytes are the embedding and the head, about half each. Tied: one
    matrix, needed at both ends once the pipeline has two or more stages.
    """
    if tied:
        return est.non_layer_bytes, est.non_layer_bytes
    return est.non_layer_bytes // 2, est.non_layer_bytes - est.non_layer_bytes // 2


def kv_share(model: ModelSpec, tp: int) -> float:
    """The share of a layer's KV cache one TP rank holds.

    Heads split by TP: ceil(kv_heads / TP) of kv_heads, so a rank keeps at least one head
    (replicated once TP exceeds the KV heads). MLA caches one latent per token that every rank
    holds whole.
    """
    arch = model.arch
    if arch.attention == "mla":
        return 1.0
    return math.ceil(arch.kv_heads / tp) / arch.kv_heads


def per_gpu_memory(est: MemoryEstimate, model: ModelSpec, tp: int, pp: int, budget: int) -> GpuMemory:
    """Bytes one GPU holds at the worst stage of a TP x PP layout (see the module docstring)."""
    n = stage_layers(est.layers, pp)
    first, last = end_bytes(est, model.arch.tied_embeddings)
    if pp == 1:  # one stage holds both ends (a tied matrix once)
        ends = first if model.arch.tied_embeddings else first + last
    else:  # the first stage holds the embedding, the last the head: the worst holds the larger
        ends = max(first, last)
    weights = (n * est.per_layer_bytes + ends) // tp
    kv_layer = est.kv_cache_bytes / est.layers
    kv = int(n * kv_layer * kv_share(model, tp))
    return GpuMemory(weights_bytes=weights, kv_cache_bytes=kv, overhead_bytes=est.overhead_bytes,
                     budget_bytes=budget, layers=n)


def context_room(mem: GpuMemory, est: MemoryEstimate, model: ModelSpec, tp: int) -> int:
    """Tokens of context the worst stage's GPUs hold in what weights and overhead leave."""
    free = mem.budget_bytes - mem.weights_bytes - mem.overhead_bytes
    per_token = mem.layers * est.kv_bytes_per_token / est.layers * kv_share(model, tp) * est.batch
    if free <= 0 or per_token <= 0:
        return 0
    return int(min(model.context_length_extended or model.context_length, free // per_token))


# ---------------------------------------------------------------- tensor x pipeline parallel


def place_tp_pp(est: MemoryEstimate, model: ModelSpec, gpu: Gpu, layout: Layout, runtime: RuntimeSpec,
                link: Link, intra: Link, catalog: Catalog, constants: dict) -> MultiNodePlacement | str:
    """A TP x PP placement on identical nodes, or the reason it does not fit."""
    tp, pp = layout.tensor_parallel, layout.pipeline_parallel
    heads = model.arch.attention_heads
    if heads % tp:
        return f"tensor parallel {tp}: {heads} attention heads don't divide by {tp}"
    if pp > est.layers:
        return f"pipeline parallel {pp}: more stages than the model's {est.layers} layers"
    budget, share = fit.gpu_budget(gpu, runtime)
    mem = per_gpu_memory(est, model, tp, pp, budget)
    if mem.total_bytes > budget:
        return (f"TP {tp} x PP {pp}: {mem.total_bytes / 2**30:.1f} GiB per GPU at the worst stage, "
                f"{budget / 2**30:.1f} GiB usable")
    notes = []
    if est.layers % pp:
        notes.append(f"{est.layers} layers don't divide by {pp} stages: the fullest stage holds {mem.layers}")
    if tp > model.arch.kv_heads and model.arch.attention != "mla":
        notes.append(f"TP {tp} exceeds the {model.arch.kv_heads} KV heads: each GPU keeps a replicated head")
    if layout.expert_parallel:
        notes.append("expert parallel: experts are spread over the TP ranks instead of split; its all-to-all "
                     "traffic is not in the speed estimate")
    if model.is_moe:
        notes.append("MoE speed: decode constants from single-machine runs; no published multi-node "
                     "single-stream MoE run checks it yet")
    if model.arch.attention == "mla" and tp > 1:
        notes.append("MLA: every TP rank holds the whole latent KV cache (not split by heads)")
    spd = tp_pp_speed(est, model, gpu, layout, link, intra, runtime, catalog, constants)
    return MultiNodePlacement(layout=layout, per_gpu=mem, gpu_share=share,
                              max_context=context_room(mem, est, model, tp), speed=spd, notes=tuple(notes))


def _latency_s(constants: dict, kind: str) -> tuple[float, float]:
    lo, hi = constants["communication"]["latency_us"][kind]
    return lo * 1e-6, hi * 1e-6


def comm_seconds(model: ModelSpec, layout: Layout, link: Link, constants: dict, latency: float) -> float:
    """Communication per decoded token between nodes (seconds), for one per-message latency.

    Cross-node TP: all_reduces_per_layer x layers all-reduces of hidden x activation_bytes, a ring
    moving 2(n-1)/n of it per GPU. PP: one hidden-state send per stage boundary.
    """
    c = constants["communication"]
    msg = model.arch.hidden_size * c["activation_bytes"]
    bw = link.gbps * 1e9 / 8 if link.gbps else None
    t = 0.0
    if layout.tp_spans_nodes and layout.tensor_parallel > 1:
        n = layout.tensor_parallel
        moved = 2 * (n - 1) / n * msg
        t += c["all_reduces_per_layer"] * model.arch.layers * (latency + (moved / bw if bw else 0.0))
    if layout.pipeline_parallel > 1:
        t += (layout.pipeline_parallel - 1) * (latency + (msg / bw if bw else 0.0))
    return t


def tp_pp_speed(est: MemoryEstimate, model: ModelSpec, gpu: Gpu, layout: Layout, link: Link, intra: Link,
                runtime: RuntimeSpec, catalog: Catalog, constants: dict) -> Speed | None:
    """Single-stream decode tokens/s: every stage's reads in turn plus communication, as a range.

    expected: half the context filled, the middle of the latency range; low: full context, the
    slow end of the latency range and the runtime's low factor; high: empty context, fast end.
    Intra-node TP keeps the single-machine policy (bandwidth x TP x tensor_parallel_scaling).
    """
    bw = gpu.memory_bandwidth_bytes_per_s
    if not bw:
        return None
    k = decode_constants(catalog, runtime, gpu_class(gpu, catalog))
    tp = layout.tensor_parallel
    scale = catalog.constants["speed"]["tensor_parallel_scaling"] if tp > 1 else 1.0
    mf = catalog.constants["speed"]["moe_efficiency_factor"] if model.is_moe else 1.0
    read = est.weights_read_bytes or est.weights_bytes
    lat_lo, lat_hi = _latency_s(constants, link.kind)
    if layout.pipeline_parallel == 1 and not layout.tp_spans_nodes:
        lat_lo, lat_hi = _latency_s(constants, intra.kind)
    out = {}
    for name, fill, lat in (("low", 1.0, lat_hi), ("expected", 0.5, (lat_lo + lat_hi) / 2), ("high", 0.0, lat_lo)):
        kv = est.kv_bytes_per_token * est.context * fill * kv_share(model, tp)
        per_gpu = read / tp + kv
        t = seconds_per_token(per_gpu, bw * scale, est.layers, k, mf)
        t += comm_seconds(model, layout, link, constants, lat)
        out[name] = 1.0 / t
    expected = out["expected"]
    basis = f"{runtime.speed.get('class', 'gguf')}/{gpu_class(gpu, catalog)} + {link.kind} latency " \
            f"{lat_lo * 1e6:g}-{lat_hi * 1e6:g} us (assumed)"
    return Speed(low=min(out["low"] * k["low"], expected), expected=expected,
                 high=max(out["high"] * k["high"], expected), basis=basis)


# ---------------------------------------------------------------- llama.cpp RPC layer split


@dataclass(frozen=True, slots=True)
class Device:
    host: str
    gpu: Gpu
    budget_bytes: int


def rpc_devices(hosts: list[tuple[str, Machine]], runtime: RuntimeSpec, constants: dict) -> list[Device]:
    """Every GPU (or Apple unified pool) of the given hosts, with what llama.cpp may fill on it."""
    out = []
    for name, m in hosts:
        for g in m.gpus:
            if g.unified_memory and g.vendor == "apple":
                budget = fit.apple_working_set(g.memory_total_bytes, constants) - \
                    int(runtime.memory.get("fit_margin_bytes", 0))
            else:
                budget = fit.gpu_budget(g, runtime)[0]
            out.append(Device(host=name, gpu=g, budget_bytes=max(0, budget)))
    return out


def place_layer_split(est: MemoryEstimate, model: ModelSpec, devices: list[Device], nodes: int,
                      link: Link, runtime: RuntimeSpec, catalog: Catalog, constants: dict) -> MultiNodePlacement | str:
    """llama.cpp over RPC: layers and KV split over every device in proportion to its memory."""
    if not devices:
        return "no GPU on these nodes for ggml-rpc-server to expose"
    fixed = est.overhead_bytes
    room = sum(d.budget_bytes - fixed for d in devices)
    need = est.weights_bytes + est.kv_cache_bytes
    if need > room:
        return (f"layer split over {len(devices)} devices on {nodes} nodes: needs "
                f"{(need + fixed * len(devices)) / 2**30:.1f} GiB, {sum(d.budget_bytes for d in devices) / 2**30:.1f} GiB usable")
    total_budget = sum(d.budget_bytes for d in devices)
    fullest = max(devices, key=lambda d: d.budget_bytes)
    share = fullest.budget_bytes / total_budget
    mem = GpuMemory(weights_bytes=int(est.weights_bytes * share), kv_cache_bytes=int(est.kv_cache_bytes * share),
                    overhead_bytes=fixed, budget_bytes=fullest.budget_bytes, layers=math.ceil(est.layers * share))
    free = room - est.weights_bytes
    max_ctx = int(min(model.context_length, free // est.kv_bytes_per_token)) if est.kv_bytes_per_token > 0 else 0
    layout = Layout(kind="layer-split", nodes=nodes, gpus_per_node=max(1, len(devices) // nodes))
    notes = ["llama.cpp splits layers and KV over every device in proportion to its memory "
             "(tools/rpc/README.md)"]
    if len({(d.gpu.name, d.budget_bytes) for d in devices}) > 1:
        notes.append("unequal devices: llama.cpp's documented fallback is the proportional split; "
                     "--tensor-split sets custom shares")
    spd = _layer_split_speed(est, model, devices, nodes, link, runtime, catalog, constants)
    return MultiNodePlacement(layout=layout, per_gpu=mem, gpu_share=None, max_context=max_ctx, speed=spd,
                              notes=tuple(notes))


def _layer_split_speed(est, model, devices, nodes, link, runtime, catalog, constants) -> Speed | None:
    """Devices take turns: sum of each device's share of the reads, plus one hop per remote node
    each way per token (activation of hidden x 2 bytes, plus the assumed latency)."""
    if any(not d.gpu.memory_bandwidth_bytes_per_s for d in devices):
        return None
    total_budget = sum(d.budget_bytes for d in devices)
    mf = catalog.constants["speed"]["moe_efficiency_factor"] if model.is_moe else 1.0
    read = est.weights_read_bytes or est.weights_bytes
    msg = model.arch.hidden_size * constants["communication"]["activation_bytes"]
    bw_link = link.gbps * 1e9 / 8 if link.gbps else None
    lat_lo, lat_hi = _latency_s(constants, link.kind)
    hops = 2 * (nodes - 1)
    k0 = decode_constants(catalog, runtime, gpu_class(devices[0].gpu, catalog))
    out = {}
    for name, fill, lat in (("low", 1.0, lat_hi), ("expected", 0.5, (lat_lo + lat_hi) / 2), ("high", 0.0, lat_lo)):
        t = 0.0
        for d in devices:
            part = d.budget_bytes / total_budget
            k = decode_constants(catalog, runtime, gpu_class(d.gpu, catalog))
            bytes_ = (read + est.kv_bytes_per_token * est.context * fill) * part
            t += seconds_per_token(bytes_, d.gpu.memory_bandwidth_bytes_per_s, round(est.layers * part), k, mf)
        t += hops * (lat + (msg / bw_link if bw_link else 0.0))
        out[name] = 1.0 / t
    expected = out["expected"]
    return Speed(low=min(out["low"] * k0["low"], expected), expected=expected,
                 high=max(out["high"] * k0["high"], expected),
                 basis=f"gguf layer split + {link.kind} latency {lat_lo * 1e6:g}-{lat_hi * 1e6:g} us (assumed)")
