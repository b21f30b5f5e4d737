"""The command line: click commands; PlannerError becomes "Error: ... / Hint: ..." and an exit code."""

from __future__ import annotations

import functools
import shlex
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
        raise click.BadParameter(e.message + (f" ({e.hint})" if e.hint else "")) from None


def _gpu_fact(parse):
    """A callback that parses an uncatalogued GPU's fact and keeps it in ctx.meta (no command parameter)."""

    def callback(ctx, param, value):
        if value is None:
            return None
        try:
            ctx.meta[f"gpu_{param.name}"] = parse(value, what=param.opts[0]) if parse else value
        except UsageError as e:
            raise click.BadParameter(e.message + (f" ({e.hint})" if e.hint else "")) from None
        return None

    return callback


def _parse_bandwidth(value, what):
    from .units import parse_bandwidth

    return parse_bandwidth(value, what=what)


def _parse_cc(value, what):
    from .units import parse_compute_capability

    return parse_compute_capability(value, what=what)


def machine_options(f):
    options = [
        click.option("--machine", "machine_file", type=click.Path(dir_okay=False),
                     help="Plan for the machine in this file (machine schema, YAML or JSON)."),
        click.option("--gpu", help='A hypothetical GPU from the catalog: "RTX 4090", "h100-sxm x8", "m3-max-128"; '
                                   '"none" for a CPU-only box (with --ram, --cpu-cores).'),
        click.option("--vram", callback=_size, help="GPU memory of a hypothetical GPU (24G, 24GB, 24GiB)."),
        click.option("--bandwidth", callback=_gpu_fact(_parse_bandwidth), expose_value=False,
                     help="Memory bandwidth of the --gpu (900GB/s, 3.35TB/s); describes a GPU the catalog lacks."),
        click.option("--cc", callback=_gpu_fact(_parse_cc), expose_value=False,
                     help="CUDA compute capability of the --gpu (8.6); describes a GPU the catalog lacks."),
        click.option("--vendor", type=click.Choice(["nvidia", "amd", "intel", "apple"]),
                     callback=_gpu_fact(None), expose_value=False,
                     help="Vendor of a GPU the catalog lacks (default nvidia)."),
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
    return runtime_options(f)


def runtime_options(f, share: bool = True):
    """Runtime settings (planner/runtimes/base.py Options), read back with _options()."""
    def gather(ctx, param, value):
        ctx.meta[param.name] = value
        return value

    options = [
        click.option("--gpu-memory-utilization", "--mem-fraction-static", "gpu_memory_utilization", type=float,
                     callback=gather, expose_value=False,
                     help="vLLM --gpu-memory-utilization / SGLang --mem-fraction-static: share of each GPU "
                          "(0 < x <= 1)."),
        click.option("--enforce-eager", is_flag=True, callback=gather, expose_value=False,
                     help="vLLM/SGLang without CUDA graphs: less memory, slower decode."),
    ][0 if share else 1:]
    for opt in reversed(options):
        f = opt(f)
    return f


def _options():
    from .runtimes import Options

    meta = click.get_current_context().meta
    return Options(gpu_memory_utilization=meta.get("gpu_memory_utilization"),
                   enforce_eager=bool(meta.get("enforce_eager")))


def concurrency_option(f):
    return click.option("--concurrency", type=click.IntRange(min=1),
                        help="Plan a server for this many users at once: KV cache for each, batched speed "
                             "per user and in all, the largest load memory allows.")(f)


def debug_option(f):
    return click.option("--debug", is_flag=True, help="Show tracebacks.")(f)


# ---------------------------------------------------------------- helpers


def _catalog():
    from . import catalog

    return catalog.load()


def _resolve(model, cat=None):
    """MODEL -> (catalog with any model read from a file or the hub, the models it names)."""
    from .sources.resolve import resolve

    r = resolve(model, cat or _catalog())
    for n in r.notes:
        click.echo(f"note: {n}", err=True)
    return r.catalog, list(r.models)


def _machine(cat, machine_file, gpu, vram, ram, cpu_cores):
    from . import hardware

    meta = click.get_current_context().meta
    facts = {k: meta.get(f"gpu_{k}") for k in ("bandwidth", "cc", "vendor")}
    if gpu or vram is not None or any(v is not None for v in facts.values()):
        m = hardware.hypothetical(cat, gpu=gpu, vram=vram, ram=ram, cpu_cores=cpu_cores, **facts)
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
                   kv_cache_type=kv_cache_type, options=_options(), **extra)


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
@click.option("--model", "model", help="Only this model: catalog name, .gguf file, checkpoint dir, config.json, org/name.")
@click.option("--prefer-local", is_flag=True, help="Rank plans whose model file is already on this disk first.")
@click.option("--why", "why", metavar="MODEL",
              help="Why MODEL ranks where it does: its rank, and the plans above it with the term that decides "
                   "(up to --top, default 5).")
@concurrency_option
@debug_option
def plan(licence, context, runtimes, quants, kv_cache_type, fmt, machine_file, gpu, vram, ram, cpu_cores,
         use_cases, min_tps, top, show_all, explain, model, prefer_local, why, concurrency, debug):
    """Ranked model x quantization x runtime plans with launch commands."""
    from . import output, recommend

    if why or explain:
        from . import explain as xpl

    cat, only = _resolve(model) if model else (_catalog(), [])
    if why:
        cat, named = _resolve(why, cat)
        if len(named) != 1:
            raise UsageError(f"--why {why!r} names {len(named)} models: {', '.join(m.id for m in named)}",
                             hint="give one id")
        asked = named[0]
    machine = _machine(cat, machine_file, gpu, vram, ram, cpu_cores)
    req = _request(licence, context, runtimes, quants, kv_cache_type, use_cases=tuple(use_cases), min_tps=min_tps,
                   models=tuple(m.id for m in only), concurrency=concurrency)
    res = recommend.plan(cat, machine, req, explain=explain, best_only=not (show_all or explain))
    machine = machine.with_notes(*res.notes)
    if not (machine_file or gpu or vram is not None):  # this machine: use model files already on its disk
        from .local import plans as local_plans

        res.plans = local_plans.mark(res.plans, cat, machine, options=req.options)
    plans = res.plans if show_all else recommend.one_per_model(res.plans)
    if prefer_local:
        from .local import plans as local_plans

        plans = local_plans.prefer(res.plans, plans, show_all)
    limit = top if top else (None if show_all else 10)
    shown = plans[:limit] if limit else plans
    excluded_n = sum(len(v) for v in res.licence_excluded.values())
    threshold = float(cat.constants["interactive_tokens_per_s"])
    why_doc = None
    if why:  # ranked by plan_key, one plan per model (--all and --prefer-local do not change it)
        ranked = plans if not (show_all or prefer_local) else recommend.one_per_model(res.plans)
        ranked_ids = {p.model.id for p in ranked}
        detail = None if asked.id in ranked_ids else recommend.plan(cat, machine, replace(req, models=(asked.id,)),
                                                                   explain=True)
        why_doc = xpl.why_model(ranked, asked, top or 5, result=detail, request=req, threshold=threshold).to_dict()
    _echo_notes(machine)
    if fmt == "table" and why_doc is not None:
        head = f"Context: {res.context} tokens" + (" (default; set with --context)" if context is None else "")
        click.echo(f"Machine: {output.machine_summary(machine)}\n{head}\n\n" + output.why_text(why_doc), nl=False)
    elif fmt == "table":
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
            if shown:
                labels = [f"#{i} {p.model.id} ({p.quant}, {p.runtime.id})" for i, p in enumerate(shown, 1)]
                text += ("\nRanking (the first term of the key where two plans differ decides):\n"
                         + "\n".join(output.order_lines(labels, xpl.explain_list(shown, threshold=threshold)))
                         + "\n")
        click.echo(text, nl=False)
    else:
        doc = {"machine": machine.to_dict(), "request": req.to_dict(res.context),
               "plans": [p.to_dict(i) for i, p in enumerate(shown, 1)],
               "licence_excluded": {k: v for k, v in sorted(res.licence_excluded.items())}}
        if explain:
            doc["rejected"] = res.rejected
            for d, e in zip(doc["plans"], xpl.explain_list(shown, threshold=threshold)):
                d["explain"] = e
        if why_doc is not None:
            doc["why"] = why_doc
        click.echo(output.dump(doc, fmt), nl=False)
    if not plans:
        sys.exit(Exit.NO_FIT)


@cli.command("can-run")
@click.argument("model")
@planning_options
@click.option("--fleet", "fleet_dir", type=click.Path(file_okay=False), help="Ask a fleet directory instead (see `fleet plan`).")
@click.option("--explain", is_flag=True,
              help="Also say why the options are in this order: the first one's key terms, then the term that "
                   "puts each below the one above.")
@concurrency_option
@debug_option
def can_run(model, licence, context, runtimes, quants, kv_cache_type, fmt, machine_file, gpu, vram, ram, cpu_cores,
            fleet_dir, explain, concurrency, debug):
    """Can this box run MODEL? Yes/no, the best way, and what would change the answer.

    MODEL: a catalog id, alias, Hugging Face repo, Ollama tag, or a size such as 70b; or a local
    .gguf file (any shard of a split set), a checkpoint directory, a config.json, or an org/name
    repository outside the catalog.
    """
    if fleet_dir:
        from .commands.fleet import run_can_run_fleet

        return run_can_run_fleet(model, fleet_dir, licence, context, runtimes, quants, kv_cache_type, fmt)
    from . import explain as xpl
    from . import output, recommend

    cat, targets = _resolve(model)
    machine = _machine(cat, machine_file, gpu, vram, ram, cpu_cores)
    machine = machine.with_notes(*recommend.machine_notes(cat, machine, _request(licence, context, runtimes, quants,
                                                                                  kv_cache_type)))
    _echo_notes(machine)
    docs, any_yes, texts = [], False, []
    for m in targets:
        req = _request(licence, context, runtimes, quants, kv_cache_type, models=(m.id,), concurrency=concurrency)
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
        if not best:  # one reason per runtime: its smallest file's (closest to fitting)
            why_not += xpl.rejection_reasons(res.rejected, m.id)
        fits = []
        if res.licence_excluded:
            why_not = [f"left out by --licence {licence}: {next(iter(res.licence_excluded))}"]
        elif best is None or not best.interactive or (best.low_bit and not quants):
            fits = recommend.would_fit_with(cat, machine, m, req, ctx)
        quants_ok = sorted({p.quant for p in res.plans})
        answer = "excluded" if res.licence_excluded else answer
        doc = {"model": m.id, "answer": answer, "context": ctx,
               "best": best.to_dict(1) if best else None,
               "options": [p.to_dict(i) for i, p in enumerate(options, 1)],
               "quants": quants_ok, "why_not": why_not[:12], "would_fit_with": fits}
        if best is not None and not best.interactive:
            doc["too_slow"] = True
        text = _can_run_text(m, doc, best, options, machine)
        if explain and options:  # options are in best_per_model_key's order: explain that key
            explained = xpl.explain_list(options, xpl.WITHIN_MODEL,
                                         threshold=float(cat.constants["interactive_tokens_per_s"]))
            for d, e in zip(doc["options"], explained):
                d["explain"] = e
            labels = [f"#{i} {p.runtime.id} {p.quant}" for i, p in enumerate(options, 1)]
            text += ("  why this order (the first term of the key where two options differ decides):\n"
                     + "\n".join(output.order_lines(labels, explained, "    ")) + "\n")
        docs.append(doc)
        texts.append(text)
    if fmt == "table":
        click.echo(f"Machine: {output.machine_summary(machine)}\n")
        click.echo("\n".join(texts), nl=False)
    else:
        click.echo(output.dump(docs[0] if len(docs) == 1 else docs, fmt), nl=False)
    sys.exit(Exit.OK if any_yes else Exit.NO_FIT)


def _can_run_text(m, doc, best, options, machine) -> str:
    lines = []
    if doc["answer"] == "excluded":
        lines.append(f"{m.id}: left out by the licence filter ({doc['why_not'][0].split(': ', 1)[1]}), "
                     f"not by this machine; drop --licence to see whether it fits.")
    elif best is None:
        lines.append(f"{m.id}: NO, not at {doc['context']} tokens of context on this machine.")
    elif best.interactive:
        lines.append(f"{m.id}: YES — best: {best.quant} on {best.runtime.id} ({best.placement.kind}), "
                     f"{_tps(best)}, needs {best.placement.required_bytes / 2**30:.1f} GiB"
                     + (" (low-bit: expect a clear quality loss)." if best.low_bit else "."))
    elif best.serving is not None:
        lines.append(f"{m.id}: YES, but slowly at this load: {_tps(best)}; under the interactive speed per user.")
    else:
        how = "only through partial CPU offload" if best.placement.kind == "partial-offload" else \
            ("on the CPU" if not machine.gpus else f"only on the {best.placement.kind}")
        lines.append(f"{m.id}: YES, {how}, and slowly: {_tps(best)}; too slow for interactive use.")
    if best is not None:
        rival = next((p for p in options if (p.quant, p.placement.kind) != (best.quant, best.placement.kind)), None)
        if rival is not None:
            from .explain import ID_TERMS, WITHIN_MODEL, deciding_term

            term, ours, theirs = deciding_term(best, rival, WITHIN_MODEL)
            if term not in ID_TERMS:
                lines.append(f"  chosen over {rival.quant} on {rival.runtime.id} ({rival.placement.kind}) on {term}: "
                             f"{ours} vs {theirs} (--explain: every term)")
    if doc["quants"]:
        lines.append(f"  quantizations that fit: {', '.join(doc['quants'])}")
    for p in options:
        extra = f", {p.placement.gpu_layers}/{p.estimate.layers} layers on GPU" if p.placement.gpu_layers else ""
        if p.placement.gpu_layers and p.placement.gpu_layers >= p.estimate.layers:
            extra += " (the output layer in RAM)"
        if p.placement.moe_cpu_layers:
            extra = f", experts of {p.placement.moe_cpu_layers}/{p.estimate.layers} layers in RAM"
        lines.append(f"  {p.runtime.id:12} {p.quant:7} {p.placement.kind}{extra}, {_tps(p)}, "
                     f"{p.placement.required_bytes / 2**30:.1f} GiB")
        if p.artifact.source == "convert":  # no published file: how to make it first
            lines += [f"               $ {shlex.join(step)}" for step in p.artifact.steps]
        lines.append(f"               $ {p.launch.command}")
    if doc["why_not"] and best is None and doc["answer"] != "excluded":
        lines.append("  why not:")
        lines += [f"    - {w}" for w in doc["why_not"]]
    if doc["would_fit_with"]:
        lines.append("  would fit with:")
        lines += [f"    - {w}" for w in doc["would_fit_with"]]
    return "\n".join(lines) + "\n"


def _tps(p) -> str:
    if p.serving is not None:
        s = p.serving
        cap = f", memory holds {s.max_concurrency:,} users" if s.max_concurrency is not None else ""
        if s.concurrency == 1:
            return (f"1 user: ~{s.per_user.expected:.1f} tokens/s ({s.per_user.low:.1f}-{s.per_user.high:.1f})"
                    f"{cap}")
        why = f" [{s.bound}]" if "assumed" in s.bound else ""
        return (f"{s.concurrency} users: ~{s.per_user.expected:.1f} tokens/s each ({s.per_user.low:.1f}-"
                f"{s.per_user.high:.1f}), ~{s.aggregate_tokens_per_s:,.0f} tokens/s in all{cap}{why}")
    return f"~{p.speed.expected:.1f} tokens/s ({p.speed.low:.1f}-{p.speed.high:.1f})" if p.speed else "speed unknown"


@cli.command()
@click.argument("model")
@click.option("--quant", help="Quantization: Q4_K_M, Q8_0, BF16, FP8, AWQ, 4bit... (a file's own by default).")
@click.option("--runtime", required=True, help="Runtime: llama.cpp, ollama, vllm, transformers...")
@click.option("--context", callback=_tokens, help="Context in tokens (default: the runtime's default).")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Concurrent sequences.")
@click.option("--kv-cache-type", help="f16, q8_0, q4_0 (llama.cpp/Ollama), fp8 (vLLM).")
@click.option("--device", type=click.Choice(["gpu", "cpu"]), default="gpu", show_default=True,
              help="gpu: one CUDA GPU (CUDA context and allocator slack included); cpu: RAM only.")
@click.option("--format", "fmt", type=FORMAT, default="table", show_default=True)
@functools.partial(runtime_options, share=False)
@debug_option
def estimate(model, quant, runtime, context, batch, kv_cache_type, device, fmt, debug):
    """Memory breakdown of one configuration (no machine: --device says where it runs).

    MODEL: as for can-run, including a local .gguf file, checkpoint directory or config.json.
    """
    from . import memory, output, recommend

    cat, models = _resolve(model)
    if len(models) != 1:
        raise UsageError(f"{model!r} names {len(models)} models: {', '.join(m.id for m in models)}",
                         hint="give one id")
    if quant is None:
        own = {a.quant for a in models[0].artifacts if a.source != "catalog"}
        if len(own) != 1:
            raise UsageError("--quant is required for a catalog model", hint="e.g. --quant Q4_K_M")
        quant = own.pop()
    rid = recommend.runtime_id(runtime, cat)
    if rid is None:
        import difflib

        ids = [r.id for r in cat.runtimes]
        close = difflib.get_close_matches(runtime, ids, n=3, cutoff=0.4)
        raise UsageError(f"unknown runtime {runtime!r}",
                         hint=f"did you mean {', '.join(close)}?" if close else "known: " + ", ".join(ids))
    rt = cat.runtime(rid)
    q = quant.upper() if quant.lower() not in ("4bit", "8bit") else quant.lower()
    est = memory.estimate(models[0], q, rt, cat, context=context, batch=batch, kv_cache_type=kv_cache_type,
                          gpu=device == "gpu", options=_options())
    doc = est.to_dict()
    doc["device"] = device
    doc["notes"].insert(0, "assumes one CUDA GPU: CUDA context and allocator slack included (--device cpu for a "
                           "CPU run)" if device == "gpu" else "assumes a CPU run: no GPU context")
    click.echo(output.estimate_table(doc) if fmt == "table" else output.dump(doc, fmt), nl=False)


@cli.command()
@click.option("--format", "fmt", type=FORMAT, default="table", show_default=True)
@click.option("--save", type=click.Path(dir_okay=False), help="Also write the machine document to this file.")
@click.option("--machine", "machine_file", type=click.Path(dir_okay=False),
              help="Read a machine file instead of probing (to check or convert it).")
@click.option("--measure-bandwidth", is_flag=True,
              help="Also measure RAM bandwidth as CPU decode reads it (all usable cores streaming at once, "
                   "a few seconds); recorded in the machine document and used for CPU speed estimates.")
@click.option("--local", "local", is_flag=True,
              help="Also list installed and running runtimes and the model files on disk (read-only).")
@debug_option
def probe(fmt, save, machine_file, measure_bandwidth, local, debug):
    """This machine's hardware, in the machine schema."""
    from . import hardware, output
    from .probe import probe as run_probe

    m = hardware.load_machine(machine_file) if machine_file else run_probe()
    if measure_bandwidth:
        from .bandwidth import measure

        r = measure(workers=m.cpu.usable_cores)
        m = replace(m, memory=replace(m.memory, bandwidth_bytes_per_s=r.bytes_per_s,
                                      bandwidth_source=f"measured: {r.method}")).with_notes(
            f"RAM bandwidth measured: {r.bytes_per_s / 1e9:.1f} GB/s ({r.method})")
    if save:
        ext_fmt = "json" if save.lower().endswith(".json") else "yaml"
        hardware.write_atomic(save, hardware.dump_machine(m, ext_fmt))
    if local:
        from .local import report

        doc = report.document(m.to_dict(), _catalog())
        click.echo(output.machine_table(m) + report.table(doc) if fmt == "table" else output.dump(doc, fmt), nl=False)
    elif fmt == "table":
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


@cli.command()
@click.argument("model")
@click.option("--method", type=click.Choice(["qlora", "lora", "full"]), default="qlora", show_default=True)
@click.option("--rank", type=click.IntRange(min=1), default=16, show_default=True, help="LoRA rank r.")
@click.option("--target", type=click.Choice(["all-linear", "attention"]), default="all-linear", show_default=True)
@click.option("--seq-len", type=click.IntRange(min=1), default=2048, show_default=True, help="Tokens per sequence.")
@click.option("--micro-batch", type=click.IntRange(min=1), default=1, show_default=True, help="Sequences per step per GPU.")
@click.option("--framework", type=click.Choice(["unsloth", "transformers", "axolotl"]), default="unsloth", show_default=True)
@click.option("--optimizer", type=click.Choice(["adamw", "adamw-8bit", "paged-adamw-8bit"]), default="adamw-8bit",
              show_default=True)
@click.option("--examples", type=click.IntRange(min=1), help="Training examples per epoch (with --avg-tokens).")
@click.option("--avg-tokens", type=click.IntRange(min=1), help="Average tokens per example.")
@machine_options
@click.option("--format", "fmt", type=FORMAT, default="table", show_default=True)
@debug_option
def finetune(model, machine_file, gpu, vram, ram, cpu_cores, debug, **opts):
    """Can this box fine-tune MODEL (LoRA, QLoRA, full)? Memory, largest batch x length, time, what next."""
    from . import finetune_cli

    cat = _catalog()
    machine = _machine(cat, machine_file, gpu, vram, ram, cpu_cores)
    _echo_notes(machine)
    text, code = finetune_cli.run(cat, machine, model=model, **opts)
    click.echo(text, nl=False)
    sys.exit(code)


from .commands.bench import bench  # noqa: E402

cli.add_command(bench)

from .commands.hardware import hardware  # noqa: E402

cli.add_command(hardware)


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
    from .commands.fleet import run_fleet_plan

    run_fleet_plan(directory, want, licence, context, runtimes, quants, kv_cache_type, fmt, top)


# ---------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> None:
    if argv is None:
        # A process that runs one command: what is loaded by now (modules, click's commands) lives
        # until exit, so the cycle collector need not walk it again on every pass (gc.freeze).
        import gc

        gc.freeze()
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
