"""How to make a GGUF file that no catalogued repository publishes: download, convert, quantize.

The commands and flags are llama.cpp's own:
  - `hf download REPO --local-dir DIR` (huggingface_hub's CLI);
  - `python convert_hf_to_gguf.py DIR --outfile FILE --outtype f32|f16|bf16|q8_0|tq1_0|tq2_0`
    (ggml-org/llama.cpp convert_hf_to_gguf.py @a458664fc83b, its argparse choices);
  - `llama-imatrix -m FILE -f calibration.txt -o imatrix.gguf`, needed before the types that
    llama-quantize refuses without an importance matrix (IQ1_*, IQ2_*, IQ3_XXS/XS, Q2_K_S)
    (ggml-org/llama.cpp tools/imatrix/README.md, src/llama-quant.cpp tensor_requires_imatrix);
  - `llama-quantize [--imatrix F] [--tensor-type PATTERN=TYPE] IN OUT TYPE`
    (ggml-org/llama.cpp tools/quantize/README.md @311c2c9f0ebd, quantize.cpp @03161a4eb9a2 for the
    type names, MXFP4_MOE among them).
"""

from __future__ import annotations

from .catalog import ModelSpec, QuantSpec

# Types convert_hf_to_gguf.py writes directly (--outtype); the rest go through llama-quantize.
DIRECT_OUTTYPES = {"F32": "f32", "F16": "f16", "BF16": "bf16", "Q8_0": "q8_0", "TQ1_0": "tq1_0", "TQ2_0": "tq2_0"}
INTERMEDIATE = "BF16"  # lossless from a BF16 checkpoint; F16 can overflow on some models
CALIBRATION_FILE = "calibration.txt"
# A model's pinned GGUF tensor classes as llama-quantize --tensor-type patterns (tensor names:
# blk.N.ffn_{gate,up,down}_exps.weight for MoE experts).
_TENSOR_PATTERNS = {"experts": "ffn_(gate|up|down)_exps", "attn_v": "attn_v", "attn_k": "attn_k",
                    "attn_q": "attn_q", "attn_output": "attn_output", "ffn_down": "ffn_down",
                    "ffn_up": "ffn_up", "ffn_gate": "ffn_gate"}


def output_file(model_id: str, quant: str) -> str:
    """The file the steps make, e.g. "llama-3.1-8b-F16.gguf"."""
    return f"{model_id}-{quant}.gguf"


def steps(model: ModelSpec, quant: QuantSpec | str) -> list[list[str]]:
    """argv lists that make `output_file(model.id, quant)` from the model's Hugging Face repo.

    Raises KeyError for a quantization the catalog does not know.
    """
    q = _spec(quant)
    out = output_file(model.id, q.id)
    src = model.id  # the local directory the repo is downloaded to
    argv: list[list[str]] = [["hf", "download", model.hf_repo, "--local-dir", src]]
    if q.id in DIRECT_OUTTYPES:
        argv.append(["python", "convert_hf_to_gguf.py", src, "--outfile", out, "--outtype", DIRECT_OUTTYPES[q.id]])
        return argv
    mid = output_file(model.id, INTERMEDIATE)
    argv.append(["python", "convert_hf_to_gguf.py", src, "--outfile", mid, "--outtype", INTERMEDIATE.lower()])
    quantize = ["llama-quantize"]
    if q.imatrix:
        matrix = f"{model.id}-imatrix.gguf"
        argv.append(["llama-imatrix", "-m", mid, "-f", CALIBRATION_FILE, "-o", matrix])
        quantize += ["--imatrix", matrix]
    for cls, ggml_type in model.gguf_tensor_types:
        if cls in _TENSOR_PATTERNS:
            quantize += ["--tensor-type", f"{_TENSOR_PATTERNS[cls]}={ggml_type.lower()}"]
    argv.append(quantize + [mid, out, q.quantize_type or q.id])
    return argv


def notes(model: ModelSpec, quant: QuantSpec | str) -> list[str]:
    """What a user must know before running the steps."""
    q = _spec(quant)
    out = [f"no published {q.id} GGUF of {model.id} is catalogued: make {output_file(model.id, q.id)} "
           f"with llama.cpp's convert_hf_to_gguf.py" + ("" if q.id in DIRECT_OUTTYPES else " and llama-quantize")]
    if q.imatrix:
        out.append(f"{q.id} needs an importance matrix: put a few hundred KB of representative text in "
                   f"{CALIBRATION_FILE} first")
    return out


def _spec(quant: QuantSpec | str) -> QuantSpec:
    if isinstance(quant, QuantSpec):
        return quant
    from . import catalog

    return catalog.load().quants[quant.upper()]
