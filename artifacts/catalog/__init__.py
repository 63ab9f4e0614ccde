"""The catalog engine's scale pieces: log packs, index snapshots and the LIST-based log reader."""
