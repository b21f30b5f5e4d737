"""A Hugging Face `config.json` -> `catalog.Architecture`, for the model types in data/hf_configs.yaml.

Field names follow transformers' configuration classes: num_hidden_layers, hidden_size,
num_attention_heads, num_key_value_heads (GQA; default: no GQA), head_dim (default hidden /
heads), intermediate_size, vocab_size, max_position_embeddings, tie_word_embeddings; MoE:
num_local_experts | num_experts | n_routed_experts, num_experts_per_tok, moe_intermediate_size,
n_shared_experts | shared_expert_intermediate_size, first_k_dense_replace; MLA: kv_lora_rank,
q_lora_rank, qk_rope_head_dim, qk_nope_head_dim, v_head_dim; sliding windows: sliding_window
with layer_types or sliding_window_pattern.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from ..catalog import Architecture, Mla, Moe
from ..errors import ModelFileError

REQUIRED = ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size", "vocab_size",
            "max_position_embeddings")
_DTYPES = {"bfloat16": "BF16", "float16": "F16", "half": "F16", "float32": "F32", "float": "F32"}


@functools.lru_cache(maxsize=1)
def supported_model_types() -> dict[str, dict[str, Any]]:
    """model_type -> settings (data/hf_configs.yaml)."""
    from ..catalog import _load_yaml, data_dir

    return {str(k): dict(v or {}) for k, v in _load_yaml(data_dir() / "hf_configs.yaml")["model_types"].items()}


def load_config(path: Path) -> dict:
    """Parse a config.json; ModelFileError when it is unreadable, not JSON or not an object."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ModelFileError(f"cannot read {path}: {e.strerror or e}", hint="check the path and permissions") from None
    except UnicodeDecodeError:
        raise ModelFileError(f"{path.name}: not UTF-8 text, so not a config.json",
                             hint="pass the model's config.json, its directory, or a .gguf file") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ModelFileError(f"{path.name}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})",
                             hint="pass the model's config.json as downloaded, or its directory") from None
    if not isinstance(doc, dict):
        raise ModelFileError(f"{path.name}: a JSON {type(doc).__name__}, not the object a config.json holds",
                             hint="pass the model's config.json, its directory, or a .gguf file")
    return doc


def architecture(config: dict, where: str) -> tuple[Architecture, int, tuple[str, ...]]:
    """(Architecture, trained context, notes) from a parsed config.json.

    `where` names the source in messages. Raises ModelFileError naming model_type when the
    planner cannot size that kind of model, or the missing field.
    """
    mt = config.get("model_type")
    table = supported_model_types()
    notes: list[str] = []
    if not isinstance(mt, str) or not mt:
        raise ModelFileError(f"{where}: config.json has no model_type",
                             hint="pass the model's own config.json (the one next to its weights)")
    settings = table.get(mt)
    cfg = config
    if settings is None:
        archs = config.get("architectures")
        causal = isinstance(archs, list) and any(str(a).endswith("ForCausalLM") for a in archs)
        if not causal or any(not isinstance(config.get(k), int) for k in REQUIRED):
            missing = next((k for k in REQUIRED if not isinstance(config.get(k), int)), "architectures")
            raise ModelFileError(f"{where}: model_type = {mt!r} is not one the planner can size "
                                 f"(and it is no plain decoder: {missing} is missing)",
                                 hint="sized model types: " + ", ".join(sorted(table)) + "; or pass a GGUF file")
        settings = {}
        notes.append(f"model_type {mt!r} is sized as a generic llama-like decoder")
    if settings.get("text_config"):
        if not isinstance(config.get("text_config"), dict):
            raise ModelFileError(f"{where}: config.json (model_type {mt}) lacks text_config",
                                 hint="pass the model's own config.json")
        cfg = {**config["text_config"]}
        notes.append("multimodal: the text model is sized; the vision tower is not counted")

    def need(key: str) -> int:
        value = cfg.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ModelFileError(f"{where}: config.json (model_type {mt}) lacks {key}, needed to size the model",
                                 hint="pass the model's complete config.json, or a GGUF file of it")
        return value

    def opt(*keys: str, default: Any = None) -> Any:
        for key in keys:
            value = cfg.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
        return default

    layers, hidden, heads = need("num_hidden_layers"), need("hidden_size"), need("num_attention_heads")
    vocab, context = need("vocab_size"), need("max_position_embeddings")
    kv_heads = opt("num_key_value_heads", default=heads)
    moe = None
    experts = opt("num_local_experts", "num_experts", "n_routed_experts")
    if experts:
        expert_inter = opt("moe_intermediate_size") or need("intermediate_size")
        shared = opt("n_shared_experts", default=0)
        if not shared and opt("shared_expert_intermediate_size"):
            shared = max(1, round(opt("shared_expert_intermediate_size") / expert_inter))
        moe = Moe(experts=experts, experts_per_token=opt("num_experts_per_tok", "experts_per_token")
                  or need("num_experts_per_tok"), expert_intermediate_size=expert_inter,
                  shared_experts=shared, dense_layers=opt("first_k_dense_replace", default=0))
        intermediate = opt("intermediate_size", default=expert_inter)
    else:
        intermediate = need("intermediate_size")
    attention = settings.get("attention", "full")
    mla = None
    head_dim = opt("head_dim", default=hidden // heads)
    if attention == "mla":
        rope, nope = need("qk_rope_head_dim"), need("qk_nope_head_dim")
        mla = Mla(kv_lora_rank=need("kv_lora_rank"), qk_rope_head_dim=rope, q_lora_rank=opt("q_lora_rank"),
                  qk_nope_head_dim=nope, v_head_dim=opt("v_head_dim", default=nope))
    window, global_every = None, None
    layer_types = cfg.get("layer_types")
    if isinstance(layer_types, list) and "sliding_attention" in layer_types:
        attention = "sliding"
        full = sum(1 for t in layer_types if t == "full_attention")
        if full == 0:
            global_every = None  # every layer slides
        elif layers % full == 0:
            global_every = layers // full
        else:
            global_every = settings.get("global_every") or round(layers / full)
    elif attention == "sliding":
        global_every = opt("sliding_window_pattern", default=settings.get("global_every"))
    if attention == "sliding":
        window = opt("sliding_window", default=settings.get("sliding_window"))
        if not window:
            raise ModelFileError(f"{where}: config.json (model_type {mt}) lacks sliding_window",
                                 hint="pass the model's complete config.json")
    elif cfg.get("sliding_window") and cfg.get("use_sliding_window", True) is not False and attention == "full":
        notes.append("sliding_window in config.json is ignored: runtimes give these layers a full cache")
    tied = cfg.get("tie_word_embeddings", config.get("tie_word_embeddings", settings.get("tied_default", False)))
    a = Architecture(
        layers=layers, hidden_size=hidden, attention_heads=heads, kv_heads=kv_heads, head_dim=head_dim,
        intermediate_size=intermediate, vocab_size=vocab, tied_embeddings=bool(tied), attention=attention,
        sliding_window=window, global_every=global_every, mla=mla, moe=moe,
        qkv_bias=bool(settings.get("qkv_bias")) or cfg.get("attention_bias") is True,
        fused_qkv=bool(settings.get("fused_qkv")),
    )
    return a, context, tuple(notes)


def quant_label(config: dict, main_dtype: str | None = None) -> str:
    """The checkpoint's precision as a quantization label: quantization_config's method (FP8, AWQ,
    GPTQ, MXFP4) when quantized, else the weights' dtype (BF16, F16, F32)."""
    qc = config.get("quantization_config")
    if isinstance(qc, dict) and isinstance(qc.get("quant_method"), str):
        return qc["quant_method"].upper()
    if main_dtype:
        if main_dtype.startswith("F8"):
            return "FP8"
        if main_dtype in ("BF16", "F16", "F32"):
            return main_dtype
    text = config.get("torch_dtype") or config.get("dtype")
    if isinstance(config.get("text_config"), dict):
        text = text or config["text_config"].get("torch_dtype") or config["text_config"].get("dtype")
    return _DTYPES.get(str(text).lower(), "BF16")
