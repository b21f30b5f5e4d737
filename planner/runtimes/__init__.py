"""One module per runtime behind one interface (base.Runtime); this registry finds them.

Adding a runtime: an entry in data/runtimes.yaml (facts, sources, launch template, version) and,
where its rules differ from the defaults in base.py, a module here that defines
`RUNTIME = <its Runtime subclass>`. Nothing else changes: every module in this package that
defines RUNTIME is registered.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

from ..catalog import RuntimeSpec
from .base import Launch, LaunchRequest, Options, Runtime, Step

__all__ = ["Launch", "LaunchRequest", "Options", "Runtime", "Step", "get", "modules"]

_NOT_RUNTIMES = {"base", "render", "flags"}


@functools.lru_cache(maxsize=1)
def modules() -> dict[str, type[Runtime]]:
    """Runtime id -> the class of its module, for every module that defines RUNTIME."""
    out: dict[str, type[Runtime]] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name in _NOT_RUNTIMES or info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        cls = getattr(mod, "RUNTIME", None)
        if cls is not None:
            out[cls.id] = cls
    return out


_CACHE: dict[int, Runtime] = {}


def get(spec: RuntimeSpec) -> Runtime:
    """The runtime object for a catalog entry (its module's class, else the data-only default)."""
    key = id(spec)
    rt = _CACHE.get(key)
    if rt is None or rt.spec is not spec:
        rt = modules().get(spec.id, Runtime)(spec)
        _CACHE[key] = rt
    return rt
