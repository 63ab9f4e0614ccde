"""Which local index belongs to which store: the store's id checked, the cache keyed by id and root.

``store.json`` is written by whoever created the store, so its ``id`` is untrusted: it names a file on
every reader's machine, and an id with ``/`` or ``..`` once made readers create (and, when the file was
not an index, delete and replace) a ``*.sqlite`` file outside the cache directory. Its shape is checked
before it is used for anything.

Two copies of one store (``cp -r``, ``aws s3 sync``, a restored backup) keep one id, so the id alone
cannot key the cache: the file is named by the id *and* a hash of the normalised root (the real path
of a local store; the URL and endpoint of a remote one), and two roots never share an index. A root
that now holds a different log than its index was built from (a backup restored over it, a copy synced
onto it) is caught by `LogReader.sync` (the last entry applied must still be there, and the next one
must name its digest) and the index is rebuilt.
Caches from before this module (``index/<id>.sqlite``) are not read again: the first open under the
new name rebuilds from the log (or a snapshot), which is always right.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storage import hash_bytes

from ..errors import IntegrityError

if TYPE_CHECKING:
    from storage import Root

__all__ = ["check_store_id", "index_path", "root_fingerprint"]

#: A uuid4 hex is what `open_store` writes; anything of this shape is accepted (a hand-made store).
_STORE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")


def check_store_id(value: Any, where: str) -> str:
    """The id of ``store.json`` if it is 1-64 letters, digits, '-' or '_' (not starting with '-')."""
    if not isinstance(value, str) or not _STORE_ID.match(value):
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        raise IntegrityError(
            f"{where} has an invalid store id {shown}: expected 1-64 letters, digits, '-' or '_'; "
            "the store description was not written by this library (restore it from a backup)"
        )
    return value


def root_fingerprint(root: Root) -> str:
    """16 hex digits that differ between two roots, whatever their store ids.

    A local root is its real path (two spellings of one directory share an index); any other is its
    URL plus the endpoint it is reached at (one bucket name on two S3 services is two stores).
    """
    return hash_bytes(json.dumps(root.location(), sort_keys=True).encode())[:16]


def index_path(cache_dir: Path, store_id: str, root: Root) -> Path:
    """Where the index of this store at this root lives (``store_id`` already checked)."""
    return cache_dir / "index" / f"{store_id}-{root_fingerprint(root)}.sqlite"
