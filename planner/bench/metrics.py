"""What one request measured and what a concurrency level adds up to.

Definitions (the ones llama.cpp's and vLLM's own benchmarks use):
  TTFT   time from sending the request to the first streamed chunk that carries generated text.
  E2E    time from sending the request to the end of the stream.
  decode tokens/s per request = (completion_tokens - 1) / (E2E - TTFT): the first token arrives at
         TTFT, the other completion_tokens - 1 during the decode phase. completion_tokens comes from
         the server's `usage` (its tokenizer), never from counting stream chunks, which may hold
         several tokens or none.
  aggregate tokens/s = all completion tokens of a level / the level's wall time.
Percentiles are linear interpolations between order statistics (statistics.quantiles, "inclusive").
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class RequestResult:
    prompt_id: str
    ok: bool
    error: str | None = None
    error_kind: str | None = None
    hint: str | None = None
    note: str | None = None  # on a success: what could not be measured
    ttft_s: float | None = None
    e2e_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    server_completion_tokens: int | None = None  # the server's own count (llama.cpp predicted_n, Ollama eval_count)
    server_decode_tps: float | None = None
    server_prefill_tps: float | None = None
    correct: bool | None = None
    text: str = ""

    @property
    def decode_tps(self) -> float | None:
        """(completion_tokens - 1) / (E2E - TTFT), tokens/s; None with fewer than 2 tokens or no usage."""
        if not self.ok or self.completion_tokens is None or self.completion_tokens < 2:
            return None
        if self.ttft_s is None or self.e2e_s is None or self.e2e_s <= self.ttft_s:
            return None
        return (self.completion_tokens - 1) / (self.e2e_s - self.ttft_s)

    def to_dict(self) -> dict:
        return {"prompt": self.prompt_id, "ok": self.ok, "error": self.error, "error_kind": self.error_kind,
                "note": self.note,
                "ttft_s": _r(self.ttft_s, 6), "e2e_s": _r(self.e2e_s, 6), "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "server_completion_tokens": self.server_completion_tokens, "decode_tokens_per_s": _r(self.decode_tps, 2),
                "server_decode_tokens_per_s": _r(self.server_decode_tps, 2),
                "server_prefill_tokens_per_s": _r(self.server_prefill_tps, 2), "correct": self.correct}


def _r(x: float | None, digits: int) -> float | None:
    return None if x is None else round(x, digits)


def percentiles(values: list[float]) -> dict[str, float | None]:
    """{p50, p90, p99} of `values` (None when empty; the single value when only one)."""
    if not values:
        return {"p50": None, "p90": None, "p99": None}
    if len(values) == 1:
        return {"p50": values[0], "p90": values[0], "p99": values[0]}
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": q[49], "p90": q[89], "p99": q[98]}


@dataclass(slots=True)
class Level:
    """One concurrency level: its requests and wall time (first send to last end, seconds)."""

    concurrency: int
    planned: int
    results: list[RequestResult] = field(default_factory=list)
    wall_s: float = 0.0
    server_decode_tps: float | None = None  # from the server's metrics over the level, when it has them

    @property
    def ok(self) -> list[RequestResult]:
        return [r for r in self.results if r.ok]

    def summary(self) -> dict:
        ok = self.ok
        tokens = sum(r.completion_tokens or 0 for r in ok)
        judged = [r.correct for r in ok if r.correct is not None]
        decode = [d for d in (r.decode_tps for r in ok) if d is not None]
        server = [r.server_decode_tps for r in ok if r.server_decode_tps is not None]
        server_p50 = statistics.median(server) if server else self.server_decode_tps

        def rounded(d: dict, digits: int) -> dict:
            return {k: _r(v, digits) for k, v in d.items()}

        return {
            "concurrency": self.concurrency,
            "requests": self.planned,
            "finished": len(self.results),
            "ok": len(ok),
            "failed": len(self.results) - len(ok),
            "failures": dict(sorted(Counter(r.error_kind or "error" for r in self.results if not r.ok).items())),
            "wall_s": round(self.wall_s, 3),
            "completion_tokens": tokens,
            "aggregate_tokens_per_s": round(tokens / self.wall_s, 2) if self.wall_s > 0 and ok else None,
            "ttft_s": rounded(percentiles([r.ttft_s for r in ok if r.ttft_s is not None]), 4),
            "e2e_s": rounded(percentiles([r.e2e_s for r in ok if r.e2e_s is not None]), 4),
            "decode_tokens_per_s": rounded(percentiles(decode), 2),
            "server_decode_tokens_per_s": _r(server_p50, 2),
            "accuracy": {"correct": sum(judged), "judged": len(judged),
                         "ratio": round(sum(judged) / len(judged), 3) if judged else None},
        }
