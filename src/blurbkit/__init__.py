"""blurbkit: biomedical language models from vocabulary to BLURB score.

The small public API (heavier parts import lazily):

    import blurbkit
    records = blurbkit.load_split("bc5chem", "test", data="../shared/data")
    result = blurbkit.evaluate("bc5chem", "test", predictions_path, data="../shared/data")
    blurbkit.blurb_score({"bc5chem": 93.33, ...})

Type checkers and editors read the names from `__init__.pyi`.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_split": "blurbkit.data.load",
    "evaluate": "blurbkit.scoring",
    "blurb_score": "blurbkit.tasks.blurb_score",
    "finetune": "blurbkit.train.api",
    "Predictor": "blurbkit.inference.predictor",
    "Pipeline": "blurbkit.inference.pipeline",
    "BlurbkitError": "blurbkit.errors",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'blurbkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(__all__) | {name for name in globals() if name.startswith("__")})  # not Any, annotations
