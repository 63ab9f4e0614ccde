"""The catalog engine: typed log entries, the rules that validate and replay them, the SQLite index.

Nothing here is public API; `artifacts.Store` is the facade over it.
"""
