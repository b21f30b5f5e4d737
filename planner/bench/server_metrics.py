"""The server's own decode rate from Prometheus metrics (vLLM), read before and after a level.

vLLM exposes the inter-token latency (time per output token, TPOT) as a histogram
`vllm:inter_token_latency_seconds` (older releases: `vllm:time_per_output_token_seconds`), each
with `_sum` (seconds) and `_count` (intervals) series per model_name label (vllm docs/design/
metrics.md). Over a level, decode tokens/s per stream = delta count / delta sum.
"""

from __future__ import annotations

import re

TPOT_HISTOGRAMS = ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds")
_LINE = re.compile(r"^(?P<name>[A-Za-z_:][\w:]*)(?:\{[^}]*\})?\s+(?P<value>[-+0-9.eE]+|NaN|[+-]Inf)\s*$")


def tpot_totals(text: str | None) -> tuple[float, float] | None:
    """(sum of seconds, count) of the first TPOT histogram present, summed over labels; None if absent."""
    if not text:
        return None
    values: dict[str, float] = {}
    for line in text.splitlines():
        m = _LINE.match(line.strip())
        if m:
            try:
                values[m.group("name")] = values.get(m.group("name"), 0.0) + float(m.group("value"))
            except ValueError:
                continue
    for name in TPOT_HISTOGRAMS:
        if f"{name}_sum" in values and f"{name}_count" in values:
            return values[f"{name}_sum"], values[f"{name}_count"]
    return None


def decode_rate(before: tuple[float, float] | None, after: tuple[float, float] | None) -> float | None:
    """Tokens/s per stream over the interval between two readings, or None."""
    if before is None or after is None:
        return None
    seconds, count = after[0] - before[0], after[1] - before[1]
    return count / seconds if seconds > 0 and count > 0 else None
