"""HTTP clients for running LLM servers (OpenAI-compatible and Ollama's native API).

The HTTP library is imported only when a client is made, never by the planning commands.
`httpx2` (the maintained successor of httpx; `huggingface_hub` and `openai` depend on it) is the
library; it needs Python 3.11, so on 3.10 the `bench` extra installs `httpx`, whose API it keeps.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ..errors import PlannerError, UsageError

INSTALL_HINT = "install the optional HTTP client: pip install 'plan-deploy[bench]'"


class EndpointError(PlannerError):
    """A server that could not be reached or did not answer as an LLM server.

    `kind` is one of: refused, dns, timeout, http, stream-cut, malformed, not-llm, unknown-model, missing-library.
    """

    def __init__(self, message: str, hint: str | None = None, *, kind: str = "http", status: int | None = None):
        super().__init__(message, hint)
        self.kind = kind
        self.status = status


def check_url(url: str) -> str:
    """`url` with http:// added when it has no scheme; UsageError (exit 2) unless it is an http(s)
    URL with a host and a valid port."""
    url = url.strip()
    if "://" not in url:
        url = "http://" + url
    hint = "give a URL such as http://127.0.0.1:8080/v1 (OpenAI-compatible) or http://127.0.0.1:11434 (Ollama)"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise UsageError(f"invalid URL {url!r}: {e}", hint=hint) from None
    if parts.scheme not in ("http", "https"):
        raise UsageError(f"invalid URL {url!r}: the scheme must be http or https", hint=hint)
    if not parts.hostname:
        raise UsageError(f"invalid URL {url!r}: no host", hint=hint)
    if port == 0:
        raise UsageError(f"invalid URL {url!r}: port 0", hint=hint)
    return url


def http():
    """The HTTP library module (httpx2, else httpx); EndpointError(kind='missing-library') when neither is installed."""
    try:
        import httpx2 as lib
    except ImportError:
        try:
            import httpx as lib
        except ImportError:
            raise EndpointError("this command needs an HTTP client library, and none is installed",
                                hint=INSTALL_HINT, kind="missing-library") from None
    return lib


def timeout(total_s: float, connect_s: float | None = None):
    """A Timeout object: `connect_s` to connect (default min(total, 5) s), `total_s` for each read."""
    lib = http()
    return lib.Timeout(total_s, connect=connect_s if connect_s is not None else min(total_s, 5.0))


class HttpClient:
    """One HTTP connection pool (the library from http()) that closes itself: the shared part of the
    OpenAI-compatible and Ollama clients. `self._lib` is the library module, `self._client` its Client."""

    def __init__(self, timeout_s: float, connect_timeout_s: float | None):
        self._timeout = (timeout_s, connect_timeout_s)
        self._lib = http()
        self._client = self._lib.Client(timeout=timeout(timeout_s, connect_timeout_s), trust_env=False)

    def close(self) -> None:
        self._client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def translate(exc: Exception, url: str) -> EndpointError:
    """One EndpointError with a hint for an exception raised by the HTTP library while talking to `url`."""
    lib = http()
    text = str(exc) or type(exc).__name__
    low = text.lower()
    if isinstance(exc, lib.TimeoutException):
        return EndpointError(f"{url}: no answer in time ({type(exc).__name__})",
                             hint="is the server overloaded or still loading the model? raise --timeout", kind="timeout")
    if isinstance(exc, lib.ConnectError):
        if any(s in low for s in ("name or service not known", "nodename nor servname", "getaddrinfo",
                                  "temporary failure in name resolution", "no address associated", "errno -2",
                                  "errno -3", "errno -5", "errno 8", "errno 11001")):
            return EndpointError(f"{url}: host name could not be resolved ({text})",
                                 hint="check the host name in the URL", kind="dns")
        return EndpointError(f"{url}: connection refused or failed ({text})",
                             hint="is the server running, and on this port? (llama-server 8080, Ollama 11434, "
                                  "LM Studio 1234, vLLM 8000, SGLang 30000)", kind="refused")
    if isinstance(exc, lib.RemoteProtocolError):
        return EndpointError(f"{url}: the server closed the connection mid-answer ({text})",
                             hint="the server may have crashed or run out of memory: check its log", kind="stream-cut")
    if isinstance(exc, lib.HTTPStatusError):
        return EndpointError(f"{url}: HTTP {exc.response.status_code}", kind="http", status=exc.response.status_code)
    if isinstance(exc, lib.InvalidURL | lib.UnsupportedProtocol):
        return EndpointError(f"invalid URL {url!r} ({text})", hint="give a URL such as http://127.0.0.1:8080/v1",
                             kind="http")
    return EndpointError(f"{url}: {type(exc).__name__}: {text}", kind="http")


def status_error(response, url: str) -> EndpointError:
    """EndpointError for an HTTP error status, with the server's own message when it sent one (read body first)."""
    code = response.status_code
    detail = ""
    try:
        body = response.json()
        err = body.get("error") if isinstance(body, dict) else None
        detail = (err.get("message") if isinstance(err, dict) else err) or body.get("detail") or ""
    except (ValueError, AttributeError):
        detail = (response.text or "")[:200].strip()
    msg = f"{url}: HTTP {code}" + (f": {detail}" if detail else "")
    low = str(detail).lower()
    if code == 404 and "model" in low and ("not found" in low or "does not exist" in low):
        return EndpointError(msg, hint="list the served models with GET /v1/models (or `ollama list`) and pass --model",
                             kind="unknown-model", status=code)
    hint = "the server rejected the request" if code < 500 else "the server failed: check its log"
    return EndpointError(msg, hint=hint, kind="http", status=code)
