"""`plan-deploy fleet plan DIR` and `plan-deploy can-run MODEL --fleet DIR`: the command bodies.

planner/cli.py registers them; this module imports only click at module level (start-up time).
"""

from __future__ import annotations

import sys

import click

from ..errors import Exit


def _models(want: tuple[str, ...], cat) -> list:
    from ..catalog import find_models
    from ..errors import UsageError

    out, seen = [], set()
    for item in want:
        for name in (w.strip() for w in item.split(",")):
            if not name:
                continue
            found = find_models(name, cat)
            if len(found) != 1:
                raise UsageError(f"--want {name!r} names {len(found)} models: "
                                 f"{', '.join(m.id for m in found[:6])}", hint="give one catalog id")
            if found[0].id not in seen:
                seen.add(found[0].id)
                out.append(found[0])
    return out


def _load(directory: str):
    from ..fleet.fleet import load_fleet

    fleet = load_fleet(directory)
    for f, why in fleet.skipped:
        click.echo(f"warning: skipped {f}: {why}", err=True)
    return fleet


def run_fleet_plan(directory, want, licence, context, runtimes, quants, kv_cache_type, fmt, top) -> None:
    """Each machine's best plans, multi-node options for models no machine runs, and --want."""
    from ..catalog import load
    from ..output import dump
    from ..recommend import Request, licence_ok
    from ..fleet import plan as fp
    from ..fleet import render

    cat = load()
    fleet = _load(directory)
    wanted = _models(want, cat)
    req = Request(licence=licence, context=context, runtimes=tuple(runtimes),
                  quants=tuple(q.upper() for q in quants), kv_cache_type=kv_cache_type)
    ctx = context or int(cat.constants["default_context"])
    per_machine = fp.machine_plans(cat, fleet, req)
    doc = {"fleet": _fleet_doc(fleet), "request": req.to_dict(ctx),
           "machines": [{"host": mp.host.name,
                         "plans": [p.to_dict(i) for i, p in enumerate(mp.best[:top], 1)]}
                        for mp in per_machine]}
    lines = render.fleet_header(fleet) + render.machines_section(per_machine, top)
    # Multi-node: the models that no single machine runs at all (or only too slowly, or only at a
    # low-bit quantization: quants.yaml low_bit).
    runs = {p.model.id for mp in per_machine for p in mp.result.plans if p.interactive and not p.low_bit}
    multi = []
    if fleet.networks:
        for m in cat.models:
            if m.id in runs or licence_ok(m, licence):
                continue
            opts, _ = fp.multinode_options(cat, fleet, m, req, ctx)
            if opts:
                multi.append(opts[0])
    doc["multi_node"] = [o.to_dict() for o in multi]
    warnings = fp.unequal_networks(fleet)
    doc["warnings"] = warnings
    lines += ["", "Multi-node (models no single machine runs):"]
    lines += [f"  warning: {w}" for w in warnings]
    if not fleet.networks:
        lines.append("  none: declare the networks between hosts in fleet.yaml to plan across machines")
    elif not multi:
        lines.append("  none found")
    for o in multi:
        lines.append(f"  {o.model.id}:")
        lines += render.option_lines(o, "    ")
    unplaced = 0
    if wanted:
        assignment = fp.assign(cat, fleet, per_machine, wanted, req, ctx)
        doc["assignment"] = [a.to_dict() for a in assignment]
        lines += ["", "Assignment (--want; hardest model first, one model per machine):"]
        for a in assignment:
            if a.single:
                lines.append(f"  {a.model.id} -> {render.single_line(*a.single)}")
                lines.append(f"      $ {a.single[1].launch.command}")
            elif a.multi:
                lines.append(f"  {a.model.id} -> {', '.join(a.multi.host_names)} (multi-node)")
                lines += render.option_lines(a.multi, "      ")
            else:
                unplaced += 1
                lines.append(f"  {a.model.id} -> not placed: {a.reason}")
            lines += [f"      note: {n}" for n in a.notes]
    click.echo("\n".join(lines) + "\n" if fmt == "table" else dump(doc, fmt), nl=False)
    if unplaced:
        sys.exit(Exit.NO_FIT)


def run_can_run_fleet(model, directory, licence, context, runtimes, quants, kv_cache_type, fmt) -> None:
    """can-run MODEL --fleet DIR: which machines run it alone, else which machines together."""
    from ..catalog import find_models, load
    from ..output import dump
    from ..recommend import Request, licence_ok
    from ..fleet import plan as fp
    from ..fleet import render

    cat = load()
    fleet = _load(directory)
    targets = find_models(model, cat)
    docs, lines, any_yes = [], render.fleet_header(fleet), False
    for m in targets:
        req = Request(licence=licence, context=context, runtimes=tuple(runtimes),
                      quants=tuple(q.upper() for q in quants), kv_cache_type=kv_cache_type, models=(m.id,))
        ctx = context or int(cat.constants["default_context"])
        per_machine = fp.machine_plans(cat, fleet, req)
        singles = [(mp, mp.best[0]) for mp in per_machine if mp.best]
        good = [s for s in singles if s[1].interactive and not s[1].low_bit]
        excluded = licence_ok(m, licence)
        opts, why = ([], []) if good or excluded else fp.multinode_options(cat, fleet, m, req, ctx)
        if excluded:
            why = [f"{m.id} is left out by --licence {licence}: {excluded}"]
        elif not good:
            why = fp.unequal_networks(fleet) + why
        best_multi = _one_per_runtime(opts)
        yes = bool(good) or any(o.interactive for o in best_multi)
        any_yes |= yes or bool(singles)
        doc = {"model": m.id, "context": ctx,
               "answer": "yes" if good else ("yes, multi-node" if yes else ("too slow" if singles else "no")),
               "machines": [{"host": mp.host.name, "plan": p.to_dict(1)} for mp, p in singles],
               "multi_node": [o.to_dict() for o in best_multi], "why_not": why[:12]}
        docs.append(doc)
        lines.append("")
        if good:
            lines.append(f"{m.id}: YES on {len(good)} of {len(fleet.hosts)} machines alone")
            lines += [f"  {render.single_line(mp, p)}\n    $ {p.launch.command}" for mp, p in good]
        elif best_multi:
            o = best_multi[0]
            lines.append(f"{m.id}: {'YES' if yes else 'only slowly'} — multi-node: no machine runs it alone; "
                         f"{len(o.hosts)} together do")
            for o in best_multi:
                lines += render.option_lines(o, "  ")
        else:
            lines.append(f"{m.id}: NO, not at {ctx} tokens of context on any machine or group of this fleet")
            lines += [f"  - {w}" for w in why[:12]]
        if not good and singles:
            lines.append("  alone, only too slowly: " + "; ".join(render.single_line(mp, p) for mp, p in singles[:3]))
    click.echo("\n".join(lines) + "\n" if fmt == "table" else dump(docs[0] if len(docs) == 1 else docs, fmt),
               nl=False)
    sys.exit(Exit.OK if any_yes else Exit.NO_FIT)


def _one_per_runtime(opts: list) -> list:
    seen, out = set(), []
    for o in opts:
        if o.runtime_id not in seen:
            seen.add(o.runtime_id)
            out.append(o)
    return out


def _fleet_doc(fleet) -> dict:
    return {"directory": fleet.directory,
            "hosts": [{"name": h.name, "file": h.file, "address": h.address} for h in fleet.hosts],
            "networks": [{"name": n.name, "kind": n.kind, "gbps": n.gbps, "members": list(n.members)}
                         for n in fleet.networks],
            "skipped": [{"file": f, "error": why} for f, why in fleet.skipped]}
