"""A small client for Ollama's native API, and its OpenAI-compatible /v1.

Endpoints (ollama/ollama docs/api.md @fb30760): GET /api/version -> {"version"}; GET /api/tags and
GET /api/ps -> {"models": [{name, model, size, digest, details: {format, family, parameter_size,
quantization_level}}]}; POST /api/show {"model"} -> {details, model_info, ...}; POST /api/chat
streams NDJSON: one JSON object per line, `message.content` pieces, then a final object with
"done": true, prompt_eval_count, prompt_eval_duration, eval_count, eval_duration (nanoseconds).
Host: OLLAMA_HOST as Ollama reads it (envconfig/config.go Host(): "host", "host:port" or
"scheme://host:port"; default 127.0.0.1:11434; 0.0.0.0 means loopback for a client).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from urllib.parse import urlsplit

from . import EndpointError, HttpClient, check_url, status_error, translate
from .openai import OpenAIClient

DEFAULT_PORT = 11434


def host_url(value: str | None = None) -> str:
    """The base URL a client should use for OLLAMA_HOST (or `value`), e.g. "http://127.0.0.1:11434"."""
    s = (os.environ.get("OLLAMA_HOST", "") if value is None else value).strip()
    scheme, sep, hostport = s.partition("://")
    if not sep:
        scheme, hostport = "http", s
    default_port = {"http": DEFAULT_PORT, "https": 443}.get(scheme, DEFAULT_PORT) if not sep else \
        {"http": 80, "https": 443}.get(scheme, DEFAULT_PORT)
    hostport, _, path = hostport.partition("/")
    parts = urlsplit(f"//{hostport}") if hostport else None
    host = (parts.hostname if parts else None) or "127.0.0.1"
    try:
        port = (parts.port if parts else None) or default_port
    except ValueError:
        port = default_port
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}" + (f"/{path}" if path else "")


class OllamaClient(HttpClient):
    """Ollama's native API. Every method raises EndpointError, never an HTTP library error."""

    def __init__(self, url: str | None = None, *, timeout_s: float = 60.0, connect_timeout_s: float | None = None):
        self.root = check_url(url or host_url()).rstrip("/")
        if self.root.endswith("/v1"):
            self.root = self.root[:-3]
        super().__init__(timeout_s, connect_timeout_s)

    def _json(self, method: str, path: str, body: dict | None = None) -> dict:
        url = self.root + path
        try:
            r = self._client.request(method, url, json=body)
        except self._lib.HTTPError as e:
            raise translate(e, url) from None
        if r.status_code >= 400:
            raise status_error(r, url)
        try:
            doc = r.json()
        except ValueError:
            raise EndpointError(f"{url}: the answer is not JSON", hint="is this an Ollama server?",
                                kind="not-llm") from None
        if not isinstance(doc, dict):
            raise EndpointError(f"{url}: unexpected answer", hint="is this an Ollama server?", kind="not-llm")
        return doc

    def version(self) -> str:
        """The server's version (GET /api/version); EndpointError(kind='not-llm') when it is not Ollama."""
        doc = self._json("GET", "/api/version")
        if "version" not in doc:
            raise EndpointError(f"{self.root}/api/version: no version in the answer", kind="not-llm",
                                hint="is this an Ollama server?")
        return str(doc["version"])

    def tags(self) -> list[dict]:
        """Models stored locally (GET /api/tags): [{name, size, digest, details: {...}}]."""
        return _models(self._json("GET", "/api/tags"), self.root + "/api/tags")

    list_models = tags  # `ollama list`

    def ps(self) -> list[dict]:
        """Models loaded in memory now (GET /api/ps): [{name, size, size_vram, details, expires_at}]."""
        return _models(self._json("GET", "/api/ps"), self.root + "/api/ps")

    def show(self, model: str) -> dict:
        """Details of one model (POST /api/show): {details, model_info, capabilities, ...}."""
        return self._json("POST", "/api/show", {"model": model})

    def openai(self) -> OpenAIClient:
        """A client for the same server's OpenAI-compatible API (/v1)."""
        total, connect = self._timeout
        return OpenAIClient(self.root + "/v1", timeout_s=total, connect_timeout_s=connect)

    def chat(self, model: str, messages: list[dict], *, max_tokens: int | None = None, temperature: float = 0.0,
             seed: int | None = None) -> Iterator[dict]:
        """Stream one chat (POST /api/chat, NDJSON); yields each object, the final `done: true` one included.

        `max_tokens` is Ollama's options.num_predict. EndpointError(kind='stream-cut') when the stream
        ends before an object with done=true, kind='malformed' for a line that is not JSON.
        """
        url = self.root + "/api/chat"
        options: dict = {"temperature": temperature}
        if max_tokens is not None:
            options["num_predict"] = max_tokens
        if seed is not None:
            options["seed"] = seed
        body = {"model": model, "messages": messages, "stream": True, "options": options}
        lib = self._lib
        try:
            with self._client.stream("POST", url, json=body) as r:
                if r.status_code >= 400:
                    r.read()
                    raise status_error(r, url)
                done = False
                for line in r.iter_lines():
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except ValueError:
                        raise EndpointError(f"{url}: malformed line in the stream: {line[:80]!r}",
                                            hint="the server sent something that is not a JSON object",
                                            kind="malformed") from None
                    if not isinstance(obj, dict):
                        raise EndpointError(f"{url}: malformed line in the stream: {line[:80]!r}", kind="malformed")
                    if obj.get("error"):
                        raise EndpointError(f"{url}: the server reported an error: {obj['error']}", kind="http")
                    yield obj
                    if obj.get("done"):
                        done = True
                        break
                if not done:
                    raise EndpointError(f"{url}: the stream stopped before the answer was complete (no done=true)",
                                        hint="the server may have crashed or dropped the connection", kind="stream-cut")
        except lib.HTTPError as e:
            raise translate(e, url) from None


def _models(doc: dict, url: str) -> list[dict]:
    models = doc.get("models")
    if not isinstance(models, list):
        raise EndpointError(f"{url}: the answer has no model list", hint="is this an Ollama server?", kind="not-llm")
    return [m for m in models if isinstance(m, dict)]
