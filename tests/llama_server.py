"""Start llama.cpp's C++ server (the xllamacpp wheel) in this process for tests.

    with serve(["llama-server", "-m", PATH, "-c", "2048", "-np", "4", "--port", "0"]) as url:
        ...  # url is "http://127.0.0.1:PORT"

Only -m, -c, -np, -t, --host and --port are mapped (onto xllamacpp.CommonParams); the server
always binds loopback. It stops when the block ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def serve(argv: list[str]) -> Iterator[str]:
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.hostnames = ["127.0.0.1"]
    params.port = 0
    args = list(argv[1:])
    while args:
        flag = args.pop(0)
        value = args.pop(0) if args else None
        if flag in ("-m", "--model"):
            params.model.path = value
        elif flag in ("-c", "--ctx-size"):
            params.n_ctx = int(value)
        elif flag in ("-np", "--parallel"):
            params.n_parallel = int(value)
        elif flag in ("-t", "--threads"):
            params.cpuparams.n_threads = int(value)
            params.cpuparams_batch.n_threads = int(value)
        elif flag == "--port":
            params.port = int(value)
        elif flag == "--host":
            params.hostnames = [value]
        else:
            raise ValueError(f"unsupported llama-server flag in tests: {flag}")
    server = xllamacpp.Server(params)
    try:
        yield server.listening_address.rstrip("/")
    finally:
        del server
