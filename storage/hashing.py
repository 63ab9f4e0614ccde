"""BLAKE3 digests: one pass over the bytes, multithreaded for large inputs.

Measured here on a 1 GiB page-cached file (2 cores): 8-16 MiB ``readinto`` chunks fed to
``blake3(max_threads=AUTO)`` hash at the same speed as ``update_mmap`` (about 0.13-0.15 s, roughly 7 GiB/s),
and chunked reads let the same loop also write a copy, which an ingest needs anyway. md5 takes 1.4 s.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import BinaryIO

import blake3

from .errors import InvalidDigestError

__all__ = [
    "CHUNK_SIZE",
    "DIGEST_RE",
    "Hasher",
    "check_digest",
    "hash_bytes",
    "hash_chunks",
    "hash_file",
]

#: Read size for streaming large files; 8 MiB measured best for read+hash+write here.
CHUNK_SIZE = 8 * 1024 * 1024
#: Inputs at least this large are hashed with several threads; below it thread start-up costs more.
_THREADED_MIN = 1024 * 1024

DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")


class Hasher:
    """An incremental BLAKE3 that switches to multithreading once it is worth it."""

    __slots__ = ("_h", "size")

    def __init__(self, threaded: bool = True) -> None:
        self._h = blake3.blake3(max_threads=blake3.blake3.AUTO) if threaded else blake3.blake3()
        self.size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._h.update(data)
        self.size += len(data) if not isinstance(data, memoryview) else data.nbytes

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def check_digest(digest: object) -> str:
    """Return ``digest`` if it is a well-formed BLAKE3 hex digest, else raise `InvalidDigestError`."""
    if not isinstance(digest, str) or not DIGEST_RE.match(digest):
        raise InvalidDigestError(
            f"malformed digest {digest!r}: expected 64 lowercase hex characters (a BLAKE3 digest)"
        )
    return digest


def hash_bytes(data: bytes | bytearray | memoryview) -> str:
    """Digest of an in-memory buffer, without copying it."""
    n = data.nbytes if isinstance(data, memoryview) else len(data)
    h = blake3.blake3(max_threads=blake3.blake3.AUTO) if n >= _THREADED_MIN else blake3.blake3()
    h.update(data)
    return h.hexdigest()


def hash_chunks(chunks: Iterable[bytes]) -> tuple[str, int]:
    h = Hasher()
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest(), h.size


def hash_file(f: BinaryIO, chunk_size: int = CHUNK_SIZE) -> tuple[str, int]:
    """Digest and size of an open binary file, read in reusable chunks (bounded memory)."""
    h = Hasher()
    buf = bytearray(chunk_size)
    view = memoryview(buf)
    readinto = getattr(f, "readinto", None)
    if readinto is None:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    else:
        while n := readinto(buf):
            h.update(view[:n])
    return h.hexdigest(), h.size
