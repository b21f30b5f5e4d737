"""`plan-deploy hardware MODEL`: the catalog configurations that run MODEL, smallest first."""

from __future__ import annotations

import sys

import click

from ..errors import Exit, UsageError


def _tokens(ctx, param, value):
    from ..cli import _tokens as tokens  # the planning commands' --context parser

    return tokens(ctx, param, value)


@click.command("hardware")
@click.argument("model")
@click.option("--quant", "quants", multiple=True, help="Only this quantization (repeatable); low-bit types only when named.")
@click.option("--min-tps", type=click.FloatRange(min=0), help="Expected decode tokens/s the configuration must reach.")
@click.option("--context", callback=_tokens, help="Context in tokens (8192, 8k, 128k). Default 8k.")
@click.option("--licence", "--license", "licence", type=click.Choice(["any", "commercial", "permissive"]),
              default="any", show_default=True)
@click.option("--concurrency", type=click.IntRange(min=1),
              help="Plan each configuration as a server for this many users; --min-tps is then per user.")
@click.option("--top", type=click.IntRange(min=1), default=15, show_default=True, help="Configurations shown.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "yaml"]), default="table", show_default=True)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def hardware(model, quants, min_tps, context, licence, concurrency, top, fmt, debug):
    """Which hardware runs MODEL (at --min-tps), smallest sufficient configuration first.

    Each catalog GPU (1, 2, 4 or 8 of it), each Mac and unified-memory device at each memory size,
    and CPU boxes by RAM, planned by the same engine as can-run.
    """
    from .. import catalog, output
    from ..hardware_search import search

    cat = catalog.load()
    models = catalog.find_models(model, cat)
    if len(models) != 1:
        raise UsageError(f"{model!r} names {len(models)} models: {', '.join(m.id for m in models)}",
                         hint="give one id")
    m = models[0]
    opts = search(cat, m, quants=tuple(q.upper() for q in quants), context=context, min_tps=min_tps,
                  licence=licence, concurrency=concurrency)
    shown = opts[:top]
    if fmt != "table":
        click.echo(output.dump({"model": m.id, "min_tps": min_tps, "concurrency": concurrency,
                                "configurations": [o.to_dict() for o in shown],
                                "more": max(0, len(opts) - len(shown))}, fmt), nl=False)
    else:
        click.echo(_table(m, shown, len(opts), min_tps, concurrency), nl=False)
    sys.exit(Exit.OK if opts else Exit.NO_FIT)


def _table(model, shown, total, min_tps, concurrency=None) -> str:
    from tabulate import tabulate

    rows = []
    for o in shown:
        p = o.plan
        s = p.speed
        bw = f"{o.bandwidth_bytes_per_s / 1e9:,.0f} GB/s" if o.bandwidth_bytes_per_s else "assumed"
        tp = f" TP {p.placement.tensor_parallel}" if p.placement.tensor_parallel else ""
        row = [o.config, f"{o.memory_bytes / 2**30:.0f} GiB", f"{p.quant} on {p.runtime.id}",
               f"{p.placement.kind}{tp}", f"{p.placement.required_bytes / 2**30:.1f} GiB",
               f"{(p.estimate.weights_read_bytes or p.estimate.weights_bytes) / 1e9:.1f} GB", bw,
               f"{s.expected:.1f} ({s.low:.1f}-{s.high:.1f})"]
        if concurrency:
            v = p.serving
            mark = "*" if "assumed" in v.bound else ""  # no batching gain modelled: a floor
            row += [f"{v.per_user.expected:.1f} ({v.per_user.low:.1f}-{v.per_user.high:.1f}){mark}",
                    f"{v.aggregate_tokens_per_s:,.0f}",
                    "-" if v.max_concurrency is None else f"{v.max_concurrency:,}"]
        rows.append(row)
    want = f" at {min_tps:g}+ tokens/s" + (" per user" if concurrency else "") if min_tps else ""
    if concurrency:
        want += f" for {concurrency} user{'s' if concurrency > 1 else ''} at once"
    head = f"{model.id}: {total} configuration{'s' if total != 1 else ''} run it{want}, smallest first\n\n"
    if not rows:
        return (f"{model.id}: no catalog configuration runs it{want} (GPU configurations up to 8 GPUs, Macs, "
                "CPU boxes up to 512 GiB)\n")
    heads = ["configuration", "memory", "plan", "where", "needs", "read/token", "bandwidth/GPU",
             "tokens/s alone" if concurrency else "tokens/s"]
    if concurrency:
        heads += [f"per user at {concurrency}", "in all", "max users"]
    table = tabulate(rows, heads, tablefmt="simple", disable_numparse=True)
    foot = ("\ncheck: decode tokens/s is about efficiency x bandwidth / bytes read per token (x GPUs under tensor"
            "\nparallel), less a fixed cost per layer: data/constants.yaml speed.decode; interactive means 5+ tokens/s.\n")
    if concurrency and any(o.plan.serving and "assumed" in o.plan.serving.bound for o in shown):
        foot += ("* no batching gain assumed (no FLOP/s figure for the GPU, or weights in RAM): the single-user "
                 "speed shared by the users, a floor\n")
    if concurrency:
        foot += ("at load: a step of N users costs the single step, plus their extra KV (and MoE expert) reads,"
                 "\nplus N-1 tokens at data/constants.yaml serving.batch_decode_ratio x the prefill rate.\n")
    if total > len(shown):
        foot += f"{total - len(shown)} more: --top N\n"
    return head + table + "\n" + foot
