"""Rendering: tables for people, JSON/YAML for scripts. The only place that formats numbers."""

from __future__ import annotations

import json
from typing import Any

from .hardware import Machine
from .units import GB, GIB

FORMATS = ("table", "json", "yaml")


def dump(doc: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    import yaml

    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=120)


def _table(rows: list[list[Any]], headers: list[str]) -> str:
    from tabulate import tabulate

    return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)


def gib(n: int | float | None, digits: int = 1) -> str:
    return "-" if n is None else f"{n / GIB:.{digits}f} GiB"


def gbps(n: int | float | None) -> str:
    return "-" if not n else f"{n / GB:,.0f} GB/s"


# ---------------------------------------------------------------- machine


def machine_summary(m: Machine) -> str:
    parts = []
    if m.gpus:
        groups: dict[tuple, int] = {}
        for g in m.gpus:
            k = (g.name, g.memory_total_bytes, g.memory_bandwidth_bytes_per_s, g.unified_memory)
            groups[k] = groups.get(k, 0) + 1
        for (name, total, bw, unified), n in groups.items():
            mem = f"{gib(total)} unified" if unified else gib(total)
            parts.append(f"{n} x {name} ({mem}, {gbps(bw)})")
    else:
        parts.append("no GPU")
    ram = m.memory.usable_bytes
    limit = " (container limit)" if m.memory.limit_bytes and m.memory.limit_bytes < m.memory.total_bytes else ""
    parts.append(f"{gib(ram)} RAM{limit}")
    parts.append(f"{m.cpu.usable_cores} CPU cores ({m.cpu.arch})")
    parts.append(m.os.system)
    label = f"{m.name}: " if m.name else ""
    return label + " · ".join(parts)


def machine_table(m: Machine) -> str:
    lines = [machine_summary(m), ""]
    rows = [["OS", f"{m.os.system} {m.os.release}".strip() + (f" ({m.os.distro})" if m.os.distro else "")],
            ["CPU", f"{m.cpu.model} · {m.cpu.arch} · {m.cpu.physical_cores} physical / {m.cpu.logical_cores} "
                    f"logical / {m.cpu.usable_cores} usable cores"],
            ["CPU flags", " ".join(m.cpu.flags) or "-"],
            ["RAM", f"{gib(m.memory.total_bytes)} total, {gib(m.memory.available_bytes)} available"
                    + (f", container limit {gib(m.memory.limit_bytes)}" if m.memory.limit_bytes else "")]]
    from tabulate import tabulate

    lines.append(tabulate(rows, tablefmt="plain", disable_numparse=True))
    if m.gpus:
        g_rows = []
        for g in m.gpus:
            g_rows.append([g.index, g.name, gib(g.memory_total_bytes), gib(g.memory_free_bytes),
                           gbps(g.memory_bandwidth_bytes_per_s), g.compute_capability or "-",
                           "unified" if g.unified_memory else (g.mig_instance or "")])
        lines += ["", _table(g_rows, ["GPU", "name", "memory", "free", "bandwidth", "CC", ""])]
    if m.notes:
        lines += ["", "Notes:"] + [f"  - {n}" for n in m.notes]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- plans


def _speed(p) -> str:
    return "?" if p.speed is None else _rate(p.speed)


def _rate(s) -> str:
    return f"{s.expected:.0f} ({s.low:.0f}-{s.high:.0f})" if s.expected >= 10 else \
        f"{s.expected:.1f} ({s.low:.1f}-{s.high:.1f})"


def _max_users(v) -> str:
    return "-" if v is None else f"{v:,}"


def _where(p) -> str:
    pl = p.placement
    if pl.kind == "partial-offload":
        return f"offload {pl.gpu_layers}/{p.estimate.layers}"
    if pl.kind == "multi-gpu":
        return f"{len(pl.gpus)} GPUs" + (" (TP)" if pl.tensor_parallel else "")
    return pl.kind


def plans_table(machine: Machine, plans: list, header_notes: list[str], footer: list[str]) -> str:
    lines = [f"Machine: {machine_summary(machine)}"]
    lines += header_notes
    lines.append("")
    if plans:
        rows = []
        serving = any(p.serving is not None for p in plans)
        for i, p in enumerate(plans, 1):
            bench = p.quality_detail.benchmark + " " if p.quality_detail else ""
            q = f"{bench}{p.quality:.0f}" + ("*" if p.quality_estimated else "")
            mem = f"{p.placement.required_bytes / GIB:.1f} / {p.placement.available_bytes / GIB:.1f} GiB"
            if serving and p.serving is not None:
                s = p.serving
                rows.append([i, p.model.id, p.quant, p.runtime.id, _where(p), mem, _rate(s.per_user),
                             f"{s.aggregate_tokens_per_s:,.0f}", _max_users(s.max_concurrency), q,
                             p.model.licence.commercial])
            else:
                rows.append([i, p.model.id, p.quant, p.runtime.id, _where(p), mem, _speed(p), q,
                             p.model.licence.commercial])
        if serving:
            n = plans[0].serving.concurrency
            lines.append(_table(rows, ["#", "model", "quant", "runtime", "where", "memory need / have",
                                       f"tokens/s per user at {n}", "tokens/s in all", "max users", "quality",
                                       "commercial"]))
        else:
            lines.append(_table(rows, ["#", "model", "quant", "runtime", "where", "memory need / have",
                                       "tokens/s", "quality", "commercial"]))
        lines.append("")
        lines.append("Launch:")
        for i, p in enumerate(plans, 1):
            lines.append(f"  #{i}  {p.launch.command}")
        made = [i for i, p in enumerate(plans, 1) if p.artifact.source == "convert"]
        if made:
            lines.append("")
            lines.append(f"No published file catalogued, made with llama.cpp first: #{', #'.join(map(str, made))} "
                         f"(`plan-deploy can-run MODEL --quant Q` or --format json prints the steps)")
        slow = [i for i, p in enumerate(plans, 1) if not p.interactive]
        if slow:
            lines.append("")
            lines.append(f"Too slow for interactive use: #{', #'.join(map(str, slow))}")
        if any(p.quality_estimated for p in plans):
            lines.append("quality: the base model's published score on the named benchmark, less the quantization's "
                         "loss; * = estimated (none published: a fit by size, less one standard deviation)")
    lines += footer
    return "\n".join(lines) + "\n"


def rejected_table(rejected: list[dict]) -> str:
    if not rejected:
        return "Rejected: none\n"
    rows = [[r["model"], r.get("quant") or "-", r["runtime"], r["reason"]] for r in rejected]
    return "Rejected:\n" + _table(rows, ["model", "quant", "runtime", "reason"]) + "\n"


# ---------------------------------------------------------------- explain: the ranking key in words


def key_lines(key: list[dict], indent: str) -> list[str]:
    """One line per term of a ranking key ({"term", "value"} as planner/explain.py gives them)."""
    width = max(len(t["term"]) for t in key)
    return [f"{indent}{t['term'] + ':':{width + 1}} {t['value']}" for t in key]


def order_lines(labels: list[str], explained: list[dict], indent: str = "  ") -> list[str]:
    """The first item's key terms, then for each later one the term that puts it below the one above."""
    lines = [f"{indent}{labels[0]}:"] + key_lines(explained[0]["key"], indent + "    ")
    for i, (label, e) in enumerate(zip(labels[1:], explained[1:]), 2):
        b = e["below_previous_on"]
        lines.append(f"{indent}{label}: " + (f"below #{i - 1} on {b['term']}: {b['this']} vs {b['previous']}"
                                             if b else "(not ranked below the one above: moved by --prefer-local)"))
    return lines


def why_text(why: dict, noun: str = "models") -> str:
    """`plan --why MODEL` for people: rank, the model's key, the plans above and what decides."""
    if why["plan"] is None:
        lines = [f"{why['model']}: no plan on this machine with these options ({why['of']} {noun} have one).",
                 "  why not:"] + [f"    - {w}" for w in why["why_not"]]
        return "\n".join(lines) + "\n"
    p = why["plan"]
    lines = [f"{why['model']}: #{why['rank']} of {why['of']} {noun} — best plan {p['quant']} on {p['runtime']} "
             f"({p['placement']})", "  its ranking key (the first term where two plans differ decides):"]
    lines += key_lines(why["key"], "    ")
    if not why["above"]:
        lines.append("  nothing ranks above it.")
    else:
        lines.append(f"  ranked above it (nearest first; {why['model']}'s value second):")
        for a in why["above"]:
            lines.append(f"    #{a['rank']} {a['model']} ({a['quant']}, {a['runtime']}): on {a['term']}: "
                         f"{a['value']} vs {a['model_value']}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- estimate


def estimate_table(doc: dict) -> str:
    rows = [["weights", gib(doc["weights_bytes"], 2), doc["weights_source"]],
            ["KV cache", gib(doc["kv_cache_bytes"], 2),
             f"{doc['context']} tokens x {doc['batch']} x {doc['kv_cache_bytes_per_token']:,} bytes/token "
             f"({doc['kv_cache_type']})"],
            ["overhead", gib(doc["overhead_bytes"], 2), "runtime context, compute buffers, activations"],
            ["total", gib(doc["total_bytes"], 2), f"{doc['total_bytes'] / GB:.2f} GB"]]
    head = f"{doc['model']} · {doc['quant']} · {doc['runtime']} · context {doc['context']}"
    lines = [head, "", _table(rows, ["term", "size", "how"])]
    if doc["notes"]:
        lines += [""] + [f"  - {n}" for n in doc["notes"]]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- catalogs


def models_table(models: list) -> str:
    from . import quality as qmod

    table = qmod.load_table()  # the general scale the ranking uses (data/quality.yaml)
    rows = []
    for m in models:
        params = f"{m.params / 1e9:.1f}B" + (f" ({m.active_params / 1e9:.1f}B active)" if m.active_params else "")
        ctx = f"{m.context_length // 1024}K" if m.context_length >= 1024 else str(m.context_length)
        f = table.figures.get(m.id, {})
        q = f"{table.scales[qmod.GENERAL]['benchmark']} {f[qmod.GENERAL]:g}" if qmod.GENERAL in f else "-"
        rows.append([m.id, params, ctx, m.licence.id, m.licence.commercial, q, " ".join(m.quants())])
    return _table(rows, ["id", "params", "context", "licence", "commercial", "quality", "quants"]) + "\n"


def runtimes_table(runtimes: list) -> str:
    rows = [[r.id, " ".join(r.os), " ".join(sorted(r.accelerators)), " ".join(r.formats), r.multi_gpu,
             "yes" if r.partial_offload else "no", r.default_port or "-"] for r in runtimes]
    return _table(rows, ["id", "os", "accelerators", "formats", "multi-GPU", "offload", "port"]) + "\n"


def gpus_table(gpus: list) -> str:
    rows = []
    for g in gpus:
        mem = f"{g.memory_gib:g} GiB" if g.memory_gib else "/".join(f"{o:g}" for o in g.memory_options_gib) + " GiB"
        rows.append([g.id, g.name, mem, f"{g.bandwidth_gbps:g} GB/s" if g.bandwidth_gbps else "-",
                     g.compute_capability or "-", f"{g.bf16_tflops:g}" if g.bf16_tflops else "-"])
    return _table(rows, ["id", "name", "memory", "bandwidth", "CC", "BF16 TFLOPS"]) + "\n"
