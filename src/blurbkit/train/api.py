"""The Python face of fine-tuning: ``blurbkit.finetune("bc5chem", out="runs/x", epochs=3)``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from blurbkit.train.config import FinetuneConfig


def finetune(dataset: str, out: str | Path | None = None, **options: Any) -> dict[str, Any]:
    """Fine-tune on one dataset with its default recipe (tasks/datasets.toml; any option overrides it) and return the
    run's metrics: ``test`` and ``dev`` (each the official metric's dict, ``score`` a fraction),
    ``best_epoch``, ``train_seconds``, ``train_examples_per_second``, ``precision``, ``notes`` (what
    the run changed or found in the data, e.g. BUDGET RUN) and the counts. With ``out`` the run
    directory holds the model (``out/model``, for `Predictor.load`), the predictions and run.json.
    The options are those of ``blurbkit finetune`` by their Python names (``max_train_examples=500``,
    ``layer_decay=0.9``, ``threads=1``, ...; the full list in train/config.py's parts)."""
    from blurbkit.errors import BlurbkitError
    from blurbkit.train.run import run_finetune

    if out is not None and str(out) == "":  # Path("") is the current folder
        raise BlurbkitError("out '': give a run directory (or None to keep nothing on disk)")
    return run_finetune(FinetuneConfig(dataset=dataset, out=None if out is None else Path(out), **options))
