"""The results store's name for an encoder (a key field of every stored run). Here, not beside the
model loading, so that reading a store (the report, `compare`) needs no torch."""

from __future__ import annotations

from pathlib import Path

DEFAULT_STORE_LABEL = "default (MiniLM-L6-H384)"


def store_label(model: str | Path | None) -> str:
    """The results store's name for an encoder: the embedded default, or the model directory's absolute path."""
    # `--model default` is the embedded encoder (resolve_model_dir), not a folder named "default".
    return DEFAULT_STORE_LABEL if model is None or str(model) == "default" else str(Path(model).resolve())
