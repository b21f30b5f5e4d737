"""Prompt sets for `bench`: the built-in accuracy prompts, user files (YAML or JSONL), unique variants.

A prompt is a question and what a right answer contains: `expected` (a substring, matched without
regard to case) or `regex` (a Python regular expression, searched case-insensitively).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError


@dataclass(frozen=True, slots=True)
class Prompt:
    id: str
    question: str
    expected: str | None = None
    regex: str | None = None

    def check(self, answer: str) -> bool | None:
        """True/False when the prompt has an expectation, None when it has none."""
        if self.regex:
            return re.search(self.regex, answer, re.IGNORECASE) is not None
        if self.expected:
            return self.expected.lower() in answer.lower()
        return None


# Three short factual questions with unambiguous one-word answers. The project brief's own three
# prompts are not in this repository; these stand in for them (the first is the brief's
# "What is the capital of France?" -> "Paris").
BUILTIN: tuple[Prompt, ...] = (
    Prompt("capital-france", "What is the capital of France?", expected="Paris"),
    Prompt("two-plus-two", "What is 2 + 2? Answer with the number.", regex=r"\b4\b|\bfour\b"),
    Prompt("sky-colour", "What colour is the sky on a clear day? Answer in one word.", expected="blue"),
)


def load(path: str) -> tuple[Prompt, ...]:
    """Prompts from a YAML list or a JSONL file of {question, expected | regex} (optional id).

    UsageError (exit 2) naming the file and entry for anything else.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot read --prompts {path}: {e.strerror or e}",
                         hint="give a YAML or JSONL file of {question, expected} entries") from None
    entries: list = []
    if p.suffix.lower() in (".jsonl", ".ndjson"):
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    entries.append(json.loads(line))
                except ValueError:
                    raise UsageError(f"{path}: line {n} is not JSON",
                                     hint='each line: {"question": "...", "expected": "..."}') from None
    else:
        import yaml

        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise UsageError(f"{path}: not valid YAML ({getattr(e, 'problem', e)})",
                             hint="a list of {question, expected} mappings") from None
        entries = doc.get("prompts", doc) if isinstance(doc, dict) else doc
    if not isinstance(entries, list) or not entries:
        raise UsageError(f"{path}: no prompts", hint="a list of {question, expected} mappings (or JSONL lines)")
    out = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or not isinstance(e.get("question"), str) or not e["question"].strip():
            raise UsageError(f"{path}: entry {i + 1} has no 'question' text",
                             hint="each entry: question, and expected (substring) or regex")
        regex = e.get("regex")
        if regex is not None:
            try:
                re.compile(str(regex))
            except re.error as err:
                raise UsageError(f"{path}: entry {i + 1}: bad regex {regex!r} ({err})",
                                 hint="a Python regular expression") from None
        expected = e.get("expected")
        out.append(Prompt(str(e.get("id") or f"p{i + 1}"), e["question"].strip(),
                          expected=None if expected is None else str(expected),
                          regex=None if regex is None else str(regex)))
    return tuple(out)


def messages(prompt: Prompt, nonce: str) -> list[dict]:
    """Chat messages for one request. The system line starts with `nonce` (random per request), so
    no two requests share a prefix and a server's prefix cache cannot skip the prompt's prefill."""
    return [{"role": "system", "content": f"[{nonce}] Answer briefly and correctly."},
            {"role": "user", "content": prompt.question}]
