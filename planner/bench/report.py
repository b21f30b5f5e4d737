"""Rendering of bench results: the table people read (JSON/YAML go through output.dump)."""

from __future__ import annotations


def _f(x, digits: int = 1, unit: str = "") -> str:
    return "-" if x is None else f"{x:.{digits}f}{unit}"


def _ppp(d: dict, digits: int) -> str:
    return "/".join(_f(d.get(k), digits) for k in ("p50", "p90", "p99"))


def table(doc: dict) -> str:
    """Text report of a bench document (see commands/bench.py for its keys)."""
    from tabulate import tabulate

    out: list[str] = []
    for ep in doc["endpoints"]:
        e = ep["endpoint"]
        if ep.get("error"):
            out.append(f"{e['url']}: failed: {ep['error']}\n")
            continue
        rt = e.get("runtime") or "unknown runtime"
        ver = f" {e['runtime_version']}" if e.get("runtime_version") else ""
        out.append(f"{e['url']} ({e['api']} API, {rt}{ver}), model {e['model']}")
        rows = []
        planned = any("prediction" in lv for lv in ep["levels"])
        for lv in ep["levels"]:
            acc = lv["accuracy"]
            row = [lv["concurrency"], f"{lv['ok']}/{lv['requests']}",
                   _ppp(lv["ttft_s"], 3), _ppp(lv["e2e_s"], 2),
                   _f(lv["decode_tokens_per_s"]["p50"]), _f(lv["server_decode_tokens_per_s"]),
                   _f(lv["aggregate_tokens_per_s"]),
                   f"{acc['correct']}/{acc['judged']}" if acc["judged"] else "-",
                   ", ".join(f"{n} {k}" for k, n in lv["failures"].items()) or "-"]
            if planned:
                pr = lv.get("prediction")
                u = pr["per_user_tokens_per_s"] if pr else None
                row += [f"{u['expected']:.1f} ({u['low']:.1f}-{u['high']:.1f})" if u else "-",
                        lv.get("verdict") or "-"]
            rows.append(row)
        heads = ["conc", "ok", "TTFT s p50/p90/p99", "E2E s p50/p90/p99", "decode tok/s", "server tok/s",
                 "aggregate tok/s", "correct", "failures"]
        if planned:
            heads += ["plan tok/s per user", "verdict"]
        out.append(tabulate(rows, headers=heads, tablefmt="simple", disable_numparse=True))
        if ep.get("prediction"):
            p, m = ep["prediction"], ep["measured"]
            t = ep["target"]
            tps = p["tokens_per_s"]
            out.append(f"Plan: {t['model']} {t['quant']} on {t['runtime']} ({p['placement']}, {p['basis']}): "
                       f"{tps['expected']:.1f} tokens/s expected ({tps['low']:.1f}-{tps['high']:.1f})"
                       + (f", TTFT {p['ttft_s']:.3f} s for {m['prompt_tokens']:.0f} prompt tokens"
                          if p.get("ttft_s") else ", TTFT not predicted for this placement"))
            out.append(f"Measured (concurrency {m['concurrency']}, median): {_f(m['decode_tokens_per_s'])} tokens/s "
                       f"client, {_f(m['server_decode_tokens_per_s'])} server, TTFT {_f(m['ttft_s'], 3)} s")
            out.append(f"Verdict: {ep['verdict']} the predicted range" if ep["verdict"] else
                       "Verdict: none (no single-request decode rate was measured)")
        elif ep.get("no_plan"):
            out.append(f"Plan: {ep['no_plan']}")
        if ep.get("record"):
            out.append(f"Saved: {ep['record']}")
        out.append("")
    if doc.get("interrupted"):
        out.append("Interrupted: the table shows the requests that finished.")
    return "\n".join(out).rstrip("\n") + "\n"
