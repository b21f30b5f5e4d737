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



_BANDWIDTH = re.compile(r"^\s*(?P<num>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>[a-zA-Z]*?)\s*(?:/\s*s|ps)?\s*$")
_BW_UNITS = {"": GB, "gb": GB, "tb": 10**12, "mb": 10**6, "gib": GIB, "tib": 1 << 40, "mib": MIB}


def parse_bandwidth(text: str, what: str = "--bandwidth") -> int:
    """Bytes per second in "900GB/s", "900 GB/s", "3.35TB/s", "900GBps" or a bare "900" (GB/s).

    Raises UsageError for an empty, zero, negative or unit-less-but-unknown value.
    """
    s = str(text).strip()
    m = _BANDWIDTH.match(s)
    unit = m.group("unit").lower() if m else None
    if not m or unit not in _BW_UNITS:
        raise UsageError(f"invalid {what}: {text!r}", hint="use a rate such as 900GB/s, 3.35TB/s or 900 (GB/s)")
    value = int(round(float(m.group("num")) * _BW_UNITS[unit]))
    if value <= 0:
        raise UsageError(f"{what} must be positive: {text!r}", hint="use a rate such as 900GB/s")
    return value


_CC = re.compile(r"^\s*(\d{1,2})\.(\d)\s*$")


def parse_compute_capability(text: str, what: str = "--cc") -> str:
    """A CUDA compute capability "major.minor" such as "8.6" or "12.0"; UsageError otherwise."""
    m = _CC.match(str(text))
    if not m:
        raise UsageError(f"invalid {what}: {text!r}", hint="use major.minor, e.g. 7.5, 8.6, 8.9, 9.0 or 12.0")
    return f"{int(m.group(1))}.{m.group(2)}"
