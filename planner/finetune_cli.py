"""`plan-deploy finetune`: the command's body (click stays in cli.py). Builds one document, renders it."""

from __future__ import annotations

from typing import Any

from . import finetune as ft
from .errors import Exit, UsageError
from .units import GIB

ADAPTER_DIR = "./lora-out"


def _trainable_gpus(machine, model, method: str, framework: str, consts: dict) -> list:
    """The machine's GPUs that can run this training, or a UsageError that says what can."""
    discrete = [g for g in machine.gpus if g.vendor in ("nvidia", "amd") and not g.unified_memory]
    apple = any(g.vendor == "apple" for g in machine.gpus)
    where = "Apple silicon (MPS)" if apple else "a machine without a CUDA GPU"
    mlx_repo = next((a.repo for a in model.artifacts if a.format == "mlx" and a.quant.lower() == "4bit"),
                    "<a 4-bit MLX model>")
    mlx = (f"on Apple silicon MLX-LM trains QLoRA on a 4-bit MLX model: "
           f"mlx_lm.lora --model {mlx_repo} --train --data ./data")
    if not discrete:
        if method == "qlora":
            raise UsageError(f"QLoRA cannot train on {where}: bitsandbytes 4-bit training weights need a CUDA GPU",
                             hint=mlx if apple else "use a machine with an NVIDIA GPU (--gpu \"RTX 4090\")")
        raise UsageError(f"fine-tuning is planned for CUDA GPUs only, not {where}",
                         hint=mlx if apple else "use a machine with an NVIDIA GPU (--gpu \"RTX 4090\")")
    if framework == "unsloth":
        need = consts["accelerators"]["unsloth_min_compute_capability"]
        old = [g for g in discrete if g.compute_capability and _cc(g.compute_capability) < _cc(need)]
        if old:
            raise UsageError(f"Unsloth needs compute capability {need} or newer; {old[0].name} has "
                             f"{old[0].compute_capability}", hint="use --framework transformers")
    return discrete


def _cc(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in str(text).split(".") if p.isdigit())


def run(cat, machine, *, model: str, method: str, rank: int, target: str, seq_len: int, micro_batch: int,
        framework: str, optimizer: str, examples: int | None, avg_tokens: int | None, fmt: str) -> tuple[str, int]:
    """Plan one fine-tune on `machine`: (rendered text or document, exit code 0 fits / 3 does not)."""
    from . import catalog, output
    from .fit import usable_gpu_bytes, usable_ram_bytes

    models = catalog.find_models(model, cat)
    if len(models) != 1:
        raise UsageError(f"{model!r} names {len(models)} models: {', '.join(m.id for m in models)}",
                         hint="give one id")
    if (examples is None) != (avg_tokens is None):
        raise UsageError("--examples and --avg-tokens go together", hint="e.g. --examples 5000 --avg-tokens 600")
    m = models[0]
    consts = ft.load_constants()
    gpus = _trainable_gpus(machine, m, method, framework, consts)
    max_len = m.context_length_extended or m.context_length
    if seq_len > max_len:
        raise UsageError(f"--seq-len {seq_len} exceeds {m.id}'s context of {max_len} tokens")
    req = ft.Request(method=method, rank=rank, target=target, framework=framework, optimizer=optimizer,
                     seq_len=seq_len, micro_batch=micro_batch)
    mem = ft.estimate(m, req, consts, cat)
    budget = min(usable_gpu_bytes(g) for g in gpus)
    ram = usable_ram_bytes(machine, cat.constants)
    tokens = seq_len * micro_batch
    n = len(gpus)

    def shape(mm: ft.Memory) -> dict[str, Any]:
        t = mm.max_tokens(budget, ram)
        need = mm.total_bytes(tokens)
        return {"fits": t >= tokens, "required_bytes_per_gpu": need, "max_tokens": t,
                "max_micro_batch_at_seq_len": t // seq_len, "max_seq_len_at_micro_batch_1": min(t, max_len)}

    single = shape(mem)
    parallel = []
    for stage in ("ddp", "zero2", "zero3"):
        if n > 1:
            parallel.append({"strategy": stage, "gpus": n, "shards": [k for k in mem.terms
                                                                       if k.startswith(ft.SHARDED[stage])] if
                             ft.SHARDED[stage] else [], **shape(ft.sharded(mem, n, stage))})
    chosen = next((p for p in parallel if p["fits"]), None)
    fits = single["fits"] or chosen is not None
    doc: dict[str, Any] = {
        "answer": "yes" if fits else "no",
        "model": m.id, "hf_repo": m.hf_repo, "method": method, "framework": framework, "target": target,
        "rank": None if method == "full" else rank, "optimizer": optimizer, "seq_len": seq_len,
        "micro_batch": micro_batch, "trainable_params": mem.trainable_params,
        "trainable_percent": round(100 * mem.trainable_params / (mem.base_16bit_bytes // 2), 3),
        "gpu": gpus[0].name, "gpus": n, "gpu_budget_bytes": budget, "ram_budget_bytes": ram,
        "memory": {"terms": mem.terms, "per_token_bytes": mem.per_token_bytes,
                   "per_token_terms": mem.per_token_terms, "cpu_ram_per_token_bytes": mem.cpu_per_token_bytes,
                   "tokens": tokens, "total_bytes": mem.total_bytes(tokens),
                   "cpu_ram_bytes": mem.cpu_per_token_bytes * tokens},
        "fits": fits, "single_gpu": single, "multi_gpu": parallel,
        "would_fit_with": [] if fits else _would_fit(cat, mem, tokens, budget, ram, consts),
        "time": _time(m, method, seq_len, mem, gpus, n if chosen else 1, examples, avg_tokens, consts),
        "follow_up": _follow_up(m, rank if method != "full" else None, mem, gpus, budget, ram, consts),
        "notes": list(mem.notes) + (
            ["sharding (FSDP / ZeRO) runs under Transformers or Axolotl with Accelerate or DeepSpeed; Unsloth's "
             "open-source release trains on one GPU"] if n > 1 and framework == "unsloth" else []) + [
            "MFU range is an assumption until measured (data/finetune.yaml mfu)",
            "memory per framework fitted to Unsloth's published tables"
            + (f" ({consts['frameworks'][framework]['name']})"
               if consts['frameworks'][framework]['name'].lower() != framework else "")] + (
            [consts["frameworks"][framework]["note"]] if consts["frameworks"][framework].get("note") else []),
    }
    code = Exit.OK if fits else Exit.NO_FIT
    if fmt != "table":
        return output.dump(doc, fmt), code
    return render(doc), code


def _would_fit(cat, mem: ft.Memory, tokens: int, budget: int, ram: int, consts: dict) -> list[str]:
    """A bigger single GPU from the catalog, or more of this GPU with FSDP / ZeRO-3 sharding."""
    out = []
    need = mem.total_bytes(tokens)
    c = cat.constants  # a named NVIDIA card shows less than its label and the driver keeps a share (constants.yaml)
    usable = c["nvidia_visible_fraction"] * (1 - c["nvidia_reserved_fraction"])
    # discrete cards only: unified-memory boards (GB10, Jetson) share their memory with the OS
    bigger = sorted((g for g in cat.gpus if g.vendor == "nvidia" and g.memory_gib and not g.unified_memory
                     and g.memory_gib * GIB * usable >= need), key=lambda g: (g.memory_gib, g.id))
    if bigger:
        names = ", ".join(f"{g.name} ({g.memory_gib:g} GB)" for g in bigger[:3])
        out.append(f"one GPU with at least {need / GIB:.1f} GiB: {names}")
    for k in range(2, int(consts["max_gpus_suggested"]) + 1):
        shard = ft.sharded(mem, k, "zero3")
        most = shard.max_tokens(budget, ram)
        if most >= tokens:
            out.append(f"{k} of these GPUs with FSDP / DeepSpeed ZeRO-3 sharding the weights, gradients and "
                       f"optimizer states ({shard.total_bytes(tokens) / GIB:.1f} GiB each)")
            break
        if k == 2 and most > 0:
            out.append(f"2 of these GPUs with FSDP / ZeRO-3 (FSDP + QLoRA for a 4-bit base) hold up to {most:,} "
                       f"tokens per step")
    if mem.max_tokens(budget, ram) > 0:
        out.append(f"a shorter sequence or smaller micro-batch: at most {mem.max_tokens(budget, ram):,} tokens "
                   f"fit on this GPU")
    return out


def _time(m, method, seq_len, mem, gpus, n_used, examples, avg_tokens, consts) -> dict[str, Any] | None:
    if examples is None:
        return None
    tflops = getattr(gpus[0], "bf16_tflops", None)
    tokens = examples * avg_tokens
    fpt = ft.flops_per_token(m, method, min(seq_len, avg_tokens), consts, mem.trainable_params)
    doc: dict[str, Any] = {"tokens_per_epoch": tokens, "flops_per_token": round(fpt), "gpus": n_used}
    if not tflops:
        doc["note"] = f"{gpus[0].name}: no dense BF16 TFLOPS in the GPU catalog; time unknown"
        return doc
    t = ft.epoch_time(tokens, fpt, tflops * 1e12, n_used, consts)
    doc.update({"seconds_expected": round(t.seconds_expected), "seconds_low": round(t.seconds_low),
                "seconds_high": round(t.seconds_high), "mfu": consts["mfu"],
                "peak_bf16_tflops": tflops})
    return doc


def _follow_up(m, rank, mem, gpus, budget, ram, consts) -> dict[str, Any]:
    if rank is None:  # full fine-tuning: the checkpoint is a whole model, nothing to merge
        return {"serve": f"the checkpoint is a full {m.id}-shaped model: plan it like the base "
                         f"(plan-deploy can-run {m.id})"}
    need = mem.base_16bit_bytes
    if need <= budget * len(gpus):
        where = "gpu"
    elif need <= ram:
        where = "cpu"
    else:
        where = "neither"
    doc: dict[str, Any] = {"merge": {"needs_bytes": need, "where": where,
                                     "how": "load the base in 16 bits, merge_and_unload(), save (Unsloth: "
                                            "save_pretrained_merged(..., save_method='merged_16bit'); "
                                            "Axolotl: axolotl merge-lora CONFIG.yml)"}}
    if rank is not None:
        doc["serve_adapter"] = ft.commands(m, rank, ADAPTER_DIR, consts)
        doc["merge"]["gguf"] = doc["serve_adapter"].pop("merge")
    return doc


# ---------------------------------------------------------------- text


def _gib(n: int | float) -> str:
    return f"{n / GIB:.1f} GiB"


def _dur(s: float) -> str:
    return f"{s / 3600:.1f} h" if s >= 5400 else f"{s / 60:.0f} min"


def render(doc: dict) -> str:
    lines = []
    what = {"qlora": "QLoRA", "lora": "16-bit LoRA", "full": "full fine-tune"}[doc["method"]]
    gpus = f"{doc['gpus']} x {doc['gpu']}" if doc["gpus"] > 1 else doc["gpu"]
    lines.append(f"{what} of {doc['model']} with {doc['framework']} on {gpus} "
                 f"({_gib(doc['gpu_budget_bytes'])} usable each): {'fits' if doc['fits'] else 'does NOT fit'}")
    if doc["rank"] is not None:
        lines.append(f"  LoRA r={doc['rank']} on {doc['target']} layers: {doc['trainable_params']:,} trainable "
                     f"({doc['trainable_percent']:.2f}%)")
    else:
        lines.append(f"  all {doc['trainable_params']:,} parameters trainable")
    mem = doc["memory"]
    lines.append(f"  memory at micro-batch {doc['micro_batch']} x {doc['seq_len']} tokens: {_gib(mem['total_bytes'])}")
    for k, v in mem["terms"].items():
        lines.append(f"    {k.replace('_', ' '):26} {_gib(v):>10}")
    per = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in mem["per_token_terms"].items())
    lines.append(f"    {'activations':26} {_gib(mem['per_token_bytes'] * mem['tokens']):>10}  ({per} bytes per token)")
    if mem["cpu_ram_per_token_bytes"]:
        lines.append(f"    CPU RAM for offloaded checkpoints: {_gib(mem['cpu_ram_bytes'])}")
    s = doc["single_gpu"]
    if s["max_micro_batch_at_seq_len"]:
        lines.append(f"  largest on one GPU: {s['max_tokens']:,} tokens = micro-batch "
                     f"{s['max_micro_batch_at_seq_len']} x {doc['seq_len']}, or one sequence of "
                     f"{s['max_seq_len_at_micro_batch_1']:,}")
    elif s["max_tokens"]:
        lines.append(f"  largest on one GPU: one sequence of {s['max_seq_len_at_micro_batch_1']:,} tokens "
                     f"(not one of {doc['seq_len']})")
    else:
        lines.append("  largest on one GPU: nothing: the fixed terms alone exceed it")
    if doc["multi_gpu"]:
        lines.append("  several GPUs (data parallel: each holds everything; ZeRO-2 shards gradients and optimizer "
                     "states; ZeRO-3 / FSDP also the weights):")
    for p in doc["multi_gpu"]:
        lines.append(f"    {p['strategy']:6} x{p['gpus']}: {_gib(p['required_bytes_per_gpu'])} per GPU, "
                     f"{'fits' if p['fits'] else 'does not fit'} (up to {p['max_tokens']:,} tokens)")
    if doc["would_fit_with"]:
        lines.append("  would fit with:")
        lines += [f"    - {w}" for w in doc["would_fit_with"]]
    t = doc["time"]
    if t:
        if "seconds_expected" in t:
            lines.append(f"  time per epoch: {t['tokens_per_epoch']:,} tokens, ~{_dur(t['seconds_expected'])} "
                         f"({_dur(t['seconds_low'])}-{_dur(t['seconds_high'])}, MFU {t['mfu']['high']}-"
                         f"{t['mfu']['low']} of {t['peak_bf16_tflops']:g} TFLOPS x {t['gpus']})")
        else:
            lines.append(f"  time per epoch: {t['note']}")
    f = doc["follow_up"]
    if "serve" in f:
        lines.append(f"  then: {f['serve']}")
        lines += [f"  note: {n}" for n in doc["notes"]]
        return "\n".join(lines) + "\n"
    mg = f["merge"]
    where = {"gpu": "fits on the GPU", "cpu": "fits in CPU RAM",
             "neither": "fits neither GPU nor RAM here"}[mg["where"]]
    lines.append(f"  merge: needs the 16-bit base, {_gib(mg['needs_bytes'])}: {where}")
    if "gguf" in mg:
        lines += [f"    $ {_argv(a)}" for a in mg["gguf"]]
    if "serve_adapter" in f:
        sa = f["serve_adapter"]
        lines.append("  or serve the adapter unmerged:")
        lines += [f"    $ {_argv(a)}" for a in sa["vllm"] + sa["llama.cpp"]]
        lines.append(f"    Ollama Modelfile: {' / '.join(sa['ollama']['modelfile'])}, then "
                     f"$ {_argv(sa['ollama']['argv'][0])}")
    for n in doc["notes"]:
        lines.append(f"  note: {n}")
    return "\n".join(lines) + "\n"


def _argv(a: list[str]) -> str:
    import shlex

    return " ".join(shlex.quote(x) for x in a)
