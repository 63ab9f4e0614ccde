"""Names, aliases, references and in-artifact paths: what is allowed and how refs are parsed.

Validation happens where input enters (the API), and again on replay of the log, so a hand-written or
foreign log entry can never smuggle in a name or a path that the API would refuse.
"""

from __future__ import annotations

import posixpath
import re
import unicodedata
from dataclasses import dataclass

from . import bounds
from .bounds import INT64_MAX, shorten
from .errors import InvalidNameError, InvalidPathError

__all__ = [
    "MAX_PATH_DEPTH",
    "Ref",
    "check_alias",
    "check_depth",
    "check_name",
    "check_path",
    "is_plain_name",
    "is_plain_path",
    "parse_ref",
]

MAX_NAME = 128
#: Directory levels a file path may have where files are written (add, download): deeper trees make
#: the OS calls themselves (``makedirs``, ``realpath``) fail, so they are refused in one line first.
MAX_PATH_DEPTH = 255
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_VERSION_RE = re.compile(r"v(0|[1-9][0-9]*)")
RESERVED_ALIASES = frozenset({"latest"})


def check_name(name: object, what: str = "artifact name") -> str:
    """An artifact or project name: 1-128 of letters, digits, '_', '-', '.', not starting with '.'/'-'."""
    if not isinstance(name, str) or not name:
        raise InvalidNameError(f"invalid {what} {name!r}: it must be a non-empty string")
    if len(name) > MAX_NAME:
        raise InvalidNameError(
            f"invalid {what} {name[:40]!r}...: longer than {MAX_NAME} characters"
        )
    if not _NAME_RE.fullmatch(name):
        raise InvalidNameError(
            f"invalid {what} {name!r}: use letters, digits, '_', '-' and '.' only "
            "(no '/', ':', whitespace), starting with a letter, digit or '_'"
        )
    return name


def check_alias(alias: object) -> str:
    """An alias is named like an artifact, but may not be 'latest' or look like a version ('v3')."""
    alias = check_name(alias, "alias")
    if alias in RESERVED_ALIASES or _VERSION_RE.fullmatch(alias):
        raise InvalidNameError(
            f"invalid alias {alias!r}: 'latest' and version-like names (v0, v1, ...) are reserved"
        )
    return alias


@dataclass(frozen=True)
class Ref:
    """A parsed reference: ``name``, ``name:latest``, ``name:vN`` or ``name:<alias>``."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:v{self.version}"
        return f"{self.name}:{self.alias or 'latest'}"


def parse_ref(ref: object) -> Ref:
    if not isinstance(ref, str):
        raise InvalidNameError(
            f"invalid reference {ref!r}: expected 'name', 'name:vN' or 'name:alias'"
        )
    name, sep, tag = ref.partition(":")
    check_name(name)
    if not sep or tag == "latest":
        return Ref(name)
    m = _VERSION_RE.fullmatch(tag)
    if m:
        if len(m.group(1)) > 19 or int(m.group(1)) > INT64_MAX:
            raise InvalidNameError(
                f"invalid reference {ref[:80]!r}: version number {m.group(1)[:30]} is too large "
                f"(versions go up to v{INT64_MAX})"
            )
        return Ref(name, version=int(m.group(1)))
    try:
        check_name(tag, "alias")
    except InvalidNameError:
        raise InvalidNameError(
            f"invalid reference {ref!r}: expected 'name', 'name:latest', 'name:vN' or 'name:alias'"
        ) from None
    return Ref(name, alias=tag)


#: ASCII segments joined by single '/', with no leading or trailing '/': NFC, UTF-8, no drive, no
#: backslash or NUL by construction, so only '.' and '..' parts remain to be ruled out.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_.~+=,@ -]+(?:/[A-Za-z0-9_.~+=,@ -]+)*\Z")


_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.~+=,@ -]+\Z")


def is_plain_path(path: str) -> bool:
    """True when `check_path` needs no more than this to accept ``path``: plain ASCII segments, none
    of them '.' or '..'. (False says nothing: such a path may still be valid.)"""
    return (
        len(path) <= bounds.MAX_PATH_CHARS
        and _PLAIN_PATH.fullmatch(path) is not None
        and "/./" not in f"/{path}/"
        and "/../" not in f"/{path}/"
    )


def is_plain_name(name: str) -> bool:
    """`is_plain_path` for one segment (a name a directory walk found), at a fraction of the cost: a
    walk of 20k files asks it once per file."""
    return _PLAIN_NAME.match(name) is not None and name != "." and name != ".."


def check_depth(path: str, what: str = "artifact") -> str:
    """``path`` (already a valid artifact path) if it is at most `MAX_PATH_DEPTH` levels deep."""
    depth = path.count("/") + 1
    if depth > MAX_PATH_DEPTH:
        raise InvalidPathError(
            f"invalid path {path[:60]!r}... in {what}: it is {depth} levels deep, more than "
            f"{MAX_PATH_DEPTH}; flatten the tree"
        )
    return path


def check_path(path: object) -> str:
    """A file path inside an artifact: relative, '/'-separated, normalized, never escaping its root.

    Checked on add and again on restore, so a manifest written by anyone cannot make a download write
    outside its destination (absolute paths, '..', drive letters, backslashes, NUL are all refused).
    """
    if not isinstance(path, str) or not path:
        raise InvalidPathError(
            f"invalid path {shorten(path)} in artifact: it must be a non-empty string"
        )
    if len(path) > bounds.MAX_PATH_CHARS:
        raise InvalidPathError(
            f"invalid path {shorten(path)} in artifact: {len(path)} characters, more than "
            f"{bounds.MAX_PATH_CHARS}"
        )
    if is_plain_path(path):
        return path  # the common case (ASCII names, no empty parts): every rule below holds
    bad = (
        path.startswith("/")
        or "\\" in path
        or "\x00" in path
        or re.match(r"[A-Za-z]:", path) is not None
        or any(part in ("", ".", "..") for part in path.split("/"))
        or posixpath.normpath(path) != path
    )
    if bad:
        raise InvalidPathError(
            f"invalid path {path!r} in artifact: paths must be relative, use '/', and contain no "
            "'..', '.' or empty parts"
        )
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:  # a non-UTF-8 file name decoded with surrogateescape
        raise InvalidPathError(
            f"invalid path {path!r} in artifact: it is not valid UTF-8 (a non-UTF-8 file name?); "
            "rename the file or pass name="
        ) from None
    if unicodedata.normalize("NFC", path) != path:
        raise InvalidPathError(f"invalid path {path!r} in artifact: use NFC-normalized Unicode")
    return path
