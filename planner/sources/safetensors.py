"""Read safetensors headers: exact tensor bytes of a checkpoint without reading its weights.

Format (huggingface/safetensors, docs "Format"): an 8-byte little-endian unsigned header length N,
then N bytes of UTF-8 JSON mapping each tensor name to {dtype, shape, data_offsets: [begin, end]}
(offsets into the data that follows the header), plus an optional "__metadata__" string map.
A sharded checkpoint lists its files in `model.safetensors.index.json` ("weight_map", and
"metadata": {"total_size": bytes}).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelFileError

MAX_HEADER_BYTES = 100_000_000  # the reference implementation refuses larger headers
INDEX = "model.safetensors.index.json"
_HINT = "the file is truncated or corrupt: download it again"


@dataclass(frozen=True, slots=True)
class SafetensorsInfo:
    """Totals over one or more safetensors files: bytes of tensor data, weights, and bytes per dtype."""

    files: tuple[Path, ...]
    tensor_bytes: int
    n_params: int
    dtype_bytes: dict[str, int]
    tensors: int

    @property
    def main_dtype(self) -> str | None:
        """The dtype holding the most bytes (BF16, F16, F8_E4M3, I32 for packed 4-bit...)."""
        return max(sorted(self.dtype_bytes), key=self.dtype_bytes.__getitem__) if self.dtype_bytes else None


def read_header(path: Path) -> dict:
    """The parsed JSON header of one .safetensors file, checked against the file's size.

    Raises ModelFileError when the length prefix lies (past the end of the file, or absurd),
    the JSON is invalid, or a tensor's data range falls outside the file.
    """
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            f.seek(0)
            prefix = f.read(8)
            if len(prefix) < 8:
                raise ModelFileError(f"{path.name}: {size} bytes, too short for a safetensors header", hint=_HINT)
            (n,) = struct.unpack("<Q", prefix)
            if n > MAX_HEADER_BYTES or 8 + n > size:
                raise ModelFileError(f"{path.name}: the safetensors header claims {n} bytes, "
                                     f"but the file has {size - 8} after its length prefix", hint=_HINT)
            raw = f.read(n)
    except OSError as e:
        raise ModelFileError(f"cannot read {path}: {e.strerror or e}", hint="check the path and permissions") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{path.name}: the safetensors header is not valid JSON ({e})", hint=_HINT) from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path.name}: the safetensors header is not a JSON object", hint=_HINT)
    data_size = size - 8 - n
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, end = entry["data_offsets"]
            shape = entry["shape"]
            entry["dtype"].upper()
        except (TypeError, KeyError, ValueError, AttributeError):
            raise ModelFileError(f"{path.name}: tensor {name!r} has no valid dtype/shape/data_offsets",
                                 hint=_HINT) from None
        if not (isinstance(begin, int) and isinstance(end, int) and 0 <= begin <= end <= data_size
                and isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
            raise ModelFileError(f"{path.name}: tensor {name!r} lies outside the file's "
                                 f"{data_size} bytes of data", hint=_HINT)
    return header


def summarise(headers: dict[Path, dict]) -> SafetensorsInfo:
    """Totals over parsed headers: bytes from data_offsets, weights from shapes."""
    tensor_bytes = n_params = count = 0
    dtype_bytes: dict[str, int] = {}
    for header in headers.values():
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            begin, end = entry["data_offsets"]
            n = 1
            for d in entry["shape"]:
                n *= d
            tensor_bytes += end - begin
            n_params += n
            count += 1
            dtype = entry["dtype"].upper()
            dtype_bytes[dtype] = dtype_bytes.get(dtype, 0) + end - begin
    return SafetensorsInfo(files=tuple(headers), tensor_bytes=tensor_bytes, n_params=n_params,
                           dtype_bytes=dtype_bytes, tensors=count)


def read_index(path: Path) -> dict:
    """model.safetensors.index.json: {"weight_map": {tensor: file}, "metadata": {"total_size": n}}."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ModelFileError(f"cannot read {path}: {e.strerror or e}", hint="check the path") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{path.name}: not valid JSON ({e})", hint=_HINT) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("weight_map"), dict):
        raise ModelFileError(f"{path.name}: no \"weight_map\" object", hint=_HINT)
    return doc


def read_checkpoint(directory: Path) -> SafetensorsInfo | None:
    """Every safetensors file of a checkpoint directory (the index's shards when there is one).

    None when the directory holds no safetensors. Raises ModelFileError naming a missing shard.
    """
    index = directory / INDEX
    if index.is_file():
        files = sorted(set(read_index(index)["weight_map"].values()))
        missing = [f for f in files if not (directory / f).is_file()]
        if missing:
            raise ModelFileError(f"{directory.name}: {INDEX} lists {missing[0]}, which is missing "
                                 f"({len(missing)} of {len(files)} shards absent)",
                                 hint="download every shard, or pass the config.json alone to size from the recipe")
        paths = [directory / f for f in files]
    else:
        paths = sorted(directory.glob("*.safetensors"))
    if not paths:
        return None
    return summarise({p: read_header(p) for p in paths})
