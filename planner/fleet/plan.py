"""Planning a fleet: each machine's plans (the single-machine engine), multi-node options, and the
--want assignment.

Per machine: planner.recommend.plan, once per distinct hardware. A fleet plan is about capacity:
free memory at probe time (taken on another day) is ignored, so identical boxes share one
answer and the cost grows with the number of machines only through that lookup.

Multi-node: only machines on one declared network with identical GPUs (same model, count and
memory) form a vLLM/SGLang group; llama.cpp RPC may mix devices (it splits by memory). The
fewest nodes that fit win.

--want (documented in README "Fleets"): each wanted model's options are every free machine's best
plan for it and every multi-node option on free machines. Models are placed hardest first (the
one needing the most memory at its smallest quantization), each on its best option by
(a normal quantization before a low-bit one, then interactive first, fewer machines, faster, host
names); a machine serves one wanted model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

from .. import fit, memory, recommend
from ..catalog import Artifact, Catalog, ModelSpec
from ..errors import PlannerError
from ..hardware import Machine, enrich
from ..units import GIB
from . import commands, placement as pl
from .fleet import Fleet, Host, Network


# ---------------------------------------------------------------- per machine


def normalized(machine: Machine) -> Machine:
    """The machine as a capacity: free memory at probe time dropped (it drifts), name and notes kept."""
    gpus = tuple(replace(g, memory_free_bytes=None) for g in machine.gpus)
    mem = replace(machine.memory, available_bytes=machine.memory.total_bytes)
    return replace(machine, gpus=gpus, memory=mem)


def fingerprint(machine: Machine) -> str:
    """Identical hardware, identical plans: the machine document without name, notes and free memory."""
    d = normalized(machine).to_dict()
    d.pop("name", None)
    d.pop("notes", None)
    return json.dumps(d, sort_keys=True)


@dataclass
class MachinePlans:
    host: Host
    machine: Machine  # enriched, normalized
    result: recommend.Result
    best: list[recommend.Plan]  # one plan per model, ranked (recommend.one_per_model)


def machine_plans(cat: Catalog, fleet: Fleet, request: recommend.Request) -> list[MachinePlans]:
    """recommend.plan for every host, computed once per distinct hardware."""
    cache: dict[str, tuple[Machine, recommend.Result, list[recommend.Plan]]] = {}
    out = []
    for h in fleet.hosts:
        key = fingerprint(h.machine)
        if key not in cache:
            m = enrich(normalized(h.machine), cat)
            res = recommend.plan(cat, m, request)
            cache[key] = (m, res, recommend.one_per_model(res.plans))
        m, res, best = cache[key]
        out.append(MachinePlans(host=h, machine=replace(m, name=h.name), result=res, best=best))
    return out


# ---------------------------------------------------------------- multi-node options


@dataclass(frozen=True)
class MultiNodeOption:
    model: ModelSpec
    quant: str
    runtime_id: str
    runtime_rank: int
    artifact: Artifact
    estimate: memory.MemoryEstimate
    placement: pl.MultiNodePlacement
    network: Network
    hosts: tuple[Host, ...]
    deployment: commands.Deployment
    interactive: bool
    notes: tuple[str, ...] = ()

    @property
    def host_names(self) -> tuple[str, ...]:
        return tuple(h.name for h in self.hosts)

    def key(self) -> tuple:
        """Interactive first, fewer machines, more bits per weight, faster, runtime rank, names."""
        spd = self.placement.speed.expected if self.placement.speed else 0.0
        bpw = self.estimate.weights_bytes * 8 / self.model.params
        return (not self.interactive, len(self.hosts), -round(bpw, 2), -spd, self.runtime_rank, self.host_names)

    def to_dict(self) -> dict:
        lay = self.placement.layout
        intra = {True: "nvlink", False: "pcie", None: "unknown"}[nvlink_state(self.hosts[0].machine)]
        inter = {"name": self.network.name, "kind": self.network.kind, "gbps": self.network.gbps}
        dep = self.deployment.to_dict()
        return {"model": self.model.id, "quant": self.quant, "runtime": self.runtime_id, "placement": "multi-node",
                "network": inter, "hosts": list(self.host_names),
                "topology": {**lay.to_dict(), "links": {"intra": intra, "inter": inter}},
                "nodes": dep["nodes"], "alternatives": dep["alternatives"], "checks": dep["checks"],
                "ports": dep["ports"],
                "per_gpu": self.placement.per_gpu.to_dict(), "gpu_share": self.placement.gpu_share,
                "context": self.estimate.context, "max_context": self.placement.max_context,
                "weights_bytes": self.estimate.weights_bytes,
                "speed": None if self.placement.speed is None else {
                    **self.placement.speed.to_dict(), "basis": self.placement.speed.basis},
                "interactive": self.interactive,
                "notes": list(self.notes) + list(self.placement.notes)}


def _hardware_key(m: Machine) -> tuple:
    return tuple((g.name, g.memory_total_bytes) for g in m.gpus)


def groups(fleet: Fleet, identical: bool, exclude: frozenset[str] = frozenset()) -> list[tuple[Network, list[Host]]]:
    """Hosts that can serve together: per network, identical machines (or all GPU hosts), less `exclude`."""
    out = []
    for net in sorted(fleet.networks, key=lambda n: n.name):
        members = [fleet.host(n) for n in sorted(net.members) if n not in exclude]
        members = [h for h in members if h.machine.gpus]
        if not identical:
            if len(members) >= 2:
                # the largest devices first: the head and the first workers carry the most
                members.sort(key=lambda h: (-sum(g.memory_total_bytes for g in h.machine.gpus), h.name))
                out.append((net, members))
            continue
        by_kind: dict[tuple, list[Host]] = {}
        for h in members:
            by_kind.setdefault(_hardware_key(h.machine), []).append(h)
        for kind in sorted(by_kind):
            if len(by_kind[kind]) >= 2:
                out.append((net, by_kind[kind]))
    return out


def unequal_networks(fleet: Fleet) -> list[str]:
    """A warning per network whose GPU hosts differ: vLLM and SGLang span identical nodes only."""
    out = []
    for net in sorted(fleet.networks, key=lambda n: n.name):
        kinds: dict[tuple, list[str]] = {}
        for name in sorted(net.members):
            m = fleet.host(name).machine
            if m.gpus:
                kinds.setdefault(_hardware_key(m), []).append(name)
        if len(kinds) > 1:
            parts = [f"{', '.join(hosts)}: {len(k)} x {k[0][0]}" for k, hosts in sorted(kinds.items())]
            out.append(f"network {net.name} joins unequal nodes: {'; '.join(parts)}. vLLM and SGLang span only "
                       f"identical nodes (their recipes put the same GPUs on every node); llama.cpp RPC splits "
                       f"layers in proportion to each device's memory, its documented way with unequal devices")
    return out


def nvlink_state(m: Machine) -> bool | None:
    """True: every GPU has active NVLink links (and P2P over them was not refused); False: the probe
    read the links and some GPU has none; None: not probed (a hand-written or older machine file)."""
    links = m.links
    if links is None or not links.nvlink_links:
        return None
    return all(n > 0 for n in links.nvlink_links) and links.nvlink_p2p is not False


def layouts(runtime_id: str, model: ModelSpec, m: Machine, gpus_per_node: int, nodes: int, net: Network,
            data: dict) -> list[tuple[pl.Layout, str | None]]:
    """Candidate layouts in the runtime's documented order, each with a note (or None)."""
    spec = data["runtimes"][runtime_id]
    across = data["networks"][net.kind]["tensor_parallel_across"]
    ep = model.is_moe and bool(spec.get("expert_parallel"))
    nvlink = nvlink_state(m)
    out = []
    for name in spec["layouts"]:
        if name == "layer-split":
            out.append((pl.Layout(kind="layer-split", nodes=nodes, gpus_per_node=gpus_per_node), None))
        elif name == "per-node-tp":
            if gpus_per_node > 1 and nvlink is False:
                out.append((pl.Layout(kind="tp-pp", nodes=nodes, gpus_per_node=gpus_per_node, tensor_parallel=1,
                                      pipeline_parallel=gpus_per_node * nodes, expert_parallel=ep),
                            "no NVLink between this node's GPUs: pipeline parallel over every GPU instead of "
                            "tensor parallel (vLLM's advice for GPUs without NVLink)"))
            else:
                note = None
                if gpus_per_node > 1 and nvlink is None:
                    note = "NVLink not probed on these nodes: tensor parallel inside each node assumes it"
                out.append((pl.Layout(kind="tp-pp", nodes=nodes, gpus_per_node=gpus_per_node,
                                      tensor_parallel=gpus_per_node, pipeline_parallel=nodes, expert_parallel=ep),
                            note))
        elif name == "cluster-tp" and across and (nvlink is not False or gpus_per_node == 1):
            out.append((pl.Layout(kind="tp-pp", nodes=nodes, gpus_per_node=gpus_per_node,
                                  tensor_parallel=gpus_per_node * nodes, pipeline_parallel=1, tp_spans_nodes=True,
                                  expert_parallel=ep), None))
    return out


def multinode_options(cat: Catalog, fleet: Fleet, model: ModelSpec, request: recommend.Request,
                      context: int, exclude: frozenset[str] = frozenset()) -> tuple[list[MultiNodeOption], list[str]]:
    """The best multi-node option per runtime, quantization and network group (fewest nodes that fit),
    best first (MultiNodeOption.key), and why-nots. Hosts in `exclude` take no part."""
    data = commands.multinode_data()
    wanted = {recommend.runtime_id(r, cat) for r in request.runtimes}
    opts: list[MultiNodeOption] = []
    why: list[str] = []
    if not fleet.networks:
        return [], ["no network declared in fleet.yaml: multi-node plans need hosts on one network"]
    threshold = float(cat.constants["interactive_tokens_per_s"])
    for runtime in cat.runtimes:
        if not commands.supports(runtime.id) or (request.runtimes and runtime.id not in wanted):
            continue
        identical = data["runtimes"][runtime.id]["layouts"] != ["layer-split"]
        for net, members in groups(fleet, identical, exclude):
            head = enrich(normalized(members[0].machine), cat)
            if fit.runtime_on_machine(head, runtime):
                continue
            for qid in runtime.quants:
                if request.quants and qid.upper() not in request.quants:
                    continue
                opt = _best_on_group(cat, model, runtime, qid, net, members, head, context, request, data,
                                     threshold, why)
                if opt is not None:
                    opts.append(opt)
    opts.sort(key=MultiNodeOption.key)
    return opts, why


def _best_on_group(cat, model, runtime, qid, net, members, head, context, request, data, threshold, why):
    quant = cat.quants.get(qid)
    if quant is None:
        return None
    fmt = memory.artifact_format(model, quant, runtime)
    if fmt is None:
        return None
    art = model.artifact(fmt, quant.id)
    gpus, _ = fit.runtime_gpus(head, runtime, quant)
    if not gpus:
        why.append(f"{runtime.id} {qid}: the GPUs of {members[0].name} can't run it")
        return None
    kv = request.kv_cache_type if request.kv_cache_type in runtime.kv_cache_types else None
    try:
        est = memory.estimate(model, quant.id, runtime, cat, context=context, kv_cache_type=kv)
    except PlannerError as e:
        why.append(f"{runtime.id} {qid}: {e.message}")
        return None
    link = pl.Link(net.kind, net.gbps)
    intra = pl.Link("nvlink", None)  # intra-node TP: the single-machine policy (tensor_parallel_scaling)
    devices_of: dict[str, list[pl.Device]] = {}

    def attempt(k: int) -> MultiNodeOption | str:
        hosts = members[:k]
        reason = "no layout"
        for lay, note in layouts(runtime.id, model, head, len(gpus), k, net, data):
            if lay.kind == "layer-split":
                for h in hosts:
                    if h.name not in devices_of:
                        devices_of[h.name] = pl.rpc_devices([(h.name, enrich(normalized(h.machine), cat))],
                                                            runtime, cat.constants)
                devices = [d for h in hosts for d in devices_of[h.name]]
                placed = pl.place_layer_split(est, model, devices, k, link, runtime, cat, data)
            else:
                placed = pl.place_tp_pp(est, model, gpus[0], lay, runtime, link, intra, cat, data)
            if isinstance(placed, str):
                reason = placed
                continue
            dep = commands.deployment(model, art, quant.id, runtime, placed, context,
                                      [(h.name, h.where) for h in hosts])
            notes = [note] if note else []
            if any(h.address is None for h in hosts):
                notes.append("no address in fleet.yaml for some hosts: commands use the host names")
            if placed.speed is None:
                notes.append("speed unknown: no memory bandwidth for these GPUs")
            interactive = placed.speed.expected >= threshold if placed.speed else True
            return MultiNodeOption(model=model, quant=quant.id, runtime_id=runtime.id, runtime_rank=runtime.rank,
                                   artifact=art, estimate=est, placement=placed, network=net, hosts=tuple(hosts),
                                   deployment=dep, interactive=interactive, notes=tuple(notes))
        return reason

    # Memory per GPU only falls as nodes are added: when the whole group can't hold it, no part can.
    full = attempt(len(members))
    if isinstance(full, str):
        why.append(f"{runtime.id} {qid} on all {len(members)} hosts of network {net.name}: {full}")
        return None
    for k in range(2, len(members)):  # the fewest nodes that fit
        found = attempt(k)
        if not isinstance(found, str):
            return found
    return full


# ---------------------------------------------------------------- the --want assignment


@dataclass
class Assignment:
    model: ModelSpec
    single: tuple[MachinePlans, recommend.Plan] | None = None
    multi: MultiNodeOption | None = None
    reason: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def hosts(self) -> tuple[str, ...]:
        if self.single:
            return (self.single[0].host.name,)
        return self.multi.host_names if self.multi else ()

    def to_dict(self) -> dict:
        d: dict = {"model": self.model.id, "placed": bool(self.hosts), "hosts": list(self.hosts)}
        if self.single:
            d["plan"] = self.single[1].to_dict(1)
        if self.multi:
            d["multi_node"] = self.multi.to_dict()
        if self.reason:
            d["reason"] = self.reason
        d["notes"] = list(self.notes)
        return d


def smallest_need(cat: Catalog, model: ModelSpec, context: int) -> tuple[int, str, str] | None:
    """(bytes, quant, runtime) of the model's smallest catalogued configuration on a GPU."""
    best = None
    for rt in cat.runtimes:
        for qid in rt.quants:
            q = cat.quants.get(qid)
            if q is None or memory.artifact_format(model, q, rt) is None:
                continue
            try:
                est = memory.estimate(model, qid, rt, cat, context=context)
            except PlannerError:
                continue
            cand = (est.total_bytes, qid, rt.id)
            best = cand if best is None or cand < best else best
    return best


def _capacity(m: Machine) -> int:
    return sum(g.memory_total_bytes for g in m.gpus) or m.memory.total_bytes


def assign(cat: Catalog, fleet: Fleet, per_machine: list[MachinePlans], models: list[ModelSpec],
           request: recommend.Request, context: int) -> list[Assignment]:
    """Where each wanted model goes (see the module docstring for the rule)."""
    need = {m.id: (smallest_need(cat, m, context) or (0, "", ""))[0] for m in models}
    order = sorted(range(len(models)), key=lambda i: (-need[models[i].id], i))
    used: dict[str, str] = {}
    out: dict[int, Assignment] = {}
    for i in order:
        model = models[i]
        a = Assignment(model=model)
        singles = []
        taken_fit = []
        for mp in per_machine:
            best = [p for p in mp.best if p.model.id == model.id]
            if not best:
                continue
            if mp.host.name in used:
                taken_fit.append(mp.host.name)
                continue
            singles.append((mp, best[0]))
        multi_free, why = multinode_options(cat, fleet, model, request, context, frozenset(used))
        multi = multi_free or (multinode_options(cat, fleet, model, request, context)[0] if used else [])
        cands: list[tuple[tuple, object]] = []
        for mp, p in singles:
            # a low-bit quantization (quants.yaml low_bit: +1 perplexity or worse) only where no machine
            # runs the model at a normal one, even slowly: IQ1/IQ2 files lose too much to be a placement
            cands.append(((p.low_bit, not p.interactive, 1, -(p.speed.expected if p.speed else 0.0),
                           (mp.host.name,)), (mp, p)))
        for o in multi_free:
            k = o.key()
            cands.append(((False, k[0], k[1], k[3], k[5]), o))
        if cands:
            cands.sort(key=lambda c: c[0])
            pick = cands[0][1]
            if isinstance(pick, MultiNodeOption):
                a.multi = pick
            else:
                a.single = pick
            for h in a.hosts:
                used[h] = model.id
            if not (a.single[1].interactive if a.single else a.multi.interactive):
                a.notes.append("the best free option is too slow for interactive use")
        elif taken_fit or multi:
            taken = sorted(set(taken_fit) | {h for o in multi for h in o.host_names if h in used})
            a.reason = ("fits only on machines already given to other models: "
                        + ", ".join(f"{h} ({used[h]})" for h in taken))
        else:
            a.reason = _closest(cat, fleet, per_machine, model, context, why)
        out[i] = a
    return [out[i] for i in range(len(models))]


def _closest(cat, fleet, per_machine, model, context, why) -> str:
    small = smallest_need(cat, model, context)
    biggest = max(per_machine, key=lambda mp: (_capacity(mp.machine), mp.host.name))
    cap = _capacity(biggest.machine)
    text = f"fits nowhere in this fleet at {context} tokens of context"
    if small:
        text += (f"; closest: {biggest.host.name} with {cap / GIB:.0f} GiB of "
                 f"{'GPU memory' if biggest.machine.gpus else 'RAM'}, while {model.id} needs about "
                 f"{small[0] / GIB:.0f} GiB at its smallest ({small[1]} on {small[2]})")
    if why:
        text += f"; multi-node: {why[0]}"
    return text
