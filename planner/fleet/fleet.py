"""A fleet is a directory: one machine file per box, plus an optional fleet.yaml.

fleet.yaml (schema plan-deploy/fleet/v1) says what a probe cannot see:

    schema: plan-deploy/fleet/v1
    hosts:                       # optional; a host is named by its machine file's stem
      gpu-a: {address: 10.0.0.11}
    networks:
      - {name: ib, kind: infiniband, gbps: 400, members: [gpu-a, gpu-b]}

Network kinds: nvlink, infiniband, roce, ethernet. A machine file that does not load is reported
by name and left out; the rest of the fleet is still planned. Duplicate host names and networks
naming unknown hosts are errors: the plan would otherwise send commands to the wrong box.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import MachineFileError, PlannerError
from ..hardware import Machine, load_machine

SCHEMA = "plan-deploy/fleet/v1"
FLEET_FILES = ("fleet.yaml", "fleet.yml")
NETWORK_KINDS = ("nvlink", "infiniband", "roce", "ethernet")
MACHINE_SUFFIXES = (".yaml", ".yml", ".json")


class FleetError(PlannerError):
    """An unusable fleet directory or fleet.yaml; the message names the file and the field."""


@dataclass(frozen=True, slots=True)
class Host:
    name: str  # the machine file's stem
    file: str  # the file name inside the fleet directory
    machine: Machine
    address: str | None = None  # from fleet.yaml; commands fall back to the name

    @property
    def where(self) -> str:
        return self.address or self.name


@dataclass(frozen=True, slots=True)
class Network:
    name: str
    kind: str
    gbps: float | None
    members: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Fleet:
    directory: str
    hosts: tuple[Host, ...]
    networks: tuple[Network, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()  # (file, why) for machine files that did not load
    notes: tuple[str, ...] = field(default=())

    def host(self, name: str) -> Host:
        return next(h for h in self.hosts if h.name == name)

    def networks_of(self, name: str) -> list[Network]:
        return [n for n in self.networks if name in n.members]


def load_fleet(directory: str | Path) -> Fleet:
    """Read every machine file of a fleet directory and its fleet.yaml (if present).

    Errors: FleetError for a missing directory, an empty one, duplicate host names, a bad
    fleet.yaml or a network naming an unknown host. A broken machine file is not an error: it is
    listed in `skipped` with the reason.
    """
    d = Path(directory)
    if not d.is_dir():
        raise FleetError(f"fleet directory not found: {d}",
                         hint="make one with `plan-deploy probe --save DIR/NAME.yaml` on each machine")
    files = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in MACHINE_SUFFIXES
                   and p.name not in FLEET_FILES and not p.name.startswith("."))
    seen: dict[str, str] = {}
    hosts: list[Host] = []
    skipped: list[tuple[str, str]] = []
    for p in files:
        if p.stem in seen:
            raise FleetError(f"duplicate host name {p.stem!r}: {seen[p.stem]} and {p.name}",
                             hint="keep one machine file per host name (the file name without its suffix)")
        seen[p.stem] = p.name
        try:
            m = load_machine(p)
        except MachineFileError as e:
            skipped.append((p.name, e.message))
            continue
        hosts.append(Host(name=p.stem, file=p.name, machine=m))
    if not hosts:
        why = f" ({len(skipped)} unreadable)" if skipped else ""
        raise FleetError(f"no usable machine file in {d}{why}",
                         hint="save one per machine with `plan-deploy probe --save DIR/NAME.yaml`")
    networks: tuple[Network, ...] = ()
    fleet_file = next((d / f for f in FLEET_FILES if (d / f).is_file()), None)
    if fleet_file is not None:
        addresses, networks = _read_fleet_file(fleet_file, set(seen), {h.name for h in hosts})
        hosts = [replace(h, address=addresses.get(h.name)) for h in hosts]
    return Fleet(directory=str(d), hosts=tuple(hosts), networks=networks, skipped=tuple(skipped))


def _read_fleet_file(path: Path, names: set[str], usable: set[str]) -> tuple[dict[str, str], tuple[Network, ...]]:
    import yaml

    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_loader())
    except (OSError, UnicodeDecodeError) as e:
        raise FleetError(f"cannot read {path}: {e}") from None
    except _DuplicateKey as e:
        raise FleetError(f"{path}: {e.args[0]}", hint="list each host once") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise FleetError(f"{path}: not valid YAML{where}", hint=str(getattr(e, "problem", "") or "")) from None
    doc = doc or {}

    def fail(where: str, why: str, hint: str | None = None) -> FleetError:
        return FleetError(f"{path}: {where} {why}", hint=hint or f"see the fleet schema ({SCHEMA}) in the README")

    if not isinstance(doc, dict):
        raise fail("the document", "must be a mapping")
    if doc.get("schema", SCHEMA) != SCHEMA:
        raise fail("'schema'", f"must be {SCHEMA!r}, not {doc.get('schema')!r}")
    unknown = set(doc) - {"schema", "hosts", "networks"}
    if unknown:
        raise fail(f"key {sorted(unknown)[0]!r}", "is not part of the schema")
    known = ", ".join(sorted(names))
    addresses: dict[str, str] = {}
    hosts = doc.get("hosts") or {}
    if not isinstance(hosts, dict):
        raise fail("'hosts'", "must be a mapping of host name to {address: ...}")
    for name, h in hosts.items():
        if name not in names:
            raise fail(f"hosts.{name}", f"names an unknown host {name!r}", hint=f"hosts are the machine files: {known}")
        if not isinstance(h, dict) or set(h) - {"address"}:
            raise fail(f"hosts.{name}", "must be a mapping with an 'address'")
        addr = h.get("address")
        if addr is not None and not isinstance(addr, str):
            raise fail(f"hosts.{name}.address", "must be a string (an IP address or host name)")
        addresses[name] = addr or name
    networks = []
    for i, n in enumerate(_list(doc, "networks", fail)):
        if not isinstance(n, dict):
            raise fail(f"networks[{i}]", "must be a mapping")
        kind = n.get("kind")
        if kind not in NETWORK_KINDS:
            raise fail(f"networks[{i}].kind", f"must be one of {', '.join(NETWORK_KINDS)}, not {kind!r}")
        gbps = n.get("gbps")
        if gbps is not None and (isinstance(gbps, bool) or not isinstance(gbps, (int, float)) or gbps <= 0):
            raise fail(f"networks[{i}].gbps", f"must be a positive number of Gb/s, not {gbps!r}")
        members = n.get("members")
        if not isinstance(members, list) or len(members) < 2 or not all(isinstance(m, str) for m in members):
            raise fail(f"networks[{i}].members", "must list at least two host names")
        for m in members:
            if m not in names:
                raise fail(f"networks[{i}].members", f"names an unknown host {m!r}",
                           hint=f"hosts are the machine files: {known}")
        if len(set(members)) != len(members):
            raise fail(f"networks[{i}].members", "repeats a host")
        networks.append(Network(name=str(n.get("name") or f"{kind}-{i}"), kind=kind,
                                gbps=float(gbps) if gbps is not None else None,
                                members=tuple(m for m in members if m in usable)))
    return addresses, tuple(networks)


class _DuplicateKey(Exception):
    pass


def _unique_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise _DuplicateKey(f"line {key_node.start_mark.line + 1}: {key!r} appears twice in one mapping "
                                f"(a repeated host name?)")
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


def _loader():
    import yaml

    class Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
        pass

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)
    return Loader


def _list(doc: dict, key: str, fail) -> list[Any]:
    value = doc.get(key) or []
    if not isinstance(value, list):
        raise fail(f"'{key}'", "must be a list")
    return value
