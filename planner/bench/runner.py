"""Run N requests at a concurrency level on worker threads; Ctrl-C keeps what finished.

Workers are daemon threads so an interrupted run never waits for a stuck request; the main
thread polls (every 0.1 s) so KeyboardInterrupt reaches it at once and `tick(done, total)` can
draw a progress bar.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

from .client import Cancelled
from .metrics import Level, RequestResult


class Interrupted(Exception):
    """Ctrl-C during a level; `level` holds the requests that finished."""

    def __init__(self, level: Level):
        super().__init__("interrupted")
        self.level = level


def run_level(send: Callable[[int, threading.Event], RequestResult], *, requests: int, concurrency: int,
              tick: Callable[[int, int], None] | None = None) -> Level:
    """Send requests 0..requests-1 through `send(i, stop)` with `concurrency` in flight at once.

    Raises Interrupted (with the finished requests) on KeyboardInterrupt.
    """
    level = Level(concurrency=concurrency, planned=requests)
    todo: queue.Queue[int] = queue.Queue()
    for i in range(requests):
        todo.put(i)
    stop = threading.Event()
    lock = threading.Lock()
    first_start: list[float] = []
    last_end: list[float] = []

    def worker() -> None:
        while not stop.is_set():
            try:
                i = todo.get_nowait()
            except queue.Empty:
                return
            start = time.perf_counter()
            try:
                r = send(i, stop)
            except Cancelled:
                return
            with lock:
                if stop.is_set():
                    return
                first_start.append(start)
                last_end.append(time.perf_counter())
                level.results.append(r)

    threads = [threading.Thread(target=worker, daemon=True, name=f"bench-{concurrency}-{n}")
               for n in range(min(concurrency, requests))]
    for t in threads:
        t.start()
    try:
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(0.1)
                if tick:
                    tick(len(level.results), requests)
    except KeyboardInterrupt:
        with lock:
            stop.set()
            _wall(level, first_start, last_end)
        raise Interrupted(level) from None
    _wall(level, first_start, last_end)
    return level


def _wall(level: Level, starts: list[float], ends: list[float]) -> None:
    level.wall_s = (max(ends) - min(starts)) if starts and ends else 0.0
