"""Lazy package attributes (PEP 562), so ``import artifacts`` or ``import storage`` (and with them the
``artifacts`` command's ``--help`` and ``--version``) do not pay for fsspec, asyncio or SQLite helpers
until something is used."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_getattr"]


def lazy_getattr(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``where[name]`` (a submodule, relative to ``package``) on
    first use of ``name`` and caches the value in the package."""

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(importlib.import_module(package), name, value)
        return value

    return __getattr__
