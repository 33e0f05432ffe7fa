"""Randomly initialised BERTs built from a config: tiny ones for tests and smoke runs (seconds, not
minutes), and full-size ones (`RANDOM_PRESETS`, e.g. BERT-base) for timing where no pretrained
weights of that size are available locally. Their predictions mean nothing; their cost is real."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from blurbkit.errors import BlurbkitError
from blurbkit.fileio import atomic_dir
from blurbkit.models.loading import default_model_dir

# name -> (hidden size, layers, attention heads, intermediate size): the published architectures.
RANDOM_PRESETS = {
    "bert-base-random": (768, 12, 12, 3072),
    "bert-large-random": (1024, 24, 16, 4096),
}
RANDOM_MARKER = "RANDOM_INIT.json"  # says what the directory is, for anyone who finds it later


def build_random_bert(out_dir: str | Path, hidden: int, layers: int, heads: int, intermediate: int,
                      seed: int = 0) -> Path:
    """Write a random BERT (the default MiniLM's uncased 30522-piece vocabulary) as a Hugging Face directory."""
    import torch
    from transformers import BertConfig, BertModel

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    source = default_model_dir()
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (source / name).is_file():
            shutil.copy(source / name, out_dir / name)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        max_position_embeddings=512,
    )
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a "Writing model shards" bar for a file written in a blink
    BertModel(config, add_pooling_layer=False).save_pretrained(out_dir, safe_serialization=True)
    return out_dir


def build_tiny_bert(out_dir: str | Path, hidden: int = 32, layers: int = 2, heads: int = 2, seed: int = 0) -> Path:
    """A tiny random BERT (tests)."""
    return build_random_bert(out_dir, hidden, layers, heads, hidden * 2, seed)


def random_preset_dir(name: str, root: Path, seed: int = 0) -> Path:
    """The directory of preset `name` under `root`, written on first use (a marker file says it is random)."""
    if name not in RANDOM_PRESETS:
        raise BlurbkitError(f"unknown random encoder {name!r} (known: {', '.join(RANDOM_PRESETS)})")
    out = root / f"{name}-seed{seed}"
    if (out / RANDOM_MARKER).is_file():
        return out
    hidden, layers, heads, intermediate = RANDOM_PRESETS[name]
    root.mkdir(parents=True, exist_ok=True)
    with atomic_dir(out) as tmp:  # whole or not at all, and two builders never share a temporary folder
        build_random_bert(tmp, hidden, layers, heads, intermediate, seed)
        (tmp / RANDOM_MARKER).write_text(json.dumps({"preset": name, "seed": seed, "hidden": hidden, "layers": layers,
                                                     "heads": heads, "intermediate": intermediate,
                                                     "weights": "randomly initialised: for timing only"}) + "\n")
    return out


def is_random(model_dir: Path) -> bool:
    return (model_dir / RANDOM_MARKER).is_file()
