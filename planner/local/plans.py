"""Plans that can use a model file already on this disk.

A plan whose model (catalog id) and quantization match a GGUF found by stores.scan is marked
"already on disk"; runtimes that load a path (llama.cpp) get a launch command with that file
(-m PATH instead of -hf REPO:QUANT); Ollama plans whose tag is already pulled say so. Ranking does
not change unless `prefer` asks: then plans with a local file come first, in their order.
The scan here lists directories and stats files only (no GGUF headers), so `plan` stays fast.
"""

from __future__ import annotations

from dataclasses import replace

# Which stores a runtime can use without downloading: llama-server loads any GGUF by path (an
# Ollama blob is a GGUF file too); Ollama and LM Studio only their own stores; vLLM, SGLang and
# Transformers find a Hugging Face repo in the hub cache by its id (their command stays the same).
USABLE = {"llama.cpp": ("hf", "llama.cpp", "lmstudio", "ollama"), "ollama": ("ollama",), "lm-studio": ("lmstudio",),
          "vllm": ("hf",), "sglang": ("hf",), "transformers": ("hf",)}
SAME_COMMAND = ("ollama", "vllm", "sglang", "transformers")


def mark(plans: list, cat, machine, *, options=None, found: list | None = None) -> list:
    """`plans` for `machine` (planned with runtime `options`), in the same order, with local files
    used where they can be."""
    from ..launch import command
    from .stores import scan

    local = [m for m in (scan(cat, headers=False) if found is None else found) if m.catalog_id and m.quant]
    if not local:
        return plans
    out = []
    for p in plans:
        usable = USABLE.get(p.runtime.id, ())
        fmt = "safetensors" if p.runtime.id in ("vllm", "sglang", "transformers") else "gguf"
        hits = [m for m in local if m.catalog_id == p.model.id and m.quant.upper() == p.quant.upper()
                and m.source in usable and m.format == fmt]
        if not hits:
            out.append(p)
            continue
        hit = sorted(hits, key=lambda m: usable.index(m.source))[0]
        if p.runtime.id in SAME_COMMAND:
            note = f"already on disk: ollama has {hit.id}" if p.runtime.id == "ollama" else \
                f"already on disk: {hit.path} (Hugging Face cache)"
            out.append(replace(p, notes=(*p.notes, note)))
            continue
        art = replace(p.artifact, source="local", path=hit.path)
        kv = p.estimate.kv_cache_type
        kv = kv if kv != next(iter(p.runtime.kv_cache_types)) else None  # the default type adds no flag
        launch = command(p.model, p.quant, art, p.estimate, p.placement, p.runtime, kv, machine=machine,
                         **({"options": options} if options is not None else {}))
        note = f"already on disk: {hit.path} ({hit.source})"
        out.append(replace(p, artifact=art, launch=launch, notes=(*p.notes, note)))
    return out


def is_local(plan) -> bool:
    return any(n.startswith("already on disk") for n in plan.notes)


def prefer(all_plans: list, shown: list, show_all: bool) -> list:
    """--prefer-local: plans with a file on disk first (the best such plan per model unless
    `show_all`), then the others, each group in the planner's order."""
    from ..recommend import one_per_model

    local = [p for p in all_plans if is_local(p)]
    if show_all:
        return local + [p for p in all_plans if not is_local(p)]
    first = one_per_model(local)
    have = {p.model.id for p in first}
    return first + [p for p in shown if p.model.id not in have]
