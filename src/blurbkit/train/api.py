"""The Python face of fine-tuning: ``blurbkit.finetune("bc5chem", out="runs/x", epochs=3)``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from blurbkit.train.config import FinetuneConfig


def finetune(dataset: str, out: str | Path | None = None, **options: Any) -> dict[str, Any]:
    """Fine-tune on one dataset and return its metrics (see FinetuneConfig for the options)."""
    from blurbkit.errors import BlurbkitError
    from blurbkit.train.run import run_finetune

    if out is not None and str(out) == "":  # Path("") is the current folder
        raise BlurbkitError("out '': give a run directory (or None to keep nothing on disk)")
    return run_finetune(FinetuneConfig(dataset=dataset, out=None if out is None else Path(out), **options))
