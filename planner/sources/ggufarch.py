"""A GGUF header's metadata -> `catalog.Architecture` (the dims the KV cache and speed need).

Keys (llama.cpp gguf-py constants.py, Keys.LLM / Keys.Attention): `{arch}.block_count`,
`.embedding_length`, `.feed_forward_length`, `.context_length`, `.attention.head_count`,
`.attention.head_count_kv`, `.attention.key_length`, `.attention.sliding_window`,
`.expert_count`, `.expert_used_count`, `.expert_feed_forward_length`, `.expert_shared_count`,
`.leading_dense_block_count`, `.attention.kv_lora_rank`, `.attention.q_lora_rank`,
`.rope.dimension_count`; vocabulary = length of `tokenizer.ggml.tokens`.
"""

from __future__ import annotations

import functools
from typing import Any

from ..catalog import Architecture, Mla, Moe
from ..errors import ModelFileError
from .gguf import GgufArray, GgufFile


@functools.lru_cache(maxsize=1)
def supported_architectures() -> dict[str, dict[str, Any]]:
    """general.architecture -> per-architecture settings (data/gguf.yaml `architectures:`)."""
    from ..catalog import _load_yaml, data_dir

    return {str(k): dict(v or {}) for k, v in _load_yaml(data_dir() / "gguf.yaml")["architectures"].items()}


def _scalar(value: Any) -> Any:
    """A per-layer array counts as its largest value (the layer that needs the most)."""
    if isinstance(value, GgufArray):
        return max(value.values) if value.values else None
    return value


def architecture(g: GgufFile) -> tuple[Architecture, int]:
    """(Architecture, trained context length) from a GGUF header.

    Raises ModelFileError naming the missing key, or the architecture when the planner cannot
    size it (recurrent, hybrid or encoder models).
    """
    arch = g.architecture
    name = g.path.name
    if arch is None:
        raise ModelFileError(f"{name}: the GGUF header has no general.architecture",
                             hint="the file is not a model (an adapter or a projector?): pass the model's GGUF")
    table = supported_architectures()
    if arch not in table:
        raise ModelFileError(f"{name}: general.architecture = {arch!r}, which the planner cannot size",
                             hint="sized architectures: " + ", ".join(sorted(table)))
    settings = table[arch]

    def need(key: str) -> int:
        value = _scalar(g.arch_value(key))
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ModelFileError(f"{name}: the GGUF header lacks {arch}.{key}, needed to size the model",
                                 hint="convert the model again with a current llama.cpp (convert_hf_to_gguf.py)")
        return value

    def opt(key: str, default: Any = None) -> Any:
        value = _scalar(g.arch_value(key))
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default

    layers, hidden, heads = need("block_count"), need("embedding_length"), need("attention.head_count")
    kv_heads = opt("attention.head_count_kv", heads)
    head_dim = opt("attention.key_length", hidden // heads)
    tokens = g.metadata.get("tokenizer.ggml.tokens")
    vocab = tokens.length if isinstance(tokens, GgufArray) else opt("vocab_size")
    if not vocab:
        embd = next((t for t in g.tensors if t.name == "token_embd.weight"), None)
        if embd is None or len(embd.shape) < 2:
            raise ModelFileError(f"{name}: no tokenizer.ggml.tokens, {arch}.vocab_size or token_embd.weight",
                                 hint="convert the model again with a current llama.cpp")
        vocab = embd.shape[1]
    names = {t.name for t in g.tensors}
    moe = None
    experts = opt("expert_count")
    if experts:
        moe = Moe(experts=experts, experts_per_token=need("expert_used_count"),
                  expert_intermediate_size=opt("expert_feed_forward_length") or need("feed_forward_length"),
                  shared_experts=opt("expert_shared_count", 0), dense_layers=opt("leading_dense_block_count", 0))
        intermediate = opt("feed_forward_length", moe.expert_intermediate_size)
    else:
        intermediate = need("feed_forward_length")
    mla = None
    attention = settings.get("attention", "full")
    if attention == "mla":
        rope = need("rope.dimension_count")
        key_mla = opt("attention.key_length_mla")
        mla = Mla(kv_lora_rank=need("attention.kv_lora_rank"), qk_rope_head_dim=rope,
                  q_lora_rank=opt("attention.q_lora_rank"),
                  qk_nope_head_dim=(key_mla or head_dim) - rope,
                  v_head_dim=opt("attention.value_length_mla") or opt("attention.value_length"))
    window = opt("attention.sliding_window", settings.get("sliding_window"))
    global_every = None
    if attention == "sliding":
        if not window:
            raise ModelFileError(f"{name}: the GGUF header lacks {arch}.attention.sliding_window",
                                 hint="convert the model again with a current llama.cpp")
        global_every = _global_every(g, layers, settings.get("global_every"))
    a = Architecture(
        layers=layers, hidden_size=hidden, attention_heads=heads, kv_heads=kv_heads, head_dim=head_dim,
        intermediate_size=intermediate, vocab_size=vocab, tied_embeddings="output.weight" not in names,
        attention=attention, sliding_window=window if attention == "sliding" else None, global_every=global_every,
        mla=mla, moe=moe, qkv_bias=bool(settings.get("qkv_bias")) or "blk.0.attn_q.bias" in names,
        fused_qkv=bool(settings.get("fused_qkv")) or "blk.0.attn_qkv.weight" in names,
    )
    return a, need("context_length")


def _global_every(g: GgufFile, layers: int, default: int | None) -> int | None:
    """Every Nth layer is global: from the per-layer `attention.sliding_window_pattern` when the
    file has it (true = sliding), else the architecture's fixed pattern."""
    pattern = g.arch_value("attention.sliding_window_pattern")
    if isinstance(pattern, GgufArray) and pattern.values:
        full = [i for i, sliding in enumerate(pattern.values) if not sliding]
        if not full:
            return None
        return layers // len(full) if layers % len(full) == 0 else default
    if isinstance(pattern, int) and not isinstance(pattern, bool) and pattern > 0:
        return pattern
    return default


def active_params(g: GgufFile, a: Architecture) -> int | None:
    """Weights read per token of a MoE file: all but the routed experts, plus their used share."""
    if a.moe is None:
        return None
    experts = sum(_elements(t.shape) for t in g.tensors if "_exps." in t.name)
    return g.n_params - experts + experts * a.moe.experts_per_token // a.moe.experts


def _elements(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
