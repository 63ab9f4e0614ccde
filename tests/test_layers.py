"""The layering promises of shared/DESIGN.md that code review alone would let slip."""

from __future__ import annotations

import re
import traceback
from pathlib import Path

import pytest
from conftest import Backend

import artifacts
import storage
from storage import open_root

ROOT = Path(__file__).resolve().parent.parent

#: what a module asks when it branches on the kind of backend instead of on a capability
_BACKEND_KIND = re.compile(
    r"\bis_local\b|\bis_memory\b|LocalFileSystem|MemoryFileSystem|_call_s3|S3FileSystem"
    r"|\bs3fs\.|isinstance\([^)]*\.fs\b|protocol\s*==|\"s3\" in"
)


def test_no_module_outside_storage_branches_on_the_backend() -> None:
    offenders = []
    for path in sorted((ROOT / "artifacts").rglob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if _BACKEND_KIND.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_storage_never_imports_artifacts() -> None:
    for path in sorted((ROOT / "storage").rglob("*.py")):
        text = path.read_text()
        assert not re.search(r"^\s*(from|import) artifacts\b", text, re.M), path


def test_public_errors_print_as_artifacts_names() -> None:
    for name in ("QuotaExceededError", "NotFoundError", "IntegrityError", "BackendError"):
        cls = getattr(artifacts, name)
        assert cls.__module__ == "artifacts", name
        line = traceback.format_exception_only(cls("boom"))[-1]
        assert line.startswith(f"artifacts.{name}: boom"), line
    assert storage.NotFoundError is artifacts.NotFoundError  # one family, re-exported


_KINDS = {
    "local": ("LocalRoot", True, False, False),
    "memory": ("MemoryRoot", False, False, False),
    "s3": ("S3Root", False, True, True),
}


def test_one_root_class_per_backend(backend: Backend) -> None:
    root = open_root(backend.url, backend.storage_options)
    cls, os_paths, remote, multipart = _KINDS[backend.kind]
    assert type(root).__name__ == cls
    assert (root.os_paths, root.remote, root.multipart) == (os_paths, remote, multipart)
    assert root.prefers_listing == remote
    root.create_exclusive("a/b", b"x")
    with pytest.raises(artifacts.ConflictError):
        root.create_exclusive("a/b", b"y")
    assert root.read("a/b") == b"x" and root.read_range("a/b", 0, 1) == b"x"
    assert root.move("a/b", "a/c") and not root.exists("a/b") and root.read("a/c") == b"x"
    assert root.list_after("a") == ["c"]
