"""Model quality on one scale per use case, less what the quantization costs.

Pure functions over data/quality.yaml (no heavy imports). A scale is one benchmark under one setting
(general: MMLU 5-shot on the pretrained checkpoint; code: EvalPlus; math: MATH; reasoning: BBH;
multilingual: MGSM; see the file's header for why each). A model's figures are those of the
pretrained checkpoint it was post-trained from.

The cautious rule, for a model with no figure on a scale:
  * general: predicted from log10(total parameters) by a least-squares line through every catalog
    model that has a published general figure, less one standard deviation of that line's residuals;
  * a use case: predicted from the model's general score (published or estimated) by a least-squares
    line through the models that have both figures, less one standard deviation of its residuals.
    With fewer than three such models, or a scale that holds no figures (long-context, vision), the
    general score stands in and the cell names the general benchmark.
So a model without a published figure ranks below one of the same size (or the same general score)
that has one, unless its size alone says otherwise by more than the fit's spread.

Quantization loss: the mean delta-p of llama.cpp's LLaMA 3 8B scoreboard against FP16, in percentage
points (the change of the probability given to the reference token) rounded to 0.1 point,
subtracted from the score;
formats without a published row use the type data/quality.yaml maps them to. The model's own
precision (quants.yaml kind native, or a quantization in the model's own repository, e.g. gpt-oss
MXFP4) costs nothing.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .catalog import Catalog, CatalogError, ModelSpec, data_dir

GENERAL = "general"
SCALES = (GENERAL, "code", "math", "reasoning", "multilingual", "long-context", "vision")
_FIGURE_KEYS = ("general", "code", "math", "reasoning", "multilingual")


@dataclass(frozen=True)
class Quality:
    """A model's quality for one use case.

    benchmark: the scale's benchmark name ("MMLU", "EvalPlus", ...); value: the figure on that scale
    (0-100, before the quantization); estimated: True when the cautious rule produced it; source:
    the citation (or the rule) behind it; quant_penalty: points the quantization costs (>= 0).
    """

    benchmark: str
    value: float
    estimated: bool
    source: str
    quant_penalty: float = 0.0
    use_case: str = GENERAL
    parts: tuple["Quality", ...] = ()  # with several use cases: one Quality per use case

    @property
    def rank_value(self) -> float:
        """The figure the ranking uses: value less the quantization penalty."""
        return self.value - self.quant_penalty

    def to_dict(self) -> dict[str, Any]:
        return {"benchmark": self.benchmark, "score": round(self.value, 2), "estimated": self.estimated,
                "quant_penalty": round(self.quant_penalty, 3), "rank_score": round(self.rank_value, 1),
                "use_case": self.use_case, "source": self.source,
                **({"use_cases": {p.use_case: {"benchmark": p.benchmark, "score": round(p.value, 2),
                                               "estimated": p.estimated} for p in self.parts}}
                   if self.parts else {})}


@dataclass(frozen=True)
class Table:
    scales: dict[str, dict[str, str]]  # scale -> {benchmark, setting}
    figures: dict[str, dict[str, float]]  # catalog model id -> scale -> value
    cites: dict[str, str]  # catalog model id -> citation of its figures
    missing: dict[str, str]  # catalog model id -> why it has no figure
    quant_loss: dict[str, float]  # quant id (upper case) -> points lost (>= 0)


def load_table(directory: Path | str | None = None) -> Table:
    """data/quality.yaml, validated. Raises CatalogError naming the entry on any inconsistency."""
    if directory is None:
        import os

        return _load_default(os.environ.get("PLAN_DEPLOY_DATA_DIR"))
    return _load(str(directory))


@functools.lru_cache(maxsize=8)
def _load_default(override: str | None) -> Table:
    """The table of `data_dir()` for this $PLAN_DEPLOY_DATA_DIR (the ranking asks thousands of times)."""
    return _load(str(data_dir()))


@functools.lru_cache(maxsize=4)
def _load(directory: str) -> Table:
    """The validated table, through the compiled-data cache (planner/catalog_cache.py): building
    the YAML costs more than the rest of a plan's start-up."""
    from . import catalog_cache

    return catalog_cache.load(Path(directory), _build, Table, data_files=("quality.yaml",),
                              code_files=("quality.py", "catalog_cache.py"), prefix="quality-")


def _build(directory: Path) -> Table:
    """Read and validate quality.yaml (no cache)."""
    import yaml

    path = Path(directory) / "quality.yaml"
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except OSError as e:
        raise CatalogError(f"cannot read quality.yaml: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise CatalogError(f"quality.yaml: not valid YAML: {e}") from None
    if not isinstance(doc, dict):
        raise CatalogError("quality.yaml: expected a mapping")
    scales = doc.get("scales") or {}
    if set(scales) != set(SCALES):
        raise CatalogError(f"quality.yaml: scales must be exactly {', '.join(SCALES)}")
    sources = doc.get("sources") or {}
    for sid, s in sources.items():
        if not isinstance(s, dict) or not s.get("cite") or not isinstance(s.get("settings"), dict):
            raise CatalogError(f"quality.yaml: source {sid!r} needs 'cite' and 'settings'")
    checkpoints: dict[str, dict[str, Any]] = {}
    for ck, entry in (doc.get("checkpoints") or {}).items():
        where = f"quality.yaml: checkpoints.{ck}"
        if not isinstance(entry, dict) or entry.get("source") not in sources:
            raise CatalogError(f"{where}: 'source' must name one of the sources")
        src = sources[entry["source"]]
        unknown = set(entry) - {"source", *_FIGURE_KEYS}
        if unknown:
            raise CatalogError(f"{where}: unknown field {sorted(unknown)[0]!r}")
        for scale in _FIGURE_KEYS:
            if scale not in entry:
                continue
            v = entry[scale]
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v <= 100:
                raise CatalogError(f"{where}.{scale}: must be a score between 0 and 100, not {v!r}")
            setting = src["settings"].get(scale)
            if setting != scales[scale]["setting"]:
                raise CatalogError(f"{where}.{scale}: source {entry['source']!r} reports it as {setting!r}, "
                                   f"but the {scale} scale is {scales[scale]['setting']!r}",
                                   hint="never mix settings on one scale; leave the figure out")
        checkpoints[ck] = entry
    figures: dict[str, dict[str, float]] = {}
    cites: dict[str, str] = {}
    for mid, entry in (doc.get("models") or {}).items():
        base = entry.get("base") if isinstance(entry, dict) else None
        if base not in checkpoints:
            raise CatalogError(f"quality.yaml: models.{mid}: 'base' must name a checkpoint")
        figures[mid] = {k: float(v) for k, v in checkpoints[base].items() if k in _FIGURE_KEYS}
        cites[mid] = f"{base}: {sources[checkpoints[base]['source']]['cite']}"
    missing = {str(k): str(v) for k, v in (doc.get("missing") or {}).items()}
    for mid, f in figures.items():
        if (GENERAL in f) == (mid in missing):
            raise CatalogError(f"quality.yaml: {mid} must be under missing: exactly when it has no general figure")
    ql = doc.get("quant_loss") or {}
    measured = ql.get("measured") or {}
    # Rounded to 0.1 point: Q8_0's and Q6_K's rows (0.019 and 0.007) differ by less than their stated
    # uncertainty, so they tie and the ranking's next term (bits per weight) decides.
    loss = {q.upper(): round(max(0.0, -float(row["mean_dp"])), 1) for q, row in measured.items()}
    for q, m in (ql.get("mapped") or {}).items():
        if m.get("as", "").upper() not in loss or not m.get("why"):
            raise CatalogError(f"quality.yaml: quant_loss.mapped.{q}: 'as' must name a measured type, with 'why'")
        loss[q.upper()] = loss[m["as"].upper()]
    return Table(scales=scales, figures=figures, cites=cites, missing=missing, quant_loss=loss)


# ---------------------------------------------------------------- the cautious rule


def _line(points: list[tuple[float, float]]) -> tuple[float, float, float]:
    """Least squares y = a + b x: (a, b, residual standard deviation with n - 2 degrees of freedom)."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points) or 1.0
    b = sum((x - mx) * (y - my) for x, y in points) / sxx
    a = my - b * mx
    spread = math.sqrt(sum((y - a - b * x) ** 2 for x, y in points) / max(1, n - 2))
    return a, b, spread


_FITS: dict[tuple[int, int, str], tuple[float, float, float] | None] = {}


def _fit(cat: Catalog, table: Table, scale: str) -> tuple[float, float, float] | None:
    """general: score ~ log10(params); a use case: use-case figure ~ published general figure."""
    key = (id(cat), id(table), scale)
    if key not in _FITS:
        pts = []
        for m in cat.models:
            f = table.figures.get(m.id, {})
            if scale == GENERAL and GENERAL in f:
                pts.append((math.log10(m.params), f[GENERAL]))
            elif scale != GENERAL and GENERAL in f and scale in f:
                pts.append((f[GENERAL], f[scale]))
        _FITS[key] = _line(pts) if len(pts) >= 3 else None
    return _FITS[key]


_OWN: dict[int, tuple[ModelSpec, frozenset[str]]] = {}


def _own_quants(model: ModelSpec) -> frozenset[str]:
    """The quantizations (upper case) of the model's artifacts in its own repository (memo per object)."""
    hit = _OWN.get(id(model))
    if hit is None or hit[0] is not model:
        if len(_OWN) > 4096:  # models read from files or hubs come and go: keep the memo small
            _OWN.clear()
        hit = _OWN[id(model)] = (model, frozenset(a.quant.upper() for a in model.artifacts
                                                  if a.repo == model.hf_repo))
    return hit[1]


def quant_penalty(model: ModelSpec, quant: str | None, cat: Catalog, table: Table | None = None) -> float:
    """Points of accuracy the quantization costs (>= 0; 0 for the model's own precision or None)."""
    if quant is None:
        return 0.0
    q = quant.upper()
    spec = cat.quants.get(q)
    if spec is not None and spec.kind == "native":
        return 0.0
    if q in _own_quants(model):
        return 0.0  # the lab released the model in this format: its figures are of these weights
    table = table or load_table()
    if q not in table.quant_loss:
        raise CatalogError(f"quality.yaml: no quantization loss for {quant!r}",
                           hint="add a measured row or a mapping under quant_loss")
    return table.quant_loss[q]


def general(model: ModelSpec, cat: Catalog, table: Table | None = None) -> Quality:
    """The general-scale figure (MMLU 5-shot, base), published or by the cautious rule."""
    table = table or load_table()
    bench = table.scales[GENERAL]["benchmark"]
    f = table.figures.get(model.id, {})
    if GENERAL in f:
        return Quality(bench, f[GENERAL], False, table.cites[model.id])
    fit = _fit(cat, table, GENERAL)
    if fit is None:
        raise CatalogError("quality.yaml: fewer than three published general figures to estimate from")
    a, b, spread = fit
    value = max(0.0, min(100.0, a + b * math.log10(model.params) - spread))
    return Quality(bench, value, True, "estimated: fit over log10(parameters) less one standard deviation")


def score(model: ModelSpec, quant: str | None, use_case: str | tuple[str, ...] | None, cat: Catalog,
          table: Table | None = None) -> Quality:
    """Quality of `model` at `quant` for `use_case` (None or () or "chat"/"edge": the general scale).

    Several use cases: the mean of their values (estimated if any is), named "A/B". Raises
    CatalogError when quality.yaml is inconsistent or the quantization has no loss figure.
    """
    table = table or load_table()
    cases = (use_case,) if isinstance(use_case, str) else tuple(use_case or ())
    penalty = quant_penalty(model, quant, cat, table)
    parts = [_one(model, u, cat, table) for u in cases] or [general(model, cat, table)]
    if len(parts) == 1:
        p = parts[0]
        return Quality(p.benchmark, p.value, p.estimated, p.source, penalty, p.use_case)
    names = "/".join(dict.fromkeys(p.benchmark for p in parts))
    return Quality(names, sum(p.value for p in parts) / len(parts), any(p.estimated for p in parts),
                   "; ".join(dict.fromkeys(p.source for p in parts)), penalty, "/".join(cases), tuple(parts))


def _one(model: ModelSpec, use_case: str, cat: Catalog, table: Table) -> Quality:
    gen = general(model, cat, table)
    scale = table.scales.get(use_case)
    if scale is None or scale["benchmark"] == "none":
        return replace(gen, use_case=use_case)  # no scale for this use case: the general one stands in
    f = table.figures.get(model.id, {})
    if use_case in f:
        return Quality(scale["benchmark"], f[use_case], False, table.cites[model.id], use_case=use_case)
    fit = _fit(cat, table, use_case)
    if fit is None:
        return replace(gen, use_case=use_case)
    a, b, spread = fit
    value = max(0.0, min(100.0, a + b * gen.value - spread))
    return Quality(scale["benchmark"], value, True,
                   f"estimated from the {gen.benchmark} score: fit less one standard deviation", use_case=use_case)
