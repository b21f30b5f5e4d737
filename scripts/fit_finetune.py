"""Refit the fine-tune constants in data/finetune.yaml and print the error table against every published figure.

    python scripts/fit_finetune.py

In-sample: Unsloth's Llama-3.1-8B context column (README) fixes the Unsloth per-token slope and fixed workspace;
its Hugging Face + FA2 column fixes the Transformers ones. Held out: the Llama-3.3-70B column, the minimum-VRAM
table and the notebooks' memory after loading. Budgets: the GPU label in GiB (a "24 GB" card has 24 GiB).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from planner import catalog, finetune as ft  # noqa: E402
from planner.memory import activation_bytes_per_token  # noqa: E402

GIB = 1 << 30


def line(xs, ys):
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return slope, my - slope * mx


def fit(cat, consts):
    rows = [r for r in consts["published"]["unsloth_context"]["rows"] if r["model"] == "llama-3.1-8b"]
    m = cat.model("llama-3.1-8b")
    act = activation_bytes_per_token(m.arch, cat.constants)
    biggest = m.arch.hidden_size * m.arch.intermediate_size * 2
    out = {}
    for fw in ("unsloth", "transformers"):
        pts = [(r[fw], r["vram_gb"] * GIB) for r in rows if r[fw]]
        slope, intercept = line([p[0] for p in pts], [p[1] for p in pts])
        mem = ft.estimate(m, ft.Request(rank=32, framework=fw), consts, cat)
        modelled = mem.fixed_bytes - mem.terms["dequant_buffers"]
        res = {"slope_bytes_per_token": slope, "intercept_gib": intercept / GIB,
               "dequant_buffers": (intercept - modelled) / biggest}
        if fw == "unsloth":
            res["activation_factor"] = slope / act
        else:
            res["logit_bytes_per_vocab"] = (slope - act - m.arch.layers * m.arch.hidden_size * 2) / m.arch.vocab_size
        out[fw] = res
    return out


def table(cat, consts):
    rows = []
    for r in consts["published"]["unsloth_context"]["rows"]:
        m = cat.model(r["model"])
        for fw in ("unsloth", "transformers"):
            if not r[fw]:
                continue
            mem = ft.estimate(m, ft.Request(rank=32, framework=fw), consts, cat)
            pred = mem.max_tokens(int(r["vram_gb"] * GIB))
            kind = "in-sample" if r["model"] == "llama-3.1-8b" else "held-out"
            rows.append((f"context tokens {m.id} {fw} {r['vram_gb']} GB", r[fw], pred, kind))
            if kind == "held-out":  # the same row in memory: our total at the published length vs the GPU
                rows.append((f"context memory GiB {m.id} {fw} at {r[fw]:,} tokens", r["vram_gb"],
                             mem.total_bytes(r[fw]) / GIB, kind))
    for r in consts["published"]["unsloth_min_vram"]["rows"]:
        m = cat.model(r["model"])
        for method, key in (("qlora", "qlora_gb"), ("lora", "lora16_gb")):
            mem = ft.estimate(m, ft.Request(method=method, rank=16), consts, cat)
            pred = ft.minimum_bytes(mem, consts) / GIB
            rows.append((f"minimum GiB {r['label']} {method} ({m.id})", r[key], pred, "held-out"))
    for r in consts["published"]["unsloth_notebooks"]["rows"]:
        m = cat.model(r["model"])
        mem = ft.estimate(m, ft.Request(rank=r["rank"]), consts, cat)
        pred = ft.loaded_bytes(mem) / GIB
        rows.append((f"loaded GiB {r['notebook'][3:-6]} (Unsloth {r['unsloth']})", r["loaded_gib"], pred, "held-out"))
    return rows


def main() -> None:
    cat = catalog.load()
    consts = ft.load_constants()
    for fw, res in fit(cat, consts).items():
        print(fw, {k: round(v, 4) for k, v in res.items()})
    print(f"\n{'figure':62} {'published':>10} {'predicted':>10} {'error':>7}  set")
    for name, pub, pred, kind in table(cat, consts):
        fmt = ",.0f" if name.startswith("context tokens") else ".2f"
        print(f"{name:62} {pub:>10{fmt}} {pred:>10{fmt}} {100 * (pred / pub - 1):>+6.1f}%  {kind}")


if __name__ == "__main__":
    main()
