"""Vocabulary artifacts: token <-> index tables stored as canonical JSON.

The same vocabulary always encodes to the same bytes (hence the same digest and no new version when it
is logged again): tokens are stored in index order, the document's keys are sorted and there is no
whitespace. Building is deterministic: tokens are ordered by decreasing count, ties broken by the token.
"""

from __future__ import annotations

import itertools
import operator
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .artifact import Artifact
from .bounds import shorten
from .errors import ArtifactsError, NotFoundError
from .manifest import canonical_json
from .untrusted import load_json

if TYPE_CHECKING:
    from .version import ArtifactVersion

__all__ = ["VOCAB_FORMAT", "Vocabulary", "VocabularyError", "add_vocabulary", "load_vocabulary"]

VOCAB_FORMAT = "artifacts.vocabulary/1"
_MAX_VOCAB_FILE = 512 * 1024 * 1024


class VocabularyError(ArtifactsError, ValueError):
    """A vocabulary is malformed, or an entry that should hold one does not."""


@dataclass(frozen=True)
class Vocabulary:
    """Tokens in index order; ``specials`` (e.g. ``<pad>``, ``<unk>``) come first.

    ``min_freq`` and ``max_size`` record how it was built (``None`` when not built by counting).
    Unknown tokens map to ``unk_token`` when there is one, else `lookup` raises `KeyError`.
    """

    tokens: tuple[str, ...]
    specials: tuple[str, ...] = ("<pad>", "<unk>")
    unk_token: str | None = "<unk>"
    pad_token: str | None = "<pad>"
    min_freq: int | None = None
    max_size: int | None = None
    _stoi: dict[str, int] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        tokens = tuple(self.tokens)
        specials = tuple(self.specials)
        object.__setattr__(self, "tokens", tokens)
        object.__setattr__(self, "specials", specials)
        if not all(issubclass(t, str) for t in set(map(type, tokens))):  # C speed at 1M tokens
            raise VocabularyError("every token must be a string")
        stoi = _index(tokens)
        if tokens[: len(specials)] != specials:
            raise VocabularyError(
                f"the specials {shorten(list(specials), 200)} must be the first tokens, in order"
            )
        for label, tok in (("unk_token", self.unk_token), ("pad_token", self.pad_token)):
            if tok is not None and tok not in specials:
                raise VocabularyError(
                    f"{label} {shorten(tok)} is not one of the specials "
                    f"{shorten(list(specials), 200)}"
                )
        for label, n in (("min_freq", self.min_freq), ("max_size", self.max_size)):
            if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
                raise VocabularyError(
                    f"{label} must be a non-negative int or None, not {shorten(n)}"
                )
        object.__setattr__(self, "_stoi", stoi)

    # -- building --------------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        token_iter: Iterable[str | Iterable[str]],
        *,
        min_freq: int = 1,
        max_size: int | None = None,
        specials: Sequence[str] = ("<pad>", "<unk>"),
        unk_token: str | None = "<unk>",
        pad_token: str | None = "<pad>",
    ) -> Vocabulary:
        """Count tokens and keep those seen at least ``min_freq`` times.

        ``token_iter`` yields tokens or sequences of tokens (e.g. one tokenized document each).
        ``max_size`` caps the total size, specials included. Order: specials, then decreasing count,
        ties broken by the token itself, so the result does not depend on the input order.
        """
        if isinstance(min_freq, bool) or not isinstance(min_freq, int) or min_freq < 1:
            raise VocabularyError(f"min_freq must be an int >= 1, not {min_freq!r}")
        specials = tuple(specials)
        if max_size is not None and (
            isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < len(specials)
        ):
            raise VocabularyError(
                f"max_size must be an int >= the number of specials ({len(specials)}), not {max_size!r}"
            )
        counts: Counter[str] = Counter()
        for item in token_iter:
            if isinstance(item, str):
                counts[item] += 1
            else:
                counts.update(item)
        for s in specials:
            counts.pop(s, None)
        ranked = sorted(
            (t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t)
        )
        if max_size is not None:
            ranked = ranked[: max_size - len(specials)]
        return cls(
            tokens=specials + tuple(ranked),
            specials=specials,
            unk_token=unk_token,
            pad_token=pad_token,
            min_freq=min_freq,
            max_size=max_size,
        )

    def __repr__(self) -> str:
        head = ", ".join(map(repr, self.tokens[len(self.specials) : len(self.specials) + 5]))
        return (
            f"Vocabulary(size={len(self)}, specials={list(self.specials)}, min_freq={self.min_freq}, "
            f"max_size={self.max_size}, tokens=[{head}{', ...' if len(self) > len(self.specials) + 5 else ''}])"
        )

    # -- lookups ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._stoi

    @property
    def unk_index(self) -> int | None:
        return None if self.unk_token is None else self._stoi[self.unk_token]

    @property
    def pad_index(self) -> int | None:
        return None if self.pad_token is None else self._stoi[self.pad_token]

    def lookup(self, token: str) -> int:
        """The index of ``token``; unknown tokens give the unk index (`KeyError` without one)."""
        i = self._stoi.get(token)
        if i is not None:
            return i
        if self.unk_token is None:
            raise KeyError(token)
        return self._stoi[self.unk_token]

    def encode(self, tokens: Iterable[str]) -> list[int]:
        return [self.lookup(t) for t in tokens]

    def decode(self, indices: Iterable[int]) -> list[str]:
        return [self.tokens[i] for i in indices]

    # -- serialization ---------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "format": VOCAB_FORMAT,
            "tokens": list(self.tokens),
            "specials": list(self.specials),
            "unk_token": self.unk_token,
            "pad_token": self.pad_token,
            "min_freq": self.min_freq,
            "max_size": self.max_size,
        }

    def to_bytes(self) -> bytes:
        """Canonical JSON: equal vocabularies give equal bytes, hence equal digests."""
        return canonical_json(self.to_json())

    @classmethod
    def from_json(cls, obj: Any, where: str = "vocabulary") -> Vocabulary:
        if not isinstance(obj, dict) or obj.get("format") != VOCAB_FORMAT:
            found = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
            raise VocabularyError(
                f"{where} is not a vocabulary (expected format {VOCAB_FORMAT!r}, found {shorten(found)})"
            )
        try:
            tokens, specials = obj["tokens"], obj["specials"]
            if not isinstance(tokens, list) or not isinstance(specials, list):
                raise TypeError("tokens and specials must be lists")
            return cls(
                tokens=tuple(tokens),
                specials=tuple(specials),
                unk_token=obj.get("unk_token"),
                pad_token=obj.get("pad_token"),
                min_freq=obj.get("min_freq"),
                max_size=obj.get("max_size"),
            )
        except VocabularyError as e:
            raise VocabularyError(f"{where} is a malformed vocabulary: {e}") from None
        except (KeyError, TypeError) as e:
            raise VocabularyError(f"{where} is a malformed vocabulary: {e}") from None

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "vocabulary") -> Vocabulary:
        try:
            obj = load_json(data, where, expect=None)
        except ValueError as e:
            why = str(e).removeprefix(f"{where} is ")  # "not JSON (...)", "nested too deeply..."
            raise VocabularyError(f"{where} is not a vocabulary ({why})") from None
        return cls.from_json(obj, where)


def _index(tokens: tuple[str, ...]) -> dict[str, int]:
    """Token -> index in one pass; the first repeated token is an error naming both positions.

    One dict, not a ``tokens.count`` per token: a vocabulary is store content, and a 40k-token one
    whose last token repeats took a reader 24 s that way (a 1M-token one, hours).
    """
    stoi = dict(zip(tokens, range(len(tokens)), strict=True))  # a repeated token: its last index
    if len(stoi) == len(tokens):
        return stoi
    # the first token that occurs again later (its index differs from the last one's), found at C
    # speed: a Python loop over a 1M-token vocabulary is most of a second on a slow machine
    n = len(tokens)
    i = next(itertools.compress(range(n), map(operator.ne, map(stoi.__getitem__, tokens), range(n))))
    raise VocabularyError(
        f"token {shorten(tokens[i])} appears more than once (at indices {i} and {stoi[tokens[i]]})"
    )


def add_vocabulary(artifact: Artifact, vocab: Vocabulary, name: str = "vocab.json") -> Artifact:
    """Add ``vocab`` to ``artifact`` as canonical JSON (entry meta: ``{"kind": "vocabulary"}``)."""
    if not isinstance(vocab, Vocabulary):
        raise VocabularyError(f"add_vocabulary() takes a Vocabulary, got {type(vocab).__name__}")
    return artifact.add_bytes(name, vocab.to_bytes(), meta={"kind": "vocabulary"})


def load_vocabulary(version: ArtifactVersion, name: str = "vocab.json") -> Vocabulary:
    """Read the vocabulary stored as ``name`` in ``version`` (digest verified)."""
    where = f"{version.ref}: {name}"
    try:
        entry = version.file(name)
    except NotFoundError:
        have = ", ".join(f.path for f in version.files()[:20])
        raise VocabularyError(f"{where}: no such entry (the version holds: {have})") from None
    if entry.size > _MAX_VOCAB_FILE:
        raise VocabularyError(f"{where} is {entry.size} bytes: too large to be a vocabulary")
    return Vocabulary.from_bytes(version.read_bytes(name), where)
