"""Read a GGUF file's header (metadata and tensor table) and size its tensors to the byte.

The reader maps the file and walks only the header: magic, version, counts, key/value metadata,
tensor infos; it never touches tensor data, so a 100 MB or a 100 GB file takes milliseconds.
Layout (ggml-org/ggml docs/gguf.md): little-endian; `GGUF`, uint32 version (2 or 3), uint64
tensor count, uint64 metadata count; each key is a string (uint64 length + UTF-8 bytes) with a
uint32 value type; each tensor info is name, uint32 n_dims, uint64 dims[n_dims], uint32 ggml
type, uint64 offset into the data section, which starts at the next multiple of
`general.alignment` (default 32) after the tensor infos.

Bytes of one tensor = elements / weights_per_block * bytes_per_block, the ggml type table in
`data/gguf.yaml` (from llama.cpp gguf-py/gguf/constants.py GGML_QUANT_SIZES).
"""

from __future__ import annotations

import functools
import mmap
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import ModelFileError

MAGIC = b"GGUF"
VERSIONS = (2, 3)  # version 1 (uint32 counts) predates August 2023 and is not read
MAX_DIMS = 4  # GGML_MAX_DIMS
KEEP_ARRAY_VALUES = 1024  # numeric arrays up to this length keep their values (per-layer settings)

_STRING, _ARRAY = 8, 9
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q",
            12: "<d"}
_VALUE_TYPES = {0: "uint8", 1: "int8", 2: "uint16", 3: "int16", 4: "uint32", 5: "int32", 6: "float32",
                7: "bool", 8: "string", 9: "array", 10: "uint64", 11: "int64", 12: "float64"}
_U32 = struct.Struct("<I").unpack_from
_U64 = struct.Struct("<Q").unpack_from
_SPLIT = re.compile(r"^(?P<stem>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)

_HINT_CORRUPT = "the file is truncated or corrupt: download it again (compare its size with the source's)"


class GgufArray(NamedTuple):
    """A metadata array: its item type and length; `values` only for short numeric arrays."""

    item_type: str
    length: int
    values: tuple | None = None


class GgufTensor(NamedTuple):
    """One tensor: name, ggml type name (Q4_K, F16...), shape (ggml order, fastest first), bytes."""

    name: str
    type: str
    shape: tuple[int, ...]
    n_bytes: int


@dataclass(frozen=True, slots=True, kw_only=True)
class GgufFile:
    """A GGUF model (every shard of a split set), as its header describes it.

    `metadata` holds scalar keys as Python values and arrays as `GgufArray`; `tensor_bytes` is
    the exact size of all tensor data (bytes, summed over shards); `n_params` counts weights.
    """

    path: Path
    architecture: str | None
    name: str | None
    file_type: int | None
    quant: str | None
    metadata: dict[str, Any]
    tensors: tuple[GgufTensor, ...]
    tensor_bytes: int
    n_params: int
    version: int
    shards: tuple[Path, ...]
    file_bytes: int

    @property
    def licence(self) -> str | None:
        value = self.metadata.get("general.license")
        return value if isinstance(value, str) and value.strip() else None

    def arch_value(self, key: str, default: Any = None) -> Any:
        """The `{architecture}.{key}` metadata value, e.g. arch_value("block_count")."""
        return self.metadata.get(f"{self.architecture}.{key}", default)


@functools.lru_cache(maxsize=1)
def _tables() -> tuple[dict[int, tuple[str, int, int]], dict[int, str], int]:
    from ..catalog import _load_yaml, data_dir

    doc = _load_yaml(data_dir() / "gguf.yaml")
    types = {int(k): (str(v[0]), int(v[1]), int(v[2])) for k, v in doc["ggml_types"].items()}
    ftypes = {int(k): str(v) for k, v in doc["file_types"].items()}
    return types, ftypes, int(doc["default_alignment"])


def ggml_type_sizes() -> dict[str, tuple[int, int]]:
    """ggml type name -> (weights per block, bytes per block), from data/gguf.yaml."""
    return {name: (block, size) for name, block, size in _tables()[0].values()}


def file_type_label(file_type: int | None) -> str | None:
    """llama.cpp's label for a `general.file_type` (15 -> "Q4_K_M"); None when unknown or absent."""
    if file_type is None:
        return None
    return _tables()[1].get(file_type)


def gguf_set_paths(first_shard: Path | str) -> list[Path]:
    """Every file of a split GGUF set (`NAME-00001-of-00003.gguf`), in order; [path] otherwise.

    Any shard of the set may be given. Raises ModelFileError naming the first missing shard.
    """
    path = Path(first_shard)
    m = _SPLIT.match(path.name)
    if not m:
        return [path]
    no, count = int(m.group("no")), int(m.group("count"))
    if count < 1 or not 1 <= no <= count:
        raise ModelFileError(f"{path.name}: shard {no} of {count} is not a valid split GGUF name",
                             hint="split GGUF files are named NAME-00001-of-0000N.gguf")
    paths = [path.with_name(f"{m.group('stem')}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]
    for p in paths:
        if not p.is_file():
            raise ModelFileError(f"{path.name} is one of {count} shards, and {p.name} is missing",
                                 hint="download every shard of the split GGUF into the same directory")
    return paths


def read_gguf(path: Path | str, *, require_data: bool = True) -> GgufFile:
    """Read a GGUF file's header (every shard of a split set) and size its tensors exactly.

    With `require_data` (the default) each file must hold all the tensor data its header
    announces (a sparse file counts); without it a header-only file is sized from its header.
    Raises ModelFileError (a PlannerError, exit 1) for a missing, truncated or corrupt file.
    """
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"{path} is a directory, not a GGUF file",
                             hint="pass the .gguf file itself, or a checkpoint directory with config.json")
    if not path.is_file():
        raise ModelFileError(f"no such file: {path}", hint="check the path of the .gguf file")
    paths = gguf_set_paths(path)
    parts = [_read_one(p, require_data) for p in paths]
    version, metadata, tensors, size = parts[0]
    split_count = metadata.get("split.count")
    if isinstance(split_count, int) and split_count not in (0, len(paths)):
        raise ModelFileError(f"{paths[0].name}: its header says split.count = {split_count}, "
                             f"but the name says {len(paths)} shards", hint=_HINT_CORRUPT)
    all_tensors = tuple(t for part in parts for t in part[2])
    arch = metadata.get("general.architecture")
    file_type = metadata.get("general.file_type")
    file_type = file_type if isinstance(file_type, int) and not isinstance(file_type, bool) else None
    name = metadata.get("general.name")
    return GgufFile(
        path=paths[0],
        architecture=arch if isinstance(arch, str) else None,
        name=name if isinstance(name, str) else None,
        file_type=file_type,
        quant=file_type_label(file_type),
        metadata=metadata,
        tensors=all_tensors,
        tensor_bytes=sum(t.n_bytes for t in all_tensors),
        n_params=sum(_elements(t.shape) for t in all_tensors),
        version=version,
        shards=tuple(paths),
        file_bytes=sum(part[3] for part in parts),
    )


def _elements(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _read_one(path: Path, require_data: bool) -> tuple[int, dict[str, Any], tuple[GgufTensor, ...], int]:
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            if size < 24:
                f.seek(0)
                head = f.read(4)
                if head != MAGIC:
                    raise _not_gguf(path, head)
                raise ModelFileError(f"{path.name}: the GGUF header ends early ({size} bytes)", hint=_HINT_CORRUPT)
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return _parse(path, buf, size, require_data)
    except OSError as e:
        raise ModelFileError(f"cannot read {path}: {e.strerror or e}", hint="check the file's path and permissions") from None


def _not_gguf(path: Path, head: bytes) -> ModelFileError:
    return ModelFileError(f"{path.name}: not a GGUF file (its first bytes are {bytes(head[:4]).hex(' ') or 'missing'};"
                          f" a GGUF file starts with the letters GGUF)",
                          hint="pass a .gguf model file, a checkpoint directory with config.json, or a catalog model")


def _parse(path: Path, buf: mmap.mmap, size: int, require_data: bool):
    if buf[:4] != MAGIC:
        raise _not_gguf(path, buf[:4])
    version = _U32(buf, 4)[0]
    if version not in VERSIONS:
        byteswapped = int.from_bytes(buf[4:8], "big")
        if byteswapped in VERSIONS:
            raise ModelFileError(f"{path.name}: a big-endian GGUF file, which this reader does not size",
                                 hint="use the little-endian file published for x86 and ARM machines")
        raise ModelFileError(f"{path.name}: GGUF version {version} is not supported (versions 2 and 3 are)",
                             hint="convert it again with a current llama.cpp (convert_hf_to_gguf.py)")
    n_tensors, n_kv = _U64(buf, 8)[0], _U64(buf, 16)[0]
    # each key/value takes at least 13 bytes and each tensor info at least 24: bigger counts are corrupt
    if n_kv * 13 + n_tensors * 24 > size:
        raise ModelFileError(f"{path.name}: the header announces {n_kv} metadata keys and {n_tensors} tensors, "
                             f"more than a {size}-byte file can hold", hint=_HINT_CORRUPT)
    types = _tables()[0]
    what = "metadata"
    try:
        pos = 24
        metadata: dict[str, Any] = {}
        for _ in range(n_kv):
            key, pos = _string(buf, pos, size)
            what = f"metadata key {key!r}"
            vtype = _U32(buf, pos)[0]
            metadata[key], pos = _value(buf, pos + 4, size, vtype, key)
        infos = []
        for i in range(n_tensors):
            what = f"tensor info {i}"
            name, pos = _string(buf, pos, size)
            n_dims = _U32(buf, pos)[0]
            if not 1 <= n_dims <= MAX_DIMS:
                raise _corrupt(path, f"tensor {name!r} has {n_dims} dimensions (1 to {MAX_DIMS} are valid)")
            shape = struct.unpack_from(f"<{n_dims}Q", buf, pos + 4)
            pos += 4 + 8 * n_dims
            type_id, offset = _U32(buf, pos)[0], _U64(buf, pos + 4)[0]
            pos += 12
            infos.append((name, shape, type_id, offset))
    except struct.error:
        raise ModelFileError(f"{path.name}: the GGUF header ends early (reading {what}, file is {size} bytes)",
                             hint=_HINT_CORRUPT) from None
    except _Truncated:
        raise ModelFileError(f"{path.name}: the GGUF header ends early (reading {what}, file is {size} bytes)",
                             hint=_HINT_CORRUPT) from None
    except UnicodeDecodeError:
        raise _corrupt(path, f"{what} is not UTF-8 text") from None
    except _BadValueType as e:
        raise _corrupt(path, f"{what} has an unknown value type {e.args[0]}") from None

    alignment = metadata.get("general.alignment", _tables()[2])
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise _corrupt(path, f"general.alignment = {alignment!r} is not a power of two")
    data_start = -(-pos // alignment) * alignment
    data_size = size - data_start
    tensors = []
    for name, shape, type_id, offset in infos:
        if type_id not in types:
            raise ModelFileError(f"{path.name}: tensor {name!r} has ggml type {type_id}, which this version does not know",
                                 hint="upgrade plan-deploy, or use a file quantized to a common type (Q4_K_M, Q8_0)")
        tname, block, block_bytes = types[type_id]
        if shape[0] % block:
            raise _corrupt(path, f"tensor {name!r} ({tname}) has rows of {shape[0]} weights, "
                                 f"not a multiple of its block of {block}")
        n_bytes = _elements(shape) // block * block_bytes
        if offset % alignment:
            raise _corrupt(path, f"tensor {name!r} starts at data offset {offset}, not a multiple of {alignment}")
        if require_data and offset + n_bytes > data_size:
            raise ModelFileError(f"{path.name}: tensor {name!r} ends at byte {data_start + offset + n_bytes}, "
                                 f"past the end of the {size}-byte file", hint=_HINT_CORRUPT)
        tensors.append(GgufTensor(name, tname, tuple(shape), n_bytes))
    return version, metadata, tuple(tensors), size


class _Truncated(Exception):
    pass


class _BadValueType(Exception):
    pass


def _corrupt(path: Path, why: str) -> ModelFileError:
    return ModelFileError(f"{path.name}: corrupt GGUF header: {why}", hint=_HINT_CORRUPT)


def _string(buf: mmap.mmap, pos: int, size: int) -> tuple[str, int]:
    n = _U64(buf, pos)[0]
    end = pos + 8 + n
    if end > size:
        raise _Truncated
    return buf[pos + 8:end].decode("utf-8"), end


def _value(buf: mmap.mmap, pos: int, size: int, vtype: int, key: str) -> tuple[Any, int]:
    fmt = _SCALARS.get(vtype)
    if fmt is not None:
        return struct.unpack_from(fmt, buf, pos)[0], pos + struct.calcsize(fmt)
    if vtype == _STRING:
        n = _U64(buf, pos)[0]
        end = pos + 8 + n
        if end > size:
            raise _Truncated
        return buf[pos + 8:end].decode("utf-8", errors="replace"), end
    if vtype != _ARRAY:
        raise _BadValueType(vtype)
    item_type, count = _U32(buf, pos)[0], _U64(buf, pos + 4)[0]
    pos += 12
    fmt = _SCALARS.get(item_type)
    if fmt is not None:
        width = struct.calcsize(fmt)
        end = pos + width * count
        if end > size:
            raise _Truncated
        values = struct.unpack_from(f"<{count}{fmt[1]}", buf, pos) if count <= KEEP_ARRAY_VALUES else None
        return GgufArray(_VALUE_TYPES[item_type], count, values), end
    if item_type == _STRING:
        # skip the strings (token lists hold ~10^5): one length read per item, nothing decoded
        u64 = _U64
        for _ in range(count):
            pos += 8 + u64(buf, pos)[0]
        if pos > size:
            raise _Truncated
        return GgufArray("string", count), pos
    if item_type == _ARRAY:
        for _ in range(count):
            _, pos = _value(buf, pos, size, _ARRAY, key)
        return GgufArray("array", count), pos
    raise _BadValueType(item_type)
