"""The validated catalog, compiled once and kept as a pickle in the user cache directory.

Validating the YAML catalogs costs tens of milliseconds on every run; the pickle loads in a few.
The cache file's name is a hash of the package version, the Python version, the bytes of every
data file and of the modules that build it, so an edited data file, an edited checkout or another
release never reads a stale catalog. A missing,
unreadable or corrupt file is rebuilt from the YAML; writes go to a temporary file renamed into
place, so a reader never sees half a file. Nothing here changes what `catalog.load()` returns.
planner/quality.py keeps its validated quality.yaml table the same way, in files of its own prefix.

Environment:
  PLAN_DEPLOY_NO_CACHE=1      validate the YAML every time (tests of the loader use it)
  PLAN_DEPLOY_CACHE_DIR=DIR   keep the compiled catalog in DIR instead of the user cache directory
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
from pathlib import Path
from typing import Any, Callable

from . import __version__

DATA_FILES = ("models.yaml", "runtimes.yaml", "gpus.yaml", "quants.yaml", "constants.yaml", "cpu_kernels.yaml",
              "cpu_repack.yaml")
# The modules whose code shapes what is stored (validation, the weight table): an edited checkout
# never reads what an older version of them compiled.
CODE_FILES = ("catalog.py", "memory.py", "catalog_cache.py")
_PREFIX = "catalog-"
_SUFFIX = ".pickle"


def enabled() -> bool:
    return os.environ.get("PLAN_DEPLOY_NO_CACHE", "") in ("", "0")


def cache_dir() -> Path:
    """Where compiled catalogs live: $PLAN_DEPLOY_CACHE_DIR, else platformdirs' user cache dir."""
    override = os.environ.get("PLAN_DEPLOY_CACHE_DIR")
    if override:
        return Path(override)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("plan-deploy", appauthor=False))


def key(directory: Path, data_files: tuple[str, ...] = DATA_FILES, code_files: tuple[str, ...] = CODE_FILES) -> str | None:
    """Hash of the package version, Python version, every data file's bytes and the code files
    that build the catalog (None: a data file is missing)."""
    h = hashlib.sha256(f"{__version__}|{sys.version_info[:3]}|{pickle.HIGHEST_PROTOCOL}".encode())
    here = Path(__file__).resolve().parent
    for name in code_files:
        try:
            h.update((here / name).read_bytes())
        except OSError:
            h.update(name.encode())  # byte-code-only install: the package version stands for the code
    for name in data_files:
        try:
            data = (directory / name).read_bytes()
        except OSError:
            return None
        h.update(name.encode() + b"\0" + len(data).to_bytes(8, "little") + data)
    return h.hexdigest()[:32]


def load(directory: Path, build: Callable[[Path], Any], kind: type,
         warm: Callable[[Any], None] | None = None, *, data_files: tuple[str, ...] = DATA_FILES,
         code_files: tuple[str, ...] = CODE_FILES, prefix: str = _PREFIX) -> Any:
    """`build(directory)` through the cache: read it when fresh, else build, `warm` (precompute
    what the stored value should carry) and store it.

    The defaults compile the catalog; another compiled value (planner/quality.py's table) names
    the data and code files it is made from and a file-name prefix of its own."""
    if not enabled():
        return build(directory)
    k = key(directory, data_files, code_files)
    if k is None:
        return build(directory)  # let the builder report the missing file
    path = cache_dir() / f"{prefix}{k}{_SUFFIX}"
    cached = _read(path, k, kind)
    if cached is not None:
        return cached
    value = build(directory)
    if warm is not None:
        warm(value)
    _write(path, k, value, prefix)
    return value


def _read(path: Path, k: str, kind: type) -> Any:
    import gc

    collecting = gc.isenabled()
    gc.disable()  # unpickling makes tens of thousands of objects: collections on the way only slow it
    try:
        with open(path, "rb") as f:
            stored_key, value = pickle.load(f)
    except FileNotFoundError:
        return None
    except Exception:  # noqa: BLE001 - any corrupt or foreign file: rebuild it
        return None
    finally:
        if collecting:
            gc.enable()
    if stored_key != k or not isinstance(value, kind):
        return None
    return value


def _write(path: Path, k: str, value: Any, prefix: str = _PREFIX) -> None:
    """Atomically replace the cache file; a read-only or full disk only costs the speed-up."""
    import tempfile

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=_SUFFIX)
        try:
            with os.fdopen(fd, "wb") as f:
                pickle.dump((k, value), f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        for old in path.parent.glob(f"{prefix}*{_SUFFIX}"):
            if old != path:
                old.unlink(missing_ok=True)
    except (OSError, pickle.PicklingError):
        pass
