"""Where runtimes keep model files on this machine, and what is in them (read-only, never writes).

Locations, each overridable by the runtime's own environment variable:
  Hugging Face hub cache: HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub,
    else ~/.cache/huggingface/hub (huggingface_hub constants.py); layout
    models--{org}--{name}/snapshots/{revision}/{file}. Current llama-server -hf downloads land here.
  llama.cpp's own cache: LLAMA_CACHE, else Linux $XDG_CACHE_HOME or ~/.cache, macOS
    ~/Library/Caches, Windows %LOCALAPPDATA%, + /llama.cpp (common/common.cpp fs_get_cache_directory).
  Ollama: OLLAMA_MODELS, else ~/.ollama/models (envconfig/config.go Models()); manifests under
    manifests/{registry}/{namespace}/{model}/{tag} (manifest/paths.go), the weights layer
    (mediaType application/vnd.ollama.image.model) in blobs/sha256-{hex}.
  LM Studio: ~/.lmstudio/models/{publisher}/{repo}/{file} (the folder LM Studio 0.3+ uses, as seen in
    public usage; its docs do not state the path), overridable here by LMSTUDIO_MODELS.
Each GGUF is sized from its header (planner.sources.gguf) and matched to a catalog id.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

OLLAMA_REGISTRY = "registry.ollama.ai"
OLLAMA_MODEL_LAYER = "application/vnd.ollama.image.model"


@dataclass(frozen=True, slots=True)
class LocalModel:
    source: str            # hf | llama.cpp | ollama | lmstudio
    id: str                # repo id, Ollama tag, publisher/repo
    path: str              # the GGUF file, or the snapshot directory of a safetensors model
    bytes: int             # tensor bytes from the GGUF header; file sizes otherwise
    format: str            # gguf | safetensors
    quant: str | None
    catalog_id: str | None = None
    note: str | None = None

    def to_dict(self) -> dict:
        return {"source": self.source, "id": self.id, "path": self.path, "bytes": self.bytes, "format": self.format,
                "quant": self.quant, "catalog_id": self.catalog_id, **({"note": self.note} if self.note else {})}


def _home() -> Path:
    return Path(os.environ.get("HOME") or os.environ.get("USERPROFILE") or Path.home())


def hf_hub_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(os.environ["HUGGINGFACE_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    base = Path(os.environ["XDG_CACHE_HOME"]) if os.environ.get("XDG_CACHE_HOME") else _home() / ".cache"
    return base / "huggingface" / "hub"


def llama_cpp_cache() -> Path:
    if os.environ.get("LLAMA_CACHE"):
        return Path(os.environ["LLAMA_CACHE"])
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", _home() / "AppData" / "Local")) / "llama.cpp"
    if sys.platform == "darwin":
        return _home() / "Library" / "Caches" / "llama.cpp"
    base = Path(os.environ["XDG_CACHE_HOME"]) if os.environ.get("XDG_CACHE_HOME") else _home() / ".cache"
    return base / "llama.cpp"


def ollama_models() -> Path:
    return Path(os.environ["OLLAMA_MODELS"]) if os.environ.get("OLLAMA_MODELS") else _home() / ".ollama" / "models"


def lmstudio_models() -> Path:
    return Path(os.environ["LMSTUDIO_MODELS"]) if os.environ.get("LMSTUDIO_MODELS") else _home() / ".lmstudio" / "models"


# ---------------------------------------------------------------- scanning


def _size(path: Path, headers: bool) -> tuple[int, str | None, str | None]:
    """(bytes, quant, note) of a GGUF: tensor bytes and quant from its header, or the file size when
    `headers` is off or the header cannot be read."""
    if headers:
        from ..errors import PlannerError
        from ..sources.gguf import read_gguf

        try:
            g = read_gguf(path, require_data=False)
            return g.tensor_bytes, g.quant, None
        except PlannerError as e:
            return _stat(path), None, f"header unreadable: {e.message}"
    return _stat(path), None, None


def _stat(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _is_first_shard(name: str) -> bool:
    import re

    m = re.search(r"-(\d{5})-of-\d{5}\.gguf$", name, re.IGNORECASE)
    return m is None or m.group(1) == "00001"


def _ggufs(root: Path) -> list[Path]:
    try:
        return sorted(p for p in root.rglob("*.gguf") if _is_first_shard(p.name) and "mmproj" not in p.name.lower())
    except OSError:
        return []


def scan_hf(root: Path, headers: bool) -> list[LocalModel]:
    out: list[LocalModel] = []
    if not root.is_dir():
        return out
    for repo_dir in sorted(root.glob("models--*")):
        repo = repo_dir.name[len("models--"):].replace("--", "/")
        snapshots = sorted((repo_dir / "snapshots").glob("*")) if (repo_dir / "snapshots").is_dir() else []
        for snap in snapshots:
            for f in _ggufs(snap):
                size, quant, note = _size(f, headers)
                out.append(LocalModel("hf", repo, str(f), size, "gguf", quant, note=note))
            tensors = sorted(snap.glob("*.safetensors"))
            if tensors and (snap / "config.json").exists():
                out.append(LocalModel("hf", repo, str(snap), sum(_stat(t) for t in tensors), "safetensors",
                                      _checkpoint_quant(snap / "config.json")))
    return out


def _checkpoint_quant(config: Path) -> str | None:
    """BF16/F16/F32 from config.json's torch_dtype (or dtype), or the quantization_config's method
    (AWQ, GPTQ, FP8...) in capitals (transformers' config.json keys)."""
    try:
        doc = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    qc = doc.get("quantization_config")
    if isinstance(qc, dict) and isinstance(qc.get("quant_method"), str):
        return qc["quant_method"].upper()
    dtype = doc.get("torch_dtype") or doc.get("dtype") or (doc.get("text_config") or {}).get("torch_dtype")
    return {"bfloat16": "BF16", "float16": "F16", "float32": "F32"}.get(str(dtype))


def scan_plain(source: str, root: Path, headers: bool) -> list[LocalModel]:
    """A folder of GGUF files (llama.cpp's cache, LM Studio's publisher/repo/file tree)."""
    out = []
    if not root.is_dir():
        return out
    for f in _ggufs(root):
        rel = f.relative_to(root)
        ident = "/".join(rel.parts[:2]) if source == "lmstudio" and len(rel.parts) >= 3 else f.stem
        size, quant, note = _size(f, headers)
        out.append(LocalModel(source, ident, str(f), size, "gguf", quant, note=note))
    return out


def scan_ollama(root: Path, headers: bool) -> list[LocalModel]:
    out: list[LocalModel] = []
    manifests = root / "manifests"
    if not manifests.is_dir():
        return out
    for m in sorted(p for p in manifests.rglob("*") if p.is_file()):
        parts = m.relative_to(manifests).parts
        if len(parts) != 4:
            continue
        registry, namespace, model, tag = parts
        name = f"{model}:{tag}" if (registry, namespace) == (OLLAMA_REGISTRY, "library") else \
            (f"{namespace}/{model}:{tag}" if registry == OLLAMA_REGISTRY else f"{registry}/{namespace}/{model}:{tag}")
        try:
            doc = json.loads(m.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        layers = doc.get("layers") if isinstance(doc, dict) else None
        config_quant = _ollama_file_type(root, doc.get("config") if isinstance(doc, dict) else None)
        for layer in layers or ():
            if isinstance(layer, dict) and layer.get("mediaType") == OLLAMA_MODEL_LAYER:
                blob = root / "blobs" / str(layer.get("digest", "")).replace(":", "-")
                if not blob.is_file():
                    out.append(LocalModel("ollama", name, str(blob), int(layer.get("size") or 0), "gguf", None,
                                          note="manifest names a missing blob"))
                    continue
                size, quant, note = _size(blob, headers)
                out.append(LocalModel("ollama", name, str(blob), size, "gguf", quant or config_quant, note=note))
    return out


def _ollama_file_type(root: Path, config: object) -> str | None:
    """The quantization Ollama recorded in a manifest's config blob (`file_type`, e.g. "Q4_K_M")."""
    if not isinstance(config, dict) or not str(config.get("digest", "")).startswith("sha256:"):
        return None
    try:
        doc = json.loads((root / "blobs" / config["digest"].replace(":", "-")).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = doc.get("file_type") if isinstance(doc, dict) else None
    return value.upper() if isinstance(value, str) and value else None


def scan(cat=None, *, headers: bool = True) -> list[LocalModel]:
    """Every model file in the known stores, matched to catalog ids when `cat` is given."""
    found = (scan_hf(hf_hub_cache(), headers) + scan_plain("llama.cpp", llama_cpp_cache(), headers)
             + scan_ollama(ollama_models(), headers) + scan_plain("lmstudio", lmstudio_models(), headers))
    if cat is None:
        return found
    return [_matched(m, cat) for m in found]


def _matched(m: LocalModel, cat) -> LocalModel:
    from dataclasses import replace

    from ..bench.compare import model_from_name, quant_from_name

    spec = None
    for name in (m.id, Path(m.path).name):
        spec = model_from_name(name, cat)
        if spec:
            break
    quant = m.quant or (quant_from_name(Path(m.path).name) if m.format == "gguf" else None) or \
        (quant_from_name(m.id.replace(":", "-")) if m.source == "ollama" else None)
    return replace(m, catalog_id=spec.id if spec else None, quant=quant)
