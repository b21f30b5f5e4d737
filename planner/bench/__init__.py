"""Measure running LLM servers: streamed requests, TTFT/decode metrics, prompt sets, records, plan verdicts."""
