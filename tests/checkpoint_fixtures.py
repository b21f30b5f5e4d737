"""Write Hugging Face-style checkpoints for tests: config.json in transformers' field names, and
sparse safetensors files (real headers, data left as holes), of any size in milliseconds."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from planner.catalog import Architecture

DTYPE_BYTES = {"BF16": 2, "F16": 2, "F32": 4}


def config_for(arch: Architecture, model_type: str, context: int, **extra) -> dict:
    """A config.json for `arch`, in the field names transformers' configuration classes use."""
    c = {"architectures": ["LlamaForCausalLM"], "model_type": model_type, "num_hidden_layers": arch.layers,
         "hidden_size": arch.hidden_size, "num_attention_heads": arch.attention_heads,
         "num_key_value_heads": arch.kv_heads, "head_dim": arch.head_dim,
         "intermediate_size": arch.intermediate_size, "vocab_size": arch.vocab_size,
         "max_position_embeddings": context, "tie_word_embeddings": arch.tied_embeddings,
         "torch_dtype": "bfloat16"}
    if arch.sliding_window:
        c["sliding_window"] = arch.sliding_window
        n, every = arch.layers, arch.global_every
        c["layer_types"] = ["full_attention" if every and (i + 1) % every == 0 else "sliding_attention"
                            for i in range(n)]
    if arch.moe:
        m = arch.moe
        c.update({"num_experts_per_tok": m.experts_per_token, "moe_intermediate_size": m.expert_intermediate_size})
        if model_type in ("mixtral", "gpt_oss"):
            c["num_local_experts"] = m.experts
            c["intermediate_size"] = m.expert_intermediate_size
            del c["moe_intermediate_size"]
        elif model_type.startswith("deepseek"):
            c.update({"n_routed_experts": m.experts, "n_shared_experts": m.shared_experts,
                      "first_k_dense_replace": m.dense_layers})
        else:
            c["num_experts"] = m.experts
    if arch.mla:
        a = arch.mla
        c.update({"kv_lora_rank": a.kv_lora_rank, "q_lora_rank": a.q_lora_rank,
                  "qk_rope_head_dim": a.qk_rope_head_dim, "qk_nope_head_dim": a.qk_nope_head_dim,
                  "v_head_dim": a.v_head_dim})
        del c["head_dim"]
    c.update(extra)
    return c


def llama_tensors(arch: Architecture) -> list[tuple[str, list[int]]]:
    """A Llama checkpoint's tensors (PyTorch shapes, [out, in])."""
    h, q, kv = arch.hidden_size, arch.attention_heads * arch.head_dim, arch.kv_heads * arch.head_dim
    t = [("model.embed_tokens.weight", [arch.vocab_size, h]), ("model.norm.weight", [h])]
    if not arch.tied_embeddings:
        t.append(("lm_head.weight", [arch.vocab_size, h]))
    for i in range(arch.layers):
        p = f"model.layers.{i}."
        t += [(p + "input_layernorm.weight", [h]), (p + "post_attention_layernorm.weight", [h]),
              (p + "self_attn.q_proj.weight", [q, h]), (p + "self_attn.k_proj.weight", [kv, h]),
              (p + "self_attn.v_proj.weight", [kv, h]), (p + "self_attn.o_proj.weight", [h, q]),
              (p + "mlp.gate_proj.weight", [arch.intermediate_size, h]),
              (p + "mlp.up_proj.weight", [arch.intermediate_size, h]),
              (p + "mlp.down_proj.weight", [h, arch.intermediate_size])]
    return t


def write_safetensors(path: Path, tensors: list[tuple[str, list[int]]], dtype: str = "BF16",
                      *, lie: int = 0) -> int:
    """A sparse .safetensors file: its real header, then a hole as long as the data. Returns data
    bytes. `lie` adds that many bytes to the header's length prefix (a corrupt file)."""
    header, offset = {}, 0
    for name, shape in tensors:
        n = DTYPE_BYTES[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw) + lie))
        f.write(raw)
        f.truncate(8 + len(raw) + offset)
    return offset


def write_checkpoint(directory: Path, arch: Architecture, model_type: str, context: int, *, shards: int = 1,
                     dtype: str = "BF16", **config_extra) -> int:
    """config.json plus sparse safetensors shards (with an index when sharded); returns tensor bytes."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config_for(arch, model_type, context, **config_extra)))
    tensors = llama_tensors(arch)
    per = -(-len(tensors) // shards)
    total, weight_map = 0, {}
    for s in range(shards):
        part = tensors[s * per:(s + 1) * per]
        name = "model.safetensors" if shards == 1 else f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        total += write_safetensors(directory / name, part, dtype)
        weight_map.update({t: name for t, _ in part})
    if shards > 1:
        (directory / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
    return total
