"""Saved bench records: one JSON file per endpoint run under the user data directory.

Directory: platformdirs.user_data_path("plan-deploy") / "bench" (Linux: $XDG_DATA_HOME or
~/.local/share; macOS: ~/Library/Application Support; Windows: %LOCALAPPDATA%).
Schema `plan-deploy/bench-record/v1`: created_at (UTC ISO 8601), machine (machine schema),
endpoint {url, api, runtime, runtime_version, model, model_file, quant}, target {model, quant,
runtime}|null, prediction|null, verdict|null, levels [level summaries]. scripts/calibrate_speed.py
--records DIR reads them.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

SCHEMA = "plan-deploy/bench-record/v1"


def records_dir() -> Path:
    from platformdirs import user_data_path

    return user_data_path("plan-deploy", appauthor=False) / "bench"


def save(doc: dict, directory: Path | None = None) -> Path:
    """Write `doc` atomically (temporary file + rename); returns the path."""
    d = directory or records_dir()
    d.mkdir(parents=True, exist_ok=True)
    name = re.split(r"[\\/]", str(doc.get("endpoint", {}).get("model") or "model"))[-1]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name)[:60].strip("-.") or "model"
    stamp = re.sub(r"[^0-9TZ]", "", doc["created_at"])
    path = d / f"{stamp}-{slug}.json"
    n = 1
    while path.exists():
        n += 1
        path = d / f"{stamp}-{slug}-{n}.json"
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2, ensure_ascii=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load(directory: str | os.PathLike) -> list[dict]:
    """Every record in `directory` (sorted by file name); files of another schema are skipped."""
    out = []
    for p in sorted(Path(directory).glob("*.json")):
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and doc.get("schema") == SCHEMA:
            doc["_path"] = str(p)
            out.append(doc)
    return out
