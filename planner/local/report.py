"""`probe --local`: the machine document plus runtimes and model files found here."""

from __future__ import annotations


def document(machine_doc: dict, cat, *, running: bool = True) -> dict:
    """machine schema + {runtimes: [...], local_models: [...]} (docs/INTERFACE.md)."""
    from . import runtimes, stores

    rts, notes = runtimes.detect(running=running)
    models = stores.scan(cat, headers=True)
    doc = dict(machine_doc)
    doc["runtimes"] = [r.to_dict() for r in rts]
    doc["local_models"] = [m.to_dict() for m in models]
    if notes:
        doc["notes"] = list(doc.get("notes") or []) + notes
    return doc


def table(doc: dict) -> str:
    """The runtimes and model files sections of the text report."""
    from tabulate import tabulate

    from ..output import gib

    lines = ["", "Runtimes:"]
    if doc["runtimes"]:
        rows = []
        for r in doc["runtimes"]:
            run = r.get("running")
            where = r.get("path") or ", ".join(f"{k} {v}" for k, v in (r.get("packages") or {}).items()) or "-"
            rows.append([r["name"], r.get("version") or "-", where,
                         f"{run['url']} ({len(run.get('models') or [])} models)" if run else "-"])
        lines.append(tabulate(rows, headers=["runtime", "version", "installed", "running"], tablefmt="simple",
                              disable_numparse=True))
    else:
        lines.append("  none found (on PATH, as Python packages, or answering on their default ports)")
    lines += ["", "Models on disk:"]
    if doc["local_models"]:
        rows = [[m["source"], m["id"], m["format"], m.get("quant") or "-", gib(m["bytes"], 2),
                 m.get("catalog_id") or "-", m["path"]] for m in doc["local_models"]]
        lines.append(tabulate(rows, headers=["source", "id", "format", "quant", "size", "catalog", "path"],
                              tablefmt="simple", disable_numparse=True))
    else:
        lines.append("  none found (Hugging Face cache, llama.cpp cache, Ollama, LM Studio)")
    return "\n".join(lines) + "\n"
