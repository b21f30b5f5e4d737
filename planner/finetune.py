"""Fine-tune planning: memory per term, the largest micro-batch x sequence that fits, time per epoch.

Pure functions over the catalog's Architecture; every constant comes from data/finetune.yaml with its source.
Bytes are ints until output; token counts are micro-batch x sequence length.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .catalog import Architecture, Catalog, ModelSpec
from .errors import CatalogError, UsageError
from .memory import activation_bytes_per_token, tensor_groups

METHODS = ("qlora", "lora", "full")
FRAMEWORKS = ("unsloth", "transformers", "axolotl")
TARGETS = ("all-linear", "attention")
OPTIMIZERS = ("adamw", "adamw-8bit", "paged-adamw-8bit")
ATTENTION_CLASSES = ("attn_q", "attn_k", "attn_v", "attn_output", "other")


# ---------------------------------------------------------------- constants


@functools.lru_cache(maxsize=2)
def load_constants(directory: str | None = None) -> dict[str, Any]:
    """data/finetune.yaml, checked for the keys the formulas read (CatalogError names the missing one)."""
    from .catalog import _load_yaml, data_dir

    d = Path(directory) if directory else data_dir()
    doc = _load_yaml(d / "finetune.yaml")
    need = {"nf4": ("bits_per_weight", "sources"), "lora": ("weight_bytes", "grad_bytes", "sources"),
            "full": ("weight_bytes", "grad_bytes", "master_bytes", "sources"),
            "flops": ("forward", "backward_activations", "backward_weights", "recompute", "sources"),
            "mfu": ("low", "expected", "high"), "optimizers": OPTIMIZERS, "frameworks": FRAMEWORKS}
    if not isinstance(doc, dict):
        raise CatalogError("finetune.yaml: expected a mapping")
    for key, fields in need.items():
        if not isinstance(doc.get(key), dict):
            raise CatalogError(f"finetune.yaml: '{key}' is missing")
        for f in fields:
            if f not in doc[key]:
                raise CatalogError(f"finetune.yaml: '{key}.{f}' is missing")
    for fid, fw in doc["frameworks"].items():
        for f in ("checkpoints", "fused_cross_entropy", "activation_factor", "dequant_buffers", "sources"):
            if f not in fw:
                raise CatalogError(f"finetune.yaml: frameworks.{fid}: '{f}' is missing")
    if not isinstance(doc.get("vllm_max_lora_ranks"), list):
        raise CatalogError("finetune.yaml: 'vllm_max_lora_ranks' must be a list")
    return doc


# ---------------------------------------------------------------- LoRA parameter count


@dataclass(frozen=True, slots=True)
class Adapted:
    """`count` matrices of d_in -> d_out that receive a LoRA pair (A: r x d_in, B: d_out x r)."""

    name: str
    d_in: int
    d_out: int
    count: int


def adapted_matrices(arch: Architecture, target: str, *, unfuse: bool = False) -> tuple[Adapted, ...]:
    """The linear layers a LoRA adapter wraps, summed over layers (and MoE experts when targeted).

    `all-linear` is PEFT's shorthand: every nn.Linear in the decoder blocks (not the output head). `attention`:
    q, k, v, o only. GQA shrinks k and v to kv_heads x head_dim outputs. Phi-3-style models fuse q|k|v and
    gate|up into one matrix each (`fused_qkv`); `unfuse` counts them separately, as Unsloth loads them.
    """
    if target not in TARGETS:
        raise UsageError(f"unknown --target {target!r}", hint="choose from " + ", ".join(TARGETS))
    acc: dict[tuple[str, int, int], int] = {}

    def add(name: str, d_in: int, d_out: int, n: int) -> None:
        acc[(name, d_in, d_out)] = acc.get((name, d_in, d_out), 0) + n

    h = arch.hidden_size
    q_dim, kv_dim = arch.attention_heads * arch.head_dim, arch.kv_heads * arch.head_dim
    for g in tensor_groups(arch):
        if g.layer is None or not g.quantized:
            continue  # embeddings, output head, norms, routers
        attention = g.cls in ATTENTION_CLASSES
        if target == "attention" and not attention:
            continue
        n = arch.moe.experts if (g.expert and arch.moe) else 1
        d_in = g.ncols
        d_out = g.params // (n * d_in)
        if arch.fused_qkv and g.cls == "attn_v" and unfuse:
            add("q_proj", h, q_dim, 1)
            add("k_proj", h, kv_dim, 1)
            add("v_proj", h, kv_dim, 1)
            continue
        if arch.fused_qkv and g.cls in ("ffn_gate", "ffn_up") and not unfuse:
            if g.cls == "ffn_gate":  # one gate|up matrix of 2 x intermediate outputs
                add("gate_up_proj", h, 2 * d_out, 1)
            continue
        name = "qkv_proj" if (arch.fused_qkv and g.cls == "attn_v") else g.cls
        add(name, d_in, d_out, n)
    return tuple(Adapted(name, d_in, d_out, c) for (name, d_in, d_out), c in acc.items())


def lora_params(arch: Architecture, rank: int, target: str = "all-linear", *, unfuse: bool = False) -> int:
    """Trainable LoRA parameters: rank x sum(d_in + d_out) over the adapted matrices.

    Llama-3.1-8B, r=16, all linear layers: 16 x 32 x (8192 + 5120 + 5120 + 8192 + 3 x 18432) = 41,943,040.
    """
    return sum(rank * (a.d_in + a.d_out) * a.count for a in adapted_matrices(arch, target, unfuse=unfuse))


def max_rank(arch: Architecture, target: str) -> int:
    """The largest useful rank: the smallest dimension among the adapted matrices."""
    return min(min(a.d_in, a.d_out) for a in adapted_matrices(arch, target))


# ---------------------------------------------------------------- memory terms


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    method: str = "qlora"
    rank: int = 16
    target: str = "all-linear"
    framework: str = "unsloth"
    optimizer: str = "adamw-8bit"
    seq_len: int = 2048
    micro_batch: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Memory:
    """Device memory of one fine-tuning setup: fixed terms plus `per_token_bytes` x micro-batch x sequence."""

    terms: dict[str, int]  # name -> bytes, fixed (independent of tokens)
    per_token_bytes: int  # device bytes per token of micro-batch x sequence
    per_token_terms: dict[str, int]
    cpu_per_token_bytes: int  # offloaded activation checkpoints (Unsloth), in CPU RAM
    trainable_params: int
    base_16bit_bytes: int  # the base in 16 bits: what a merge loads
    notes: tuple[str, ...] = field(default=())

    @property
    def fixed_bytes(self) -> int:
        return sum(self.terms.values())

    def total_bytes(self, tokens: int) -> int:
        return self.fixed_bytes + self.per_token_bytes * tokens

    def max_tokens(self, budget_bytes: int, ram_bytes: int | None = None) -> int:
        """Largest micro-batch x sequence whose memory fits `budget_bytes` (and CPU RAM for offloads)."""
        free = budget_bytes - self.fixed_bytes
        if free <= 0:
            return 0
        n = free // self.per_token_bytes
        if ram_bytes is not None and self.cpu_per_token_bytes:
            n = min(n, max(0, ram_bytes) // self.cpu_per_token_bytes)
        return int(n)


def base_weight_bytes(arch: Architecture, method: str, consts: dict) -> dict[str, int]:
    """The frozen (or trained, for `full`) base: decoder linears and the embedding/output pair, in bytes.

    QLoRA: decoder nn.Linear weights at NF4 + double-quant bits (4.127); embeddings, output head and norms 16-bit.
    LoRA and full: everything 16-bit (2 bytes). Vision towers (extra_params) are not loaded for text tuning.
    """
    linear = other = 0
    for g in tensor_groups(arch):
        if g.layer is not None and g.quantized:
            linear += g.params
        else:
            other += g.params
    if method == "qlora":
        bits = float(consts["nf4"]["bits_per_weight"])
        return {"base_linear_4bit": int(round(linear * bits / 8)), "base_embed_head_16bit": other * 2}
    return {"base_16bit": (linear + other) * 2}


def estimate(model: ModelSpec, req: Request, consts: dict, cat: Catalog) -> Memory:
    """Memory terms of one setup (sources: data/finetune.yaml; the CUDA context and the one-layer activation
    form from the catalog: data/runtimes.yaml, data/constants.yaml).

    fixed: base weights; trainable state (LoRA: fp32 adapters + fp32 grads + optimizer states; full: 16-bit
    weights and grads + fp32 master + optimizer states); dequantization buffers (QLoRA); CUDA context.
    per token: the framework's measured one-layer working set, activation checkpoints (on the GPU unless the
    framework offloads them to CPU RAM) and the logits (none with fused cross-entropy).
    """
    if req.method not in METHODS:
        raise UsageError(f"unknown method {req.method!r}", hint="choose from " + ", ".join(METHODS))
    if req.framework not in FRAMEWORKS:
        raise UsageError(f"unknown framework {req.framework!r}", hint="choose from " + ", ".join(FRAMEWORKS))
    if req.optimizer not in OPTIMIZERS:
        raise UsageError(f"unknown optimizer {req.optimizer!r}", hint="choose from " + ", ".join(OPTIMIZERS))
    arch = model.arch
    fw = consts["frameworks"][req.framework]
    opt = consts["optimizers"][req.optimizer]
    notes: list[str] = []
    terms = dict(base_weight_bytes(arch, req.method, consts))
    all_params = sum(g.params for g in tensor_groups(arch))
    if req.method == "full":
        f = consts["full"]
        trainable = all_params
        terms["gradients_16bit"] = trainable * int(f["grad_bytes"])
        terms["master_weights_fp32"] = trainable * int(f["master_bytes"])
        terms["optimizer_states"] = trainable * int(opt["state_bytes"])
    else:
        top = max_rank(arch, req.target)
        if req.rank < 1 or req.rank > top:
            raise UsageError(f"rank {req.rank} is outside 1..{top} for {model.id}",
                             hint=f"the smallest adapted matrix has {top} rows or columns; common ranks are 8-64")
        trainable = lora_params(arch, req.rank, req.target, unfuse=bool(fw.get("unfuses_projections")))
        lc = consts["lora"]
        terms["lora_weights_fp32"] = trainable * int(lc["weight_bytes"])
        terms["lora_gradients_fp32"] = trainable * int(lc["grad_bytes"])
        terms["optimizer_states"] = trainable * int(opt["state_bytes"])
    if req.method == "qlora":
        biggest = arch.hidden_size * _widest_ffn(arch) * 2
        terms["dequant_buffers"] = int(round(float(fw["dequant_buffers"]) * biggest))
    terms["cuda_context"] = cuda_context(cat)
    if opt.get("paged"):
        notes.append("paged optimizer: its states can spill to CPU RAM under memory pressure")
    per_token = {"layer_working_set": int(round(float(fw["activation_factor"])
                                                * activation_bytes_per_token(arch, cat.constants)))}
    checkpoints = arch.layers * arch.hidden_size * 2
    cpu_per_token = 0
    if fw["checkpoints"] == "gpu":
        per_token["checkpoints"] = checkpoints
    else:
        cpu_per_token = checkpoints
        notes.append(f"{fw['name']} offloads activation checkpoints to CPU RAM: "
                     f"{checkpoints:,} bytes per token of micro-batch x sequence")
    if not fw["fused_cross_entropy"]:
        per_token["logits"] = int(round(arch.vocab_size * float(fw["logit_bytes_per_vocab"])))
    return Memory(terms=terms, per_token_bytes=sum(per_token.values()), per_token_terms=per_token,
                  cpu_per_token_bytes=cpu_per_token, trainable_params=trainable,
                  base_16bit_bytes=all_params * 2, notes=tuple(notes))


def _widest_ffn(arch: Architecture) -> int:
    return arch.moe.expert_intermediate_size if arch.moe is not None else arch.intermediate_size


# ---------------------------------------------------------------- multi-GPU


# Memory terms each multi-GPU strategy divides among the GPUs (by name prefix; ZeRO paper, section 5).
SHARDED = {"ddp": (), "zero2": ("lora_gradients", "gradients", "optimizer", "master"),
           "zero3": ("lora_gradients", "gradients", "optimizer", "master", "base", "lora_weights")}


def sharded(mem: Memory, n: int, stage: str) -> Memory:
    """Per-GPU memory with `n` GPUs: `ddp` replicates; `zero2` shards gradients and optimizer states;
    `zero3` (FSDP) also shards the weights (a 4-bit base too). Activations stay per GPU (ZeRO paper, 5)."""
    if stage == "ddp" or n <= 1:
        return mem
    shard = SHARDED[stage]
    terms = {k: (-(-v // n) if k.startswith(shard) else v) for k, v in mem.terms.items()}
    return Memory(terms=terms, per_token_bytes=mem.per_token_bytes, per_token_terms=mem.per_token_terms,
                  cpu_per_token_bytes=mem.cpu_per_token_bytes, trainable_params=mem.trainable_params,
                  base_16bit_bytes=mem.base_16bit_bytes, notes=mem.notes)


# ---------------------------------------------------------------- time


def flops_per_token(model: ModelSpec, method: str, seq_len: int, consts: dict, trainable: int = 0) -> float:
    """Training FLOPs per token (Kaplan et al.: forward 2N + 2 x layers x context x d_attn).

    Full: forward + backward through activations + weight gradients + recompute = 8N with checkpointing.
    LoRA/QLoRA: no weight gradients for the frozen base = 6N, plus 6 per trainable adapter parameter.
    N = parameters used per token (MoE: active), without the embedding lookup.
    """
    f = consts["flops"]
    arch = model.arch
    n = model.decode_params - arch.vocab_size * arch.hidden_size * (0 if arch.tied_embeddings else 1)
    mult = f["forward"] + f["backward_activations"] + f["recompute"]
    if method == "full":
        mult += f["backward_weights"]
    attn = 2 * arch.layers * seq_len * arch.attention_heads * arch.head_dim
    per_token = mult / 2 * (2 * n + attn)
    if method != "full":
        per_token += 6 * trainable
    return float(per_token)


@dataclass(frozen=True, slots=True)
class EpochTime:
    tokens: int
    seconds_low: float  # at the highest MFU
    seconds_expected: float
    seconds_high: float  # at the lowest MFU


def epoch_time(tokens: int, flops_token: float, peak_flops: float, n_gpus: int, consts: dict) -> EpochTime:
    """Seconds per epoch = tokens x FLOPs/token / (GPUs x dense BF16 FLOP/s x MFU); MFU range is a policy."""
    m = consts["mfu"]
    work = tokens * flops_token
    rate = peak_flops * n_gpus
    return EpochTime(tokens=tokens, seconds_low=work / (rate * m["high"]),
                     seconds_expected=work / (rate * m["expected"]), seconds_high=work / (rate * m["low"]))


# ---------------------------------------------------------------- serving the adapter


def vllm_rank(rank: int, consts: dict) -> int:
    """--max-lora-rank: the smallest allowed value at or above the adapter's rank."""
    for r in consts["vllm_max_lora_ranks"]:
        if r >= rank:
            return int(r)
    raise UsageError(f"rank {rank} is above vLLM's largest --max-lora-rank "
                     f"({consts['vllm_max_lora_ranks'][-1]})", hint="merge the adapter and serve the merged model")


def commands(model: ModelSpec, rank: int, adapter_dir: str, consts: dict) -> dict[str, Any]:
    """What follows training: merge or serve the adapter, each command an argv list."""
    gguf = next((a for a in model.artifacts if a.format == "gguf"), None)
    tag = next((a.tag for a in model.artifacts if a.format == "ollama" and a.tag), None)
    out: dict[str, Any] = {
        "vllm": [["vllm", "serve", model.hf_repo, "--enable-lora", "--lora-modules", f"ft={adapter_dir}",
                  "--max-lora-rank", str(vllm_rank(rank, consts))]],
        "llama.cpp": [["python", "convert_lora_to_gguf.py", "--base-model-id", model.hf_repo, "--outfile",
                       "ft-lora.gguf", adapter_dir]],
        "ollama": {"modelfile": [f"FROM {tag or model.hf_repo}", f"ADAPTER {adapter_dir}"],
                   "argv": [["ollama", "create", "ft", "-f", "Modelfile"], ["ollama", "run", "ft"]]},
        "merge": [["llama-export-lora", "-m", "base-f16.gguf", "--lora", "ft-lora.gguf", "-o", "merged-f16.gguf"]],
    }
    if gguf is not None:
        out["llama.cpp"].append(["llama-server", "-hf", f"{gguf.repo}:{gguf.quant}", "--lora", "ft-lora.gguf"])
    else:
        out["llama.cpp"].append(["llama-server", "-m", "base.gguf", "--lora", "ft-lora.gguf"])
    return out


def cuda_context(cat: Catalog) -> int:
    """The measured CUDA context of a PyTorch process (data/runtimes.yaml, transformers: H100 measurement)."""
    return int(cat.runtime("transformers").memory["cuda_context_bytes"])


def minimum_bytes(mem: Memory, consts: dict) -> int:
    """Unsloth's "absolute minimum": micro-batch 1 x `minimum_table_tokens` (policy, data/finetune.yaml), as
    torch's allocator reports it (no CUDA context)."""
    return mem.total_bytes(int(consts["minimum_table_tokens"])) - mem.terms.get("cuda_context", 0)


def loaded_bytes(mem: Memory) -> int:
    """Weights and adapters after loading, before the first step (what Unsloth's notebooks print first)."""
    return sum(v for k, v in mem.terms.items() if k.startswith(("base", "lora_weights")))
