"""The shipped catalogs: models, runtimes, GPUs and quantization formats, validated on load.

Every error names the file, the entry and the field: `models.yaml: models[12] (gemma-2-9b):
'kv_heads' must be an integer`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import CatalogError

LICENCE_CLASSES = ("yes", "conditional", "no", "unknown")
PERMISSIVE_LICENCES = ("apache-2.0", "mit", "bsd-3-clause")
ATTENTION_KINDS = ("full", "sliding", "chunked", "mla")
ARTIFACT_FORMATS = ("gguf", "ollama", "safetensors", "awq", "gptq", "mlx")
GPU_KINDS = ("desktop", "laptop", "datacenter", "apple", "workstation", "embedded", "apu")
# Where a plan's file comes from: a catalogued repo/tag, a file on this disk, or one to make.
ARTIFACT_SOURCES = ("catalog", "local", "hub", "convert")
# Layer rules of llama.cpp's quantization recipes (see data/quants.yaml, planner/memory.py).
GGUF_RULES = ("more_bits", "first_eighth", "first_sixteenth", "first_two", "first_four", "middle")
# GGUF tensor classes a model may pin to one ggml type in every GGUF file (gguf_tensor_types).
GGUF_TENSOR_CLASSES = ("embed", "output", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up",
                       "ffn_down", "other", "experts")
USE_CASES = ("chat", "code", "reasoning", "multilingual", "long-context", "edge", "vision")


# ---------------------------------------------------------------- records


@dataclass(frozen=True, slots=True, kw_only=True)
class Mla:
    kv_lora_rank: int
    qk_rope_head_dim: int
    q_lora_rank: int | None = None
    qk_nope_head_dim: int | None = None
    v_head_dim: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Moe:
    experts: int
    experts_per_token: int
    expert_intermediate_size: int
    shared_experts: int = 0
    dense_layers: int = 0
    every: int = 1  # interleaving: after the dense-first layers, every Nth layer is MoE, the rest dense

    def is_moe_layer(self, i: int) -> bool:
        """Layer i (0-based) holds experts: past `dense_layers`, and on the interleave step.

        The step follows Transformers' Llama 4 (`moe_layers = range(step - 1, n_layers, step)`):
        with every=2 the odd layers are MoE and the even ones dense.
        """
        return i >= self.dense_layers and (i + 1) % self.every == 0


@dataclass(frozen=True, slots=True, kw_only=True)
class LinearAttention:
    """Linear-attention layers (Gated DeltaNet) interleaved with full attention.

    Every `full_every`-th layer is full attention (layer i with (i + 1) % full_every == 0, as
    Transformers' Qwen3-Next builds `layer_types`); the others keep a fixed recurrent state per
    sequence instead of a KV cache: a causal-conv window and a key x value matrix per value head.
    """

    full_every: int
    key_heads: int
    value_heads: int
    key_head_dim: int
    value_head_dim: int
    conv_kernel: int

    @property
    def key_dim(self) -> int:
        return self.key_heads * self.key_head_dim

    @property
    def value_dim(self) -> int:
        return self.value_heads * self.value_head_dim

    @property
    def state_elements(self) -> int:
        """Recurrent state of one layer for one sequence, in elements.

        conv: (conv_kernel - 1) x (2 x key_dim + value_dim)  (llama.cpp n_embd_r: (d_conv - 1) x
        (d_inner + 2 x n_group x d_state)); recurrent: value_heads x key_head_dim x value_head_dim
        (n_embd_s: d_state x d_inner).
        """
        conv = (self.conv_kernel - 1) * (2 * self.key_dim + self.value_dim)
        return conv + self.value_heads * self.key_head_dim * self.value_head_dim


@dataclass(frozen=True, slots=True, kw_only=True)
class Architecture:
    layers: int
    hidden_size: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tied_embeddings: bool
    attention: str = "full"
    sliding_window: int | None = None
    global_every: int | None = None  # every Nth layer is global; None = all layers sliding
    attention_chunk_size: int | None = None  # chunked attention (Llama 4): keys from the query's own chunk
    mla: Mla | None = None
    moe: Moe | None = None
    linear_attention: LinearAttention | None = None
    kv_shared_layers: int = 0  # the last N layers reuse an earlier layer's KV cache (own none)
    attn_output_gate: bool = False  # gated attention: q_proj also emits a per-head output gate
    extra_params: int = 0
    qkv_bias: bool = False
    fused_qkv: bool = False  # one qkv projection (Phi-3): llama.cpp quantizes it as attn_v

    @property
    def local_window(self) -> int | None:
        """Tokens a sliding-window or chunked layer attends to at most (None: no local layers)."""
        if self.attention == "sliding":
            return self.sliding_window
        if self.attention == "chunked":
            return self.attention_chunk_size
        return None

    def is_local_layer(self, i: int) -> bool:
        """Layer i attends within a window or chunk (every `global_every`-th layer is global)."""
        if not self.local_window:
            return False
        return not self.global_every or (i + 1) % self.global_every != 0

    def is_linear_layer(self, i: int) -> bool:
        """Layer i is linear attention (a recurrent state, no KV cache)."""
        la = self.linear_attention
        return la is not None and (i + 1) % la.full_every != 0

    # Layer counts in closed form (the planner asks for them once per estimate): among layers
    # 1..n, those on a step k are the n // k multiples of k.

    @property
    def kv_layers(self) -> int:
        """Layers that own a KV cache: all but the KV-sharing tail and the linear-attention layers."""
        n = self.layers - self.kv_shared_layers
        return n // self.linear_attention.full_every if self.linear_attention else n

    @property
    def sliding_layers(self) -> int:
        """Layers with their own KV cache that stop growing at the local window (sliding or chunked)."""
        if not self.local_window:
            return 0
        n = self.layers - self.kv_shared_layers
        g = self.global_every
        if self.linear_attention is None:
            return n - n // g if g else n
        f = self.linear_attention.full_every  # only full-attention layers hold a cache
        return n // f - n // math.lcm(f, g) if g else n // f

    @property
    def linear_layers(self) -> int:
        la = self.linear_attention
        return self.layers - self.layers // la.full_every if la else 0

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "layers": self.layers, "hidden_size": self.hidden_size,
            "attention_heads": self.attention_heads, "kv_heads": self.kv_heads, "head_dim": self.head_dim,
            "intermediate_size": self.intermediate_size, "vocab_size": self.vocab_size,
            "tied_embeddings": self.tied_embeddings, "attention": self.attention,
        }
        if self.sliding_window:
            d["sliding_window"] = self.sliding_window
            d["global_every"] = self.global_every
        if self.attention_chunk_size:
            d["attention_chunk_size"] = self.attention_chunk_size
            d["global_every"] = self.global_every
        if self.linear_attention:
            d["linear_attention"] = {k: getattr(self.linear_attention, k) for k in LinearAttention.__slots__}
        if self.kv_shared_layers:
            d["kv_shared_layers"] = self.kv_shared_layers
        if self.attn_output_gate:
            d["attn_output_gate"] = True
        if self.mla:
            d["mla"] = {k: getattr(self.mla, k) for k in Mla.__slots__ if getattr(self.mla, k) is not None}
        if self.moe:
            d["moe"] = {k: getattr(self.moe, k) for k in Moe.__slots__ if k != "every" or self.moe.every != 1}
        if self.extra_params:
            d["extra_params"] = self.extra_params
        return d


@dataclass(frozen=True, slots=True, kw_only=True)
class Licence:
    id: str
    name: str
    commercial: str  # yes | conditional | no | unknown
    conditions: str | None = None
    url: str | None = None

    @property
    def permissive(self) -> bool:
        return self.id in PERMISSIVE_LICENCES and self.commercial == "yes"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "commercial": self.commercial,
                "conditions": self.conditions, "url": self.url}


@dataclass(frozen=True, slots=True, kw_only=True)
class Artifact:
    """A model file in one format and quantization, and where it comes from.

    `source`: "catalog" (a listed repo or tag), "local" (a file on this disk, at `path`) or
    "convert" (no published file known: `steps` make `path` from the model's Hugging Face repo).
    """

    format: str
    quant: str
    repo: str | None = None
    file: str | None = None
    size_bytes: int | None = None
    tag: str | None = None
    source: str = "catalog"  # catalog (a listed repo/tag) | local (a file on this disk) | hub | convert
    path: str | None = None
    steps: tuple[tuple[str, ...], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {k: getattr(self, k) for k in ("format", "quant", "repo", "file", "size_bytes", "tag")
                             if getattr(self, k) is not None}
        d["source"] = self.source
        if self.path is not None:
            d["path"] = self.path
        if self.steps:
            d["steps"] = [list(s) for s in self.steps]
        return d


@dataclass(frozen=True, slots=True, kw_only=True)
class Quality:
    benchmark: str
    score: float
    setting: str | None = None
    source: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelSpec:
    id: str
    name: str
    family: str
    hf_repo: str
    params: int
    context_length: int
    arch: Architecture
    licence: Licence
    sources: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    base_repo: str | None = None
    released: str | None = None
    params_exact: bool = True
    active_params: int | None = None
    context_length_extended: int | None = None
    quality: Quality | None = None
    use_cases: tuple[str, ...] = ()
    artifacts: tuple[Artifact, ...] = ()
    unsourced: tuple[str, ...] = ()
    # Tensor class -> ggml type kept in every GGUF of this model whatever its quantization
    # (gpt-oss: experts stay MXFP4), from the published files.
    gguf_tensor_types: tuple[tuple[str, str], ...] = ()

    @property
    def is_moe(self) -> bool:
        return self.arch.moe is not None

    @property
    def decode_params(self) -> int:
        """Parameters read per generated token (MoE: the active ones)."""
        return self.active_params or self.params

    def quants(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for a in self.artifacts:
            seen.setdefault(a.quant, None)
        return tuple(seen)

    def artifact(self, fmt: str, quant: str) -> Artifact | None:
        for a in self.artifacts:
            if a.format == fmt and a.quant.upper() == quant.upper():
                return a
        return None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id, "name": self.name, "family": self.family, "hf_repo": self.hf_repo,
            "base_repo": self.base_repo, "aliases": list(self.aliases), "released": self.released,
            "params": self.params, "params_exact": self.params_exact, "active_params": self.active_params,
            "context_length": self.context_length,
            "context_length_extended": self.context_length_extended,
            "licence": self.licence.to_dict(),
            "quality": None if self.quality is None else {
                "benchmark": self.quality.benchmark, "score": self.quality.score,
                "setting": self.quality.setting, "source": self.quality.source},
            "use_cases": list(self.use_cases),
            "quants": list(self.quants()),
            "architecture": self.arch.to_dict(),
            "artifacts": [a.to_dict() for a in self.artifacts],
            "sources": list(self.sources),
        }
        return d


@dataclass(frozen=True, slots=True, kw_only=True)
class QuantSpec:
    """A quantization: bits per weight per tensor class, and the artifact formats that carry it."""

    id: str
    formats: tuple[str, ...]
    bits: dict[str, float]  # tensor class -> bits per weight: attn, ffn, embed, output, norm, default
    kind: str = "weight"  # weight | native (the model's own precision)
    min_compute_capability: str | None = None
    gguf: dict[str, Any] = field(default_factory=dict)  # tensor class -> ggml type or [base, rule, other]
    gqa4: dict[str, Any] = field(default_factory=dict)  # overrides when attention/KV heads >= 4
    many_experts: dict[str, Any] = field(default_factory=dict)  # overrides for models with >= 4 experts
    moe8: dict[str, Any] = field(default_factory=dict)  # overrides for 8-expert models
    imatrix: bool = False  # llama-quantize refuses this type without an importance matrix
    quantize_type: str | None = None  # llama-quantize's name when it differs from the id
    candidate: bool = True  # proposed by `plan` unasked (False: only with --quant)
    moe_only: bool = False  # differs from another recipe only on MoE experts: dense models skip it
    low_bit: bool = False  # clear quality loss: ranked after plans at a normal precision
    sources: tuple[str, ...] = ()

    def bpw(self, tensor_class: str) -> float:
        return self.bits.get(tensor_class, self.bits["default"])


@dataclass(frozen=True, slots=True, kw_only=True)
class GpuSpec:
    id: str
    name: str
    vendor: str
    kind: str
    aliases: tuple[str, ...] = ()
    driver_names: tuple[str, ...] = ()
    memory_gib: float | None = None
    memory_options_gib: tuple[float, ...] = ()
    memory_type: str | None = None
    bandwidth_gbps: float | None = None
    compute_capability: str | None = None
    bf16_tflops: float | None = None
    fp8: bool = False
    gpu_cores: int | None = None
    prefill_tflops: float | None = None  # measured effective prompt-processing FLOP/s (Apple chips)
    # What NVML reports as total memory, in MiB, from a real reading (nvidia-smi / NVML capture):
    # a card shows less than its label (an "80GB" H100 SXM shows 81559 MiB, an L4 23034 MiB).
    nvml_total_mib: int | None = None
    # Unified memory (Apple, GB10, Jetson, Strix Halo): the GPU shares the machine's RAM.
    unified_memory: bool = False
    # The share of unified memory the GPU may allocate by default where a documented cap applies
    # (e.g. a kernel driver's default graphics-translation-table limit); None = RAM less the OS reserve.
    unified_gpu_fraction: float | None = None
    host_arch: str | None = None  # CPU architecture of a unified-memory system: aarch64 | x86_64 | arm64
    sources: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "vendor": self.vendor, "kind": self.kind,
            "aliases": list(self.aliases), "driver_names": list(self.driver_names),
            "memory_gib": self.memory_gib, "memory_options_gib": list(self.memory_options_gib),
            "memory_type": self.memory_type, "bandwidth_gbps": self.bandwidth_gbps,
            "compute_capability": self.compute_capability, "bf16_tflops": self.bf16_tflops,
            "fp8": self.fp8, "gpu_cores": self.gpu_cores, "prefill_tflops": self.prefill_tflops,
            "nvml_total_mib": self.nvml_total_mib, "unified_memory": self.unified_memory,
            "unified_gpu_fraction": self.unified_gpu_fraction, "host_arch": self.host_arch,
            "sources": list(self.sources),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeSpec:
    id: str
    name: str
    os: tuple[str, ...]
    accelerators: dict[str, Any]  # cpu/nvidia/amd/apple -> true or {min_compute_capability: "7.5"}
    formats: tuple[str, ...]
    quants: tuple[str, ...]
    kv_cache_types: dict[str, float]  # name -> bits per element
    multi_gpu: str  # none | layer | tensor
    partial_offload: bool
    default_port: int | None
    launch: dict[str, Any]
    memory: dict[str, Any]
    speed: dict[str, Any]
    sources: tuple[str, ...]
    quant_min_cc: dict[str, str] = field(default_factory=dict)
    sliding_window_cache: bool = False  # allocates sliding-window layers at the window size
    mla_cache: bool = True  # caches MLA's latent rather than expanded heads
    install: str | None = None
    notes: tuple[str, ...] = ()
    format_os: dict[str, tuple[str, ...]] = field(default_factory=dict)  # format -> OSes where it loads
    multi_node: dict[str, Any] = field(default_factory=dict)  # {supported, how}
    rank: int = 0  # preference among equally good plans (lower first)
    version: dict[str, Any] = field(default_factory=dict)  # {id, source}: the release whose rules we follow
    rules: dict[str, Any] = field(default_factory=dict)  # facts only this runtime's module reads
    # How it serves many users at once: {batching: continuous | slots | none, how, why (none), ...}
    serving: dict[str, Any] = field(default_factory=dict)

    def supports_os(self, system: str) -> bool:
        return system in self.os

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "os": list(self.os), "accelerators": self.accelerators,
            "formats": list(self.formats), "quants": list(self.quants),
            "quant_min_compute_capability": self.quant_min_cc,
            "kv_cache_types": self.kv_cache_types, "multi_gpu": self.multi_gpu, "multi_node": self.multi_node,
            "partial_offload": self.partial_offload, "default_port": self.default_port,
            "default_context": self.memory.get("default_context"),
            "version": self.version.get("id"),
            "batching": self.serving.get("batching"),
            "install": self.install, "notes": list(self.notes), "sources": list(self.sources),
        }


@dataclass(frozen=True, slots=True)
class Catalog:
    models: tuple[ModelSpec, ...]
    runtimes: tuple[RuntimeSpec, ...]
    gpus: tuple[GpuSpec, ...]
    quants: dict[str, QuantSpec]
    constants: dict[str, Any]
    # Results derived from the data alone (memory.weights per model x quantization x format),
    # filled by memory.warm() before the compiled catalog is stored, and lazily otherwise.
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def model(self, model_id: str) -> ModelSpec:
        for m in self.models:
            if m.id == model_id:
                return m
        raise KeyError(model_id)

    def runtime(self, runtime_id: str) -> RuntimeSpec:
        for r in self.runtimes:
            if r.id == runtime_id:
                return r
        raise KeyError(runtime_id)


# ---------------------------------------------------------------- validation


class _Entry:
    """Typed access to one YAML mapping; every error names file, entry and field."""

    def __init__(self, d: Any, where: str):
        if not isinstance(d, dict):
            raise CatalogError(f"{where}: must be a mapping")
        self.d = d
        self.where = where
        self.used: set[str] = set()

    def _err(self, key: str, why: str) -> CatalogError:
        return CatalogError(f"{self.where}: '{key}' {why}")

    def get(self, key: str, kind: type | tuple, required: bool = True, default: Any = None) -> Any:
        self.used.add(key)
        if key not in self.d or self.d[key] is None:
            if required:
                raise self._err(key, "is missing")
            return default
        v = self.d[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if isinstance(v, bool) and bool not in kinds:
            raise self._err(key, f"must be {_names(kinds)}, not {v!r}")
        if str in kinds and not isinstance(v, str) and isinstance(v, (int, float)) and \
                not isinstance(v, bool) and key in ("released",):
            v = str(v)
        if not isinstance(v, kinds):
            if str in kinds and hasattr(v, "isoformat"):  # YAML dates
                return v.isoformat()
            raise self._err(key, f"must be {_names(kinds)}, not {v!r}")
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v < 0:
            raise self._err(key, f"must not be negative ({v})")
        return v

    def positive(self, key: str, required: bool = True) -> int | None:
        v = self.get(key, int, required)
        if v is not None and v <= 0:
            raise self._err(key, f"must be positive ({v})")
        return v

    def strings(self, key: str, required: bool = False) -> tuple[str, ...]:
        v = self.get(key, list, required, default=[])
        for item in v:
            if not isinstance(item, (str, int, float)):
                raise self._err(key, f"must be a list of strings, not {item!r}")
        return tuple(str(x) for x in v)

    def choice(self, key: str, choices: tuple[str, ...], required: bool = True, default: Any = None) -> Any:
        v = self.get(key, str, required, default)
        if v is not None and v not in choices:
            raise self._err(key, f"must be one of {', '.join(choices)}, not {v!r}")
        return v

    def sub(self, key: str, required: bool = True) -> "_Entry | None":
        v = self.get(key, dict, required)
        return None if v is None else _Entry(v, f"{self.where}.{key}")

    def done(self, allowed_extra: tuple[str, ...] = ()) -> None:
        unknown = sorted(set(self.d) - self.used - set(allowed_extra))
        if unknown:
            raise CatalogError(f"{self.where}: unknown field '{unknown[0]}'",
                               hint="check the spelling against the other entries")


def _names(kinds: tuple) -> str:
    names = {int: "an integer", str: "a string", bool: "true or false", float: "a number",
             list: "a list", dict: "a mapping"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _model(raw: Any, where: str) -> ModelSpec:
    e = _Entry(raw, where)
    mid = e.get("id", str)
    e.where = f"{where} ({mid})"
    a = e.sub("architecture")
    attention = a.choice("attention", ATTENTION_KINDS, required=False, default="full")
    mla = moe = None
    if (m := a.sub("mla", required=False)) is not None:
        mla = Mla(kv_lora_rank=m.positive("kv_lora_rank"), qk_rope_head_dim=m.positive("qk_rope_head_dim"),
                  q_lora_rank=m.get("q_lora_rank", int, False), qk_nope_head_dim=m.get("qk_nope_head_dim", int, False),
                  v_head_dim=m.get("v_head_dim", int, False))
        m.done()
    if (m := a.sub("moe", required=False)) is not None:
        moe = Moe(experts=m.positive("experts"), experts_per_token=m.positive("experts_per_token"),
                  expert_intermediate_size=m.positive("expert_intermediate_size"),
                  shared_experts=m.get("shared_experts", int, False, 0),
                  dense_layers=m.get("dense_layers", int, False, 0), every=m.positive("every", False) or 1)
        m.done()
    linear = None
    if (m := a.sub("linear_attention", required=False)) is not None:
        linear = LinearAttention(full_every=m.positive("full_every"), key_heads=m.positive("key_heads"),
                                 value_heads=m.positive("value_heads"), key_head_dim=m.positive("key_head_dim"),
                                 value_head_dim=m.positive("value_head_dim"), conv_kernel=m.positive("conv_kernel"))
        m.done()
        if linear.full_every < 2:
            raise CatalogError(f"{m.where}: 'full_every' must be at least 2 (1 would leave no linear layer)")
        if linear.value_heads % linear.key_heads:
            raise CatalogError(f"{m.where}: 'value_heads' ({linear.value_heads}) must be a multiple of "
                               f"'key_heads' ({linear.key_heads})")
    arch = Architecture(
        layers=a.positive("layers"), hidden_size=a.positive("hidden_size"),
        attention_heads=a.positive("attention_heads"), kv_heads=a.positive("kv_heads"),
        head_dim=a.positive("head_dim"), intermediate_size=a.positive("intermediate_size"),
        vocab_size=a.positive("vocab_size"), tied_embeddings=a.get("tied_embeddings", bool),
        attention=attention, sliding_window=a.get("sliding_window", int, False),
        global_every=a.get("global_every", int, False),
        attention_chunk_size=a.positive("attention_chunk_size", False), mla=mla, moe=moe,
        linear_attention=linear, kv_shared_layers=a.get("kv_shared_layers", int, False, 0),
        attn_output_gate=a.get("attn_output_gate", bool, False, False),
        extra_params=a.get("extra_params", int, False, 0), qkv_bias=a.get("qkv_bias", bool, False, False),
        fused_qkv=a.get("fused_qkv", bool, False, False))
    a.done()
    if arch.attention == "chunked" and not arch.attention_chunk_size:
        raise CatalogError(f"{e.where}.architecture: attention 'chunked' needs 'attention_chunk_size'")
    if arch.attention_chunk_size and arch.attention != "chunked":
        raise CatalogError(f"{e.where}.architecture: 'attention_chunk_size' needs attention 'chunked'")
    if arch.kv_shared_layers >= arch.layers:
        raise CatalogError(f"{e.where}.architecture: 'kv_shared_layers' ({arch.kv_shared_layers}) must be "
                           f"below 'layers' ({arch.layers})")
    if arch.moe is not None and arch.moe.dense_layers >= arch.layers:
        raise CatalogError(f"{e.where}.architecture.moe: 'dense_layers' ({arch.moe.dense_layers}) must be "
                           f"below 'layers' ({arch.layers})")
    if arch.attention == "mla" and arch.mla is None:
        raise CatalogError(f"{e.where}.architecture: attention 'mla' needs the 'mla' ranks")
    if arch.attention == "sliding" and not arch.sliding_window:
        raise CatalogError(f"{e.where}.architecture: attention 'sliding' needs 'sliding_window'")
    lic = e.sub("licence")
    licence = Licence(id=lic.get("id", str), name=lic.get("name", str),
                      commercial=lic.choice("commercial", LICENCE_CLASSES),
                      conditions=lic.get("conditions", str, False), url=lic.get("url", str, False))
    lic.done()
    quality = None
    if (q := e.sub("quality", required=False)) is not None:
        quality = Quality(benchmark=q.get("benchmark", str), score=q.get("score", float),
                          setting=q.get("setting", str, False), source=q.get("source", str, False))
        q.done()
    artifacts = []
    for i, raw_a in enumerate(e.get("artifacts", list, False, [])):
        ae = _Entry(raw_a, f"{e.where}.artifacts[{i}]")
        art = Artifact(format=ae.choice("format", ARTIFACT_FORMATS), quant=str(ae.get("quant", (str, int))),
                       repo=ae.get("repo", str, False), file=ae.get("file", str, False),
                       size_bytes=ae.positive("size_bytes", False), tag=ae.get("tag", str, False))
        ae.done()
        if art.format == "ollama" and not art.tag:
            raise CatalogError(f"{ae.where}: an ollama artifact needs 'tag'")
        if art.format != "ollama" and not art.repo:
            raise CatalogError(f"{ae.where}: a {art.format} artifact needs 'repo'")
        artifacts.append(art)
    overrides = e.get("gguf_tensor_types", dict, False, {})
    for k, v in overrides.items():
        if k not in GGUF_TENSOR_CLASSES or not isinstance(v, str):
            raise CatalogError(f"{e.where}: gguf_tensor_types: {k!r} must be a tensor class "
                               f"({', '.join(GGUF_TENSOR_CLASSES)}) mapped to a ggml type name")
    use_cases = e.strings("use_cases")
    for u in use_cases:
        if u not in USE_CASES:
            raise CatalogError(f"{e.where}: use case {u!r} is not one of {', '.join(USE_CASES)}")
    sources = e.strings("sources", required=True)
    if not sources:
        raise CatalogError(f"{e.where}: 'sources' must not be empty")
    spec = ModelSpec(
        id=mid, name=e.get("name", str), family=e.get("family", str), hf_repo=e.get("hf_repo", str),
        base_repo=e.get("base_repo", str, False), aliases=e.strings("aliases"),
        released=e.get("released", str, False), params=e.positive("params"),
        params_exact=e.get("params_exact", bool, False, True), active_params=e.positive("active_params", False),
        context_length=e.positive("context_length"),
        context_length_extended=e.positive("context_length_extended", False),
        arch=arch, licence=licence, quality=quality, use_cases=use_cases, artifacts=tuple(artifacts),
        sources=sources, unsourced=e.strings("unsourced"),
        gguf_tensor_types=tuple(sorted((str(k), str(v)) for k, v in overrides.items())))
    e.done(allowed_extra=("notes",))
    return spec


def _gpu(raw: Any, where: str) -> GpuSpec:
    e = _Entry(raw, where)
    gid = e.get("id", str)
    e.where = f"{where} ({gid})"
    cc = e.get("compute_capability", (str, float), False)
    spec = GpuSpec(
        id=gid, name=e.get("name", str), vendor=e.choice("vendor", ("nvidia", "amd", "apple", "intel")),
        kind=e.choice("kind", GPU_KINDS),
        aliases=e.strings("aliases"), driver_names=e.strings("driver_names"),
        memory_gib=e.get("memory_gib", float, False),
        memory_options_gib=tuple(float(x) for x in e.get("memory_options_gib", list, False, [])),
        memory_type=e.get("memory_type", str, False), bandwidth_gbps=e.get("bandwidth_gbps", float, False),
        compute_capability=None if cc is None else str(cc), bf16_tflops=e.get("bf16_tflops", float, False),
        fp8=e.get("fp8", bool, False, False), gpu_cores=e.get("gpu_cores", int, False),
        prefill_tflops=e.get("prefill_tflops", float, False),
        nvml_total_mib=e.get("nvml_total_mib", int, False),
        unified_memory=e.get("unified_memory", bool, False, False),
        unified_gpu_fraction=e.get("unified_gpu_fraction", float, False),
        host_arch=e.choice("host_arch", ("aarch64", "x86_64", "arm64"), False),
        sources=e.strings("sources", required=True))
    e.done(allowed_extra=("tflops_note", "unsourced", "notes"))
    if spec.memory_gib is None and not spec.memory_options_gib:
        raise CatalogError(f"{e.where}: needs 'memory_gib' or 'memory_options_gib'")
    if spec.unified_gpu_fraction is not None and not 0 < spec.unified_gpu_fraction <= 1:
        raise CatalogError(f"{e.where}.unified_gpu_fraction: must be in (0, 1], not {spec.unified_gpu_fraction}")
    if spec.nvml_total_mib is not None and spec.memory_gib and not (
            0.85 * spec.memory_gib * 1024 <= spec.nvml_total_mib <= 1.01 * spec.memory_gib * 1024):
        raise CatalogError(f"{e.where}.nvml_total_mib: {spec.nvml_total_mib} MiB is not within 85-101% of "
                           f"the {spec.memory_gib:g} GiB label")
    if not spec.sources:
        raise CatalogError(f"{e.where}: 'sources' must not be empty")
    return spec


def _runtime(raw: Any, where: str) -> RuntimeSpec:
    e = _Entry(raw, where)
    rid = e.get("id", str)
    e.where = f"{where} ({rid})"
    kv = e.get("kv_cache_types", dict)
    for k, v in kv.items():
        if not isinstance(v, (int, float)) or v <= 0:
            raise CatalogError(f"{e.where}: kv_cache_types.{k} must be a positive number of bits")
    spec = RuntimeSpec(
        id=rid, name=e.get("name", str), os=e.strings("os", True), accelerators=e.get("accelerators", dict),
        formats=e.strings("formats", True), quants=e.strings("quants", True),
        kv_cache_types={str(k): float(v) for k, v in kv.items()},
        multi_gpu=e.choice("multi_gpu", ("none", "layer", "tensor")),
        partial_offload=e.get("partial_offload", bool), default_port=e.get("default_port", int, False),
        launch=e.get("launch", dict), memory=e.get("memory", dict), speed=e.get("speed", dict, False, {}),
        quant_min_cc={str(k): str(v) for k, v in e.get("quant_min_compute_capability", dict, False, {}).items()},
        sliding_window_cache=e.get("sliding_window_cache", bool, False, False),
        mla_cache=e.get("mla_cache", bool, False, True),
        install=e.get("install", str, False), notes=e.strings("notes"), rank=e.get("rank", int, False, 0),
        format_os={str(k): tuple(v) for k, v in e.get("format_os", dict, False, {}).items()},
        multi_node=e.get("multi_node", dict), version=e.get("version", dict, False, {}),
        rules=e.get("rules", dict, False, {}), serving=e.get("serving", dict, False, {}),
        sources=e.strings("sources", required=True))
    e.done()
    return spec


def _quant(raw: Any, where: str, ggml_bits: dict[str, float]) -> QuantSpec:
    e = _Entry(raw, where)
    qid = str(e.get("id", (str, int)))
    e.where = f"{where} ({qid})"
    gguf = e.get("gguf", dict, False, {})
    bits = e.get("bits", dict, required=not gguf)
    if bits is None:
        bits = {"default": ggml_bits[gguf["default"]]} if gguf.get("default") in ggml_bits else {}
    if "default" not in bits:
        raise CatalogError(f"{e.where}: 'bits' needs a 'default' entry")
    for k, v in bits.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0:
            raise CatalogError(f"{e.where}: bits.{k} must be a positive number")
    cc = e.get("min_compute_capability", (str, float), False)
    spec = QuantSpec(id=qid, formats=e.strings("formats", True), bits={k: float(v) for k, v in bits.items()},
                     kind=e.choice("kind", ("weight", "native"), False, "weight"),
                     min_compute_capability=None if cc is None else str(cc),
                     gguf=gguf, gqa4=e.get("gqa4", dict, False, {}),
                     many_experts=e.get("many_experts", dict, False, {}), moe8=e.get("moe8", dict, False, {}),
                     imatrix=e.get("imatrix", bool, False, False), quantize_type=e.get("quantize_type", str, False),
                     candidate=e.get("candidate", bool, False, True), moe_only=e.get("moe_only", bool, False, False),
                     low_bit=e.get("low_bit", bool, False, False),
                     sources=e.strings("sources", required=True))
    e.done(allowed_extra=("notes",))
    return spec


# ---------------------------------------------------------------- loading


def data_dir() -> Path:
    """The shipped data: inside the installed package, or the checkout's top-level data/.

    $PLAN_DEPLOY_DATA_DIR points at another directory with the same five files (benchmarks, tests)."""
    import os

    return _data_dir(os.environ.get("PLAN_DEPLOY_DATA_DIR"))


@functools.lru_cache(maxsize=8)
def _data_dir(override: str | None) -> Path:
    if override:
        return Path(override)
    here = Path(__file__).resolve().parent
    for candidate in (here / "data", here.parent / "data"):
        if (candidate / "models.yaml").is_file():
            return candidate
    raise CatalogError("the shipped catalog (models.yaml) was not found",
                       hint="reinstall plan-deploy: pip install .")


def _load_yaml(path: Path) -> Any:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise CatalogError(f"cannot read {path.name}: {e.strerror or e}") from None
    try:
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise CatalogError(f"{path.name}: not valid YAML{where}: {getattr(e, 'problem', '') or e}") from None


def _list(doc: Any, key: str, fname: str) -> list:
    if not isinstance(doc, dict) or not isinstance(doc.get(key), list):
        raise CatalogError(f"{fname}: expected a top-level '{key}:' list")
    return doc[key]


def load(directory: Path | str | None = None) -> Catalog:
    """Load and validate the four catalogs; cached per directory."""
    return _load_cached(str(directory) if directory is not None else str(data_dir()))


@functools.lru_cache(maxsize=4)
def _load_cached(directory: str) -> Catalog:
    from . import catalog_cache

    return catalog_cache.load(Path(directory), _build, Catalog, warm=_warm)


def _warm(cat: Catalog) -> None:
    from . import memory

    memory.warm(cat)


def _build(d: Path) -> Catalog:
    """Read and validate every data file (no cache)."""
    mdoc = _load_yaml(d / "models.yaml")
    models = tuple(_model(m, f"models.yaml: models[{i}]") for i, m in enumerate(_list(mdoc, "models", "models.yaml")))
    rdoc = _load_yaml(d / "runtimes.yaml")
    runtimes = tuple(_runtime(r, f"runtimes.yaml: runtimes[{i}]")
                     for i, r in enumerate(_list(rdoc, "runtimes", "runtimes.yaml")))
    gdoc = _load_yaml(d / "gpus.yaml")
    gpus = tuple(_gpu(g, f"gpus.yaml: gpus[{i}]") for i, g in enumerate(_list(gdoc, "gpus", "gpus.yaml")))
    qdoc = _load_yaml(d / "quants.yaml")
    quants = {}
    ggml_bits = (qdoc.get("constants") or {}).get("ggml_type_bits", {}) if isinstance(qdoc, dict) else {}
    for i, q in enumerate(_list(qdoc, "quants", "quants.yaml")):
        spec = _quant(q, f"quants.yaml: quants[{i}]", ggml_bits)
        quants[spec.id.upper()] = spec
    constants = dict(qdoc.get("constants", {}) if isinstance(qdoc, dict) else {})
    cdoc = _load_yaml(d / "constants.yaml")
    if not isinstance(cdoc, dict):
        raise CatalogError("constants.yaml: expected a mapping")
    constants.update(cdoc)
    # CPU kernel facts read on every plan (planner/cpu_kernels.py, planner/cpu_repack.py): compiled
    # with the rest, so planning never parses YAML.
    for name in ("cpu_kernels", "cpu_repack"):
        doc = _load_yaml(d / f"{name}.yaml")
        if not isinstance(doc, dict):
            raise CatalogError(f"{name}.yaml: expected a mapping")
        constants[name] = doc
    cat = Catalog(models=models, runtimes=runtimes, gpus=gpus, quants=quants, constants=constants)
    _check_unique(cat)
    return cat


def _check_unique(cat: Catalog) -> None:
    seen: dict[str, str] = {}
    for m in cat.models:
        for name in (m.id, *m.aliases):
            key = name.lower()
            if key in seen and seen[key] != m.id:
                raise CatalogError(f"models.yaml: {name!r} names both {seen[key]} and {m.id}")
            seen[key] = m.id
        for a in m.artifacts:
            if a.format != "ollama" and a.quant.upper() not in cat.quants:
                raise CatalogError(f"models.yaml: {m.id}: artifact quant {a.quant!r} is not in quants.yaml")
    known = cat.constants.get("ggml_type_bits", {})
    for q in cat.quants.values():
        for table in (q.gguf, q.gqa4, q.many_experts, q.moe8):
            for cls, spec in table.items():
                names = spec if isinstance(spec, list) else [spec]
                if any(n not in known for n in names[::2]) or (len(names) > 1 and (
                        len(names) != 3 or names[1] not in GGUF_RULES)):
                    raise CatalogError(f"quants.yaml: {q.id}: {cls}: {spec!r} must be a ggml type of "
                                       f"ggml_type_bits or [TYPE, RULE, TYPE] with a rule of {', '.join(GGUF_RULES)}")
    for m in cat.models:
        for cls, t in m.gguf_tensor_types:
            if t not in known:
                raise CatalogError(f"models.yaml: {m.id}: gguf_tensor_types.{cls}: unknown ggml type {t!r}")
    ids = [r.id for r in cat.runtimes]
    if len(set(ids)) != len(ids):
        raise CatalogError("runtimes.yaml: duplicate runtime id")
    gids: set[str] = set()
    for g in cat.gpus:
        if g.id in gids:
            raise CatalogError(f"gpus.yaml: duplicate id {g.id!r}")
        gids.add(g.id)


# ---------------------------------------------------------------- finding models by name


def _norm(text: str) -> str:
    return text.strip().lower().removeprefix("hf.co/").removeprefix("https://huggingface.co/")


def find_models(query: str, cat: Catalog) -> list[ModelSpec]:
    """Models a user means by `query`: an id, alias, Hugging Face repo, Ollama tag or a size ("70b")."""
    import difflib
    import re

    from .errors import UsageError

    q = _norm(query)
    for m in cat.models:
        names = {m.id, m.hf_repo, *(m.aliases), *(a.tag for a in m.artifacts if a.tag),
                 *(a.repo for a in m.artifacts if a.repo), *([m.base_repo] if m.base_repo else [])}
        if q in {_norm(n) for n in names if n}:
            return [m]
    size = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([bm])", q)
    if size:
        value = float(size.group(1)) * (1e9 if size.group(2) == "b" else 1e6)
        # "about that size": within 15% of the stated total, or a MoE's stated active size
        hits = [m for m in cat.models if abs(m.params - value) <= 0.15 * value]
        if hits:
            return sorted(hits, key=lambda m: m.id)
        raise UsageError(f"no catalog model of about {size.group(1)}{size.group(2).upper()} parameters",
                         hint="see `plan-deploy models` for the catalog")
    names = sorted({m.id for m in cat.models} | {a for m in cat.models for a in m.aliases})
    close = difflib.get_close_matches(q, names, n=4, cutoff=0.5)
    hint = f"did you mean: {', '.join(close)}?" if close else "see `plan-deploy models` for the catalog"
    raise UsageError(f"unknown model {query!r}", hint=hint)
