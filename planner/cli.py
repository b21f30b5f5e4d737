"""The command line: click commands; PlannerError becomes "Error: ... / Hint: ..." and an exit code."""

from __future__ import annotations

import sys
from dataclasses import replace

import click

from .errors import Exit, PlannerError, UsageError

FORMAT = click.Choice(["table", "json", "yaml"])


class DefaultGroup(click.Group):
    """`plan-deploy [OPTIONS]` runs `plan`: a first argument that is no command goes to `plan`."""

    def parse_args(self, ctx, args):
        # Options go to `plan`; a bare word that is no command stays, so click says "No such command".
        if not args or (args[0].startswith("-") and args[0] not in ("--help", "-h", "--version")):
            args = ["plan", *args]
        return super().parse_args(ctx, args)


def _size(ctx, param, value):
    from .units import parse_size

    if value is None:
        return None
    try:
        return parse_size(value, what=param.opts[0])
    except UsageError as e:
        raise click.BadParameter(e.message + (f" ({e.hint})" if e.hint else "")) from None


def _tokens(ctx, param, value):
    from .units import parse_tokens

    if value is None:
        return None
    try:
        return parse_tokens(value, what="--context")
    except UsageError as e:
        raise click.BadParameter(e.message) from None


def machine_options(f):
    options = [
        click.option("--machine", "machine_file", type=click.Path(dir_okay=False),
                     help="Plan for the machine in this file (machine schema, YAML or JSON)."),
        click.option("--gpu", help='A hypothetical GPU from the catalog: "RTX 4090", "h100-sxm x8", "m3-max-128".'),
        click.option("--vram", callback=_size, help="GPU memory of a hypothetical GPU (24G, 24GB, 24GiB)."),
        click.option("--ram", callback=_size, help="System RAM (24G = 10^9 bytes, 24GiB = 2^30)."),
        click.option("--cpu-cores", type=click.IntRange(min=1), help="CPU cores of a hypothetical machine."),
    ]
    for opt in reversed(options):
        f = opt(f)
    return f


def planning_options(f):
    return machine_options(request_options(f))


def request_options(f):
    options = [
        click.option("--licence", "--license", "licence", type=click.Choice(["any", "commercial", "permissive"]),
                     default="any", show_default=True,
                     help="commercial: commercial use allowed (maybe with conditions); permissive: Apache/MIT-class."),
        click.option("--context", callback=_tokens, help="Context in tokens (8192, 8k, 128k). Default 8k."),
        click.option("--runtime", "runtimes", multiple=True, help="Only this runtime (repeatable)."),
        click.option("--quant", "quants", multiple=True, help="Only this quantization (repeatable): Q4_K_M, BF16, FP8..."),
        click.option("--kv-cache-type", help="KV cache type: f16, q8_0, q4_0 (llama.cpp/Ollama), fp8 (vLLM)."),
        click.option("--format", "fmt", type=FORMAT, default="table", show_default=True),
    ]
    for opt in reversed(options):
        f = opt(f)
    return f


def debug_option(f):
    return click.option("--debug", is_flag=True, help="Show tracebacks.")(f)


# ---------------------------------------------------------------- helpers


def _catalog():
    from . import catalog

    return catalog.load()


def _machine(cat, machine_file, gpu, vram, ram, cpu_cores):
    from . import hardware

    if gpu or vram is not None:
        m = hardware.hypothetical(cat, gpu=gpu, vram=vram, ram=ram, cpu_cores=cpu_cores)
    else:
        if machine_file:
            m = hardware.load_machine(machine_file)
        else:
            from .probe import probe

            m = probe()
        if ram is not None:
            m = replace(m, memory=replace(m.memory, total_bytes=ram, available_bytes=ram, limit_bytes=None))
        if cpu_cores is not None:
            m = replace(m, cpu=replace(m.cpu, usable_cores=cpu_cores, logical_cores=cpu_cores,
                                       physical_cores=cpu_cores))
    return hardware.enrich(m, cat)


def _request(licence, context, runtimes, quants, kv_cache_type, **extra):
    from .recommend import Request

    return Request(licence=licence, context=context, runtimes=tuple(runtimes),
                   quants=tuple(q.upper() for q in quants),
                   kv_cache_type=kv_cache_type, **extra)


def _echo_notes(machine) -> None:
    for n in machine.notes:
        click.echo(f"note: {n}", err=True)


# ---------------------------------------------------------------- commands


@click.group(cls=DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="plan-deploy")
def cli():
    """Hardware-aware deployment planner for open-weight LLMs.

    With no command, runs `plan`: probes this machine and prints ranked plans.
    """


@cli.command()
@planning_options
@click.option("--use-case", "use_cases", multiple=True,
              type=click.Choice(["chat", "code", "reasoning", "multilingual", "long-context", "edge", "vision"]),
              help="Only models tagged for this use (repeatable).")
@click.option("--min-tps", type=click.FloatRange(min=0), help="Only plans expected to reach this many tokens/s.")
@click.option("--top", type=click.IntRange(min=1), help="Show this many plans (default 10; all with --all).")
@click.option("--all", "show_all", is_flag=True, help="Every model x quantization x runtime that fits.")
@click.option("--explain", is_flag=True, help="Also list what was rejected and why.")
@debug_option
def plan(licence, context, runtimes, quants, kv_cache_type, fmt, machine_file, gpu, vram, ram, cpu_cores,
         use_cases, min_tps, top, show_all, explain, debug):
    """Ranked model x quantization x runtime plans with launch commands."""
    from . import output, recommend

    cat = _catalog()
    machine = _machine(cat, machine_file, gpu, vram, ram, cpu_cores)
    req = _request(licence, context, runtimes, quants, kv_cache_type, use_cases=tuple(use_cases), min_tps=min_tps)
    res = recommend.plan(cat, machine, req, explain=explain)
    plans = res.plans if show_all else recommend.one_per_model(res.plans)
    limit = top if top else (None if show_all else 10)
    shown = plans[:limit] if limit else plans
    excluded_n = sum(len(v) for v in res.licence_excluded.values())
    _echo_notes(machine)
    if fmt == "table":
        head = [f"Context: {res.context} tokens" + (" (default; set with --context)" if context is None else "")]
        if licence != "any":
            why = ", ".join(f"{len(v)} {k}" for k, v in sorted(res.licence_excluded.items()))
            head.append(f"Licence filter '{licence}': {excluded_n} models left out" + (f" ({why})" if why else ""))
        foot = []
        if len(plans) > len(shown):
            foot.append(f"{len(plans) - len(shown)} more: --top N or --all")
        if not plans:
            foot.append("No plan fits this machine with these filters. Try --explain, a shorter --context, "
                        "or `plan-deploy can-run MODEL` for what would change that.")
        text = output.plans_table(machine, shown, head, foot)
        if explain:
            text += "\n" + output.rejected_table(res.rejected)
        click.echo(text, nl=False)
    else:
        doc = {"machine": machine.to_dict(), "request": req.to_dict(res.context),
               "plans": [p.to_dict(i) for i, p in enumerate(shown, 1)],
               "licence_excluded": {k: v for k, v in sorted(res.licence_excluded.items())}}
        if explain:
            doc["rejected"] = res.rejected
        click.echo(output.dump(doc, fmt), nl=False)
    if not plans:
        sys.exit(Exit.NO_FIT)


@cli.command("can-run")
@click.argument("model")
@planning_options
@click.option("--fleet", "fleet_dir", type=click.Path(file_okay=False), help="Ask a fleet directory instead (see `fleet plan`).")
@debug_option
def can_run(model, licence, context, runtimes, quants, kv_cache_type, fmt, machine_file, gpu, vram, ram, cpu_cores,
            fleet_dir, debug):
    """Can this box run MODEL? Yes/no, the best way, and what would change the answer.

    MODEL: a catalog id, alias, Hugging Face repo, Ollama tag, or a size such as 70b.
    """
    if fleet_dir:
        from .fleet.cli import run_can_run_fleet

        return run_can_run_fleet(model, fleet_dir, licence, context, runtimes, quants, kv_cache_type, fmt)
    from . import catalog, output, recommend

    cat = _catalog()
    targets = catalog.find_models(model, cat)
    machine = _machine(cat, machine_file, gpu, vram, ram, cpu_cores)
    _echo_notes(machine)
    docs, any_yes, texts = [], False, []
    for m in targets:
        req = _request(licence, context, runtimes, quants, kv_cache_type, models=(m.id,))
        res = recommend.plan(cat, machine, req, explain=True)
        ctx = res.context
        best_per_runtime = {}
        for p in sorted(res.plans, key=recommend.best_per_model_key):
            best_per_runtime.setdefault(p.runtime.id, p)
        options = sorted(best_per_runtime.values(), key=recommend.best_per_model_key)
        best = recommend.one_per_model(res.plans)[0] if res.plans else None
        answer = "yes" if best else "no"
        any_yes |= best is not None
        why_not = []
        if res.licence_excluded:
            why_not.append(f"{m.id} is left out by --licence {licence}: {next(iter(res.licence_excluded))}")
        if not best:
            seen = set()
            for r in res.rejected:
                key = (r["runtime"], r["reason"])
                if key not in seen and r["model"] in (m.id, "*"):
                    seen.add(key)
                    why_not.append(f"{r['runtime']}" + (f" {r['quant']}" if r["quant"] else "") + f": {r['reason']}")
        fits = []
        if best is None or not best.interactive:
            fits = recommend.would_fit_with(cat, machine, m, req, ctx)
        quants_ok = sorted({p.quant for p in res.plans})
        doc = {"model": m.id, "answer": answer, "context": ctx,
               "best": best.to_dict(1) if best else None,
               "options": [p.to_dict(i) for i, p in enumerate(options, 1)],
               "quants": quants_ok, "why_not": why_not[:12], "would_fit_with": fits}
        if best is not None and not best.interactive:
            doc["too_slow"] = True
        docs.append(doc)
        texts.append(_can_run_text(m, doc, best, options, machine))
    if fmt == "table":
        click.echo(f"Machine: {output.machine_summary(machine)}\n")
        click.echo("\n".join(texts), nl=False)
    else:
        click.echo(output.dump(docs[0] if len(docs) == 1 else docs, fmt), nl=False)
    sys.exit(Exit.OK if any_yes else Exit.NO_FIT)


def _can_run_text(m, doc, best, options, machine) -> str:
    lines = []
    if best is None:
        lines.append(f"{m.id}: NO, not at {doc['context']} tokens of context on this machine.")
    elif best.interactive:
        lines.append(f"{m.id}: YES — best: {best.quant} on {best.runtime.id} ({best.placement.kind}), "
                     f"{_tps(best)}, needs {best.placement.required_bytes / 2**30:.1f} GiB.")
    else:
        how = "only through partial CPU offload" if best.placement.kind == "partial-offload" else \
            f"only on the {best.placement.kind}"
        lines.append(f"{m.id}: YES, {how}, and slowly: {_tps(best)}; too slow for interactive use.")
    if doc["quants"]:
        lines.append(f"  quantizations that fit: {', '.join(doc['quants'])}")
    for p in options:
        extra = f", {p.placement.gpu_layers}/{p.estimate.layers} layers on GPU" if p.placement.gpu_layers else ""
        lines.append(f"  {p.runtime.id:12} {p.quant:7} {p.placement.kind}{extra}, {_tps(p)}, "
                     f"{p.placement.required_bytes / 2**30:.1f} GiB")
        lines.append(f"               $ {p.launch.command}")
    if doc["why_not"] and best is None:
        lines.append("  why not:")
        lines += [f"    - {w}" for w in doc["why_not"]]
    if doc["would_fit_with"]:
        lines.append("  would fit with:")
        lines += [f"    - {w}" for w in doc["would_fit_with"]]
    return "\n".join(lines) + "\n"


def _tps(p) -> str:
    return f"~{p.speed.expected:.1f} tokens/s ({p.speed.low:.1f}-{p.speed.high:.1f})" if p.speed else "speed unknown"


@cli.command()
@click.argument("model")
@click.option("--quant", required=True, help="Quantization: Q4_K_M, Q8_0, BF16, FP8, AWQ, 4bit...")
@click.option("--runtime", required=True, help="Runtime: llama.cpp, ollama, vllm, transformers...")
@click.option("--context", callback=_tokens, help="Context in tokens (default: the runtime's default).")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Concurrent sequences.")
@click.option("--kv-cache-type", help="f16, q8_0, q4_0 (llama.cpp/Ollama), fp8 (vLLM).")
@click.option("--format", "fmt", type=FORMAT, default="table", show_default=True)
@debug_option
def estimate(model, quant, runtime, context, batch, kv_cache_type, fmt, debug):
    """Memory breakdown of one configuration (no hardware involved)."""
    from . import catalog, memory, output, recommend

    cat = _catalog()
    models = catalog.find_models(model, cat)
    if len(models) != 1:
        raise UsageError(f"{model!r} names {len(models)} models: {', '.join(m.id for m in models)}",
                         hint="give one id")
    rid = recommend.runtime_id(runtime, cat)
    if rid is None:
        import difflib

        ids = [r.id for r in cat.runtimes]
        close = difflib.get_close_matches(runtime, ids, n=3, cutoff=0.4)
        raise UsageError(f"unknown runtime {runtime!r}",
                         hint=f"did you mean {', '.join(close)}?" if close else "known: " + ", ".join(ids))
    rt = cat.runtime(rid)
    q = quant.upper() if quant.lower() not in ("4bit", "8bit") else quant.lower()
    est = memory.estimate(models[0], q, rt, cat, context=context, batch=batch, kv_cache_type=kv_cache_type)
    doc = est.to_dict()
    click.echo(output.estimate_table(doc) if fmt == "table" else output.dump(doc, fmt), nl=False)


@cli.command()
@click.option("--format", "fmt", type=FORMAT, default="table", show_default=True)
@click.option("--save", type=click.Path(dir_okay=False), help="Also write the machine document to this file.")
@click.option("--machine", "machine_file", type=click.Path(dir_okay=False),
              help="Read a machine file instead of probing (to check or convert it).")
@click.option("--measure-bandwidth", is_flag=True,
              help="Also measure RAM bandwidth (a 256 MiB copy; used for CPU speed estimates).")
@debug_option
def probe(fmt, save, machine_file, measure_bandwidth, debug):
    """This machine's hardware, in the machine schema."""
    from . import hardware, output
    from .probe import measure_ram_bandwidth
    from .probe import probe as run_probe

    m = hardware.load_machine(machine_file) if machine_file else run_probe()
    if measure_bandwidth:
        bw = measure_ram_bandwidth()
        m = replace(m, memory=replace(m.memory, bandwidth_bytes_per_s=bw)).with_notes(
            f"RAM bandwidth measured: {bw / 1e9:.1f} GB/s (one thread copying 256 MiB; multi-threaded decode may reach more)")
    if save:
        ext_fmt = "json" if save.lower().endswith(".json") else "yaml"
        hardware.write_atomic(save, hardware.dump_machine(m, ext_fmt))
    if fmt == "table":
        click.echo(output.machine_table(m), nl=False)
    else:
        click.echo(hardware.dump_machine(m, fmt), nl=False)


@cli.command()
@click.option("--licence", "--license", "licence", type=click.Choice(["any", "commercial", "permissive"]),
              default="any", show_default=True)
@click.option("--format", "fmt", type=FORMAT, default="table", show_default=True)
@debug_option
def models(licence, fmt, debug):
    """The model catalog."""
    from . import output, recommend

    cat = _catalog()
    ms = [m for m in cat.models if recommend.licence_ok(m, licence) is None]
    if fmt == "table":
        click.echo(output.models_table(ms), nl=False)
    else:
        click.echo(output.dump([m.to_dict() for m in ms], fmt), nl=False)


def _list_catalog(kind: str, fmt: str) -> None:
    from . import output

    entries = list(getattr(_catalog(), kind))
    if fmt == "table":
        click.echo(getattr(output, f"{kind}_table")(entries), nl=False)
    else:
        click.echo(output.dump([e.to_dict() for e in entries], fmt), nl=False)


@cli.command()
@click.option("--format", "fmt", type=FORMAT, default="table", show_default=True)
@debug_option
def runtimes(fmt, debug):
    """The runtime catalog."""
    _list_catalog("runtimes", fmt)


@cli.command()
@click.option("--format", "fmt", type=FORMAT, default="table", show_default=True)
@debug_option
def gpus(fmt, debug):
    """The GPU catalog (names for --gpu)."""
    _list_catalog("gpus", fmt)


@cli.group(no_args_is_help=False)
def fleet():
    """Plan a fleet: a directory of machine files (`probe --save DIR/NAME.yaml`) plus fleet.yaml."""


@fleet.command("plan")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--want", multiple=True, help="Models to place, comma-separated or repeated: where does each go?")
@click.option("--top", type=click.IntRange(min=1), default=3, show_default=True, help="Plans shown per machine.")
@request_options
@debug_option
def fleet_plan(directory, want, top, licence, context, runtimes, quants, kv_cache_type, fmt, debug):
    """Each machine's best plans, multi-node options, and a --want assignment."""
    from .fleet.cli import run_fleet_plan

    run_fleet_plan(directory, want, licence, context, runtimes, quants, kv_cache_type, fmt, top)


# ---------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        rv = cli.main(args=args, prog_name="plan-deploy", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(Exit.ERROR)
    except click.UsageError as e:
        # One or two lines, like every other error: no usage banner.
        click.echo(f"Error: {e.format_message()}", err=True)
        cmd = e.ctx.command_path if e.ctx is not None else "plan-deploy"
        click.echo(f"Hint: see `{cmd} --help`", err=True)
        sys.exit(Exit.USAGE)
    except click.ClickException as e:
        click.echo(f"Error: {e.format_message()}", err=True)
        sys.exit(Exit.ERROR)
    except PlannerError as e:
        if debug:
            raise
        click.echo(f"Error: {e.message}", err=True)
        if e.hint:
            click.echo(f"Hint: {e.hint}", err=True)
        sys.exit(e.exit_code)
    except (BrokenPipeError, KeyboardInterrupt):
        sys.exit(Exit.ERROR)
    except Exception as e:  # noqa: BLE001 - the last line of defence against a traceback
        if debug:
            raise
        click.echo(f"Error: unexpected {type(e).__name__}: {e}", err=True)
        click.echo("Hint: run again with --debug for the traceback, and report it", err=True)
        sys.exit(Exit.ERROR)
    sys.exit(rv if isinstance(rv, int) else Exit.OK)
