"""A Hugging Face Hub repository's config.json, licence and safetensors sizes, via huggingface_hub.

Files come through `hf_hub_download` (the hub's own cache: later runs, and runs with
HF_HUB_OFFLINE=1, read them from disk); a repository without a safetensors index has its single
file's header read with HTTP range requests (`get_safetensors_metadata`). huggingface_hub is an
optional extra (`pip install 'plan-deploy[hub]'`), imported only here, only when needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelFileError, PlannerError
from . import safetensors

INSTEAD = ("pass a local .gguf file, a checkpoint directory or its config.json "
           "(e.g. `hf download {repo} config.json --local-dir DIR`, then pass DIR), "
           "or a catalog model (`plan-deploy models`)")


@dataclass(frozen=True, slots=True)
class HubModel:
    """What the hub tells about a repository: its config, card licence and weight bytes."""

    repo: str
    config: dict
    licence: str | None
    tensor_bytes: int | None  # exact, from the safetensors index or headers; None when unknown
    info: safetensors.SafetensorsInfo | None  # per-dtype detail when headers were read
    notes: tuple[str, ...] = ()


def fetch(repo: str) -> HubModel:
    """Read `repo`'s config.json (required), README licence and safetensors sizes (when present).

    Raises PlannerError with a hint naming what to pass instead when the hub cannot be reached
    (HF_HUB_OFFLINE=1, or no network) and nothing is cached, when the repository does not exist
    or is gated, and when huggingface_hub is not installed.
    """
    try:
        import huggingface_hub
        from huggingface_hub import constants as hf_constants
        from huggingface_hub import errors as hf_errors
    except ImportError:
        raise PlannerError(f"{repo!r} is not in the catalog, and reading it from the Hugging Face Hub needs "
                           "the optional huggingface_hub package",
                           hint="pip install 'plan-deploy[hub]'; or " + INSTEAD.format(repo=repo)) from None
    try:  # huggingface_hub 1.x raises httpx errors; 2.x depends on httpx2 instead
        import httpx2 as httpx
    except ImportError:
        import httpx

    # Offline (HF_HUB_OFFLINE=1, or the endpoint does not answer a connection within a few
    # seconds): read huggingface_hub's cache only, rather than retrying for half a minute.
    offline = bool(hf_constants.HF_HUB_OFFLINE)
    why = "HF_HUB_OFFLINE is set"
    if not offline and not _reachable(hf_constants.ENDPOINT):
        offline, why = True, f"no network connection to {hf_constants.ENDPOINT}"

    def download(filename: str, required: bool) -> Path | None:
        try:
            return Path(huggingface_hub.hf_hub_download(repo, filename, local_files_only=offline))
        except hf_errors.GatedRepoError:
            raise PlannerError(f"{repo} is a gated repository: its files need an accepted licence and a login",
                               hint=f"accept the terms on https://huggingface.co/{repo}, run `hf auth login`; "
                                    "or " + INSTEAD.format(repo=repo)) from None
        except hf_errors.RepositoryNotFoundError:
            raise PlannerError(f"no model {repo!r} in the catalog or on the Hugging Face Hub",
                               hint="check the name (`plan-deploy models` lists the catalog); a private "
                                    "repository needs `hf auth login`") from None
        except hf_errors.LocalEntryNotFoundError:  # a subclass of EntryNotFoundError: first
            if not required:
                return None
            raise PlannerError(f"{repo} is not in the catalog, and the Hugging Face Hub cannot be reached "
                               f"({why}; nothing cached)", hint=INSTEAD.format(repo=repo)) from None
        except (hf_errors.EntryNotFoundError, hf_errors.RemoteEntryNotFoundError):
            if required:
                raise PlannerError(f"{repo} has no {filename} (a GGUF-only repository?)",
                                   hint="download the .gguf file you want and pass its path") from None
            return None
        except (hf_errors.HfHubHTTPError, httpx.HTTPError) as e:
            if not required:
                return None
            raise PlannerError(f"{repo}: the Hugging Face Hub did not answer ({type(e).__name__})",
                               hint="try again later; or " + INSTEAD.format(repo=repo)) from None

    config_path = download("config.json", required=True)
    from .hfconfig import load_config

    config = load_config(config_path)
    readme = download("README.md", required=False)
    licence = card_licence(readme) if readme else None
    notes: list[str] = []
    index = download(safetensors.INDEX, required=False)
    tensor_bytes, info = None, None
    if index is not None:
        total = safetensors.read_index(index).get("metadata", {}).get("total_size")
        tensor_bytes = int(total) if isinstance(total, (int, float)) and total > 0 else None
    elif not offline:
        try:
            meta = huggingface_hub.get_safetensors_metadata(repo)
        except (hf_errors.NotASafetensorsRepoError, hf_errors.SafetensorsParsingError, hf_errors.HfHubHTTPError,
                httpx.HTTPError):
            meta = None
        if meta is not None:
            headers = {Path(name): {t: {"dtype": ti.dtype, "shape": list(ti.shape),
                                        "data_offsets": list(ti.data_offsets)} for t, ti in fm.tensors.items()}
                       for name, fm in meta.files_metadata.items()}
            info = safetensors.summarise(headers)
            tensor_bytes = info.tensor_bytes
    if tensor_bytes is None:
        notes.append(f"{repo}: no safetensors sizes available; weights from the architecture")
    return HubModel(repo=repo, config=config, licence=licence, tensor_bytes=tensor_bytes, info=info,
                    notes=tuple(notes))


def _reachable(endpoint: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the hub's endpoint opens within `timeout` seconds."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "", port), timeout=timeout).close()
    except OSError:
        return False
    return True


def card_licence(readme: Path) -> str | None:
    """The `license:` of a model card's YAML front matter (README.md), or None."""
    try:
        text = readme.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    if not text.startswith("---"):
        return None
    end = text.find("\n---", 3)
    if end < 0:
        return None
    import yaml

    try:
        front = yaml.load(text[3:end], Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return None
    value = front.get("license") if isinstance(front, dict) else None
    return value.strip().lower() if isinstance(value, str) and value.strip() else None
