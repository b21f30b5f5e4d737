"""Which API an endpoint speaks, which model it serves, and which runtime it is.

--api given: use it. Otherwise a URL whose path ends in /v1 is OpenAI-compatible; else a server
answering GET /api/version with a version is Ollama (native API); else OpenAI-compatible.
Runtime signatures: llama.cpp answers GET /props with model_path/build_info (tools/server/README.md);
Ollama answers /api/version; LM Studio answers GET /api/v0/models (its REST API); vLLM's and
SGLang's Prometheus metrics are prefixed `vllm:` / `sglang:`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath, PureWindowsPath

from ..clients import EndpointError


@dataclass
class Endpoint:
    url: str
    api: str                     # openai | ollama
    model: str
    served: list[str] = field(default_factory=list)
    runtime: str | None = None   # catalog runtime id when recognised
    runtime_version: str | None = None
    model_file: str | None = None  # llama.cpp: the GGUF path the server loaded
    quant: str | None = None     # Ollama: details.quantization_level
    client: object = None

    def to_dict(self) -> dict:
        return {"url": self.url, "api": self.api, "model": self.model, "runtime": self.runtime,
                "runtime_version": self.runtime_version, "model_file": self.model_file, "quant": self.quant}


def _is_ollama(root: str, timeout_s: float) -> str | None:
    from ..clients.ollama import OllamaClient

    with OllamaClient(root, timeout_s=min(timeout_s, 3.0), connect_timeout_s=min(timeout_s, 2.0)) as c:
        try:
            return c.version()
        except EndpointError as e:
            if e.kind in ("refused", "dns", "timeout"):
                raise
            return None


def resolve(url: str, *, api: str | None, model: str | None, timeout_s: float) -> Endpoint:
    """Connect, identify and pick the model. EndpointError for every way this can fail."""
    from ..clients.ollama import OllamaClient
    from ..clients.openai import OpenAIClient, split_base

    base, root = split_base(url)
    version = None
    if api is None:
        if url.rstrip("/").endswith("/v1"):
            api = "openai"
        else:
            version = _is_ollama(root, timeout_s)
            api = "ollama" if version else "openai"
    if api == "ollama":
        client = OllamaClient(root, timeout_s=timeout_s)
        try:
            version = version or client.version()
            local = [m.get("name") or m.get("model") for m in client.tags()]
            loaded = [m.get("name") or m.get("model") for m in client.ps()]
        except EndpointError:
            client.close()
            raise
        name = _pick(model, local, loaded, root)
        quant = None
        try:
            quant = (client.show(name).get("details") or {}).get("quantization_level")
        except EndpointError:
            pass
        return Endpoint(url=root, api="ollama", model=name, served=local, runtime="ollama",
                        runtime_version=version, quant=quant, client=client)
    client = OpenAIClient(base, timeout_s=timeout_s)
    try:
        served = client.models()
        ep = Endpoint(url=base, api="openai", model="", served=served, client=client)
        _identify(ep, client, root, timeout_s)
    except EndpointError:
        client.close()
        raise
    ep.model = _pick(model, served, [], base, lenient=ep.runtime == "llama.cpp")
    return ep


def _identify(ep: Endpoint, client, root: str, timeout_s: float) -> None:
    props = client.props()
    if props is not None:
        ep.runtime = "llama.cpp"
        ep.runtime_version = props.get("build_info") or None
        ep.model_file = props.get("model_path") or None
        return
    try:
        version = _is_ollama(root, timeout_s)
    except EndpointError:
        version = None
    if version:
        ep.runtime, ep.runtime_version = "ollama", version
        return
    lm = client.root_json("/api/v0/models")
    if isinstance(lm, dict) and isinstance(lm.get("data"), list):
        ep.runtime = "lm-studio"
        return
    metrics = client.metrics() or ""
    if "vllm:" in metrics:
        ep.runtime = "vllm"
    elif "sglang:" in metrics:
        ep.runtime = "sglang"


def _pick(model: str | None, served: list[str], loaded: list[str], where: str, *, lenient: bool = False) -> str:
    if model is None:
        if loaded:
            return loaded[0]
        if served:
            return served[0]
        raise EndpointError(f"{where} serves no model", hint="load or pull a model first, or pass --model",
                            kind="unknown-model")
    names = set(served) | set(loaded)
    if model in names or f"{model}:latest" in names:
        return model if model in names else f"{model}:latest"
    # llama.cpp serves its one model under any name; a name is still checked against its aliases
    # unless it is the file's name.
    if lenient and any(_stem(s) == _stem(model) for s in served):
        return model
    shown = ", ".join(sorted(names)[:8]) or "none"
    raise EndpointError(f"{where} does not serve model {model!r}", hint=f"served: {shown}", kind="unknown-model")


def _stem(name: str) -> str:
    base = PureWindowsPath(name).name if "\\" in name else PurePosixPath(name).name
    return base.lower().removesuffix(".gguf")
