"""Per-node commands for multi-node runtimes: argv lists and environment, from data/multinode.yaml.

One builder per runtime (a registry); every flag comes from the templates in the data file, whose
`sources:` name the published recipe each template follows. Rendering to a shell line happens in
planner/fleet/render.py only.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..catalog import Artifact, ModelSpec, RuntimeSpec, data_dir
from ..errors import CatalogError
from .placement import MultiNodePlacement

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True, slots=True)
class Step:
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"argv": list(self.argv), "env": dict(self.env)}


@dataclass(frozen=True, slots=True)
class NodeCommands:
    host: str
    address: str
    role: str  # head | worker
    rank: int
    steps: tuple[Step, ...]

    def to_dict(self) -> dict:
        """`argv`/`env`: the node's long-running command (its last step); `commands`: every step in order."""
        last = self.steps[-1]
        return {"machine": self.host, "address": self.address, "role": self.role, "rank": self.rank,
                "argv": list(last.argv), "env": dict(last.env), "commands": [s.to_dict() for s in self.steps]}


@dataclass(frozen=True, slots=True)
class Deployment:
    """What to run where: the primary way, alternatives (e.g. vLLM without Ray), and checks."""

    nodes: tuple[NodeCommands, ...]
    alternatives: dict[str, tuple[NodeCommands, ...]]
    checks: tuple[str, ...]
    ports: dict[str, int]

    def to_dict(self) -> dict:
        return {"nodes": [n.to_dict() for n in self.nodes],
                "alternatives": {k: [n.to_dict() for n in v] for k, v in self.alternatives.items()},
                "checks": list(self.checks), "ports": dict(self.ports)}


@functools.lru_cache(maxsize=2)
def multinode_data(directory: str | None = None) -> dict:
    """data/multinode.yaml, checked for the keys the planner reads."""
    import yaml

    path = (data_dir() if directory is None else Path(directory)) / "multinode.yaml"
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError) as e:
        raise CatalogError(f"cannot read multinode.yaml: {e}", hint="reinstall plan-deploy: pip install .") from None
    for key in ("networks", "communication", "runtimes"):
        if not isinstance(doc, dict) or not isinstance(doc.get(key), dict):
            raise CatalogError(f"multinode.yaml: '{key}' is missing or not a mapping")
    for rid, spec in doc["runtimes"].items():
        if not spec.get("sources"):
            raise CatalogError(f"multinode.yaml: runtimes.{rid} has no sources")
    return doc


def fill(template: list, values: dict[str, object]) -> tuple[str, ...]:
    """Replace {name} in every element; a placeholder without a value is a data error."""
    def one(part: str) -> str:
        def sub(m: re.Match) -> str:
            if m.group(1) not in values or values[m.group(1)] is None:
                raise CatalogError(f"multinode.yaml: no value for {{{m.group(1)}}} in {template!r}")
            return str(values[m.group(1)])
        return _PLACEHOLDER.sub(sub, str(part))
    return tuple(one(p) for p in template)


def _values(model: ModelSpec, art: Artifact, quant: str, runtime: RuntimeSpec, placement: MultiNodePlacement,
            context: int, spec: dict) -> dict:
    lay = placement.layout
    v: dict[str, object] = {"model": art.repo or model.hf_repo, "tp": lay.tensor_parallel,
                            "pp": lay.pipeline_parallel, "nnodes": lay.nodes, "context": context,
                            "gpu_util": placement.gpu_share, "port": runtime.default_port,
                            "gguf_repo": art.repo, "gguf_quant": quant}
    v.update(spec.get("ports", {}))
    return v


Hosts = list[tuple[str, str]]  # (host name, address), head first


def _vllm(model, art, quant, runtime, placement, context, hosts: Hosts, spec) -> Deployment:
    v = _values(model, art, quant, runtime, placement, context, spec)
    head = hosts[0][1]
    v["head"] = head
    extra = tuple(spec["expert_parallel"]) if placement.layout.expert_parallel else ()
    ray = spec["backends"]["ray"]
    nodes = []
    for rank, (name, addr) in enumerate(hosts):
        env = {k: fill([t], {**v, "address": addr})[0] for k, t in ray["env"].items()}
        start = fill(ray["head" if rank == 0 else "worker"], {**v, "address": addr})
        steps = [Step(start, env)]
        if rank == 0:
            steps.append(Step(fill(ray["serve"], v) + extra, env))
        nodes.append(NodeCommands(name, addr, "head" if rank == 0 else "worker", rank, tuple(steps)))
    mp = spec["backends"]["mp"]
    alt = []
    for rank, (name, addr) in enumerate(hosts):
        argv = fill(mp["node"], {**v, "rank": rank}) + extra
        argv += fill(mp["head_extra" if rank == 0 else "worker_extra"], v)
        alt.append(NodeCommands(name, addr, "head" if rank == 0 else "worker", rank, (Step(argv),)))
    return Deployment(nodes=tuple(nodes), alternatives={"multiprocessing (no Ray)": tuple(alt)},
                      checks=_NCCL_CHECKS + _port_check(v, ("ray_port",), "Ray", head),
                      ports={"ray": int(v["ray_port"]), "api": runtime.default_port})


def _sglang(model, art, quant, runtime, placement, context, hosts: Hosts, spec) -> Deployment:
    v = _values(model, art, quant, runtime, placement, context, spec)
    v["head"] = hosts[0][1]
    extra = tuple(spec.get("model_extra", {}).get(model.id, ()))
    pipe = fill(spec["pipeline"], v) if placement.layout.pipeline_parallel > 1 else ()
    nodes = []
    for rank, (name, addr) in enumerate(hosts):
        argv = fill(spec["node"], {**v, "rank": rank}) + pipe + extra
        if rank == 0:
            argv += fill(spec["head_extra"], v)
        nodes.append(NodeCommands(name, addr, "head" if rank == 0 else "worker", rank, (Step(argv),)))
    return Deployment(nodes=tuple(nodes), alternatives={},
                      checks=_NCCL_CHECKS + _port_check(v, ("dist_port",), "the distributed init",
                                                                   hosts[0][1]),
                      ports={"dist_init": int(v["dist_port"]), "api": runtime.default_port})


def _llama_cpp(model, art, quant, runtime, placement, context, hosts: Hosts, spec) -> Deployment:
    v = _values(model, art, quant, runtime, placement, context, spec)
    workers = hosts[1:]
    v["workers"] = ",".join(f"{addr}:{v['rpc_port']}" for _, addr in workers)
    nodes = [NodeCommands(hosts[0][0], hosts[0][1], "head", 0, (Step(fill(spec["head"], v)),))]
    for rank, (name, addr) in enumerate(workers, 1):
        nodes.append(NodeCommands(name, addr, "worker", rank, (Step(fill(spec["worker"], {**v, "address": addr})),)))
    checks = ("every host runs a llama.cpp build with -DGGML_RPC=ON (ggml-rpc-server on the workers; "
              "rpc-server in builds before the rename)",
              f"port {v['rpc_port']} carries unauthenticated RPC that can run arbitrary work: llama.cpp calls "
              "the RPC backend a fragile, insecure proof of concept; never expose it beyond a private network",
              "the head sends the weights to the workers at load (ggml-rpc-server -c caches them locally)")
    # The head reads the file; workers receive tensors over RPC, so only the head needs the model.
    # Order: start every ggml-rpc-server first, then the head.
    nodes = nodes[1:] + nodes[:1]
    return Deployment(nodes=tuple(nodes), alternatives={}, checks=checks,
                      ports={"rpc": int(v["rpc_port"]), "api": runtime.default_port})


_NCCL_CHECKS = ("the same model files at the same path on every node (download them first)",
                "NCCL_DEBUG=TRACE on the first start: 'NET/IB/GDRDMA' means InfiniBand with GPUDirect RDMA; "
                "'NET/Socket' is plain TCP, not efficient for cross-node tensor parallelism")


def _port_check(v: dict, keys: tuple[str, ...], what: str, head: str) -> tuple[str, ...]:
    ports = ", ".join(str(v[k]) for k in keys)
    return (f"{what} port {ports} on {head} and the NCCL ports carry unencrypted, unauthenticated traffic that can "
            "execute code: keep every node on a private network segment",)


BUILDERS: dict[str, Callable[..., Deployment]] = {"vllm": _vllm, "sglang": _sglang, "llama.cpp": _llama_cpp}


def supports(runtime_id: str) -> bool:
    return runtime_id in BUILDERS and runtime_id in multinode_data()["runtimes"]


def deployment(model: ModelSpec, art: Artifact, quant: str, runtime: RuntimeSpec, placement: MultiNodePlacement,
               context: int, hosts: Hosts) -> Deployment:
    """Per-node commands for a multi-node placement; `hosts` lists (name, address), head first."""
    spec = multinode_data()["runtimes"][runtime.id]
    return BUILDERS[runtime.id](model, art, quant, runtime, placement, context, hosts, spec)
