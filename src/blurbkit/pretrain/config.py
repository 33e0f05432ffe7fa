"""What a pretraining run is: its settings (`PretrainConfig`, the CLI's flags), the model presets
(presets.toml) or a BERT config file for training from scratch, and the model + tokenizer a run
starts from (a new model of a preset, or an --init model with its own vocabulary)."""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from blurbkit.errors import BlurbkitError
from blurbkit.pretrain.objectives import Objective


@dataclass
class PretrainConfig:
    corpus: list[str]
    out: str
    tokenizer: str | None = None
    from_scratch: str | None = None  # preset name or BERT config JSON
    init: str | None = None  # model dir for continual pretraining
    max_length: int = 128
    batch_size: int = 32  # per process, per micro-batch
    grad_accum: int = 1
    lr: float = 6e-4
    warmup: float = 0.1  # fraction of steps (<1) or a step count (>=1)
    weight_decay: float = 0.01
    adam_eps: float = 1e-6
    betas: tuple[float, float] = (0.9, 0.98)
    max_grad_norm: float = 1.0
    max_steps: int | None = None
    epochs: float = 1.0
    mask_rate: float = 0.15
    masking: str = "whole-word"  # or "subword"
    mask_schedule: bool = False
    objective: str = "mlm"  # a name in objectives.OBJECTIVES: mlm, mlm_nsp, electra
    generator_size: float = 0.25  # electra: the generator's width as a fraction of the discriminator's
    rtd_weight: float = 50.0  # electra: weight of the replaced-token detection loss
    adversarial: bool = False  # ALUM-style embedding perturbation + symmetric KL (runtime/adversarial.py)
    adv_epsilon: float = 1e-5
    adv_steps: int = 1
    adv_step_size: float = 1e-3
    adv_alpha: float = 10.0  # ALUM's weight for pretraining
    adv_norm: str = "inf"  # ALUM's L-infinity ball ("l2": each token's norm)
    nsp: bool = False  # legacy spelling of objective="mlm_nsp"
    packing: bool = True
    seed: int = 42
    save_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    resume: bool = True
    max_minutes: float | None = None
    stop_after: int | None = None  # simulate an interruption (tests) after this many steps
    max_docs: int | None = None
    cache_dir: str | None = None  # tokenised corpus cache (default OUT/data)
    mixed_precision: str = "auto"  # auto = bf16 where the hardware runs it fast (fp16 on older GPUs), else fp32
    tune_allocator: bool = True  # CPU: keep freed activations in glibc's heap (runtime/allocator.py; +46 % tokens/s on mini)
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def presets() -> dict[str, dict[str, Any]]:
    text = resources.files("blurbkit.pretrain").joinpath("presets.toml").read_text("utf-8")
    return tomllib.loads(text)


# the architecture's sizes: a config with 0 or -1 layers loads, then builds an encoder with no blocks
SIZES = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "max_position_embeddings")


def build_config(spec: str, vocab_size: int, max_length: int, tokenizer):
    """A BertConfig from a preset name or a config JSON file; vocabulary size from the tokenizer."""
    from transformers import BertConfig

    from blurbkit.models.loading import error_line, load_errors

    table = presets()
    if spec in table:
        values = dict(table[spec])
    else:
        path = Path(spec)
        if not path.is_file():
            raise BlurbkitError(f"--from-scratch {spec!r} is neither a preset ({', '.join(table)}) nor a config JSON file")
        try:
            values = json.loads(path.read_text("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise BlurbkitError(f"not valid JSON ({err})", path=path) from None
        if not isinstance(values, dict):
            raise BlurbkitError("expected a JSON object (a BERT config)", path=path)
        if values.get("model_type", "bert") != "bert":
            raise BlurbkitError(f"only BERT configs are supported from scratch (model_type {values.get('model_type')!r})", path=path)
        values.pop("model_type", None)
        values.pop("architectures", None)
    if values.get("vocab_size") not in (None, vocab_size):
        raise BlurbkitError(f"config vocab_size {values['vocab_size']} does not match the tokenizer's {vocab_size} entries")
    values["vocab_size"] = vocab_size
    values.setdefault("max_position_embeddings", max(512, max_length))
    values["pad_token_id"] = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    source = None if spec in table else Path(spec)
    try:
        config = BertConfig(**values)
    except load_errors() + (TypeError,) as err:
        raise BlurbkitError(f"not a usable BERT config ({error_line(err)})", path=source) from None
    for name in SIZES:
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise BlurbkitError(f"{name} is {value!r}; it must be a whole number of at least 1", path=source)
    if config.hidden_size % config.num_attention_heads:
        raise BlurbkitError(f"hidden_size {config.hidden_size} is not a multiple of num_attention_heads {config.num_attention_heads}")
    return config


def model_and_tokenizer(cfg: PretrainConfig, objective: Objective):
    import torch
    from transformers import AutoConfig

    from blurbkit.models.loading import load_tokenizer, resolve_model_dir

    if (cfg.from_scratch is None) == (cfg.init is None):
        raise BlurbkitError("give exactly one of --from-scratch PRESET|CONFIG.json and --init MODEL_DIR")
    if cfg.init is not None:
        init_dir = resolve_model_dir(cfg.init)
        own = load_tokenizer(init_dir)
        tokenizer = own
        if cfg.tokenizer is not None:
            tokenizer = load_tokenizer_dir(cfg.tokenizer)
            if tokenizer.get_vocab() != own.get_vocab():
                raise BlurbkitError(f"tokenizer {cfg.tokenizer} ({len(tokenizer)} entries) is not the vocabulary of "
                                    f"{init_dir} ({len(own)} entries); continual pretraining keeps the model's own vocabulary")
        config = AutoConfig.from_pretrained(str(init_dir))
        if len(tokenizer) > config.vocab_size:
            raise BlurbkitError(f"tokenizer has {len(tokenizer)} entries but the model's vocab_size is {config.vocab_size}",
                                path=init_dir)
        return objective.load_model(init_dir), tokenizer
    if cfg.tokenizer is None:
        raise BlurbkitError("--from-scratch needs --tokenizer DIR (build one with `blurbkit vocab build`)")
    tokenizer = load_tokenizer_dir(cfg.tokenizer)
    config = build_config(cfg.from_scratch, len(tokenizer), cfg.max_length, tokenizer)
    torch.manual_seed(cfg.seed)
    return objective.new_model(config), tokenizer


def load_tokenizer_dir(path: str):
    from blurbkit.pretrain.vocab import load_any_tokenizer

    return load_any_tokenizer(path)


def config_digest(config) -> str:
    d = config.to_dict()
    for k in ("transformers_version", "_name_or_path", "architectures", "dtype", "torch_dtype"):
        d.pop(k, None)
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]
