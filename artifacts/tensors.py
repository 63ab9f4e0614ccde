"""How a state_dict is laid out in a version, without torch: entry paths, dtype names, state.json.

`artifacts.torch` (which imports torch) and `artifacts.safetensors` (which must not) share this layout,
so a ``.safetensors`` file ingested tensor by tensor and a ``state_dict`` logged with
``add_state_dict`` produce the same entries for the same tensors (``tensors/<key path>`` with
``{"dtype", "shape"}``) and hence share blobs.

Key paths: each level's key is one path segment. A string key is percent-escaped (``/``, ``%``, ``#``,
spaces, non-ASCII... become ``%XX``; letters, digits and ``._-~`` stay as they are, so
``embedding.weight`` stays readable), and ``.``/``..`` are escaped as well. Any other key (an int, as in
``optimizer.state_dict()["state"][0]``, a list index, a bool, None, a tuple) is ``#`` followed by its
percent-escaped JSON. `encode_key_path` and `decode_key_path` are exact inverses.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, unquote

from .bounds import INT64_MAX, shorten
from .errors import ArtifactsError
from .untrusted import load_json

__all__ = [
    "DTYPE_SIZES",
    "MAX_DIMS",
    "STATE_FILE",
    "STATE_FORMAT",
    "TENSOR_DIR",
    "CheckpointError",
    "decode_key_path",
    "encode_key_path",
    "encode_segment",
    "tensor_shape",
]

STATE_FORMAT = "artifacts.state_dict/1"
STATE_FILE = "state.json"
TENSOR_DIR = "tensors/"

#: Every dtype name a manifest entry may carry, with its item size in bytes.
DTYPE_SIZES: dict[str, int] = {
    "bool": 1, "uint8": 1, "int8": 1, "int16": 2, "int32": 4, "int64": 8, "uint16": 2,
    "uint32": 4, "uint64": 8, "float16": 2, "bfloat16": 2, "float32": 4, "float64": 8,
    "complex32": 4, "complex64": 8, "complex128": 16, "float8_e4m3fn": 1, "float8_e4m3fnuz": 1,
    "float8_e5m2": 1, "float8_e5m2fnuz": 1, "float8_e8m0fnu": 1,
}  # fmt: skip


#: Dimensions a tensor may have (the safetensors library's limit too; torch allows 64).
MAX_DIMS = 64


class CheckpointError(ArtifactsError, ValueError):
    """A checkpoint cannot be stored or restored: a missing tensor, a dtype or shape that does not match,
    keys that differ from the model's, a value that is not a tensor or plain data."""


def tensor_shape(
    shape: Any,
    dtype: str,
    size: int,
    where: str,
    error: type[ArtifactsError] = CheckpointError,
) -> list[int]:
    """``shape`` (from a manifest or a file header: untrusted), checked before anything is allocated.

    At most `MAX_DIMS` dimensions, each an int in ``0..INT64_MAX``, whose element count times the
    item size of ``dtype`` (a key of `DTYPE_SIZES`) is exactly ``size``, the bytes the entry holds.
    The bounds come first, so a shape of ``[2**40, 2**40]``, of two hundred 4000-digit numbers or of
    a million ones costs at most 64 small multiplications and gives one line, not a huge allocation
    or a product that runs for minutes.
    """
    if not isinstance(shape, list) or len(shape) > MAX_DIMS:
        raise error(
            f"{where}: malformed shape {shorten(shape, 100)} (a list of at most {MAX_DIMS} sizes)"
        )
    for d in shape:
        if isinstance(d, bool) or not isinstance(d, int) or not 0 <= d <= INT64_MAX:
            raise error(
                f"{where}: malformed shape {shorten(shape, 100)}: {shorten(d)} is not a size "
                f"between 0 and {INT64_MAX}"
            )
    nbytes = math.prod(shape) * DTYPE_SIZES[dtype]  # at most 64 factors of 63 bits: cheap
    if nbytes != size:
        raise error(
            f"{where}: {size} bytes stored but dtype {dtype} and shape {shorten(shape, 100)} "
            f"need {nbytes}"
        )
    return shape


def encode_segment(key: Any) -> str:
    if isinstance(key, str):
        seg = quote(key, safe="")
        if seg in ("", ".", ".."):
            return "#" + quote(json.dumps(key), safe="")
        return seg
    if isinstance(key, tuple):
        key = list(key)
    try:
        text = json.dumps(key, separators=(",", ":"), ensure_ascii=False, allow_nan=True)
    except (TypeError, ValueError):
        raise CheckpointError(
            f"cannot store a dict key of type {type(key).__name__} ({key!r}): keys must be str, int, "
            "float, bool, None or tuples of those"
        ) from None
    return "#" + quote(text, safe="")


def _decode_segment(seg: str) -> Any:
    if not seg.startswith("#"):
        return unquote(seg)
    value = load_json(unquote(seg[1:]), f"key segment {seg[:40]!r}", expect=None)  # from a manifest
    return _tuplify(value)


def _tuplify(value: Any) -> Any:
    return tuple(_tuplify(v) for v in value) if isinstance(value, list) else value


def encode_key_path(keys: Sequence[Any]) -> str:
    """The entry path (below ``tensors/``) of the value at ``keys`` in a nested state_dict."""
    return "/".join(encode_segment(k) for k in keys)


def decode_key_path(path: str) -> tuple[Any, ...]:
    """The inverse of `encode_key_path`."""
    return tuple(_decode_segment(s) for s in path.split("/"))
