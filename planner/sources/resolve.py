"""MODEL as a user types it -> the models it names: the catalog first (id, alias, repo, size), then
a local GGUF file (any shard of a split set), a checkpoint directory, a config.json, or a Hugging
Face repository id. Models from outside the catalog join a copy of the catalog for this run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from ..catalog import Artifact, Catalog, Licence, ModelSpec, QuantSpec, find_models, PERMISSIVE_LICENCES
from ..errors import ModelFileError, UsageError

_REPO = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
_PATHLIKE = (".gguf", ".json", ".safetensors")
_DIM_FIELDS = ("layers", "hidden_size", "attention_heads", "kv_heads", "head_dim", "intermediate_size", "vocab_size")


@dataclass(frozen=True, slots=True)
class Resolved:
    """The models MODEL names, the catalog to plan them with, and notes for the user (stderr)."""

    catalog: Catalog
    models: tuple[ModelSpec, ...]
    notes: tuple[str, ...] = ()


def resolve(query: str, cat: Catalog) -> Resolved:
    """Resolve MODEL. Catalog names win; a path or repo id is read only when the catalog has no match.

    Raises the catalog's UsageError (unknown model, with suggestions) when MODEL is neither a
    catalog name nor an existing path nor a repo id; ModelFileError/PlannerError for bad files.
    """
    try:
        return Resolved(cat, tuple(find_models(query, cat)))
    except UsageError as unknown:
        path = Path(query).expanduser()
        if path.exists():
            spec, notes = _from_path(path, cat)
        elif query.lower().endswith(_PATHLIKE) or query.startswith((".", "/", "~")) or "\\" in query:
            raise ModelFileError(f"no such file or directory: {query}",
                                 hint="check the path of the .gguf file, checkpoint directory or config.json") from None
        else:
            repo = query.strip().removeprefix("https://huggingface.co/").removeprefix("hf.co/").strip("/")
            if not _REPO.fullmatch(repo):
                raise unknown
            spec, notes = _from_hub(repo, cat)
    return Resolved(_with(cat, spec), (spec,), notes)


# ---------------------------------------------------------------- sources


def _from_path(path: Path, cat: Catalog) -> tuple[ModelSpec, tuple[str, ...]]:
    if path.is_dir():
        if (path / "config.json").is_file():
            return _from_checkpoint(path, path / "config.json", cat)
        ggufs = sorted(p.name for p in path.glob("*.gguf"))
        hint = (f"pass one of its GGUF files, e.g. {path / ggufs[0]}" if ggufs else
                "pass a checkpoint directory (config.json and *.safetensors), a config.json or a .gguf file")
        raise ModelFileError(f"{path} is a directory without config.json", hint=hint)
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise ModelFileError(f"cannot read {path}: {e.strerror or e}", hint="check the path and its permissions") from None
    if magic == b"GGUF" or path.suffix.lower() == ".gguf":
        return _from_gguf(path, cat)
    if path.suffix.lower() == ".safetensors":
        if (path.parent / "config.json").is_file():
            return _from_checkpoint(path.parent, path.parent / "config.json", cat)
        raise ModelFileError(f"{path.name}: a safetensors file without a config.json beside it",
                             hint="put the model's config.json in the same directory, and pass the directory")
    return _from_checkpoint(path.parent, path, cat, weights=False)


def _from_gguf(path: Path, cat: Catalog) -> tuple[ModelSpec, tuple[str, ...]]:
    from . import ggufarch
    from .gguf import read_gguf

    g = read_gguf(path)
    arch, context = ggufarch.architecture(g)
    quant = g.quant or _dominant_type(g)
    art = Artifact(format="gguf", quant=quant, size_bytes=g.tensor_bytes, source="local", path=str(g.path))
    name = g.name or g.path.stem
    spec = ModelSpec(
        id=_free_id(g.path.name, cat), name=name, family=g.architecture or "unknown", hf_repo="",
        params=g.n_params, context_length=context, arch=arch, licence=_licence(g.licence, cat),
        sources=(f"GGUF header of {g.path.name} (version {g.version}, {len(g.tensors)} tensors"
                 + (f", {len(g.shards)} shards" if len(g.shards) > 1 else "") + ")",),
        active_params=ggufarch.active_params(g, arch), artifacts=(art,),
    )
    notes = [f"{spec.id}: {quant} GGUF, {g.tensor_bytes:,} bytes of tensors, {g.n_params:,} parameters"]
    notes += _match_note(spec, cat, g.name)
    return spec, tuple(notes)


def _from_checkpoint(directory: Path, config_path: Path, cat: Catalog, *,
                     weights: bool = True) -> tuple[ModelSpec, tuple[str, ...]]:
    from ..memory import computed_params
    from . import hfconfig, safetensors
    from .hub import card_licence

    config = hfconfig.load_config(config_path)
    where = str(config_path)
    arch, context, notes = hfconfig.architecture(config, where)
    info = safetensors.read_checkpoint(directory) if weights else None
    quant = hfconfig.quant_label(config, info.main_dtype if info else None)
    exact = info is not None and quant in ("BF16", "F16", "F32", "FP8")
    params = info.n_params if exact else computed_params(arch)
    readme = directory / "README.md"
    licence = card_licence(readme) if readme.is_file() else None
    label = directory.resolve().name or config_path.name
    art = Artifact(format="safetensors", quant=quant, repo=str(directory), source="local", path=str(directory),
                   size_bytes=info.tensor_bytes if info else None)
    spec = ModelSpec(
        id=_free_id(label, cat), name=label, family=str(config.get("model_type")), hf_repo="",
        params=params, params_exact=exact, context_length=context, arch=arch, licence=_licence(licence, cat),
        sources=(f"{config_path.name}" + (f" and {len(info.files)} safetensors headers" if info else ""),),
        artifacts=(art,),
    )
    notes = list(notes)
    if info:
        notes.append(f"{spec.id}: {quant} safetensors, {info.tensor_bytes:,} bytes of tensors in {len(info.files)} files")
    else:
        notes.append(f"{spec.id}: no weights read; sized from the architecture in {config_path.name}")
    notes += _match_note(spec, cat, str(config.get("_name_or_path") or ""))
    return spec, tuple(notes)


def _from_hub(repo: str, cat: Catalog) -> tuple[ModelSpec, tuple[str, ...]]:
    from ..memory import computed_params
    from . import hfconfig, hub

    h = hub.fetch(repo)
    arch, context, notes = hfconfig.architecture(h.config, f"{repo} config.json")
    quant = hfconfig.quant_label(h.config, h.info.main_dtype if h.info else None)
    exact = h.info is not None and quant in ("BF16", "F16", "F32", "FP8")
    art = Artifact(format="safetensors", quant=quant, repo=repo, size_bytes=h.tensor_bytes, source="hub")
    spec = ModelSpec(
        id=_free_id(repo, cat), name=repo.split("/")[-1], family=str(h.config.get("model_type")), hf_repo=repo,
        params=h.info.n_params if exact else computed_params(arch), params_exact=exact, context_length=context,
        arch=arch, licence=_licence(h.licence, cat), sources=(f"https://huggingface.co/{repo} (config.json)",),
        artifacts=(art,),
    )
    return spec, tuple(notes) + h.notes + tuple(_match_note(spec, cat, repo))


# ---------------------------------------------------------------- helpers


def _dominant_type(g) -> str:
    """Without general.file_type: the ggml type holding most of the bytes (Q4_K, F16...)."""
    by_type: dict[str, int] = {}
    for t in g.tensors:
        by_type[t.type] = by_type.get(t.type, 0) + t.n_bytes
    return max(sorted(by_type), key=by_type.__getitem__) if by_type else "unknown"


def _free_id(name: str, cat: Catalog) -> str:
    taken = {m.id.lower() for m in cat.models} | {a.lower() for m in cat.models for a in m.aliases}
    return name if name.lower() not in taken else f"{name} (file)"


def _licence(value: str | None, cat: Catalog) -> Licence:
    """The licence a file or card names, with the catalog's terms when it knows that licence; a
    permissive id (Apache-2.0, MIT, BSD-3-Clause) allows commercial use; else unknown."""
    if not value:
        return Licence(id="unknown", name="not stated in the file or model card", commercial="unknown")
    key = value.strip().lower()
    for m in cat.models:
        if m.licence.id.lower() == key:
            return m.licence
    if key in PERMISSIVE_LICENCES:
        return Licence(id=key, name=key, commercial="yes")
    return Licence(id=key, name=value.strip(), commercial="unknown")


def _match_note(spec: ModelSpec, cat: Catalog, name: str | None) -> list[str]:
    """Which catalog model this is: the same architecture dims, preferring a matching name."""
    dims = tuple(getattr(spec.arch, f) for f in _DIM_FIELDS)
    same = [m for m in cat.models if tuple(getattr(m.arch, f) for f in _DIM_FIELDS) == dims
            and (m.arch.moe is None) == (spec.arch.moe is None)]
    if not same:
        return []
    key = _norm(name or spec.name)
    named = [m for m in same if key and (_norm(m.name) in key or key in _norm(m.name) or _norm(m.id) in key
                                         or _norm(m.hf_repo.split("/")[-1]) in key)]
    pick = named or same
    return [f"{spec.id}: same architecture as catalog model{'s' if len(pick) > 1 else ''} "
            + ", ".join(m.id for m in pick[:4])]


def _norm(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def _with(cat: Catalog, spec: ModelSpec) -> Catalog:
    """The catalog plus `spec`, its quantizations (from the file when quants.yaml lacks them), and
    those quantizations on every runtime that loads the artifact's format: a runtime given the
    file loads whatever tensor types it holds."""
    from ..launch import loads_local_path

    quants = dict(cat.quants)
    runtimes = []
    for art in spec.artifacts:
        if art.quant.upper() not in quants:
            bits = 8 * art.size_bytes / spec.params if art.size_bytes and spec.params else 16.0
            quants[art.quant.upper()] = QuantSpec(id=art.quant, formats=(art.format,), bits={"default": round(bits, 4)},
                                                  sources=(f"{spec.id}: the file's own tensor types",))
    for rt in cat.runtimes:
        add = tuple(a.quant for a in spec.artifacts if a.format in rt.formats and a.quant not in rt.quants
                    and (a.source != "local" or loads_local_path(rt.id)))
        runtimes.append(replace(rt, quants=rt.quants + add) if add else rt)
    return replace(cat, models=cat.models + (spec,), quants=quants, runtimes=tuple(runtimes))
