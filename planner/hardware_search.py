"""The reverse question: which hardware runs MODEL, and how fast (`plan-deploy hardware`).

No new formulas: every configuration is a hypothetical machine (hardware.hypothetical) planned by
the same engine as `plan` and `can-run` (recommend.plan, best plan per model). Configurations:
- each discrete GPU of the catalog, 1, 2, 4 or 8 of them (the smallest count that runs the model
  on GPUs alone is kept; more of the same card only if the smaller count does not reach --min-tps);
- each Apple chip and unified-memory device at each memory size the catalog lists;
- CPU boxes with 16 to 512 GiB of RAM (8 cores, the assumed RAM bandwidth of data/constants.yaml).
Sorted smallest sufficient first: by the memory the configuration has, then fewer GPUs, then speed.
With --concurrency N every configuration is planned as a server for N users (planner/serving.py):
its KV cache holds N sequences and the speeds checked are per user at that load.
A configuration counts when the model's best plan there is interactive (and reaches --min-tps), on
GPUs or unified memory for a GPU configuration (not through offload to RAM), at a normal-precision
quantization unless --quant names a low-bit one.
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 1 << 30
GPU_COUNTS = (1, 2, 4, 8)
CPU_RAM_GIB = (16, 32, 64, 128, 256, 512)
GPU_PLACEMENTS = ("gpu", "multi-gpu", "unified")


@dataclass(frozen=True)
class Option:
    config: str  # what a user would type after --gpu, or "CPU, N GiB RAM"
    kind: str  # gpu | unified | cpu
    memory_bytes: int  # what the configuration has: total VRAM, unified memory or RAM
    gpus: int
    bandwidth_bytes_per_s: int | None  # per GPU (or the RAM's)
    plan: object  # recommend.Plan

    def to_dict(self) -> dict:
        p = self.plan
        return {"config": self.config, "kind": self.kind, "memory_bytes": self.memory_bytes, "gpus": self.gpus,
                "bandwidth_bytes_per_s": self.bandwidth_bytes_per_s,
                "bytes_per_token": int(p.estimate.weights_read_bytes or p.estimate.weights_bytes),
                "plan": p.to_dict(1)}


def _configs(cat) -> list[tuple[str, dict]]:
    """(label, hypothetical() keyword arguments) of every configuration to try."""
    out: list[tuple[str, dict]] = []
    for g in cat.gpus:
        if g.vendor == "apple" or g.unified_memory:
            sizes = g.memory_options_gib or ((g.memory_gib,) if g.memory_gib else ())
            for gib in sizes:
                label = f"{g.id}-{gib:g}" if len(sizes) > 1 or g.vendor == "apple" else g.id
                out.append((label, {"gpu": label}))
        elif g.memory_gib:
            for n in GPU_COUNTS:
                out.append((f"{g.id} x{n}" if n > 1 else g.id, {"gpu": f"{g.id} x{n}"}))
    for gib in CPU_RAM_GIB:
        out.append((f"CPU, {gib} GiB RAM", {"gpu": None, "ram": gib * GIB}))
    return out


def search(cat, model, *, quants: tuple[str, ...] = (), context: int | None = None, min_tps: float | None = None,
           licence: str = "any", concurrency: int | None = None) -> list[Option]:
    """Configurations that run `model` interactively (and at `min_tps` tokens/s expected, if given;
    per user at `concurrency` users), smallest sufficient first. Raises what recommend.plan raises
    for bad requests."""
    from . import hardware, recommend

    req = recommend.Request(licence=licence, context=context, quants=quants, models=(model.id,),
                            concurrency=concurrency)
    threshold = float(cat.constants["interactive_tokens_per_s"])
    need_tps = max(threshold, min_tps or 0.0)
    found: list[Option] = []
    satisfied: set[str] = set()  # GPU ids that already run it at a smaller count
    for label, kw in _configs(cat):
        base = label.split(" x")[0]
        if base in satisfied:
            continue
        m = hardware.enrich(hardware.hypothetical(cat, vram=None, cpu_cores=None, **{"ram": None, **kw}), cat)
        ram_only = not m.gpus
        res = recommend.plan(cat, m, req, best_only=True)
        # The best plan among those this configuration counts for (on its GPUs, fast enough, not
        # low-bit unless asked): a server's top plan may be an offload one that a GPU plan follows.
        ok = [p for p in res.plans
              if (ram_only or p.placement.kind in GPU_PLACEMENTS) and p.speed is not None
              and recommend._user_tps(p) >= need_tps and (quants or not p.low_bit)]
        best = recommend.one_per_model(ok)
        if not best:
            continue
        p = best[0]
        if ram_only:
            mem, kind, bw, n = m.memory.total_bytes, "cpu", m.memory.bandwidth_bytes_per_s, 0
        else:
            g = m.gpus[0]
            n = len(m.gpus)
            mem = sum(x.memory_total_bytes for x in m.gpus)
            kind = "unified" if g.unified_memory else "gpu"
            bw = g.memory_bandwidth_bytes_per_s
            if kind == "gpu":
                satisfied.add(base)
        found.append(Option(config=label, kind=kind, memory_bytes=mem, gpus=n, bandwidth_bytes_per_s=bw, plan=p))
    found.sort(key=lambda o: (o.memory_bytes, o.gpus, -(recommend._user_tps(o.plan) if o.plan.speed else 0), o.config))
    return found
