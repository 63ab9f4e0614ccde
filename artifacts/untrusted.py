"""JSON read from a store is untrusted: parse it so that no content can crash the reader.

Anyone with write access to a bucket can put anything under any name. ``json.loads`` alone turns
``[[[[...]]]]`` into a `RecursionError` and leaves each caller to guess the type it got; `load_json`
turns every way a document can be wrong (not UTF-8, not JSON, too deep, not the expected type) into
one `ValueError` naming the object, which each loader maps to its own error family.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["MAX_DEPTH", "check_depth", "load_json"]

#: Deepest nesting accepted in a document from a store; ours nest a few levels (a state_dict tree of
#: an optimizer's state about ten), so anything near Python's recursion limit is hostile.
MAX_DEPTH = 200
_CONTAINERS = (dict, list)


def check_depth(obj: Any, where: str, limit: int = MAX_DEPTH) -> Any:
    """``obj`` if its lists and dicts nest at most ``limit`` deep (checked without recursion)."""
    if not isinstance(obj, dict | list):
        return obj
    stack = [(obj, 1)]
    while stack:
        v, depth = stack.pop()
        if depth > limit:
            raise ValueError(f"{where} is nested deeper than {limit} levels")
        items = v.values() if isinstance(v, dict) else v
        # only containers go on the stack, and a node whose items hold none (a vocabulary's 1M
        # strings) is passed over at C speed: the set of its item types
        if len(items) < 64 or any(issubclass(t, _CONTAINERS) for t in set(map(type, items))):
            stack.extend([(x, depth + 1) for x in items if isinstance(x, _CONTAINERS)])
    return obj


def load_json(
    data: bytes | str, where: str, expect: type | None = dict, limit: int | None = None
) -> Any:
    """The document in ``data``; `ValueError` if it is not JSON, too deep, or not an ``expect``, or
    longer than ``limit`` bytes (``data`` read from the store up to one byte past it, no further)."""
    if limit is not None and len(data) > limit:
        raise ValueError(f"{where} holds more than {limit} bytes; it may have at most {limit}")
    try:
        obj = json.loads(data)
    except RecursionError:
        raise ValueError(f"{where} is nested too deeply to be read") from None
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        raise ValueError(f"{where} is not JSON ({e})") from None
    if expect is not None and not isinstance(obj, expect):
        want = "an object" if expect is dict else "an array" if expect is list else expect.__name__
        raise ValueError(f"{where} is not {want} but {type(obj).__name__}")
    return check_depth(obj, where)
