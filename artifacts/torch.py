"""PyTorch checkpoints stored tensor by tensor, restored without pickle.

The only module of the package that imports torch. A state_dict (any nesting of dicts, lists and tuples
with tensors, numpy arrays and plain JSON values as leaves, e.g. ``model.state_dict()`` or
``optimizer.state_dict()``) is stored under a prefix as:

- one entry per tensor, ``<prefix>tensors/<key path>``: the tensor's raw contiguous little-endian bytes,
  with ``{"dtype", "shape"}`` in its manifest entry. Identical tensors have identical bytes, hence one
  blob across all checkpoints: a frozen layer is stored once.
- one JSON entry, ``<prefix>state.json``: the structure (dict / OrderedDict / list / tuple, the type of
  every key) with every non-tensor value inline, so loading rebuilds exactly the object that was saved.

Restoring reads the bytes and reinterprets them (``torch.from_file`` memory-maps a local blob); nothing
is ever unpickled, so a store written by someone else cannot run code on the reader's machine.

Key paths and dtype names are in `artifacts.tensors` (shared with the torch-free safetensors reader).
"""

from __future__ import annotations

import math
import random
import sys
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch

from storage import hash_bytes

from .artifact import Artifact
from .errors import ArtifactsError, IntegrityError, NotFoundError
from .manifest import canonical_json
from .names import check_path
from .tensors import (
    DTYPE_SIZES,
    STATE_FILE,
    STATE_FORMAT,
    TENSOR_DIR,
    CheckpointError,
    decode_key_path,
    encode_key_path,
    encode_segment,
    tensor_shape,
)
from .untrusted import load_json

if TYPE_CHECKING:
    from .compare import VersionDiff
    from .manifest import FileEntry
    from .version import ArtifactVersion

__all__ = [
    "STATE_FILE",
    "STATE_FORMAT",
    "CheckpointError",
    "LoadResult",
    "add_state_dict",
    "checkpoint_artifact",
    "decode_key_path",
    "dtype_from_name",
    "dtype_name",
    "encode_key_path",
    "load_state_dict",
    "restore_checkpoint",
    "restore_model",
    "rng_state",
    "set_rng_state",
    "tensor_differences",
]

CHECKPOINT_FORMAT = "artifacts.checkpoint/1"
CHECKPOINT_FILE = "checkpoint.json"
_MAX_STATE_JSON = 256 * 1024 * 1024


# -- dtypes --------------------------------------------------------------------------------------
_DTYPE_NAMES = tuple(DTYPE_SIZES)
_DTYPES: dict[str, torch.dtype] = {
    n: getattr(torch, n) for n in _DTYPE_NAMES if isinstance(getattr(torch, n, None), torch.dtype)
}
_NAMES: dict[torch.dtype, str] = {d: n for n, d in _DTYPES.items()}


def dtype_name(dtype: torch.dtype) -> str:
    """The name stored in a manifest entry (``torch.float32`` -> ``"float32"``)."""
    try:
        return _NAMES[dtype]
    except KeyError:
        raise CheckpointError(
            f"cannot store tensors of dtype {dtype}: supported are {', '.join(_DTYPES)}"
        ) from None


def dtype_from_name(name: object, where: str = "tensor") -> torch.dtype:
    if not isinstance(name, str) or name not in _DTYPES:
        raise CheckpointError(
            f"{where}: unknown dtype {name!r}; this reader knows {', '.join(_DTYPES)}"
        )
    return _DTYPES[name]


# -- saving --------------------------------------------------------------------------------------
def _tensor_bytes(t: torch.Tensor, where: str) -> tuple[memoryview, str, list[int]]:
    """The raw little-endian bytes of ``t`` (no copy when it is already a contiguous CPU tensor)."""
    if t.layout != torch.strided:
        raise CheckpointError(f"{where}: cannot store a {t.layout} tensor; convert it to dense")
    if t.is_quantized:
        raise CheckpointError(f"{where}: cannot store a quantized tensor; dequantize it first")
    name = dtype_name(t.dtype)
    shape = list(t.shape)
    t = t.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    if t.is_conj():
        t = t.resolve_conj()
    if t.is_neg():
        t = t.resolve_neg()
    t = t.contiguous().reshape(-1)
    raw = t.view(torch.uint8)
    if sys.byteorder == "big" and t.element_size() > 1:
        raw = raw.reshape(-1, t.element_size()).flip(1).reshape(-1)
    return memoryview(raw.numpy()), name, shape  # type: ignore[arg-type]


class _Saver:
    def __init__(self, artifact: Artifact, prefix: str) -> None:
        self.artifact = artifact
        self.prefix = prefix

    def add_tensor(self, t: torch.Tensor, keys: list[Any]) -> str:
        rel = TENSOR_DIR + encode_key_path(keys)
        data, name, shape = _tensor_bytes(t, f"{self.prefix}{rel}")
        self.artifact.add_bytes(self.prefix + rel, data, meta={"dtype": name, "shape": shape})
        return rel

    def encode(self, obj: Any, keys: list[Any]) -> Any:
        where = "/".join(map(repr, keys)) or "the top level"
        if obj is None or isinstance(obj, bool | int | str):
            return obj
        if isinstance(obj, float):
            return obj if math.isfinite(obj) else {"float": repr(obj)}
        if isinstance(obj, torch.Tensor):
            return {"tensor": self.add_tensor(obj, keys)}
        if isinstance(obj, np.ndarray):
            if obj.dtype.byteorder == ">" or obj.dtype.kind not in "biufc":
                raise CheckpointError(f"cannot store numpy array of dtype {obj.dtype} at {where}")
            return {"ndarray": self.add_tensor(torch.from_numpy(np.ascontiguousarray(obj)), keys)}
        if isinstance(obj, np.generic):
            return self.encode(obj.item(), keys)
        if isinstance(obj, torch.dtype):
            return {"dtype": dtype_name(obj)}
        if isinstance(obj, Mapping):
            items = []
            for k, v in obj.items():
                encode_segment(k)  # fail early on an unsupported key type
                items.append([self.encode_key(k), self.encode(v, [*keys, k])])
            node: dict[str, Any] = {"odict" if isinstance(obj, OrderedDict) else "dict": items}
            meta = getattr(obj, "_metadata", None)
            if meta is not None:
                node["_metadata"] = self.encode(meta, [*keys, "_metadata"])
            return node
        if isinstance(obj, list | tuple):
            kind = "list" if isinstance(obj, list) else "tuple"
            return {kind: [self.encode(v, [*keys, i]) for i, v in enumerate(obj)]}
        raise CheckpointError(
            f"cannot store a {type(obj).__name__} at {where}: a state_dict may hold tensors, numpy "
            "arrays, dicts, lists, tuples, str, int, float, bool and None (never pickled objects)"
        )

    @staticmethod
    def encode_key(k: Any) -> Any:
        if isinstance(k, float) and not math.isfinite(k):
            return {"float": repr(k)}
        if isinstance(k, tuple):
            return {"tuple": [_Saver.encode_key(v) for v in k]}
        return k


def _norm_prefix(prefix: str) -> str:
    if not isinstance(prefix, str):
        raise CheckpointError(f"prefix must be a string, not {type(prefix).__name__}")
    prefix = prefix.strip("/")
    if not prefix:
        return ""
    check_path(prefix)
    return prefix + "/"


def add_state_dict(artifact: Artifact, state_dict: Mapping[str, Any], prefix: str = "") -> Artifact:
    """Add ``state_dict`` to ``artifact`` under ``prefix``: one entry per tensor plus ``state.json``.

    Tensor bytes are kept by reference (no copy for contiguous CPU tensors) until the artifact is
    logged: log it before the next optimizer step changes the parameters in place.
    """
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(
            f"add_state_dict() takes a dict such as model.state_dict(), got {type(state_dict).__name__}"
        )
    p = _norm_prefix(prefix)
    saver = _Saver(artifact, p)
    tree = saver.encode(state_dict, [])
    artifact.add_bytes(
        p + STATE_FILE, canonical_json({"format": STATE_FORMAT, "tree": tree}), meta={}
    )
    return artifact


# -- loading -------------------------------------------------------------------------------------
class _Loader:
    def __init__(
        self, version: ArtifactVersion, prefix: str, map_location: Any, verify: bool
    ) -> None:
        self.version = version
        self.prefix = prefix
        self.device = torch.device(map_location) if map_location is not None else None
        self.verify = verify
        self.entries: dict[str, FileEntry] = {f.path: f for f in version.files()}
        self.wanted: list[str] = []
        self.loaded: dict[str, torch.Tensor] = {}

    def collect(self, node: Any) -> None:
        """First pass: the tensor entries the tree refers to (validated before any read)."""
        if isinstance(node, list):
            for n in node:
                self.collect(n)
        elif isinstance(node, dict):
            if "tensor" in node or "ndarray" in node:
                rel = node.get("tensor", node.get("ndarray"))
                if not isinstance(rel, str):
                    raise CheckpointError(f"{self.where()}: malformed tensor reference {rel!r}")
                self.wanted.append(rel)
            else:
                for v in node.values():
                    self.collect(v)

    def where(self, rel: str = STATE_FILE) -> str:
        return f"{self.version.ref}: {self.prefix}{rel}"

    def read_tensor(self, rel: str) -> torch.Tensor:
        path = self.prefix + rel
        try:
            check_path(path)
        except ArtifactsError as e:
            raise CheckpointError(f"{self.where(rel)}: {e}") from None
        entry = self.entries.get(path)
        if entry is None:
            raise CheckpointError(
                f"{self.where(rel)}: the checkpoint has no such tensor entry (it is missing from "
                "the manifest)"
            )
        dtype = dtype_from_name(entry.meta.get("dtype"), self.where(rel))
        # checked against the entry's size before any read or allocation (see `tensor_shape`)
        shape = tensor_shape(entry.meta.get("shape"), _NAMES[dtype], entry.size, self.where(rel))
        itemsize = dtype.itemsize
        nbytes = entry.size
        raw = self._read_raw(entry, nbytes, rel)
        if sys.byteorder == "big" and itemsize > 1:
            raw = raw.reshape(-1, itemsize).flip(1).reshape(-1)
        t = raw.view(dtype).reshape(shape)
        if self.device is not None and self.device.type != "cpu":
            t = t.to(self.device)
        return t

    def _read_raw(self, entry: FileEntry, nbytes: int, rel: str) -> torch.Tensor:
        if nbytes == 0:
            return torch.empty(0, dtype=torch.uint8)
        # The blob store maps a digest to its file directly: no index query per tensor.
        try:
            local = self.version.store.blobs.local_blob(entry.digest)
        except NotFoundError:
            raise CheckpointError(
                f"{self.where(rel)}: its blob {entry.digest} is missing from the store"
            ) from None
        if local is not None:
            if local.size != nbytes:
                raise IntegrityError(
                    f"{self.where(rel)}: blob {entry.digest} holds {local.size} bytes, the manifest "
                    f"says {nbytes}; run `artifacts verify`"
                )
            # MAP_PRIVATE: writes to the tensor never reach the blob file.
            raw = torch.from_file(str(local.path), shared=False, size=nbytes, dtype=torch.uint8)
            if self.verify and not local.trusted:  # trusted: hashed before, unchanged since
                self._check(hash_bytes(memoryview(raw.numpy())), entry, rel)  # type: ignore[arg-type]
                self.version.store.blobs.trust(local)
            return raw
        # read (and hashed) where the tensor is kept: a large tensor costs no second copy
        raw = torch.empty(nbytes, dtype=torch.uint8)
        try:
            self.version.store.blobs.read_into(
                entry.digest, memoryview(raw.numpy()), verify=self.verify  # type: ignore[arg-type]
            )
        except NotFoundError:
            raise CheckpointError(
                f"{self.where(rel)}: its blob {entry.digest} is missing from the store"
            ) from None
        except IntegrityError as e:
            raise IntegrityError(f"{self.where(rel)}: {e}") from None
        return raw

    def _check(self, actual: str, entry: FileEntry, rel: str) -> None:
        if actual != entry.digest:
            raise IntegrityError(
                f"{self.where(rel)}: blob {entry.digest} is corrupt (its content hashes to {actual}); "
                "run `artifacts verify`"
            )

    def load_all(self) -> None:
        unique = list(dict.fromkeys(self.wanted))
        remote = self.version.local_blob_path(self.prefix + STATE_FILE) is None
        if len(unique) > 1 and remote:
            with ThreadPoolExecutor(min(16, len(unique))) as pool:
                self.loaded = dict(zip(unique, pool.map(self.read_tensor, unique), strict=True))
        else:
            self.loaded = {rel: self.read_tensor(rel) for rel in unique}

    def build(self, node: Any) -> Any:
        if node is None or isinstance(node, bool | int | float | str):
            return node
        if isinstance(node, dict) and len(node) >= 1:
            if "tensor" in node:
                return self.loaded[node["tensor"]]
            if "ndarray" in node:
                return self.loaded[node["ndarray"]].cpu().numpy()
            if "float" in node:
                return _parse_float(node["float"], self.where())
            if "dtype" in node:
                return dtype_from_name(node["dtype"], self.where())
            if "list" in node:
                return [self.build(v) for v in _seq(node["list"], self.where())]
            if "tuple" in node:
                return tuple(self.build(v) for v in _seq(node["tuple"], self.where()))
            for kind in ("dict", "odict"):
                if kind in node:
                    out: dict[Any, Any] = OrderedDict() if kind == "odict" else {}
                    for pair in _seq(node[kind], self.where()):
                        if not isinstance(pair, list) or len(pair) != 2:
                            raise CheckpointError(f"{self.where()}: malformed dict item {pair!r}")
                        out[self.build_key(pair[0])] = self.build(pair[1])
                    if "_metadata" in node:  # only an OrderedDict can carry it, as nn.Module's do
                        if kind != "odict":
                            raise CheckpointError(
                                f"{self.where()}: malformed node: _metadata on a plain dict"
                            )
                        out._metadata = self.build(node["_metadata"])  # type: ignore[attr-defined]
                    return out
        raise CheckpointError(f"{self.where()}: malformed node {str(node)[:200]}")

    def build_key(self, k: Any) -> Any:
        if isinstance(k, dict) and "float" in k:
            return _parse_float(k["float"], self.where())
        if isinstance(k, dict) and "tuple" in k:
            return tuple(self.build_key(v) for v in _seq(k["tuple"], self.where()))
        if k is None or isinstance(k, bool | int | float | str):
            return k
        raise CheckpointError(f"{self.where()}: malformed dict key {k!r}")


def _seq(v: Any, where: str) -> list[Any]:
    if not isinstance(v, list):
        raise CheckpointError(f"{where}: malformed structure, expected a list, got {v!r:.200}")
    return v


def _parse_float(v: Any, where: str) -> float:
    if v not in ("nan", "inf", "-inf"):
        raise CheckpointError(f"{where}: malformed float {v!r}")
    return float(v)


def _prefixes(version: ArtifactVersion) -> list[str]:
    return sorted(
        f.path[: -len(STATE_FILE)] or "''"
        for f in version.files()
        if f.path == STATE_FILE or f.path.endswith("/" + STATE_FILE)
    )


def load_state_dict(
    version: ArtifactVersion,
    prefix: str = "",
    map_location: Any = "cpu",
    verify: bool = True,
) -> Any:
    """Rebuild the state_dict stored under ``prefix`` by `add_state_dict`, with no pickle involved.

    Local blobs are memory-mapped (copy-on-write: the store is never modified). With ``verify`` every
    tensor's bytes are checked against the manifest digest (`IntegrityError` on a mismatch): hashed, or,
    for a local blob already verified and unchanged since (same size, mtime, ctime and inode, the stat
    cache's rule), trusted as the stat cache trusts any unchanged local file; `artifacts verify`
    re-hashes everything.
    """
    p = _norm_prefix(prefix)
    try:
        entry = version.file(p + STATE_FILE)
    except NotFoundError:
        have = _prefixes(version)
        hint = f"; it has state dicts under {', '.join(have)}" if have else ""
        raise CheckpointError(
            f"{version.ref} has no state_dict under prefix {p!r} (no entry {p + STATE_FILE!r}){hint}"
        ) from None
    if entry.size > _MAX_STATE_JSON:
        raise CheckpointError(f"{version.ref}: {entry.path} is {entry.size} bytes; too large")
    try:
        doc = load_json(version.read_bytes(entry.path, verify=verify), entry.path)
        fmt, tree = doc["format"], doc["tree"]
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(
            f"{version.ref}: {entry.path} is not a state_dict description: {e}"
        ) from None
    if fmt != STATE_FORMAT:
        raise CheckpointError(
            f"{version.ref}: {entry.path} has format {fmt!r}; this reader knows {STATE_FORMAT!r}"
        )
    loader = _Loader(version, p, map_location, verify)
    loader.collect(tree)
    loader.load_all()
    return loader.build(tree)


# -- models --------------------------------------------------------------------------------------
class LoadResult(NamedTuple):
    missing_keys: list[str]
    unexpected_keys: list[str]


def _mismatch_report(model: torch.nn.Module, state: Mapping[str, Any]) -> tuple[list, list, list]:
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    bad = []
    for k, ref in own.items():
        if k not in state:
            continue
        v = state[k]
        if not isinstance(v, torch.Tensor):
            bad.append(f"{k}: stored a {type(v).__name__}, the model has a tensor")
        elif tuple(v.shape) != tuple(ref.shape) or v.dtype != ref.dtype:
            bad.append(
                f"{k}: stored {dtype_name(v.dtype)}{list(v.shape)}, the model has "
                f"{dtype_name(ref.dtype)}{list(ref.shape)}"
            )
    return missing, unexpected, bad


def _listing(label: str, keys: list[str], limit: int = 20) -> str:
    more = f", ... ({len(keys) - limit} more)" if len(keys) > limit else ""
    return f"{label} ({len(keys)}): {', '.join(keys[:limit])}{more}"


def restore_model(
    model: torch.nn.Module,
    version: ArtifactVersion,
    prefix: str = "model/",
    strict: bool = True,
    *,
    verify: bool = True,
) -> LoadResult:
    """Load the state_dict under ``prefix`` of ``version`` into ``model``.

    Shape and dtype mismatches are always an error (a `CheckpointError` listing every one); missing and
    unexpected keys are an error with ``strict``, else returned. Nothing is copied into the model unless
    the whole check passes.
    """
    state = load_state_dict(version, prefix, map_location=None, verify=verify)
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{version.ref}: the state under {prefix!r} is not a dict")
    missing, unexpected, bad = _mismatch_report(model, state)
    problems = []
    if bad:
        problems.append(_listing("shape/dtype mismatches", bad))
    if strict and missing:
        problems.append(_listing("missing keys (in the model, not in the checkpoint)", missing))
    if strict and unexpected:
        problems.append(
            _listing("unexpected keys (in the checkpoint, not in the model)", unexpected)
        )
    if problems:
        raise CheckpointError(
            f"cannot load {version.ref} ({_norm_prefix(prefix)}) into {type(model).__name__}: "
            + "; ".join(problems)
        )
    with torch.no_grad():
        model.load_state_dict(state, strict=strict)
    return LoadResult(missing, unexpected)


# -- whole checkpoints for exact resume ----------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """The torch (CPU and CUDA), numpy and python RNG states, as tensors and plain data."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    try:
        torch.set_rng_state(state["torch"].cpu())
        np.random.set_state(tuple(state["numpy"]))
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([t.cpu() for t in state["cuda"]])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"the stored RNG state cannot be restored: {e}") from None


def checkpoint_artifact(
    name: str,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    epoch: int | None = None,
    extra: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    type: str = "model",
    rng: bool = True,
    description: str = "",
) -> Artifact:
    """An `Artifact` holding everything needed to resume training exactly.

    ``model/``, ``optimizer/``, ``scheduler/`` state dicts, ``rng/`` (torch, numpy, python RNG states),
    ``extra/`` (any state_dict-like mapping) and ``checkpoint.json`` (epoch, which parts are present).
    Log it right away: the tensors are referenced, not copied.
    """
    meta = dict(metadata or {})
    if epoch is not None:
        meta.setdefault("epoch", epoch)
    art = Artifact(name, type, description=description, metadata=meta)
    parts = ["model"]
    add_state_dict(art, model.state_dict(), "model/")
    if optimizer is not None:
        add_state_dict(art, optimizer.state_dict(), "optimizer/")
        parts.append("optimizer")
    if scheduler is not None:
        add_state_dict(art, scheduler.state_dict(), "scheduler/")
        parts.append("scheduler")
    if rng:
        add_state_dict(art, rng_state(), "rng/")
        parts.append("rng")
    if extra is not None:
        add_state_dict(art, extra, "extra/")
        parts.append("extra")
    art.add_json(CHECKPOINT_FILE, {"format": CHECKPOINT_FORMAT, "epoch": epoch, "parts": parts})
    return art


def restore_checkpoint(
    version: ArtifactVersion,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    restore_rng: bool = True,
    strict: bool = True,
    verify: bool = True,
) -> dict[str, Any]:
    """Restore what `checkpoint_artifact` stored; returns ``{"epoch": ..., "extra": ...}``."""
    try:
        if version.file(CHECKPOINT_FILE).size > _MAX_STATE_JSON:
            raise ValueError(f"{version.file(CHECKPOINT_FILE).size} bytes; too large")
        info = load_json(version.read_bytes(CHECKPOINT_FILE, verify=verify), CHECKPOINT_FILE)
        parts = info["parts"]
        if not isinstance(parts, list) or not all(isinstance(p, str) for p in parts):
            raise TypeError("parts must be a list of names")
    except NotFoundError:
        raise CheckpointError(
            f"{version.ref} is not a checkpoint made by checkpoint_artifact (no {CHECKPOINT_FILE}); "
            "use restore_model or load_state_dict"
        ) from None
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{version.ref}: {CHECKPOINT_FILE} is malformed: {e}") from None
    restore_model(model, version, "model/", strict=strict, verify=verify)
    for part, obj in (("optimizer", optimizer), ("scheduler", scheduler)):
        if obj is None:
            continue
        if part not in parts:
            raise CheckpointError(f"{version.ref} holds no {part} state (it has {parts})")
        obj.load_state_dict(load_state_dict(version, f"{part}/", verify=verify))
    if restore_rng and "rng" in parts:
        set_rng_state(load_state_dict(version, "rng/", verify=verify))
    extra = load_state_dict(version, "extra/", verify=verify) if "extra" in parts else None
    return {"epoch": info.get("epoch"), "extra": extra}


def tensor_differences(
    a: ArtifactVersion, b: ArtifactVersion, diff: VersionDiff | None = None, *, chunk: int = 1 << 22
) -> VersionDiff:
    """``diff`` (default: `Store.diff` of ``a`` and ``b``) with ``max_abs_diff`` filled for every
    changed tensor whose dtype and shape agree: max |b - a| over its elements, computed in float64
    chunk by chunk (tensors are memory-mapped, never copied whole). Booleans count 1 where they differ."""
    from .compare import diff_versions

    diff = diff if diff is not None else diff_versions(a, b)
    la, lb = _Loader(a, "", None, verify=True), _Loader(b, "", None, verify=True)
    out = []
    for ch in diff.changed:
        if ch.is_tensor and ch.dtype_a == ch.dtype_b and ch.shape_a == ch.shape_b:
            ta, tb = la.read_tensor(ch.path).reshape(-1), lb.read_tensor(ch.path).reshape(-1)
            worst = 0.0
            for i in range(0, ta.numel(), chunk):
                x, y = ta[i : i + chunk], tb[i : i + chunk]
                if x.dtype == torch.bool:
                    d = (x != y).to(torch.float64)
                elif x.is_complex():
                    d = (y.to(torch.complex128) - x.to(torch.complex128)).abs()
                else:
                    d = (y.to(torch.float64) - x.to(torch.float64)).abs()
                if d.numel():
                    worst = max(worst, float(d.max()))
            ch = replace(ch, max_abs_diff=worst)
        out.append(ch)
    return diff.with_changes(out)
