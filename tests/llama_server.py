"""llama.cpp's real C++ server, from the xllamacpp wheel, started from a `llama-server` argv.

`serve(argv)` maps the command line the planner emits onto xllamacpp's CommonParams (the same
fields llama.cpp's common/arg.cpp fills for those flags), starts the server on a free loopback port
and always stops it. Flags are read with the recorded llama-server option table
(data/runtime_flags/), so aliases (`-c`/`--ctx-size`) resolve as the real parser resolves them and
a command the real parser would refuse is refused here too.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator, Sequence
from typing import Any, Callable

from planner.runtimes import flags

# Hosts the test server may bind: loopback only, whatever the command asks for.
_LOOPBACK = "127.0.0.1"


def _truthy(value: str) -> int:
    """llama.cpp's is_truthy/is_falsey/is_autoy (common/arg.cpp) as llama_flash_attn_type values."""
    import xllamacpp as xlc

    t = xlc.llama_flash_attn_type
    if value in ("on", "enabled", "true", "1"):
        return t.LLAMA_FLASH_ATTN_TYPE_ENABLED
    if value in ("off", "disabled", "false", "0"):
        return t.LLAMA_FLASH_ATTN_TYPE_DISABLED
    if value in ("auto", "-1"):
        return t.LLAMA_FLASH_ATTN_TYPE_AUTO
    raise ValueError(f"-fa {value!r}: expected on|off|auto")


def _ggml_type(value: str):
    import xllamacpp as xlc

    return getattr(xlc.ggml_type, f"GGML_TYPE_{value.upper()}")


def _gpu_layers(value: str) -> int:
    return {"auto": -1, "all": -2}[value] if value in ("auto", "all") else int(value)  # arg.cpp -ngl handler


def _split_mode(value: str):
    import xllamacpp as xlc

    return getattr(xlc.llama_split_mode, f"LLAMA_SPLIT_MODE_{value.upper()}")


def _rope_scaling(value: str):
    import xllamacpp as xlc

    return getattr(xlc.llama_rope_scaling_type, f"LLAMA_ROPE_SCALING_TYPE_{value.upper()}")


def _set(path: str, convert: Callable[[str], Any] = str) -> Callable[[Any, str], None]:
    def setter(params: Any, value: str) -> None:
        *head, last = path.split(".")
        obj = params
        for part in head:
            obj = getattr(obj, part)
        setattr(obj, last, convert(value))
    return setter


def _hf(params: Any, value: str) -> None:
    params.model.hf_repo = value
    params.offline = True  # tests never download: the model must already be in llama.cpp's cache


# Canonical spelling (the first name in the recorded table) -> how llama.cpp's handler sets it.
_VALUE_FLAGS: dict[str, Callable[[Any, str], None]] = {
    "-m": _set("model.path"),
    "-hf": _hf,
    "-hff": _set("model.hf_file"),
    "-c": _set("n_ctx", int),
    "-t": _set("cpuparams.n_threads", int),
    "-tb": _set("cpuparams_batch.n_threads", int),
    "-b": _set("n_batch", int),
    "-ub": _set("n_ubatch", int),
    "-np": _set("n_parallel", int),
    "-ngl": _set("n_gpu_layers", _gpu_layers),
    "-fa": _set("flash_attn_type", _truthy),
    "-ctk": _set("cache_type_k", _ggml_type),
    "-ctv": _set("cache_type_v", _ggml_type),
    "-sm": _set("split_mode", _split_mode),
    "-mg": _set("main_gpu", int),
    "--rope-scaling": _set("rope_scaling_type", _rope_scaling),
    "--rope-scale": _set("rope_freq_scale", lambda v: 1.0 / float(v)),  # arg.cpp: rope_freq_scale = 1/N
    "--yarn-orig-ctx": _set("yarn_orig_ctx", int),
    "-n": _set("n_predict", int),
    "-s": _set("sampling.seed", int),
    "--temp": _set("sampling.temp", float),
    "-a": _set("model_alias", lambda v: set(v.split(","))),
    "--api-key": _set("api_keys", lambda v: v.split(",")),
    "-to": lambda p, v: (setattr(p, "timeout_read", int(v)), setattr(p, "timeout_write", int(v))),
    "--threads-http": _set("n_threads_http", int),
    "-cram": _set("cache_ram_mib", int),
    "--cache-reuse": _set("n_cache_reuse", int),
    "-lv": _set("verbosity", int),
    "--host": lambda p, v: None,  # always loopback (see serve)
    "--port": lambda p, v: None,  # always a free port (see serve)
}
def _flag(field: str, value: bool) -> Callable[[Any], None]:
    return lambda p: setattr(p, field, value)


# Every spelling of an option without a value -> the field its handler sets.
_SWITCHES: dict[str, Callable[[Any], None]] = {
    "--jinja": _flag("use_jinja", True), "--no-jinja": _flag("use_jinja", False),
    "--metrics": _flag("endpoint_metrics", True), "--props": _flag("endpoint_props", True),
    "--slots": _flag("endpoint_slots", True), "--no-slots": _flag("endpoint_slots", False),
    "-cb": _flag("cont_batching", True), "--cont-batching": _flag("cont_batching", True),
    "-nocb": _flag("cont_batching", False), "--no-cont-batching": _flag("cont_batching", False),
    "--warmup": _flag("warmup", True), "--no-warmup": _flag("warmup", False),
    "-kvu": _flag("kv_unified", True), "--kv-unified": _flag("kv_unified", True),
    "-no-kvu": _flag("kv_unified", False), "--no-kv-unified": _flag("kv_unified", False),
    "-kvo": _flag("no_kv_offload", False), "--kv-offload": _flag("no_kv_offload", False),
    "-nkvo": _flag("no_kv_offload", True), "--no-kv-offload": _flag("no_kv_offload", True),
    "--swa-full": _flag("swa_full", True),
    "--ui": _flag("ui", True), "--webui": _flag("ui", True), "--no-ui": _flag("ui", False),
    "--no-webui": _flag("ui", False),
}


def _table() -> flags.FlagTable:
    version = flags.recorded_versions("llama.cpp")[-1]
    return flags.load_table("llama.cpp", version)


def to_params(argv: Sequence[str]):
    """xllamacpp.CommonParams for a `llama-server ...` argv (the program name may be left out), as
    llama.cpp's parser would fill them.

    Raises ValueError for a command the real parser refuses (unknown flag, missing value, a value
    outside its choices) and for a flag this mapping does not cover: nothing is silently dropped.
    The server binds 127.0.0.1 on a free port whatever `--host`/`--port` say.
    """
    import xllamacpp as xlc

    argv = list(argv)
    if not argv or argv[0].startswith("-"):  # the options alone, without the program name
        argv = ["llama-server", *argv]
    table = _table()
    problems = flags.check_argv(table, argv)
    if problems:
        raise ValueError("; ".join(problems))
    options = table.programs[0].options
    params = xlc.CommonParams()
    i = 1
    while i < len(argv):
        opt = options[argv[i]]
        name = opt.names[0]
        if opt.value == "none" and argv[i] in _SWITCHES:
            _SWITCHES[argv[i]](params)
            i += 1
            continue
        if opt.value != "one" or name not in _VALUE_FLAGS:
            raise ValueError(f"{argv[i]}: no mapping onto xllamacpp.CommonParams in tests/llama_server.py")
        _VALUE_FLAGS[name](params, argv[i + 1])
        i += 2
    if not any(a in ("-np", "--parallel") for a in argv):
        # llama-server's default -np is -1 (auto): tools/server/server.cpp then uses 4 slots over one
        # unified KV cache, so each request may use the whole -c. xllamacpp's CommonParams default
        # is 1 slot; set what llama-server itself would.
        params.n_parallel = 4
        params.kv_unified = True
    params.hostnames = [_LOOPBACK]
    params.port = 0  # llama.cpp binds an ephemeral port; the server reports which
    return params


def requested_port(argv: Sequence[str]) -> int | None:
    """The --port the command asks for (None when absent); serve() binds a free one instead."""
    argv = list(argv)
    return int(argv[argv.index("--port") + 1]) if "--port" in argv else None


@contextlib.contextmanager
def serve(argv: Sequence[str]) -> Iterator[str]:
    """Start llama.cpp's server for `argv` and yield its base URL, http://127.0.0.1:PORT.

    The port is always a free loopback one (a fixed --port such as the planner's 8080 may be taken
    on a shared machine; `--port 0` asks for exactly this). The model is loaded before the URL is
    yielded; the server is stopped on exit, also when the body raises.
    """
    import xllamacpp as xlc

    params = to_params(argv)
    holder = [xlc.Server(params)]  # the constructor returns once the model is loaded and listening
    try:
        yield holder[0].listening_address.rstrip("/")
    finally:
        holder.clear()  # ~Server stops the main loop and the HTTP thread
        gc.collect()
