"""`plan-deploy bench URL [URL...]`: measure running servers and compare with the plan."""

from __future__ import annotations

import sys
import time

import click

from ..errors import Exit, PlannerError, UsageError


def _levels(ctx, param, value: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(x) for x in value.split(",") if x.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r}: give comma-separated whole numbers, e.g. 1,2,4") from None
    if not levels or min(levels) < 1:
        raise click.BadParameter(f"{value!r}: each level must be 1 or more")
    return levels


class _Progress:
    """A progress bar on stderr, shown only on a terminal and only once a level runs past 2 s."""

    def __init__(self, label: str, enabled: bool):
        self.label, self.enabled = label, enabled
        self.start = time.monotonic()
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            if time.monotonic() - self.start < 2.0:
                return
            self.bar = click.progressbar(length=total, label=self.label, file=sys.stderr)
            self.bar.__enter__()
        self.bar.update(done - self.bar.pos)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@click.command()
@click.argument("urls", nargs=-1, required=True, metavar="URL [URL...]")
@click.option("--api", type=click.Choice(["openai", "ollama"]),
              help="API to use (default: detected; a URL ending in /v1 is OpenAI-compatible).")
@click.option("--model", help="Model name to request (default: the server's loaded or first model).")
@click.option("--plan", "plan_model", metavar="MODEL", help="Compare with the plan for this catalog model.")
@click.option("--quant", help="Quantization of the plan to compare with (default: from the server).")
@click.option("--runtime", help="Runtime of the plan to compare with (default: detected).")
@click.option("--concurrency", "levels", default="1", show_default=True, callback=_levels,
              help="Concurrency levels, comma-separated: 1,2,4.")
@click.option("--requests", "n_requests", type=click.IntRange(min=1), default=8, show_default=True,
              help="Requests per concurrency level.")
@click.option("--max-tokens", type=click.IntRange(min=2), default=128, show_default=True,
              help="Most tokens to generate per request.")
@click.option("--prompts", "prompts_file", type=click.Path(dir_okay=False),
              help="Prompt set: YAML list or JSONL of {question, expected | regex}.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0.1), default=60.0, show_default=True,
              help="Seconds to wait for a connection and for each read.")
@click.option("--warmup/--no-warmup", default=True, show_default=True, help="Send one unmeasured request first.")
@click.option("--machine", "machine_file", type=click.Path(dir_okay=False),
              help="Predict for the machine in this file instead of this one.")
@click.option("--save/--no-save", default=True, show_default=True,
              help="Save a record under the user data directory.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "yaml"]), default="table", show_default=True)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def bench(urls, api, model, plan_model, quant, runtime, levels, n_requests, max_tokens, prompts_file, timeout_s,
          warmup, machine_file, save, fmt, debug):
    """Measure running LLM servers: TTFT, decode tokens/s, accuracy, concurrency; compare with the plan.

    URL: an OpenAI-compatible base URL (http://127.0.0.1:8080/v1) or an Ollama server
    (http://127.0.0.1:11434). Exit 1 when no request succeeded or the run was interrupted.
    """
    from .. import catalog, output
    from ..bench import prompts as prompt_sets
    from ..clients import check_url

    for url in urls:
        check_url(url)  # every URL is checked before any request: a typo is a usage error (exit 2)
    prompts = prompt_sets.load(prompts_file) if prompts_file else prompt_sets.BUILTIN
    cat = catalog.load()
    if plan_model:
        catalog.find_models(plan_model, cat)  # an unknown --plan is a usage error before any network
    state = {"machine": None}

    def machine():
        if state["machine"] is None:
            from .. import hardware

            if machine_file:
                state["machine"] = hardware.enrich(hardware.load_machine(machine_file), cat)
            else:
                from ..probe import probe

                state["machine"] = hardware.enrich(probe(), cat)
        return state["machine"]

    doc = {"endpoints": [], "interrupted": False}
    errors: list[PlannerError] = []
    total_ok = 0
    for url in urls:
        try:
            entry, err, ok, interrupted = _bench_one(url, api=api, model=model, plan_model=plan_model, quant=quant,
                                                     runtime=runtime, levels=levels, n_requests=n_requests,
                                                     max_tokens=max_tokens, prompts=prompts, timeout_s=timeout_s,
                                                     warmup=warmup, cat=cat, machine=machine, save=save)
        except KeyboardInterrupt:  # while connecting or warming up: nothing of this endpoint finished
            entry, err, ok, interrupted = {"endpoint": {"url": url}, "error": "interrupted before any request "
                                           "finished"}, None, 0, True
        doc["endpoints"].append(entry)
        total_ok += ok
        if err is not None:
            errors.append(err)
        if interrupted:
            doc["interrupted"] = True
            break
    if len(urls) == 1 and errors and not doc["endpoints"][0].get("levels") and not doc["interrupted"]:
        raise errors[0]  # one endpoint that could not be measured at all: one Error/Hint
    click.echo(_render(doc, fmt, output), nl=False)
    if doc["interrupted"]:
        click.echo("Error: interrupted; the requests that finished are reported above", err=True)
        sys.exit(Exit.ERROR)
    if total_ok == 0:
        first = errors[0] if errors else None
        raise PlannerError("no request succeeded" + (f": {first.message}" if first else ""),
                           hint=(first.hint if first and first.hint else "see the failures column above"))


def _render(doc: dict, fmt: str, output) -> str:
    from ..bench import report

    return report.table(doc) if fmt == "table" else output.dump(doc, fmt)


def _bench_one(url, *, api, model, plan_model, quant, runtime, levels, n_requests, max_tokens, prompts, timeout_s,
               warmup, cat, machine, save):
    """(entry, error or None, successful requests, interrupted) for one endpoint."""
    import uuid

    from ..bench import compare, records, server_metrics
    from ..bench.client import ollama_request, openai_request
    from ..bench.endpoint import resolve
    from ..bench.runner import Interrupted, run_level
    from ..clients import EndpointError

    try:
        ep = resolve(url, api=api, model=model, timeout_s=timeout_s)
    except EndpointError as e:
        return {"endpoint": {"url": url}, "error": e.message, "hint": e.hint}, e, 0, False
    entry: dict = {"endpoint": ep.to_dict(), "levels": []}
    try:
        tgt = compare.target(cat, ep, plan_model, quant, runtime)
        pred = None
        if tgt is not None:
            try:
                pred = compare.predict(cat, machine(), tgt)
            except UsageError:
                raise
            except PlannerError as e:
                if plan_model:
                    raise
                entry["no_plan"] = e.message
        elif plan_model is None:
            entry["no_plan"] = (f"no catalog model matches {ep.model!r}; pass --plan MODEL --quant Q --runtime R "
                                "for a verdict")
        request = openai_request if ep.api == "openai" else ollama_request
        if warmup:
            request(ep.client, ep.model, prompts[0], uuid.uuid4().hex[:12], min(max_tokens, 16))
        results_levels = []
        interrupted = False
        for c in levels:
            label = f"concurrency {c}"

            def send(i, stop):
                return request(ep.client, ep.model, prompts[i % len(prompts)], uuid.uuid4().hex[:12], max_tokens, stop)

            progress = _Progress(label, sys.stderr.isatty())
            before = server_metrics.tpot_totals(ep.client.metrics()) if ep.runtime in ("vllm", "sglang") else None
            try:
                level = run_level(send, requests=n_requests, concurrency=c, tick=progress)
            except Interrupted as stop:
                level, interrupted = stop.level, True
            finally:
                progress.close()
            if before is not None and not interrupted:
                level.server_decode_tps = server_metrics.decode_rate(
                    before, server_metrics.tpot_totals(ep.client.metrics()))
            results_levels.append(level)
            if interrupted:
                break
        summaries = [lv.summary() for lv in results_levels]
        for s, lv in zip(summaries, results_levels):
            s["results"] = [r.to_dict() for r in lv.results]
        entry["levels"] = summaries
        ok = sum(s["ok"] for s in summaries)
        if tgt is not None:
            entry["target"] = {"model": tgt.model, "quant": tgt.quant, "runtime": tgt.runtime,
                               "matched_from": tgt.matched_from}
        if pred is not None:
            for summary in summaries:  # the planner's per-user range at each level's load
                try:
                    at = compare.predict(cat, machine(), tgt, concurrency=summary["concurrency"])
                except PlannerError as e:
                    summary["prediction"], summary["verdict"] = None, None
                    summary["no_plan"] = e.message
                    continue
                tps = at.to_dict()["tokens_per_s"]
                summary["prediction"] = {"per_user_tokens_per_s": tps,
                                         "aggregate_tokens_per_s": round(at.expected * summary["concurrency"], 1)}
                summary["verdict"] = compare.verdict(summary["decode_tokens_per_s"].get("p50"), at)
            single = min(results_levels, key=lambda lv: lv.concurrency)
            measured = _measured(single)
            entry["prediction"] = pred.to_dict() | {"ttft_s": _round(pred.ttft_s(measured["prompt_tokens"]), 4)}
            entry["measured"] = measured
            entry["verdict"] = compare.verdict(measured["decode_tokens_per_s"], pred)
        errors = [r for lv in results_levels for r in lv.results if not r.ok]
        err = None
        if ok == 0 and errors:
            err = EndpointError(errors[-1].error or "request failed", hint=errors[-1].hint,
                                kind=errors[-1].error_kind or "http")
        if save and ok and not interrupted:
            entry["record"] = str(records.save(_record(entry, machine())))
        return entry, err, ok, interrupted
    finally:
        ep.client.close()


def _round(x, digits):
    return None if x is None else round(x, digits)


def _measured(level) -> dict:
    import statistics

    ok = level.ok
    decode = [d for d in (r.decode_tps for r in ok) if d is not None]
    server = [r.server_decode_tps for r in ok if r.server_decode_tps is not None]
    ttft = [r.ttft_s for r in ok if r.ttft_s is not None]
    prompt = [r.prompt_tokens for r in ok if r.prompt_tokens]
    return {"concurrency": level.concurrency,
            "decode_tokens_per_s": _round(statistics.median(decode), 2) if decode else None,
            "server_decode_tokens_per_s": _round(statistics.median(server), 2) if server else None,
            "ttft_s": _round(statistics.median(ttft), 4) if ttft else None,
            "prompt_tokens": statistics.median(prompt) if prompt else None}


def _record(entry: dict, machine) -> dict:
    from datetime import datetime, timezone

    from ..bench.records import SCHEMA

    return {"schema": SCHEMA, "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": machine.to_dict(), "endpoint": entry["endpoint"], "target": entry.get("target"),
            "prediction": entry.get("prediction"), "measured": entry.get("measured"),
            "verdict": entry.get("verdict"),
            "levels": [{k: v for k, v in lv.items() if k != "results"} for lv in entry["levels"]]}
