"""Metric, summary and config values: Python/NumPy scalars and 0-d tensors in, plain JSON values out.

`run.log()` sits on the training thread, so the common case (a dict of floats and ints) costs a type
check per value and nothing more. NumPy and torch scalars are recognised by their type's module name, so
neither library is imported here; a tensor is converted with its own ``.item()``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import Any

from .artifact import check_json
from .errors import InvalidValueError

__all__ = ["Config", "Summary", "check_notes", "check_tags", "plain_mapping", "to_json_value"]

_PLAIN = frozenset({int, float, str, bool, type(None)})


def to_json_value(value: Any, what: str) -> Any:
    """``value`` as plain JSON: scalars as they are, NumPy/torch scalars via ``.item()``, containers
    checked as JSON. Raises `InvalidValueError` naming ``what`` otherwise."""
    t = type(value)
    if t in _PLAIN:
        return value
    module = t.__module__ or ""
    if module == "numpy" or module.startswith("torch"):
        return _array_scalar(value, what)
    if isinstance(value, Mapping | list | tuple):
        try:
            return check_json(_nested(value, what), what)
        except RecursionError:
            raise InvalidValueError(f"{what} is nested too deeply to store as JSON") from None
    if isinstance(value, int | float | str):  # IntEnum, float subclasses, ...
        return check_json(value, what)
    raise InvalidValueError(
        f"{what} must be a number, string, bool, None, a list or dict of those, a NumPy scalar or a "
        f"0-d tensor; got {t.__name__}"
    )


def _nested(value: Any, what: str) -> Any:
    t = type(value)
    if t in _PLAIN:
        return value
    module = t.__module__ or ""
    if module == "numpy" or module.startswith("torch"):
        return _array_scalar(value, what)
    if isinstance(value, Mapping):
        return {str(k): _nested(v, what) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nested(v, what) for v in value]
    return value  # check_json judges it


def _array_scalar(value: Any, what: str) -> Any:
    """A NumPy scalar or 0-d array/tensor as a Python value; anything with dimensions is refused."""
    shape = tuple(getattr(value, "shape", ()))
    item = getattr(value, "item", None)
    if item is None or shape:
        raise InvalidValueError(
            f"{what} is a {type(value).__name__} of shape {list(shape)}; log a scalar "
            "(for example x.mean().item()) or a list"
        )
    return item()


def plain_mapping(obj: Any, what: str) -> dict[str, Any]:
    """A config given as a dict, an `argparse.Namespace` or any object with public attributes."""
    if obj is None:
        return {}
    if isinstance(obj, argparse.Namespace):
        obj = vars(obj)
    elif not isinstance(obj, Mapping):
        if not hasattr(obj, "__dict__"):
            raise InvalidValueError(f"{what} must be a dict, got {type(obj).__name__}")
        obj = {k: v for k, v in vars(obj).items() if not k.startswith("_")}
    out = {}
    for k, v in obj.items():
        if not isinstance(k, str):
            raise InvalidValueError(f"{what} keys must be strings, got {k!r}")
        out[k] = to_json_value(v, f"{what} value {k!r}")
    return check_json(out, what)


class Summary(dict[str, Any]):
    """A run's summary metrics: the last logged value of each key unless set explicitly.

    A dict whose writes convert NumPy/torch scalars, as W&B's ``run.summary`` does.
    """

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise InvalidValueError(f"summary keys must be strings, got {key!r}")
        super().__setitem__(key, to_json_value(value, f"summary value {key!r}"))

    def update(self, other: Any = (), /, **kwargs: Any) -> None:  # type: ignore[override]
        items = other.items() if isinstance(other, Mapping) else other
        for k, v in [*items, *kwargs.items()]:
            self[k] = v

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]


class Config(dict[str, Any]):
    """A run's config with W&B's access styles: ``config.lr``, ``config["lr"]``, ``config.update()``.

    Every change calls ``on_change`` so an active run persists it (flushed with its history, and in
    its finish entry).
    """

    def __init__(
        self, data: Mapping[str, Any] | None = None, on_change: Callable[[], None] | None = None
    ) -> None:
        super().__init__(data or {})
        object.__setattr__(self, "_on_change", on_change)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"config has no key {key!r}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def __delattr__(self, key: str) -> None:
        try:
            del self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise InvalidValueError(f"config keys must be strings, got {key!r}")
        super().__setitem__(key, to_json_value(value, f"config value {key!r}"))
        self._changed()

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._changed()

    def update(  # type: ignore[override]
        self, other: Any = None, /, allow_val_change: bool | None = None, **kwargs: Any
    ) -> None:
        """Merge a dict, an `argparse.Namespace` or keyword arguments (``allow_val_change`` is
        accepted for W&B scripts; values may always change)."""
        merged = {**plain_mapping(other, "config"), **plain_mapping(kwargs, "config")}
        for k, v in merged.items():
            super().__setitem__(k, v)
        if merged:
            self._changed()

    def setdefaults(self, other: Mapping[str, Any]) -> None:
        """Set the keys of ``other`` that are not set yet (W&B's ``config.setdefaults``)."""
        self.update({k: v for k, v in plain_mapping(other, "config").items() if k not in self})

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def as_dict(self) -> dict[str, Any]:
        return dict(self)

    def _changed(self) -> None:
        hook = self.__dict__.get("_on_change")
        if hook is not None:
            hook()


MAX_TAGS = 100
MAX_NOTES = 64 * 1024


def check_tags(tags: Any) -> list[str]:
    """Run tags: distinct non-empty strings of at most 128 characters, at most 100 of them."""
    if isinstance(tags, str) or not isinstance(tags, list | tuple | set | frozenset):
        raise InvalidValueError(f"tags must be a list of strings, got {type(tags).__name__}")
    out: list[str] = []
    for t in tags:
        if not isinstance(t, str) or not t.strip() or len(t) > 128 or "\n" in t:
            raise InvalidValueError(
                f"a tag must be a non-empty one-line string of at most 128 chars, not {t!r}"
            )
        if t not in out:
            out.append(t)
    if len(out) > MAX_TAGS:
        raise InvalidValueError(f"a run has at most {MAX_TAGS} tags, not {len(out)}")
    return out


def check_notes(notes: Any) -> str:
    if not isinstance(notes, str) or len(notes) > MAX_NOTES:
        raise InvalidValueError(f"notes must be a string of at most {MAX_NOTES} characters")
    return notes
