# The public API as type checkers and editors see it: __init__.py loads each name on first use
# (a module __getattr__, which they cannot follow). Kept in step with __init__.py's _LAZY.
from blurbkit.data.load import load_split as load_split
from blurbkit.errors import BlurbkitError as BlurbkitError
from blurbkit.inference.pipeline import Pipeline as Pipeline
from blurbkit.inference.predictor import Predictor as Predictor
from blurbkit.scoring import evaluate as evaluate
from blurbkit.tasks.blurb_score import blurb_score as blurb_score
from blurbkit.train.api import finetune as finetune

__version__: str
__all__ = ["BlurbkitError", "Pipeline", "Predictor", "blurb_score", "evaluate", "finetune", "load_split"]

def __dir__() -> list[str]: ...
