"""Memory estimates: weights, KV cache and runtime overhead, one pure function per term.

Every constant comes from the catalog (data/*.yaml) with its source; this module holds formulas.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

from .catalog import Architecture, Catalog, ModelSpec, QuantSpec, RuntimeSpec
from .errors import PlannerError, UsageError

# ---------------------------------------------------------------- parameter counts per tensor class


@dataclass(frozen=True, slots=True)
class TensorGroup:
    """`count` tensors of one class, each of `params` weights with input width `ncols`, in `layer`."""

    cls: str
    params: int
    ncols: int
    layer: int | None  # None for embed/output/global tensors
    expert: bool = False
    quantized: bool = True  # norms, biases and routers stay F32


@functools.lru_cache(maxsize=512)
def tensor_groups(arch: Architecture) -> tuple[TensorGroup, ...]:
    """The model's weight tensors, grouped as llama.cpp's quantizer sees them.

    Per layer: the token mixer (full attention, MLA, or a Gated DeltaNet linear-attention block),
    two norms, and the FFN (dense, or routed experts + shared experts + router). A hybrid model
    mixes both token mixers; an interleaved MoE mixes both FFNs (`Moe.is_moe_layer`).
    """
    h, n = arch.hidden_size, arch.layers
    out: list[TensorGroup] = [TensorGroup("embed", arch.vocab_size * h, h, None)]
    if not arch.tied_embeddings:
        out.append(TensorGroup("output", arch.vocab_size * h, h, None))
    out.append(TensorGroup("norm", h, h, None, quantized=False))  # final norm
    moe = arch.moe
    for i in range(n):
        if arch.is_linear_layer(i):
            out.extend(_linear_attention_groups(arch, i))
        else:
            out.extend(_attention_groups(arch, i))
        out.append(TensorGroup("norm", 2 * h, h, i, quantized=False))  # attention + FFN norms
        if moe is not None and moe.is_moe_layer(i):
            e_i = moe.expert_intermediate_size
            for cls in ("ffn_gate", "ffn_up"):
                out.append(TensorGroup(cls, moe.experts * h * e_i, h, i, expert=True))
            out.append(TensorGroup("ffn_down", moe.experts * e_i * h, e_i, i, expert=True))
            out.append(TensorGroup("norm", h * moe.experts, h, i, quantized=False))  # router
            if moe.shared_experts:
                s_i = e_i * moe.shared_experts
                for cls in ("ffn_gate", "ffn_up"):
                    out.append(TensorGroup(cls, h * s_i, h, i))
                out.append(TensorGroup("ffn_down", s_i * h, s_i, i))
        else:
            for cls in ("ffn_gate", "ffn_up"):
                out.append(TensorGroup(cls, h * arch.intermediate_size, h, i))
            out.append(TensorGroup("ffn_down", arch.intermediate_size * h, arch.intermediate_size, i))
    return tuple(out)


def _attention_groups(arch: Architecture, i: int) -> list[TensorGroup]:
    """One attention layer's projections: MLA, fused QKV, or separate Q/K/V/O (+ output gate)."""
    h = arch.hidden_size
    q_dim = arch.attention_heads * arch.head_dim
    kv_dim = arch.kv_heads * arch.head_dim
    out: list[TensorGroup] = []
    if arch.mla is not None:
        m = arch.mla
        qk = (m.qk_nope_head_dim or 0) + m.qk_rope_head_dim
        v_dim = m.v_head_dim or arch.head_dim
        if m.q_lora_rank:
            out.append(TensorGroup("other", h * m.q_lora_rank, h, i))  # q_a
            out.append(TensorGroup("attn_q", m.q_lora_rank * arch.attention_heads * qk, m.q_lora_rank, i))
            out.append(TensorGroup("norm", m.q_lora_rank, m.q_lora_rank, i, quantized=False))
        else:
            out.append(TensorGroup("attn_q", h * arch.attention_heads * qk, h, i))
        out.append(TensorGroup("other", h * (m.kv_lora_rank + m.qk_rope_head_dim), h, i))  # kv_a_mqa
        out.append(TensorGroup("norm", m.kv_lora_rank, m.kv_lora_rank, i, quantized=False))
        # kv_b expands the latent to per-head K (nope) and V: quantized like attn_v.
        out.append(TensorGroup("attn_v", m.kv_lora_rank * arch.attention_heads * ((m.qk_nope_head_dim or 0) + v_dim),
                               m.kv_lora_rank, i))
        out.append(TensorGroup("attn_output", arch.attention_heads * v_dim * h, arch.attention_heads * v_dim, i))
    elif arch.fused_qkv:
        # One fused q|k|v tensor: llama.cpp's quantizer treats it like attn_v (category_is_attn_v).
        out.append(TensorGroup("attn_v", h * (q_dim + 2 * kv_dim), h, i))
        out.append(TensorGroup("attn_output", q_dim * h, q_dim, i))
    else:
        # Gated attention (Qwen3-Next): q_proj emits the query and a same-sized sigmoid gate.
        q_out = q_dim * (2 if arch.attn_output_gate else 1)
        out.append(TensorGroup("attn_q", h * q_out, h, i))
        out.append(TensorGroup("attn_k", h * kv_dim, h, i))
        out.append(TensorGroup("attn_v", h * kv_dim, h, i))
        out.append(TensorGroup("attn_output", q_dim * h, q_dim, i))
        if arch.qkv_bias:
            out.append(TensorGroup("norm", q_dim + 2 * kv_dim, h, i, quantized=False))
    return out


def _linear_attention_groups(arch: Architecture, i: int) -> list[TensorGroup]:
    """One Gated DeltaNet layer (Transformers' Qwen3NextGatedDeltaNet; llama.cpp ssm_* tensors).

    in_proj_qkvz: hidden -> 2 x key_dim + 2 x value_dim (q, k, v and the output gate z);
    in_proj_ba: hidden -> 2 x value_heads (beta and the decay input a); out_proj: value_dim -> hidden;
    conv1d: (2 x key_dim + value_dim) channels x conv_kernel taps, A_log and dt_bias per value head
    and the gated RMSNorm's value_head_dim weights stay F32 (llama-quantize skips ssm_conv1d and
    1-D tensors).
    """
    h = arch.hidden_size
    la = arch.linear_attention
    assert la is not None
    conv_dim = 2 * la.key_dim + la.value_dim
    return [
        TensorGroup("other", h * (2 * la.key_dim + 2 * la.value_dim), h, i),  # ssm_in (qkvz)
        TensorGroup("other", h * 2 * la.value_heads, h, i),  # ssm_ba
        TensorGroup("other", la.value_dim * h, la.value_dim, i),  # ssm_out
        TensorGroup("norm", conv_dim * la.conv_kernel + 2 * la.value_heads + la.value_head_dim, h, i,
                    quantized=False),  # ssm_conv1d, ssm_a, ssm_dt, ssm_norm
    ]


def computed_params(arch: Architecture) -> int:
    """Total parameters implied by the architecture (text model + any extra_params)."""
    return sum(g.params for g in tensor_groups(arch)) + arch.extra_params


def computed_active_params(arch: Architecture) -> int:
    """Parameters used per token: MoE layers count only the routed experts in use (+ shared)."""
    total = 0
    for g in tensor_groups(arch):
        if g.expert and arch.moe is not None:
            total += g.params * arch.moe.experts_per_token // arch.moe.experts
        else:
            total += g.params
    return total


# ---------------------------------------------------------------- weights


def _more_bits(i: int, n: int) -> bool:
    # use_more_bits() in llama.cpp src/llama-quant.cpp
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


_RULES = {
    "more_bits": _more_bits,
    "first_eighth": lambda i, n: i < n // 8,
    "first_sixteenth": lambda i, n: i < n // 16,
    "first_two": lambda i, n: i < 2,
    "first_four": lambda i, n: i < 4,
    "middle": lambda i, n: n // 8 <= i < 7 * n // 8,
}


def _pick(spec, nth: int, count: int) -> str:
    """A recipe entry: a ggml type, or [BASE, RULE, OTHER] (OTHER for the tensors RULE picks)."""
    if isinstance(spec, list):
        base, rule, other = spec
        return other if _RULES[rule](nth, count) else base
    return spec


def gguf_tensor_type(quant: QuantSpec, arch: Architecture, g: TensorGroup, nth: int, count: int,
                     constants: dict, pinned: tuple[tuple[str, str], ...] = ()) -> str:
    """The ggml type llama-quantize gives one tensor (llama_tensor_get_type_impl, simplified).

    `nth`/`count` are the tensor's position among tensors of its class (attn_v and ffn_down
    rules count tensors, not layers). `pinned`: the model's gguf_tensor_types (class -> type kept
    in every GGUF file, e.g. gpt-oss experts in MXFP4). Order as in src/llama-quant.cpp: the
    recipe, then GQA >= 4, then >= 4 experts, then exactly 8 experts, then the block-size fallback.
    """
    if not g.quantized:
        return "F32"
    recipe = quant.gguf
    cls = g.cls
    pins = dict(pinned)
    if g.expert and "experts" in pins:
        return pins["experts"]
    if g.expert and "experts" in recipe:
        return recipe["experts"]
    if cls == "embed" and arch.tied_embeddings:
        cls = "output"  # a shared tensor is quantized like the output head
    if cls in pins:
        return pins[cls]
    t = _pick(recipe.get(cls, recipe["default"]), nth, count)
    if cls in quant.gqa4 and arch.attention_heads // arch.kv_heads >= 4:
        t = _pick(quant.gqa4[cls], nth, count)
    moe = arch.moe
    if moe is not None and moe.experts >= 4 and cls in quant.many_experts:
        t = _pick(quant.many_experts[cls], nth, count)
    if moe is not None and moe.experts == 8 and cls in quant.moe8:
        t = _pick(quant.moe8[cls], nth, count)
    # A tensor whose rows are not a multiple of the block size falls back to another type.
    block = constants["ggml_block_size"].get(t)
    if block and g.ncols % block:
        t = constants["ggml_fallback"][t]
    return t


_BITS: dict[tuple, dict[str, float]] = {}


def _weight_bits(quant: QuantSpec, arch: Architecture, constants: dict, gguf: bool,
                 pinned: tuple[tuple[str, str], ...] = ()) -> dict[str, float]:
    """Bits per tensor class summed ("layers": repeating layers, "experts": MoE experts), memoized
    per (GGUF recipe or plain bits, quantization, architecture, pinned tensor types)."""
    key = (gguf, quant.id, arch, pinned if gguf else ())
    if key not in _BITS:
        _BITS[key] = _gguf_weight_bits(quant, arch, constants, pinned) if gguf else _plain_weight_bits(quant, arch)
    return dict(_BITS[key])


@functools.lru_cache(maxsize=512)
def _class_layout(arch: Architecture) -> tuple:
    """The tensors of each class, once per architecture: (class, count, positional groups, and the
    same groups summed by shape signature for recipes whose type ignores the position)."""
    by_class: dict[str, list[TensorGroup]] = {}
    for g in tensor_groups(arch):
        by_class.setdefault(g.cls, []).append(g)
    out = []
    for cls, groups in by_class.items():
        count = sum(1 for g in groups if g.layer is not None) or 1
        positional, summed = [], {}
        nth = 0
        for g in groups:
            key = "experts" if g.expert else ("layers" if g.layer is not None else g.cls)
            positional.append((nth, g, key))
            sig = (g.ncols, g.expert, g.quantized, g.layer is None)
            rep, params = summed.get(sig, (g, 0))
            summed[sig] = (rep, params + g.params)
            if g.layer is not None:
                nth += 1
        out.append((cls, count, tuple(positional), tuple(summed.values())))
    return tuple(out)


def _gguf_weight_bits(quant: QuantSpec, arch: Architecture, constants: dict,
                      pinned: tuple[tuple[str, str], ...] = ()) -> dict[str, float]:
    bits = constants["ggml_type_bits"]
    tables = (quant.gguf, quant.gqa4, quant.many_experts, quant.moe8)
    rows: list[tuple[TensorGroup, float, str]] = []
    for cls, count, positional, summed in _class_layout(arch):
        rules = sorted({t[cls][1] for t in tables if isinstance(t.get(cls), list)})
        if not rules:  # the type depends only on the tensor's shape and kind, not its position
            rows += [(g, params, gguf_tensor_type(quant, arch, g, 0, count, constants, pinned)) for g, params in summed]
            continue
        # Position-dependent: tensors whose rules fire alike get the same type; sum them first.
        sums: dict[tuple, list] = {}
        for nth, g, _ in positional:
            k = ((g.ncols, g.expert, g.quantized, g.layer is None),
                 tuple(_RULES[r](nth, count) for r in rules))
            entry = sums.get(k)
            if entry is None:
                sums[k] = [g, g.params, gguf_tensor_type(quant, arch, g, nth, count, constants, pinned)]
            else:
                entry[1] += g.params
        rows += [(g, params, t) for g, params, t in sums.values()]
    return _sum_bits((g, params, bits[t]) for g, params, t in rows)


def _sum_bits(rows) -> dict[str, float]:
    """Bits per key ("layers", "experts", "embed", "output", "norm") and the fidelity sums."""
    totals: dict[str, float] = {}
    fidelity = params_q = 0.0
    for g, params, b in rows:
        key = "experts" if g.expert else ("layers" if g.layer is not None else g.cls)
        totals[key] = totals.get(key, 0.0) + params * b
        if g.quantized:
            fidelity += params * min(b, FIDELITY_CAP_BITS)
            params_q += params
    totals["_fidelity"], totals["_params"] = fidelity, params_q
    return totals


# At 8 bits per weight and above, quantization loss is negligible: fidelity counts each tensor's
# bits up to 8, so F32, F16 and Q8_0 of one model tie, and MXFP4 experts count the same in all.
FIDELITY_CAP_BITS = 8.0


def _plain_weight_bits(quant: QuantSpec, arch: Architecture) -> dict[str, float]:
    rows = []
    for _cls, _count, _positional, summed in _class_layout(arch):
        for g, params in summed:
            if not g.quantized:
                b = 32.0 if quant.kind == "weight" else quant.bpw("default")
                b = min(b, 32.0)
            elif g.expert and "experts" in quant.bits:
                b = quant.bits["experts"]
            else:
                b = quant.bpw(g.cls if g.cls in ("embed", "output") else "default")
                if g.cls == "embed" and arch.tied_embeddings and "output" in quant.bits:
                    b = quant.bits["output"]
            rows.append((g, params, b))
    return _sum_bits(rows)


class Weights(NamedTuple):
    """Weight bytes of one model in one quantization and format (a tuple: cheap to store in the
    compiled catalog)."""

    total_bytes: int
    per_layer_bytes: int  # repeating layers, for layer-wise placement
    non_layer_bytes: int  # embeddings, output head, final norm (+ vision tower)
    source: str  # "artifact" (real file size) or "formula"
    read_bytes: int = 0  # read per generated token: routed experts in use, one embedding row
    fidelity_bits: float = 0.0  # mean bits per quantized weight, each tensor counted up to 8 bits


def weights(model: ModelSpec, quant: QuantSpec, fmt: str, catalog: Catalog, *,
            use_artifact: bool = True) -> Weights:
    """Weight bytes: the real artifact's size when the catalog has it, else bits per tensor class.

    Memoized in `catalog.memo` (stored with the compiled catalog, see `warm`)."""
    per_model = catalog.memo.setdefault("weights", {})
    slot = per_model.get(model.id)
    if slot is None or (slot[0] is not model and slot[0] != model):  # another model of that id: start over
        slot = per_model[model.id] = (model, {})
    memo = slot[1]
    key = (quant.id, _fmt_key(fmt), use_artifact)
    hit = memo.get(key)
    if hit is None:
        if use_artifact and _sized_artifact(model, fmt, quant.id) is None:
            hit = weights(model, quant, fmt, catalog, use_artifact=False)  # the same answer, stored once
        else:
            hit = _weights(model, quant, fmt, catalog, use_artifact)
        memo[key] = hit
    return hit


def _fmt_key(fmt: str) -> str:
    return "gguf" if fmt in ("gguf", "ollama") else fmt


def warm(catalog: Catalog) -> None:
    """Compute every catalog model's weights in every format of every quantization, so a stored
    compiled catalog answers them without the per-tensor recipes."""
    for model in catalog.models:
        for quant in catalog.quants.values():
            for fmt in {_fmt_key(f) for f in quant.formats}:
                for use_artifact in (False, True):
                    weights(model, quant, fmt, catalog, use_artifact=use_artifact)


def _weights(model: ModelSpec, quant: QuantSpec, fmt: str, catalog: Catalog, use_artifact: bool) -> Weights:
    arch = model.arch
    constants = catalog.constants
    totals = _weight_bits(quant, arch, constants, gguf=fmt in ("gguf", "ollama") and bool(quant.gguf),
                          pinned=model.gguf_tensor_types)
    fidelity = totals.pop("_fidelity", 0.0) / (totals.pop("_params", 0.0) or 1.0)
    experts = totals.pop("experts", 0.0) / 8
    layer_bytes = totals.pop("layers", 0.0) / 8 + experts
    non_layer = sum(totals.values()) / 8
    # Per generated token: every non-expert weight, the routed experts' share, no embedding table
    # (a lookup reads one row) unless it doubles as the output head.
    share = arch.moe.experts_per_token / arch.moe.experts if arch.moe else 1.0
    embed = 0.0 if arch.tied_embeddings else totals.get("embed", 0.0) / 8
    read = layer_bytes - experts + experts * share + non_layer - embed
    if fmt not in ("gguf", "ollama") and arch.extra_params:
        # Multimodal safetensors repos load their vision tower too (kept in 16 bits).
        non_layer += arch.extra_params * 2
    total = layer_bytes + non_layer
    source = "formula"
    if use_artifact:
        art = _sized_artifact(model, fmt, quant.id)
        if art is not None:
            scale = art / total if total else 1.0
            layer_bytes, non_layer, read = layer_bytes * scale, non_layer * scale, read * scale
            total, source = art, "artifact"
    return Weights(total_bytes=int(round(total)), per_layer_bytes=int(round(layer_bytes / arch.layers)),
                   non_layer_bytes=int(round(non_layer)), source=source, read_bytes=int(round(read)),
                   fidelity_bits=round(fidelity, 4))


def _sized_artifact(model: ModelSpec, fmt: str, quant: str) -> int | None:
    fmts = ("gguf",) if fmt in ("gguf", "ollama") else (fmt,)
    for a in model.artifacts:
        if a.format in fmts and a.quant.upper() == quant.upper() and a.size_bytes:
            return a.size_bytes
    return None


# ---------------------------------------------------------------- KV cache


def kv_bytes_per_token(arch: Architecture, bits_per_element: float, *, context: int,
                       sliding_window_cache: bool, mla_cache: bool) -> float:
    """Average KV-cache bytes per token of context, over all layers.

    Per layer and token: K and V, each kv_heads x head_dim elements (GQA/MQA use the KV heads,
    not the attention heads). Only layers that own a cache count (`Architecture.kv_layers`):
    linear-attention layers keep a fixed state instead (`recurrent_state_bytes`), and a KV-sharing
    tail (Gemma 3n) reads an earlier layer's cache (llama.cpp `llama_hparams::has_kv`).
    Sliding-window and chunked layers hold at most their window (`local_window`) when the runtime
    allocates them that way: llama.cpp's iSWA cache sizes them min(n_ctx, n_swa + n_ubatch) for
    both LLAMA_SWA_TYPE_STANDARD and _CHUNKED (src/llama-kv-cache-iswa.cpp), vLLM's
    ChunkedLocalAttentionSpec min(chunk + max_num_batched_tokens, max_model_len) per request
    (vllm @bc8282e6 vllm/v1/kv_cache_interface.py); the batch margin is left out here. MLA caches
    one latent of kv_lora_rank + rope dims instead of per-head K and V.
    """
    el = bits_per_element / 8
    layers = arch.kv_layers
    if arch.attention == "mla" and arch.mla is not None:
        if mla_cache:
            per_layer = (arch.mla.kv_lora_rank + arch.mla.qk_rope_head_dim) * el
        else:  # expanded: K = nope + rope dims, V = v_head_dim, per attention head
            m = arch.mla
            per_layer = arch.attention_heads * ((m.qk_nope_head_dim or 0) + m.qk_rope_head_dim
                                                + (m.v_head_dim or arch.head_dim)) * el
        return per_layer * layers
    per_layer = 2 * arch.kv_heads * arch.head_dim * el
    local = arch.sliding_layers
    window = arch.local_window
    if local and sliding_window_cache and window and context > window:
        tokens_per_layer = (layers - local) + local * window / context
        return per_layer * tokens_per_layer
    return per_layer * layers


def recurrent_state_bytes(arch: Architecture, bits_per_element: float) -> int:
    """Fixed state of the linear-attention layers for one sequence, in bytes (0 without any).

    Each Gated DeltaNet layer keeps its conv window and its recurrent matrix whatever the context
    (`LinearAttention.state_elements`); llama.cpp holds both in F32 (its recurrent memory's
    type_r/type_s), the bits come from data/constants.yaml `recurrent_state_bits`.
    """
    la = arch.linear_attention
    if la is None:
        return 0
    return int(arch.linear_layers * la.state_elements * bits_per_element / 8)


def kv_cache(arch: Architecture, context: int, batch: int, bits_per_element: float, *,
             sliding_window_cache: bool, mla_cache: bool, state_bits: float = 32.0) -> int:
    """KV cache of `batch` sequences of `context` tokens, plus each sequence's recurrent state."""
    per_token = kv_bytes_per_token(arch, bits_per_element, context=context,
                                   sliding_window_cache=sliding_window_cache, mla_cache=mla_cache)
    return int(round(per_token * context * batch)) + recurrent_state_bytes(arch, state_bits) * batch


# ---------------------------------------------------------------- overhead


def activation_bytes_per_token(arch: Architecture, constants: dict) -> int:
    """Transformers' prefill peak above weights and KV, per prompt token (bf16 activations).

    Measured on an H100 (tests/data/h100-transformers-memory.json): Llama-3.1-8B 119,312 and
    Qwen2.5-7B ~143,000 bytes per token, linear in the prompt length; 6 x intermediate + 8 x
    hidden reproduces both within 0.6% (gate, up and act in bf16, plus residual/norm copies).
    """
    c = constants["activation_bytes_per_token"]
    inter = arch.intermediate_size
    if arch.moe is not None:
        inter = arch.moe.expert_intermediate_size * arch.moe.experts_per_token
    return int(c["intermediate"] * inter + c["hidden"] * arch.hidden_size)


def gguf_compute_buffer(arch: Architecture, n_ubatch: int) -> int:
    """llama.cpp's compute buffer: the f32 logits of one micro-batch plus its FFN activations."""
    return int(n_ubatch * 4 * (arch.vocab_size + 2 * arch.intermediate_size))


def gguf_cpu_compute_buffer(arch: Architecture, n_ubatch: int, context: int, constants: dict) -> int:
    """llama.cpp's CPU compute buffer (sched_reserve "CPU compute buffer size"), in bytes.

    n_ubatch x 4 bytes x (ffn_floats x intermediate + hidden_floats x hidden): the f32 activations
    the graph allocator keeps alive at once for one micro-batch; plus the f16 attention mask of
    n_ubatch x context. Logits are not in it: the CPU graph computes only the outputs it returns
    (the output buffer, vocab x 4 bytes per sequence, is separate). The two float counts are in
    data/constants.yaml (llamacpp_cpu_compute), fitted to llama.cpp's own log lines with
    scripts/calibrate_cpu.py; MoE models use the expert width times the experts in use.
    """
    k = constants["llamacpp_cpu_compute"]
    ff = arch.intermediate_size
    if arch.moe is not None:
        ff = arch.moe.expert_intermediate_size * (arch.moe.experts_per_token + arch.moe.shared_experts)
    per_token = 4 * (k["ffn_floats"] * ff + k["hidden_floats"] * arch.hidden_size)
    return int(n_ubatch * per_token + n_ubatch * context * k["mask_bytes_per_kv"])


def gguf_output_buffer(arch: Architecture, batch: int) -> int:
    """llama.cpp's host output buffer: one f32 row of logits per sequence (vocab x 4 bytes)."""
    return 4 * arch.vocab_size * batch


# ---------------------------------------------------------------- the estimate


@dataclass(frozen=True, slots=True)
class MemoryEstimate:
    model: str
    hf_repo: str
    quant: str
    runtime: str
    format: str
    context: int
    batch: int
    kv_cache_type: str
    weights_bytes: int
    kv_cache_bytes: int
    overhead_bytes: int  # device-side fixed costs: CUDA context, compute buffers, activations
    layers: int
    per_layer_bytes: int
    non_layer_bytes: int
    kv_bytes_per_token: float
    weights_source: str
    weights_read_bytes: int = 0  # weights read per generated token (MoE: experts in use)
    weights_fidelity_bits: float = 0.0  # Weights.fidelity_bits: how close to the original the weights are
    notes: tuple[str, ...] = ()
    kv_state_bytes: int = 0  # part of kv_cache_bytes that does not grow with context (recurrent state)

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_cache_bytes + self.overhead_bytes

    def to_dict(self) -> dict:
        return {
            "model": self.model, "hf_repo": self.hf_repo, "quant": self.quant, "runtime": self.runtime,
            "context": self.context, "batch": self.batch, "kv_cache_type": self.kv_cache_type,
            "weights_bytes": self.weights_bytes, "kv_cache_bytes": self.kv_cache_bytes,
            "overhead_bytes": self.overhead_bytes, "total_bytes": self.total_bytes,
            "weights_source": self.weights_source,
            "kv_cache_bytes_per_token": int(round(self.kv_bytes_per_token)),
            **({"kv_state_bytes": self.kv_state_bytes} if self.kv_state_bytes else {}),
            "notes": list(self.notes),
        }


def carrying_formats(quant: QuantSpec, runtime: RuntimeSpec) -> list[str]:
    """The runtime's formats that can hold this quantization (Ollama's are GGUF files)."""
    return [fmt for fmt in runtime.formats
            if fmt in quant.formats or (fmt == "ollama" and "gguf" in quant.formats)
            or (fmt in ("awq", "gptq") and quant.id.lower() == fmt)]


def artifact_format(model: ModelSpec, quant: QuantSpec, runtime: RuntimeSpec) -> str | None:
    """Which of the runtime's formats has a catalogued artifact of this quantization (None: none)."""
    for fmt in carrying_formats(quant, runtime):
        if model.artifact(fmt, quant.id) is not None:
            return fmt
    return None


def estimate(model: ModelSpec, quant_id: str, runtime: RuntimeSpec, catalog: Catalog, *,
             context: int | None = None, batch: int = 1, kv_cache_type: str | None = None,
             gpu: bool = True, options=None, devices: tuple = ()) -> MemoryEstimate:
    """Weights + KV cache + overhead of one configuration. `gpu=False` drops device-only costs;
    `devices`: the GPUs it may run on, for runtimes whose defaults depend on the GPU (vLLM)."""
    if batch < 1:
        raise UsageError(f"batch must be at least 1, not {batch}")
    quant = catalog.quants.get(quant_id.upper())
    if quant is None:
        raise UsageError(f"unknown quantization {quant_id!r}",
                         hint="known: " + ", ".join(sorted(catalog.quants)))
    if quant.id not in runtime.quants:
        raise PlannerError(f"{runtime.id} does not load {quant.id}",
                           hint=f"{runtime.id} loads: {', '.join(runtime.quants)}")
    fmt = artifact_format(model, quant, runtime)
    notes: list[str] = []
    if fmt is None:
        # No catalogued file: the recipe gives the size of the file one would make.
        fmt = next(iter(carrying_formats(quant, runtime)), runtime.formats[0])
        notes.append(f"the catalog lists no {quant.id} artifact of {model.id}: weights from the quantization "
                     f"recipe (model has: {', '.join(model.quants())})")
    if context is None:
        context = default_context(model, runtime)
        notes.append(f"context {context}: {runtime.id}'s default for this model")
    if context > model.context_length:
        limit = model.context_length_extended or model.context_length
        if context > limit:
            raise UsageError(f"context {context} exceeds {model.id}'s trained context of {limit} tokens")
        notes.append(f"context {context} is beyond the native {model.context_length}: needs RoPE scaling (YaRN)")
    kv_type = kv_cache_type or next(iter(runtime.kv_cache_types))
    if kv_type not in runtime.kv_cache_types:
        raise UsageError(f"{runtime.id} has no KV cache type {kv_type!r}",
                         hint="choose from " + ", ".join(runtime.kv_cache_types))
    w = weights(model, quant, fmt, catalog)
    if w.source == "artifact":
        notes.append("weights: the artifact's real file size")
    arch = model.arch
    kv_bits = runtime.kv_cache_types[kv_type]
    per_token = kv_bytes_per_token(arch, kv_bits, context=context,
                                   sliding_window_cache=runtime.sliding_window_cache, mla_cache=runtime.mla_cache)
    state = recurrent_state_bytes(arch, float(catalog.constants.get("recurrent_state_bits", 32))) * batch
    kv = int(round(per_token * context * batch)) + state
    window = arch.local_window
    if arch.sliding_layers and runtime.sliding_window_cache and context > (window or 0):
        kind = "chunk" if arch.attention == "chunked" else "sliding window"
        notes.append(f"{arch.sliding_layers} of {arch.layers} layers use a {window}-token "
                     f"{kind}: their cache stops growing there")
    if arch.attention == "mla":
        notes.append("MLA: the cache holds one compressed latent per layer, not per-head K and V")
    if arch.linear_attention is not None:
        notes.append(f"{arch.linear_layers} of {arch.layers} layers are linear attention: a fixed "
                     f"{state / batch / 2**20:.0f} MiB state per sequence instead of a growing KV cache")
    if arch.kv_shared_layers:
        notes.append(f"the last {arch.kv_shared_layers} of {arch.layers} layers reuse earlier layers' KV cache")
    overhead = _overhead(model, runtime, catalog, context, batch, gpu, options, devices)
    return MemoryEstimate(
        model=model.id, hf_repo=model.hf_repo, quant=quant.id, runtime=runtime.id, format=fmt,
        context=context, batch=batch, kv_cache_type=kv_type, weights_bytes=w.total_bytes, kv_cache_bytes=kv,
        overhead_bytes=overhead, layers=arch.layers, per_layer_bytes=w.per_layer_bytes,
        non_layer_bytes=w.non_layer_bytes, kv_bytes_per_token=per_token, weights_source=w.source,
        weights_read_bytes=w.read_bytes, weights_fidelity_bits=w.fidelity_bits, notes=tuple(notes),
        kv_state_bytes=state)


def on_cpu(est: MemoryEstimate, model: ModelSpec, runtime: RuntimeSpec, catalog: Catalog,
           options=None) -> MemoryEstimate:
    """The same estimate without device-only costs: what `estimate(..., gpu=False, options=options)`
    returns (only the overhead depends on the device; weights and KV cache do not)."""
    from dataclasses import replace

    return replace(est, overhead_bytes=_overhead(model, runtime, catalog, est.context, est.batch, False, options))


def _overhead(model: ModelSpec, runtime: RuntimeSpec, catalog: Catalog, context: int, batch: int,
              gpu: bool, options=None, devices: tuple = ()) -> int:
    """The runtime's own overhead terms (planner/runtimes/<runtime>.py overhead_bytes)."""
    from .runtimes import Options, get

    return get(runtime).overhead_bytes(model, catalog, context, batch, gpu, options or Options(), devices)


def expert_share(arch: Architecture) -> float:
    """Share of a repeating layer's parameters that are routed experts (0 for dense models)."""
    if arch.moe is None:
        return 0.0
    return _expert_share(arch)


@functools.lru_cache(maxsize=512)
def _expert_share(arch: Architecture) -> float:
    layer = expert = 0
    for g in tensor_groups(arch):
        if g.layer is None:
            continue
        layer += g.params
        if g.expert:
            expert += g.params
    return expert / layer if layer else 0.0


def scale_weights(est: "MemoryEstimate", factor: float, note: str | None) -> "MemoryEstimate":
    """The estimate with its weights loaded at `factor` times the file's bytes (a runtime that
    up-casts, e.g. vLLM's float32 for Gemma on GPUs without BF16)."""
    if factor == 1.0 and not note:
        return est
    from dataclasses import replace

    return replace(est, weights_bytes=int(est.weights_bytes * factor),
                   per_layer_bytes=int(est.per_layer_bytes * factor),
                   non_layer_bytes=int(est.non_layer_bytes * factor),
                   weights_read_bytes=int(est.weights_read_bytes * factor),
                   notes=est.notes + ((note,) if note else ()))


def default_context(model: ModelSpec, runtime: RuntimeSpec, vram_total: int = 0) -> int:
    """The context a runtime picks when none is given (Ollama: by VRAM; others: the model's)."""
    tiers = runtime.memory.get("default_context_tiers")
    if tiers:
        ctx = tiers[0][1]
        for threshold, value in tiers:
            if vram_total >= threshold:
                ctx = value
        return min(ctx, model.context_length)
    return model.context_length


def context_within(budget_bytes: int, est: MemoryEstimate, max_context: int) -> int:
    """The longest context whose KV cache fits in `budget_bytes` next to weights and overhead."""
    free = budget_bytes - est.weights_bytes - est.overhead_bytes - est.kv_state_bytes
    if free <= 0 or est.kv_bytes_per_token <= 0:
        return 0
    return int(min(max_context, free // (est.kv_bytes_per_token * est.batch)))
