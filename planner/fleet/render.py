"""Text output for fleet plans; the one place where per-node argv + env become shell lines (POSIX)."""

from __future__ import annotations

import shlex

from ..output import machine_summary
from ..units import GIB
from .commands import NodeCommands, Step


def shell_line(step: Step) -> str:
    """POSIX shell: `VAR=value ... argv` with every word quoted as needed."""
    env = [f"{k}={shlex.quote(v)}" for k, v in sorted(step.env.items())]
    return " ".join(env + [shlex.join(step.argv)])


def _tps(speed) -> str:
    if speed is None:
        return "speed unknown"
    return f"~{speed.expected:.1f} tokens/s ({speed.low:.1f}-{speed.high:.1f})"


def _node_lines(nodes: tuple[NodeCommands, ...], indent: str) -> list[str]:
    out = []
    for n in nodes:
        out.append(f"{indent}{n.host} ({n.role}, rank {n.rank}, {n.address}):")
        out += [f"{indent}  $ {shell_line(s)}" for s in n.steps]
    return out


def option_lines(o, indent: str = "  ") -> list[str]:
    """A multi-node option: topology, memory per GPU, speed with its assumption, per-node commands."""
    lay, mem = o.placement.layout, o.placement.per_gpu
    net = f"{o.network.kind}" + (f" {o.network.gbps:g} Gb/s" if o.network.gbps else "")
    gpu = o.hosts[0].machine.gpus[0].name if o.hosts[0].machine.gpus else "?"
    if lay.kind == "layer-split":
        shape = f"layer split over {lay.nodes} nodes (llama.cpp RPC)"
    else:
        where = "across nodes" if lay.tp_spans_nodes else "inside each node"
        shape = f"TP {lay.tensor_parallel} ({where}) x PP {lay.pipeline_parallel}" + \
            (" + expert parallel" if lay.expert_parallel else "")
    lines = [f"{indent}{o.runtime_id} {o.quant}: {lay.nodes} x ({lay.gpus_per_node} x {gpu}) on {o.network.name} "
             f"({net}), {shape}",
             f"{indent}  per GPU at the worst stage: weights {mem.weights_bytes / GIB:.1f} GiB + KV "
             f"{mem.kv_cache_bytes / GIB:.1f} GiB + overhead {mem.overhead_bytes / GIB:.1f} GiB = "
             f"{mem.total_bytes / GIB:.1f} of {mem.budget_bytes / GIB:.1f} GiB usable; "
             f"room for about {o.placement.max_context:,} tokens",
             f"{indent}  {_tps(o.placement.speed)} single stream"
             + (f"; {o.placement.speed.basis}" if o.placement.speed else "")]
    lines += _node_lines(o.deployment.nodes, indent + "  ")
    for name, nodes in o.deployment.alternatives.items():
        lines.append(f"{indent}  {name}:")
        lines += _node_lines(nodes, indent + "    ")
    for n in list(o.notes) + list(o.placement.notes):
        lines.append(f"{indent}  note: {n}")
    lines.append(f"{indent}  before you start:")
    lines += [f"{indent}    - {c}" for c in o.deployment.checks]
    return lines


def single_line(mp, p) -> str:
    return (f"{mp.host.name}: {p.model.id} {p.quant} on {p.runtime.id} ({p.placement.kind}), {_tps(p.speed)}, "
            f"{p.placement.required_bytes / GIB:.1f} GiB")


def fleet_header(fleet) -> list[str]:
    lines = [f"Fleet: {fleet.directory} ({len(fleet.hosts)} machines"
             + (f", {len(fleet.networks)} networks" if fleet.networks else ", no networks declared") + ")"]
    for f, why in fleet.skipped:
        lines.append(f"  skipped {f}: {why}")
    return lines


def machines_section(per_machine, top: int) -> list[str]:
    lines = ["", "Per machine:"]
    for mp in per_machine:
        lines.append(f"  {machine_summary(mp.machine)}")
        best = mp.best[:top]
        if not best:
            lines.append("    nothing fits")
        for p in best:
            lines.append(f"    {p.model.id} {p.quant} on {p.runtime.id} ({p.placement.kind}), {_tps(p.speed)}")
            lines.append(f"      $ {p.launch.command}")
    return lines
