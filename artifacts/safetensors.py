"""safetensors in and out, tensor by tensor, without torch (the format is a JSON header and raw bytes).

A ``.safetensors`` file is an 8-byte little-endian header length N, N bytes of JSON
(``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}``), then the
tensors' bytes, offsets relative to the end of the header.

Ingest (`add_safetensors`) stages every tensor as a byte range of the file, in the entries
`add_state_dict` writes (``tensors/<key>`` with ``{"dtype", "shape"}`` plus ``state.json``), so each
tensor is one blob and a fine-tune shares its base's unchanged tensors with checkpoints logged either
way. The header is untrusted input: it is validated completely (sizes, dtypes, shapes, offsets that
tile the data exactly) before anything is allocated or staged.

Export (`save_safetensors`) writes one standard file whose bytes depend only on the version: tensors
ordered by item size (largest first, so every tensor is aligned) then name, sorted compact JSON padded
to 8 bytes, metadata from the ingested file or ``{"format": "pt"}``. Each blob is copied into place
(in the kernel where both are local) and verified as written; the file appears under its name only
when complete.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import math
import os
import shutil
import struct
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from storage.progress import as_callback
from storage.streams import copy_file_hashing

from .artifact import Staged, refuse_special
from .bounds import INT64_MAX, shorten
from .errors import ArtifactsError, IntegrityError, NotFoundError
from .manifest import canonical_json
from .names import check_path
from .tensors import (
    DTYPE_SIZES,
    MAX_DIMS,
    STATE_FILE,
    STATE_FORMAT,
    TENSOR_DIR,
    decode_key_path,
    encode_key_path,
    tensor_shape,
)
from .untrusted import load_json

if TYPE_CHECKING:
    from fsspec.callbacks import Callback

    from .artifact import Artifact
    from .version import ArtifactVersion

__all__ = [
    "MAX_HEADER",
    "SafetensorsError",
    "SafetensorsHeader",
    "TensorInfo",
    "add_safetensors",
    "build_header",
    "parse_header",
    "read_header",
    "save_safetensors",
]

#: The safetensors library refuses headers over 100 MB; so do we, before reading one.
MAX_HEADER = 100_000_000
MAX_NAME = 4096

#: safetensors dtype code -> the dtype name in a manifest entry
CODES: dict[str, str] = {
    "BOOL": "bool", "U8": "uint8", "I8": "int8", "I16": "int16", "U16": "uint16", "I32": "int32",
    "U32": "uint32", "I64": "int64", "U64": "uint64", "F16": "float16", "BF16": "bfloat16",
    "F32": "float32", "F64": "float64", "C64": "complex64", "F8_E4M3": "float8_e4m3fn",
    "F8_E4M3FNUZ": "float8_e4m3fnuz", "F8_E5M2": "float8_e5m2", "F8_E5M2FNUZ": "float8_e5m2fnuz",
    "F8_E8M0": "float8_e8m0fnu",
}  # fmt: skip
NAMES = {v: k for k, v in CODES.items()}


class SafetensorsError(ArtifactsError, ValueError):
    """A ``.safetensors`` file is malformed, or a version cannot be written as one."""


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a header: ``dtype`` is the manifest's name (``float32``), offsets are absolute
    positions in the file."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "shape": list(self.shape),
            "start": self.start,
            "end": self.end,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


@dataclass(frozen=True)
class SafetensorsHeader:
    tensors: tuple[TensorInfo, ...]
    metadata: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    data_start: int = 8

    def to_dict(self) -> dict[str, Any]:
        return {
            "tensors": [t.to_dict() for t in self.tensors],
            "metadata": dict(self.metadata),
            "data_start": self.data_start,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def _fail(where: str, what: str) -> SafetensorsError:
    return SafetensorsError(f"{where} is not a valid .safetensors file: {what}")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"the name {k[:100]!r} appears twice")
        out[k] = v
    return out


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def parse_header(header: bytes, data_size: int, where: str = "the file") -> SafetensorsHeader:
    """Validate the JSON ``header`` of a file with ``data_size`` bytes of tensor data after it.

    Every tensor must have a known dtype, a shape of at most 64 non-negative dimensions whose byte size
    equals its offsets' span, and the tensors' spans must tile ``[0, data_size)`` exactly: no overlap,
    no gap, nothing out of range (the rules of the safetensors library itself).
    """
    try:
        obj = json.loads(header.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise _fail(where, f"its header is not JSON ({str(e)[:200]})") from None
    if not isinstance(obj, dict):
        raise _fail(where, "its header is not a JSON object")
    meta = obj.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise _fail(where, "__metadata__ must map strings to strings")
    tensors = []
    for name, t in obj.items():
        label = f"tensor {name[:100]!r}"
        if not name or len(name) > MAX_NAME:
            raise _fail(where, f"a tensor name is empty or longer than {MAX_NAME} characters")
        if not isinstance(t, dict) or set(t) != {"dtype", "shape", "data_offsets"}:
            raise _fail(where, f"{label} must have exactly dtype, shape and data_offsets")
        code, shape, offsets = t["dtype"], t["shape"], t["data_offsets"]
        if not isinstance(code, str) or code not in CODES:
            known = ", ".join(CODES)
            raise _fail(where, f"{label} has unknown dtype {str(code)[:40]!r} (known: {known})")
        if not isinstance(shape, list) or len(shape) > MAX_DIMS:
            raise _fail(where, f"{label}: shape must be a list of at most {MAX_DIMS} dimensions")
        if not all(_int(d) and 0 <= d <= INT64_MAX for d in shape):
            raise _fail(
                where,
                f"{label}: shape {str(shape)[:100]} has a non-integer, negative or too large size",
            )
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(_int(o) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_size
        ):
            raise _fail(
                where,
                f"{label}: data_offsets {str(offsets)[:100]} are not [begin, end] within the "
                f"{data_size} bytes of data",
            )
        dtype = CODES[code]
        span = offsets[1] - offsets[0]
        nbytes = math.prod(shape) * DTYPE_SIZES[dtype]  # at most 64 factors of 63 bits: cheap
        if nbytes != span:
            raise _fail(
                where,
                f"{label}: dtype {code} and shape {str(shape)[:100]} need {nbytes} bytes, its offsets "
                f"span {span}",
            )
        tensors.append((offsets[0], offsets[1], name, dtype, tuple(shape)))
    tensors.sort()
    pos = 0
    for begin, end, name, _, _ in tensors:
        if begin != pos:
            what = "overlaps the one before it" if begin < pos else f"leaves a gap at {pos}"
            raise _fail(where, f"tensor {name[:100]!r} at {begin} {what}")
        pos = end
    if pos != data_size:
        raise _fail(
            where, f"the tensors cover {pos} of the {data_size} bytes of data after the header"
        )
    start = 8 + len(header)
    return SafetensorsHeader(
        tuple(TensorInfo(n, d, s, start + b, start + e) for b, e, n, d, s in tensors),
        MappingProxyType(dict(meta)),
        start,
    )


def read_header(path: str | os.PathLike[str]) -> SafetensorsHeader:
    """Read and validate the header of a ``.safetensors`` file (reads only the header)."""
    where = os.fspath(path)
    try:
        refuse_special(Path(where), os.stat(where))  # stat first: a FIFO would block the open
        f = open(where, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise NotFoundError(f"cannot add {where}: no such file") from None
    except IsADirectoryError:
        raise SafetensorsError(f"cannot add {where}: it is a directory") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(8)
        if len(head) < 8:
            raise _fail(where, f"it is {size} bytes long, shorter than the 8-byte header length")
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER:
            raise _fail(where, f"its header claims {n} bytes; the limit is {MAX_HEADER}")
        if n > size - 8:
            raise _fail(where, f"its header claims {n} bytes but the file has {size - 8} after it")
        if n < 2:
            raise _fail(where, "its header is empty")
        header = f.read(n)
    if header[:1] != b"{":
        raise _fail(where, "its header does not start with '{'")
    return parse_header(header, size - 8 - n, where)


def build_header(
    tensors: list[tuple[str, str, list[int], int]], metadata: Mapping[str, str] | None
) -> tuple[bytes, list[int]]:
    """The 8-byte length, JSON header and padding for ``(name, dtype, shape, nbytes)`` tensors.

    Returns the header bytes and each tensor's data offset (relative to the end of the header), in the
    order given. The caller sorts (see `save_safetensors`); the JSON itself is canonical.
    """
    body: dict[str, Any] = {}
    offsets, pos = [], 0
    for name, dtype, shape, nbytes in tensors:
        body[name] = {
            "dtype": NAMES[dtype],
            "shape": list(shape),
            "data_offsets": [pos, pos + nbytes],
        }
        offsets.append(pos)
        pos += nbytes
    if metadata:
        body["__metadata__"] = dict(metadata)
    text = canonical_json(body)
    text += b" " * (-(8 + len(text)) % 8)  # tensors start 8-aligned, as the library writes them
    return struct.pack("<Q", len(text)) + text, offsets


# -- ingest --------------------------------------------------------------------------------------
def _prefix(prefix: str) -> str:
    prefix = prefix.strip("/")
    if prefix:
        check_path(prefix)
        return prefix + "/"
    return ""


def add_safetensors(artifact: Artifact, path: str | os.PathLike[str], prefix: str = "") -> Artifact:
    """Stage every tensor of a ``.safetensors`` file under ``prefix``, one blob each, plus state.json.

    The bytes are read when the artifact is logged (each range copied into its blob and hashed as
    stored), so staging costs only the header.
    """
    source = os.path.abspath(os.fspath(path))
    header = read_header(source)
    p = _prefix(prefix)
    names = sorted(header.tensors, key=lambda t: t.name)
    tree = []
    for t in names:
        rel = TENSOR_DIR + encode_key_path([t.name])
        meta = {"dtype": t.dtype, "shape": list(t.shape)}
        artifact._stage(Staged(p + rel, t.nbytes, source=source, offset=t.start, meta=meta))
        tree.append([t.name, {"tensor": rel}])
    doc: dict[str, Any] = {"format": STATE_FORMAT, "tree": {"dict": tree}}
    if header.metadata:
        doc["metadata"] = dict(header.metadata)
    artifact.add_bytes(p + STATE_FILE, canonical_json(doc))
    return artifact


# -- export --------------------------------------------------------------------------------------
def _default_prefix(version: ArtifactVersion) -> str:
    paths = {f.path for f in version.files()}
    if STATE_FILE not in paths and "model/" + STATE_FILE in paths:
        return "model/"  # a checkpoint_artifact: the model's weights
    return ""


def _export_plan(
    version: ArtifactVersion, p: str
) -> tuple[list[tuple[str, str, list[int], int, str]], dict[str, str]]:
    under = p + TENSOR_DIR
    plan = []
    seen: dict[str, str] = {}
    for f in version.files():
        if not f.path.startswith(under) or "dtype" not in f.meta:
            continue
        rel = f.path[len(under) :]
        try:
            name = ".".join(str(k) for k in decode_key_path(rel))
        except ValueError as e:  # a manifest written by someone else: "#..." that is no JSON
            raise SafetensorsError(
                f"cannot write {version.ref}: {f.path} names no tensor ({e})"
            ) from None
        dtype = f.meta.get("dtype")
        if not isinstance(dtype, str) or dtype not in NAMES:
            raise SafetensorsError(
                f"cannot write {version.ref}: {f.path} has dtype {shorten(dtype)}, which "
                f"safetensors cannot hold (it holds {', '.join(sorted(NAMES))})"
            )
        shape = tensor_shape(
            f.meta.get("shape"), dtype, f.size, f"{version.ref}: {f.path}", IntegrityError
        )
        if name in seen:
            raise SafetensorsError(
                f"cannot write {version.ref}: {seen[name]} and {f.path} both become tensor {name!r}"
            )
        seen[name] = f.path
        plan.append((name, dtype, shape, f.size, f.digest))
    if not plan:
        raise SafetensorsError(
            f"{version.ref} has no tensors under {p or 'its top level'!r} (entries {under}...); "
            "pass prefix= to name where its state_dict is"
        )
    metadata = {"format": "pt"}
    with contextlib.suppress(NotFoundError, ValueError, KeyError, TypeError):
        doc = load_json(version.read_bytes(p + STATE_FILE), p + STATE_FILE)
        stored = doc.get("metadata")
        if isinstance(stored, dict) and all(isinstance(v, str) for v in stored.values()):
            metadata = stored
    plan.sort(key=lambda t: (-DTYPE_SIZES[t[1]], t[0]))
    return plan, metadata


def save_safetensors(
    version: ArtifactVersion,
    path: str | os.PathLike[str],
    prefix: str | None = None,
    *,
    callback: Callback | None = None,
) -> Path:
    """Write the tensors of ``version`` under ``prefix`` as one ``.safetensors`` file at ``path``.

    ``prefix`` defaults to the top level, or ``model/`` for a `checkpoint_artifact`. Tensor names are
    the state_dict keys (nested keys joined with '.'). The same version always gives the same bytes.
    """
    p = _prefix(prefix) if prefix is not None else _default_prefix(version)
    plan, metadata = _export_plan(version, p)
    header, offsets = build_header([(n, d, s, size) for n, d, s, size, _ in plan], metadata)
    cb = as_callback(callback)
    cb.set_size(sum(t[3] for t in plan))
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:12]}")
    blobs = version.store.blobs
    try:
        with open(tmp, "w+b", buffering=0) as out:
            out.write(header)
            for (name, _, _, size, digest), off in zip(plan, offsets, strict=True):
                _write_blob(
                    blobs, digest, size, out, len(header) + off, cb, f"{version.ref}/{name}"
                )
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return target


def _write_blob(
    blobs: Any, digest: str, size: int, out: io.RawIOBase, at: int, cb: Callback, what: str
) -> None:
    if size == 0:
        return
    local = blobs.local_path(digest)
    if local is not None:
        try:
            src = open(local, "rb", buffering=0)  # noqa: SIM115 - closed below
        except FileNotFoundError:
            raise NotFoundError(f"{what}: blob {digest} is missing from the store") from None
        with src:
            try:
                got = copy_file_hashing(src.fileno(), out.fileno(), cb, dst_offset=at, length=size)
            except OSError as e:
                if e.errno != errno.EIO:
                    raise
                raise IntegrityError(
                    f"{what}: blob {digest} is shorter than {size} bytes"
                ) from None
        if got is not None:
            if got[0] != digest:
                raise IntegrityError(
                    f"{what}: blob {digest} is corrupt (it hashes to {got[0]}); run `artifacts verify`"
                )
            return
    out.seek(at)
    with blobs.open(digest, verify=True) as f:  # raises IntegrityError at the end on a mismatch
        shutil.copyfileobj(f, out, 8 << 20)
    if out.tell() != at + size:
        raise IntegrityError(f"{what}: blob {digest} holds {out.tell() - at} bytes, not {size}")
    cb.relative_update(size)
