"""Sizes and token counts from the command line: "24G" / "24GB" (10^9), "24GiB" (2^30), "8k"."""

from __future__ import annotations

import re

from .errors import UsageError

GIB = 1 << 30
MIB = 1 << 20
GB = 10**9

_SIZE = re.compile(r"^\s*(?P<num>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>[a-zA-Z]*)\s*$")
# A bare "G" is read as GB (10^9), like the brief's "--ram 64G"; write GiB for binary units.
_UNITS = {
    "": 1, "b": 1,
    "k": 10**3, "kb": 10**3, "kib": 1 << 10,
    "m": 10**6, "mb": 10**6, "mib": MIB,
    "g": GB, "gb": GB, "gib": GIB,
    "t": 10**12, "tb": 10**12, "tib": 1 << 40,
}


def parse_size(text: str | int, what: str = "size") -> int:
    """Bytes in `text`; raises UsageError for negative, empty or unknown units."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise UsageError(f"{what} must not be negative: {text}")
        return text
    s = str(text).strip()
    if s.startswith("-"):
        raise UsageError(f"{what} must not be negative: {s}")
    m = _SIZE.match(s)
    if not m or m.group("unit").lower() not in _UNITS:
        raise UsageError(f"invalid {what}: {text!r}", hint="use a number with a unit, e.g. 24G, 24GB or 24GiB")
    return int(round(float(m.group("num")) * _UNITS[m.group("unit").lower()]))


_TOKENS = re.compile(r"^\s*(?P<num>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>[kKmM]?)\s*$")


def parse_tokens(text: str | int, what: str = "context") -> int:
    """Token counts: 8192, 8k (= 8192), 128k, 1m (= 1048576)."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        m = _TOKENS.match(str(text))
        if not m:
            raise UsageError(f"invalid {what}: {text!r}", hint="use a token count such as 8192, 8k or 128k")
        mult = {"": 1, "k": 1024, "m": 1024 * 1024}[m.group("unit").lower()]
        value = int(round(float(m.group("num")) * mult))
    if value <= 0:
        raise UsageError(f"{what} must be positive: {text}")
    return value

