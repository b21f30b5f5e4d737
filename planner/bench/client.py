"""The measuring client: one streamed request -> RequestResult, for OpenAI-compatible and Ollama APIs.

Times come from time.perf_counter() on this machine: t0 just before the request is sent, TTFT at
the first chunk with generated text (content, or reasoning text for thinking models), E2E after the
stream's last event. Token counts come from the server: OpenAI `usage` (sent because the request
asks for stream_options.include_usage), Ollama's final `eval_count` / `prompt_eval_count`.
The server's own decode figure: llama.cpp's `timings.predicted_per_second`; Ollama's
eval_count / eval_duration (nanoseconds, docs/api.md).
"""

from __future__ import annotations

import threading
import time

from ..clients import EndpointError
from .metrics import RequestResult
from .prompts import Prompt, messages


class Cancelled(Exception):
    """The run was interrupted while this request was streaming."""


def _failure(prompt: Prompt, e: EndpointError, t0: float) -> RequestResult:
    return RequestResult(prompt_id=prompt.id, ok=False, error=e.message, error_kind=e.kind, hint=e.hint,
                         e2e_s=time.perf_counter() - t0)


def openai_request(client, model: str, prompt: Prompt, nonce: str, max_tokens: int,
                   stop: threading.Event | None = None) -> RequestResult:
    """One streamed chat completion on an OpenAIClient, measured."""
    t0 = time.perf_counter()
    ttft = None
    parts: list[str] = []
    usage = timings = None
    try:
        for chunk in client.chat_stream(model, messages(prompt, nonce), max_tokens=max_tokens, temperature=0.0):
            if stop is not None and stop.is_set():
                raise Cancelled
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") or {}
                text = (delta.get("content") or "") + (delta.get("reasoning_content") or delta.get("reasoning") or "")
                if text:
                    if ttft is None:
                        ttft = time.perf_counter() - t0
                    parts.append(delta.get("content") or "")
            if chunk.get("usage"):
                usage = chunk["usage"]
            if chunk.get("timings"):
                timings = chunk["timings"]
    except EndpointError as e:
        return _failure(prompt, e, t0)
    e2e = time.perf_counter() - t0
    text = "".join(parts)
    res = RequestResult(prompt_id=prompt.id, ok=True, ttft_s=ttft, e2e_s=e2e, text=text, correct=prompt.check(text))
    if usage:
        res.prompt_tokens = usage.get("prompt_tokens")
        res.completion_tokens = usage.get("completion_tokens")
    else:
        res.note = "the server sent no usage: token counts and decode tokens/s unknown (chunks are not tokens)"
    if timings:
        res.server_completion_tokens = timings.get("predicted_n")
        res.server_decode_tps = timings.get("predicted_per_second")
        res.server_prefill_tps = timings.get("prompt_per_second")
    if ttft is None:
        res.ok, res.error, res.error_kind = False, "the answer had no text", "empty"
    return res


def ollama_request(client, model: str, prompt: Prompt, nonce: str, max_tokens: int,
                   stop: threading.Event | None = None) -> RequestResult:
    """One streamed /api/chat on an OllamaClient, measured."""
    t0 = time.perf_counter()
    ttft = None
    parts: list[str] = []
    final: dict = {}
    try:
        for obj in client.chat(model, messages(prompt, nonce), max_tokens=max_tokens, temperature=0.0):
            if stop is not None and stop.is_set():
                raise Cancelled
            msg = obj.get("message") or {}
            text = (msg.get("content") or "") + (msg.get("thinking") or "")
            if text:
                if ttft is None:
                    ttft = time.perf_counter() - t0
                parts.append(msg.get("content") or "")
            if obj.get("done"):
                final = obj
    except EndpointError as e:
        return _failure(prompt, e, t0)
    e2e = time.perf_counter() - t0
    text = "".join(parts)
    res = RequestResult(prompt_id=prompt.id, ok=True, ttft_s=ttft, e2e_s=e2e, text=text, correct=prompt.check(text),
                        prompt_tokens=final.get("prompt_eval_count"), completion_tokens=final.get("eval_count"))
    res.server_completion_tokens = final.get("eval_count")
    if final.get("eval_count") and final.get("eval_duration"):
        res.server_decode_tps = final["eval_count"] / (final["eval_duration"] / 1e9)
    if final.get("prompt_eval_count") and final.get("prompt_eval_duration"):
        res.server_prefill_tps = final["prompt_eval_count"] / (final["prompt_eval_duration"] / 1e9)
    if ttft is None:
        res.ok, res.error, res.error_kind = False, "the answer had no text", "empty"
    return res
