"""Log packs: one immutable object per fixed, aligned range of log entries, holding each entry's bytes.

A pack is a cache of the log, never a second source of truth: its bytes are a function of the entries it
covers (a canonical header, then the entries' exact bytes), so every writer that makes the pack for a
range makes the same object and may create it exclusively; losing that race is harmless. Entries stay in
``log/`` as before, so readers that know nothing of packs still read the store.

    packs/<first:020d>-<last:020d>.pack

Packs come in aligned sizes that divide each other (`tail.ScaleConfig.pack_sizes`: 1,000, 100 and 10
entries by default), so ranges nest and never straddle: a reader takes the largest pack at each step,
which leaves at most 9 of each smaller size and 9 single entries for the tail; gc drops smaller packs
that a larger good one covers. Readers that know one size only follow them alike (any listed range is
a pack). A reader takes whole packs for ranges before the tail and single entries after. A pack whose header does
not parse, whose body is truncated or does not hash to the digest in its header, or whose entries claim
other sequence numbers is refused with a `PackError` naming it, and the reader falls back to the entries.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from storage import Root, hash_bytes

from .. import bounds
from ..manifest import canonical_json
from ..untrusted import load_json
from .log import RawEntry

__all__ = [
    "PACK_DIR",
    "PACK_FORMAT",
    "PackError",
    "PackName",
    "decode_pack",
    "encode_pack",
    "pack_bounds",
    "pack_path",
    "parse_pack_name",
    "read_packs",
]

PACK_DIR = "packs"
PACK_FORMAT = 1
_NAME = re.compile(r"(\d{20})-(\d{20})\.pack")
_MAX_HEADER = 1 << 24


class PackError(ValueError):
    """A pack that must not be applied; the message names the object and what is wrong with it."""


@dataclass(frozen=True)
class PackName:
    first: int
    last: int

    @property
    def path(self) -> str:
        return pack_path(self.first, self.last)

    @property
    def count(self) -> int:
        return self.last - self.first + 1


def pack_path(first: int, last: int) -> str:
    return f"{PACK_DIR}/{first:020d}-{last:020d}.pack"


def parse_pack_name(name: str) -> PackName | None:
    """The range a listed name covers, or None for anything that is not a pack name."""
    m = _NAME.fullmatch(name.rsplit("/", 1)[-1])
    if not m:
        return None
    first, last = int(m.group(1)), int(m.group(2))
    return PackName(first, last) if 1 <= first <= last else None


def pack_bounds(seq: int, size: int) -> PackName:
    """The aligned range of ``size`` entries that holds ``seq`` (ranges start at 1, size+1, ...)."""
    first = (seq - 1) // size * size + 1
    return PackName(first, first + size - 1)


def encode_pack(entries: list[RawEntry]) -> bytes | None:
    """The pack's bytes: determined by the entries alone, so racing writers produce the same object.
    None where it would be over `bounds.MAX_PACK_BYTES`, or holds an entry over
    `bounds.MAX_ENTRY_BYTES` (whose bytes here are only the prefix readers read): such a range is
    left unpacked, read entry by entry."""
    if not entries:
        raise ValueError("a pack holds at least one entry")
    first = entries[0].seq
    for i, e in enumerate(entries):
        if e.seq != first + i:
            raise ValueError(f"pack entries must be contiguous: {e.seq} follows {first + i - 1}")
    if any(len(e.data) > bounds.MAX_ENTRY_BYTES for e in entries):
        return None
    if sum(len(e.data) for e in entries) > bounds.MAX_PACK_BYTES:  # before the join allocates it
        return None
    body = b"".join(e.data for e in entries)
    header = {
        "count": len(entries),
        "digest": hash_bytes(body),
        "first": first,
        "format": PACK_FORMAT,
        "lengths": [len(e.data) for e in entries],
    }
    data = canonical_json(header) + b"\n" + body
    return data if len(data) <= bounds.MAX_PACK_BYTES else None


def read_packs(root: Root, names: list[PackName]) -> dict[PackName, bytes]:
    """The stored bytes of packs ``names`` (missing ones left out), each read up to one byte past
    `bounds.MAX_PACK_BYTES` and no further (`decode_pack` refuses a longer one, naming it)."""
    got = root.read_many([p.path for p in names], limit=bounds.MAX_PACK_BYTES)
    return {p: got[p.path] for p in names if p.path in got}


def decode_pack(name: PackName, data: bytes) -> list[RawEntry]:
    """The entries of a stored pack, after checking everything that can be checked without the log."""
    where = name.path
    if len(data) > bounds.MAX_PACK_BYTES:
        raise PackError(
            f"pack {where} holds more than {bounds.MAX_PACK_BYTES} bytes; a pack may have at most "
            f"{bounds.MAX_PACK_BYTES}"
        )
    cut = data.find(b"\n", 0, _MAX_HEADER)
    if cut < 0:
        raise PackError(f"pack {where} is unparsable: no header (truncated or not a pack)")
    try:
        head = load_json(data[:cut], f"the header of pack {where}")
        fmt, first, count, lengths, digest = (
            head["format"],
            head["first"],
            head["count"],
            head["lengths"],
            head["digest"],
        )
    except (ValueError, KeyError, TypeError) as e:
        raise PackError(f"pack {where} is unparsable: bad header ({e})") from None
    if fmt != PACK_FORMAT or isinstance(fmt, bool):
        raise PackError(f"pack {where} has unknown pack format {fmt!r}")
    if (first, count) != (name.first, name.count) or not isinstance(lengths, list):
        raise PackError(f"pack {where}: its header covers {first}+{count}, not its name's range")
    if len(lengths) != count or not all(isinstance(n, int) and n >= 0 for n in lengths):
        raise PackError(f"pack {where}: its header lists bad entry lengths")
    body = memoryview(data)[cut + 1 :]
    if len(body) != sum(lengths):
        raise PackError(
            f"pack {where} is truncated: {len(body)} bytes of entries, header says {sum(lengths)}"
        )
    if hash_bytes(body) != digest:
        raise PackError(f"pack {where} is corrupt: its entries do not hash to its header's digest")
    out: list[RawEntry] = []
    pos = 0
    for i, n in enumerate(lengths):
        out.append(RawEntry(first + i, bytes(body[pos : pos + n])))
        pos += n
    for raw in {
        out[0].seq: out[0],
        out[-1].seq: out[-1],
    }.values():  # ends only: parsing is replay's job
        claimed = _claimed_seq(raw.data)
        if claimed is not None and claimed != raw.seq:
            raise PackError(
                f"pack {where} disagrees with the log: its entry {raw.seq} claims sequence {claimed}"
            )
    return out


def _claimed_seq(data: bytes) -> int | None:
    """The ``seq`` an entry claims, when it is well-formed enough to claim one (rejects keep their bytes)."""
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return None
    seq = obj.get("seq") if isinstance(obj, dict) else None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None
