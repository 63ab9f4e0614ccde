"""The catalog engine: typed log entries, the rules that validate and replay them, the SQLite index.

Nothing here is public API; `artifacts.Store` is the facade over it. Which module holds what:
``engine`` (`Catalog`: store.json, blobs, log, index, sync, commit with retry), ``entries`` (one
frozen dataclass per log operation, encoded and decoded in one place), ``rules`` (validate + replay),
``index`` (SQLite), ``records`` (typed rows for `Run`/`ArtifactVersion`), ``log``, ``tail``, ``packs``,
``snapshots`` (reading the log fast), ``identity`` (store ids, index cache keys), ``maintenance`` and
``checks`` (verify, gc).
"""
