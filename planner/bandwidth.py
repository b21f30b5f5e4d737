"""RAM bandwidth as llama.cpp's CPU threads reach it: a streaming read on every usable core at once.

Decode on a CPU streams the weights once per token from every thread at the same time, so the
figure that predicts it is the aggregate read bandwidth of all usable cores, over buffers far
larger than the caches. Each worker process owns its own buffer (written first, so its pages are
real and not the shared zero page), waits at a barrier, then scans it with `bytearray.find` for a
byte that is not there: CPython hands that to the C library's `memchr`, a vectorised read with
almost no arithmetic. Processes, not threads, because the scan holds the GIL.

Only `plan-deploy probe --measure-bandwidth` calls this: planning never measures, so the same
machine file always gives the same plans.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class BandwidthReading:
    bytes_per_s: int  # aggregate over all workers
    workers: int  # processes reading at once (= usable cores)
    buffer_bytes: int  # per worker
    passes: int  # scans per worker in the timed run
    method: str  # one line for notes and the machine file

    def to_dict(self) -> dict:
        return {"bytes_per_s": self.bytes_per_s, "workers": self.workers, "buffer_bytes": self.buffer_bytes,
                "passes": self.passes, "method": self.method}


def usable_cores() -> int:
    """Cores this process may run on (affinity, else the CPU count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _worker(size: int, passes: int, barrier, queue) -> None:  # runs in a child process
    buf = bytearray(b"\x01") * size  # touch every page
    buf.find(b"\x00")  # one untimed pass
    barrier.wait()
    t0 = time.perf_counter()
    for _ in range(passes):
        buf.find(b"\x00")
    queue.put((t0, time.perf_counter()))


def _timed_run(workers: int, size: int, passes: int) -> float:
    import multiprocessing as mp

    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    barrier, queue = ctx.Barrier(workers), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(size, passes, barrier, queue), daemon=True) for _ in range(workers)]
    for p in procs:
        p.start()
    try:
        spans = [queue.get(timeout=120) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
    start, end = min(s for s, _ in spans), max(e for _, e in spans)
    return workers * size * passes / (end - start) if end > start else 0.0


def measure(workers: int | None = None, buffer_bytes: int = 256 * MIB, passes: int = 6,
            repeats: int = 3) -> BandwidthReading:
    """Aggregate streaming-read bandwidth, best of `repeats` runs.

    workers: processes reading at once (default: the usable cores, as llama.cpp's `-t` default
    uses the physical cores it may run on). buffer_bytes: per worker; 256 MiB is 8x a 32 MiB L3,
    so the reads come from DRAM. Returns bytes per second as an int in a BandwidthReading.
    """
    n = workers or usable_cores()
    best = max(_timed_run(n, buffer_bytes, passes) for _ in range(repeats))
    method = (f"streaming read (memchr) on {n} process{'es' if n != 1 else ''} at once, "
              f"{buffer_bytes // MIB} MiB each, best of {repeats}")
    return BandwidthReading(bytes_per_s=int(best), workers=n, buffer_bytes=buffer_bytes, passes=passes,
                            method=method)
