"""Which LLM runtimes are installed and which are running here (read-only, bounded in time).

Installed: programs on PATH (their `--version`, 3 s at most each, run in parallel) and Python
packages by their metadata (importlib.metadata: never imported). Running: loopback servers on
each runtime's default port, or OLLAMA_HOST / LMSTUDIO_HOST: a TCP connect first (0.25 s), which
a closed port refuses in microseconds, then the HTTP signature only where a port accepts. All
probes run in parallel, so "nothing running" costs a few milliseconds.
Default ports (each runtime's docs): Ollama 11434, LM Studio 1234, llama-server 8080, vLLM 8000,
SGLang 30000.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from urllib.parse import urlsplit

# catalog runtime id -> programs that mean it is installed, and Python distributions
PROGRAMS = {"ollama": ("ollama",), "llama.cpp": ("llama-server", "llama-cli"), "lm-studio": ("lms",),
            "vllm": ("vllm",), "mlx-lm": ("mlx_lm.server",)}
# (llama.cpp's Python bindings, llama-cpp-python and xllamacpp, are not listed: they do not install the
# llama-server program that llama.cpp plans launch.)
PACKAGES = {"vllm": ("vllm",), "sglang": ("sglang",), "mlx-lm": ("mlx-lm",), "transformers": ("transformers",)}
VERSION_ARGS = {"lms": ("version",)}
CONNECT_TIMEOUT_S = 0.25
HTTP_TIMEOUT_S = 1.5


@dataclass
class Runtime:
    name: str
    version: str | None = None
    path: str | None = None
    running: dict | None = None      # {url, models}
    packages: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = {"name": self.name, "version": self.version, "path": self.path, "running": self.running}
        if self.packages:
            d["packages"] = dict(sorted(self.packages.items()))
        return d


def _program_version(path: str, program: str) -> str | None:
    try:
        r = subprocess.run([path, *VERSION_ARGS.get(program, ("--version",))], capture_output=True, text=True,
                           timeout=3, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    text = r.stdout + r.stderr
    m = re.search(r"version:\s*(\d+)\s*\(([0-9a-f]+)\)", text)  # llama.cpp: "version: 5890 (a1b2c3d)"
    if m:
        return f"b{m.group(1)}"
    m = re.search(r"\d+\.\d+(?:\.\d+)*(?:[-+][0-9A-Za-z.]+)?", text)  # "ollama version is 0.5.1"
    return m.group(0) if m else None


def _host(env: str, default_port: int) -> tuple[str, int]:
    value = os.environ.get(env, "").strip()
    if not value:
        return "127.0.0.1", default_port
    if env == "OLLAMA_HOST":
        from ..clients.ollama import host_url

        parts = urlsplit(host_url(value))
    else:
        parts = urlsplit(value if "://" in value else "http://" + value)
    host = parts.hostname or "127.0.0.1"
    return ("127.0.0.1" if host == "0.0.0.0" else host), parts.port or default_port


def servers() -> list[tuple[str, str, int]]:
    """(runtime, host, port) probed for running servers."""
    h, p = _host("OLLAMA_HOST", 11434)
    lh, lp = _host("LMSTUDIO_HOST", 1234)
    return [("ollama", h, p), ("lm-studio", lh, lp), ("llama.cpp", "127.0.0.1", 8080),
            ("vllm", "127.0.0.1", 8000), ("sglang", "127.0.0.1", 30000)]


def _open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            return True
    except OSError:
        return False


def _probe(runtime: str, host: str, port: int) -> dict | None:
    """{url, models, version?} when a server of `runtime` answers there, else None."""
    if not _open(host, port):
        return None
    from ..clients import EndpointError
    from ..clients.ollama import OllamaClient
    from ..clients.openai import OpenAIClient

    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    root = f"http://{netloc}"
    try:
        if runtime == "ollama":
            with OllamaClient(root, timeout_s=HTTP_TIMEOUT_S, connect_timeout_s=CONNECT_TIMEOUT_S) as c:
                version = c.version()
                loaded = [m.get("name") for m in c.ps()]
                return {"url": root, "version": version, "models": [m.get("name") for m in c.tags()],
                        "loaded": loaded}
        with OpenAIClient(root + "/v1", timeout_s=HTTP_TIMEOUT_S, connect_timeout_s=CONNECT_TIMEOUT_S) as c:
            models = c.models()
            out = {"url": root + "/v1", "models": models}
            if runtime == "llama.cpp":
                props = c.props()
                if props is None:
                    return None  # something else on 8080
                out["version"] = props.get("build_info")
                out["model_file"] = props.get("model_path")
            return out
    except EndpointError:
        return None


def _installed_packages() -> dict[str, str]:
    """{normalised distribution name: version} in one pass over the installed metadata."""
    out = {}
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name:
            out.setdefault(name, dist.version)
    return out


def running_servers(targets: list[tuple[str, str, int]] | None = None) -> tuple[dict[str, dict], list[str]]:
    """({runtime: {url, models, ...}} for servers answering at `targets` (default: servers()), notes).

    Connects to every target in parallel first; only ports that accept get HTTP requests, so when
    every port refuses this costs well under a millisecond per port and imports no HTTP library.
    """
    targets = servers() if targets is None else targets
    notes: list[str] = []
    out: dict[str, dict] = {}
    with ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
        listening = [t for t, ok in zip(targets, pool.map(lambda t: _open(t[1], t[2]), targets)) if ok]
        if not listening:
            return out, notes
        from ..clients import EndpointError, http

        try:
            http()
        except EndpointError as e:
            notes.append(f"servers answer on ports {', '.join(str(p) for _, _, p in listening)} but were not "
                         f"checked: {e.message} ({e.hint})")
            return out, notes
        futures = [(rid, pool.submit(_probe, rid, h, p)) for rid, h, p in listening]
        for rid, fut in futures:
            res = fut.result()
            if res is not None:
                out.setdefault(rid, res)
    return out, notes


def detect(*, running: bool = True) -> tuple[list[Runtime], list[str]]:
    """(runtimes found installed or running, notes). Never raises for a missing runtime."""
    found: dict[str, Runtime] = {}
    programs = [(rid, prog, shutil.which(prog)) for rid, progs in PROGRAMS.items() for prog in progs]
    programs = [x for x in programs if x[2]]
    with ThreadPoolExecutor(max_workers=4) as pool:
        version_futures = [pool.submit(_program_version, path, prog) for _, prog, path in programs]
        servers_future = pool.submit(running_servers) if running else None
        installed = _installed_packages()
        for rid, dists in PACKAGES.items():
            for dist in dists:
                if dist in installed:
                    rt = found.setdefault(rid, Runtime(rid))
                    rt.packages[dist] = installed[dist]
                    rt.version = rt.version or installed[dist]
        for (rid, prog, path), fut in zip(programs, version_futures):
            rt = found.setdefault(rid, Runtime(rid))
            if rt.path is None:
                rt.path = path
                rt.version = fut.result() or rt.version
        live, notes = servers_future.result() if servers_future else ({}, [])
    for rid, res in live.items():
        rt = found.setdefault(rid, Runtime(rid))
        rt.running = res
        rt.version = rt.version or res.get("version")
    return [found[k] for k in sorted(found)], notes
