"""Tiny randomly initialised BERTs for tests and smoke runs (seconds, not minutes)."""

from __future__ import annotations

import shutil
from pathlib import Path

from blurbkit.models.loading import default_model_dir


def build_tiny_bert(out_dir: str | Path, hidden: int = 32, layers: int = 2, heads: int = 2, seed: int = 0) -> Path:
    """Write a random BERT (default MiniLM vocabulary, tiny hidden size) as a Hugging Face directory."""
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
        intermediate_size=hidden * 2,
        max_position_embeddings=512,
    )
    BertModel(config, add_pooling_layer=False).save_pretrained(out_dir, safe_serialization=True)
    return out_dir
