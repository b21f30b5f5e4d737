"""A small client for OpenAI-compatible servers (llama.cpp's llama-server, vLLM, SGLang, LM Studio, Ollama's /v1).

Endpoints used (OpenAI API reference, "Chat Completions" and "Models"; llama.cpp tools/server/README.md
for /props and the `timings` object; vLLM docs "Production Metrics" for /metrics):
  GET  {base}/models                 -> {"data": [{"id": ...}]}
  POST {base}/chat/completions       stream=true -> SSE `data: {json}` chunks, then `data: [DONE]`
  GET  {root}/props                  llama.cpp only: model_path, build_info, n_ctx
  GET  {root}/metrics                Prometheus text (vLLM, SGLang; llama.cpp with --metrics)
`base` ends in /v1; `root` is the server without it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

from . import EndpointError, HttpClient, check_url, status_error, translate


def split_base(url: str) -> tuple[str, str]:
    """("http://h:p/v1", "http://h:p") from a URL given with or without /v1 (and with or without a trailing /).

    UsageError for a URL that is not http(s)://host[:port][/path]."""
    parts = urlsplit(check_url(url))
    path = parts.path.rstrip("/")
    if path.endswith("/chat/completions"):
        path = path[: -len("/chat/completions")]
    root_path = path[: -len("/v1")] if path.endswith("/v1") else path
    root = urlunsplit((parts.scheme, parts.netloc, root_path, "", ""))
    return root + "/v1", root


class OpenAIClient(HttpClient):
    """Talks to one OpenAI-compatible server. Every method raises EndpointError, never an HTTP library error."""

    def __init__(self, url: str, *, timeout_s: float = 60.0, connect_timeout_s: float | None = None):
        self.base, self.root = split_base(url)
        super().__init__(timeout_s, connect_timeout_s)

    def _get_json(self, url: str) -> object:
        try:
            r = self._client.get(url)
        except self._lib.HTTPError as e:
            raise translate(e, url) from None
        if r.status_code >= 400:
            raise status_error(r, url)
        try:
            return r.json()
        except ValueError:
            raise EndpointError(f"{url}: the answer is not JSON ({r.headers.get('content-type', 'no content type')})",
                                hint="is this an LLM server? give its OpenAI-compatible base URL, e.g. "
                                     "http://127.0.0.1:8080/v1", kind="not-llm") from None

    def models(self) -> list[str]:
        """Model ids the server serves (GET /v1/models). EndpointError(kind='not-llm') when the answer has no list."""
        url = self.base + "/models"
        try:
            doc = self._get_json(url)
        except EndpointError as e:
            if e.status == 404:
                raise EndpointError(f"{url}: HTTP 404: no model list here", kind="not-llm",
                                    hint="is this an OpenAI-compatible server? the URL should end in /v1") from None
            raise
        data = doc.get("data") if isinstance(doc, dict) else None
        if not isinstance(data, list):
            raise EndpointError(f"{url}: the answer has no model list", kind="not-llm",
                                hint="is this an OpenAI-compatible LLM server?")
        return [str(m.get("id")) for m in data if isinstance(m, dict) and m.get("id")]

    def props(self) -> dict | None:
        """llama.cpp's GET /props (model_path, build_info...), or None when the server has none."""
        try:
            doc = self._get_json(self.root + "/props")
        except EndpointError:
            return None
        return doc if isinstance(doc, dict) and ("model_path" in doc or "default_generation_settings" in doc) else None

    def root_json(self, path: str) -> object | None:
        """GET {root}{path} as JSON, or None when it fails in any way (for signature probes)."""
        try:
            return self._get_json(self.root + path)
        except EndpointError:
            return None

    def metrics(self) -> str | None:
        """Prometheus text from GET /metrics, or None."""
        try:
            r = self._client.get(self.root + "/metrics")
        except self._lib.HTTPError:
            return None
        return r.text if r.status_code == 200 and "# TYPE" in r.text else None

    def chat_stream(self, model: str, messages: list[dict], *, max_tokens: int, temperature: float = 0.0,
                    seed: int | None = None) -> Iterator[dict]:
        """Stream one chat completion; yields each SSE chunk as a dict, the usage chunk included.

        Sends stream_options.include_usage so the last chunk carries `usage` (token counts from the
        server's tokenizer). Ends after `data: [DONE]`; EndpointError(kind='stream-cut') when the
        stream ends without it, kind='malformed' for an event that is not JSON.
        """
        url = self.base + "/chat/completions"
        body = {"model": model, "messages": messages, "stream": True, "max_tokens": max_tokens,
                "temperature": temperature, "stream_options": {"include_usage": True}}
        if seed is not None:
            body["seed"] = seed
        lib = self._lib
        try:
            with self._client.stream("POST", url, json=body) as r:
                if r.status_code >= 400:
                    r.read()
                    raise status_error(r, url)
                ctype = r.headers.get("content-type", "")
                if "text/event-stream" not in ctype:
                    raise EndpointError(f"{url}: expected a stream of server-sent events, got {ctype or 'no content type'}",
                                        hint="is this an OpenAI-compatible LLM server?", kind="not-llm")
                done = False
                for data in _sse_data(lib, r):
                    if data.strip() == "[DONE]":
                        done = True
                        break
                    try:
                        chunk = json.loads(data)
                    except ValueError:
                        raise EndpointError(f"{url}: malformed event in the stream: {data[:80]!r}",
                                            hint="the server sent something that is not a JSON chunk",
                                            kind="malformed") from None
                    if isinstance(chunk, dict) and "error" in chunk and not chunk.get("choices"):
                        err = chunk["error"]
                        raise EndpointError(f"{url}: the server reported an error mid-stream: "
                                            f"{err.get('message', err) if isinstance(err, dict) else err}", kind="http")
                    if not isinstance(chunk, dict):
                        raise EndpointError(f"{url}: malformed event in the stream: {data[:80]!r}", kind="malformed")
                    yield chunk
                if not done:
                    raise EndpointError(f"{url}: the stream stopped before the answer was complete (no [DONE])",
                                        hint="the server may have crashed or dropped the connection", kind="stream-cut")
        except lib.HTTPError as e:
            raise translate(e, url) from None


def _sse_data(lib, response) -> Iterator[str]:
    """The `data` of each server-sent event: httpx2's own parser, or the line protocol on httpx."""
    if hasattr(lib, "EventSource"):
        for event in lib.EventSource(response):
            yield event.data
        return
    for line in response.iter_lines():  # pragma: no cover - httpx on Python 3.10
        if line.startswith("data:"):
            yield line[5:].lstrip()
