"""The one fine-tuning engine for every BLURB task: a loop you can read.

Prepare: records -> TransformInput -> examples (tokenised once), gold labels attached.
Train:   AdamW, linear warm-up over the first 10% of steps then linear decay to 0, gradient
         clipping, bf16 autocast where the hardware has it (fp32 master weights),
         length-grouped batches; dev metric after every epoch; the best epoch's weights kept.
Predict: length-sorted batches under inference_mode, the last layer only for the rows the
         featurizer reads; windows merged back into words.
"""

from __future__ import annotations

import copy
import math
import random
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from blurbkit.models import encode_cache
from blurbkit.models.last_layer import rows_only_last_layer
from blurbkit.models.model import BlurbModel, ModelRecipe
from blurbkit.models.transforms import TRANSFORMS, TransformContext
from blurbkit.runtime.allocator import tune_allocator
from blurbkit.runtime.attention import cpu_attention
from blurbkit.runtime.batching import PaddedSplit, grouped_batches, shuffled_batches, sorted_batches
from blurbkit.runtime.dropout import fast_dropout
from blurbkit.runtime.optim import adamw, parameter_groups, slanted_triangular
from blurbkit.runtime.precision import Bf16Twin, autocast_dtype, maybe_compile
from blurbkit.scoring import score_predictions
from blurbkit.tasks.registry import DatasetSpec
from blurbkit.train.adapters import TaskAdapter
from blurbkit.train.config import FinetuneConfig
from blurbkit.train.stabilise import encoder_layers

LOG_EVERY = 20  # steps between loss read-outs (each one waits for the device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class Encoded:
    """A split after TransformInput: the records and their encoder-ready examples."""

    records: Sequence[dict]
    examples: list[dict]
    padded: PaddedSplit | None = None  # the examples as tensors, built on first use


@dataclass
class TrainResult:
    best_epoch: int
    dev_history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    train_examples_per_second: float = 0.0
    steps: int = 0


def encode(
    records: Sequence[dict], adapter: TaskAdapter, recipe: ModelRecipe, tokenizer: Any, labelled: bool = True, cache: bool = False
) -> Encoded:
    """TransformInput over a split. cache: reuse (and keep) the tokenised examples on disk."""
    transform = TRANSFORMS.get(recipe.transform)
    key = encode_cache.cache_key(records, transform, recipe.max_length, tokenizer) if cache else None
    examples = encode_cache.load(key) if key else None
    if examples is None:
        examples = transform(records, TransformContext(tokenizer=tokenizer, max_length=recipe.max_length))
        if key:
            encode_cache.store(key, examples)
    if labelled:
        adapter.attach_labels(records, examples)
    return Encoded(records, examples)


def build_optimizer(
    model: torch.nn.Module, lr: float, weight_decay: float, fused: bool = True, layer_decay: float | None = None
) -> torch.optim.Optimizer:
    """AdamW over the model's trainable parameters (runtime/optim.py); with `layer_decay` d, block l
    from the top of the encoder trains at lr * d**l."""
    num_layers = len(encoder_layers(model.encoder)) if layer_decay else 0
    groups = parameter_groups(model.named_parameters(), lr, weight_decay, layer_decay, num_layers)
    return adamw(groups, lr, fused=fused)


class Engine:
    def __init__(self, model: BlurbModel, tokenizer: Any, adapter: TaskAdapter, spec: DatasetSpec, config: FinetuneConfig) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.adapter = adapter
        self.spec = spec
        self.config = config
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = autocast_dtype(config.precision, self.device)
        if config.threads:
            torch.set_num_threads(config.threads)
        self.model.to(self.device)
        self.forward = maybe_compile(self.model, config.compile)  # eval: (scores, mask)
        self.loss = maybe_compile(self.model.loss, config.compile)  # train: the head's loss
        self._bf16 = Bf16Twin()  # the encoder copy CPU inference runs on
        self._predicting = threading.Lock()  # predict swaps parts of the model in and out: one call at a time

    def _cpu_settings(self) -> None:
        if self.device.type == "cpu" and self.config.tune_allocator:
            tune_allocator()

    def _inference_model(self) -> BlurbModel:
        """What predictions run on: on a CPU under bf16 autocast, a bf16 twin (runtime/precision.py)."""
        cpu_bf16 = self.device.type == "cpu" and self.dtype == torch.bfloat16
        if not (cpu_bf16 and self.config.bf16_inference) or self.config.compile:
            return self.model
        return self._bf16.of(self.model)

    def _autocast(self):
        if self.dtype is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self.dtype)

    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self.device.type == "cpu":
            return batch
        return {k: v.pin_memory().to(self.device, non_blocking=True) for k, v in batch.items()}

    def default_eval_tokens(self) -> int:
        # On a CPU, batches of ~2k padded tokens keep the attention scores in cache (Predictor on
        # BC5-chem, median of 4: 2048 gave 8% more sentences/s than 4096, 25% more than 16384,
        # re-measured with the allocator tuned); GPUs want big ones.
        return 2048 if self.device.type == "cpu" else 16384

    def _padded(self, data: Encoded) -> PaddedSplit:
        """The split's examples as tensors, padded once and kept with the split."""
        if data.padded is None or len(data.padded) != len(data.examples):
            data.padded = PaddedSplit(data.examples, self.tokenizer.pad_token_id)
        return data.padded

    def predict(self, data: Encoded, desc: str = "predict") -> Any:
        """Predictions for a split, in the evaluate format of its task."""
        with self._predicting:
            return self._predict(data, desc)

    def _predict(self, data: Encoded, desc: str) -> Any:
        self._cpu_settings()
        self.model.eval()
        model = self._inference_model()
        forward = self.forward if model is self.model else model
        outputs: list[Any] = [None] * len(data.examples)
        padded = self._padded(data)
        batches = sorted_batches(data.examples, self.config.eval_tokens or self.default_eval_tokens())
        cpu_fast = self.device.type == "cpu" and self.config.cpu_attention
        rows_only = self.config.last_layer_rows and not self.config.compile and hasattr(model.featurizer, "rows")
        with (
            torch.inference_mode(),
            self._autocast(),
            cpu_attention(model.encoder) if cpu_fast else nullcontext(),
            rows_only_last_layer(model.encoder) if rows_only else nullcontext() as last_layer,
        ):
            for indices in tqdm(batches, desc=desc, leave=False, disable=not self.config.progress):
                batch = self._to_device(padded.batch(indices))
                if last_layer is not None:  # the last layer computes only the rows the featurizer reads
                    last_layer.rows = model.featurizer.rows(batch)
                scores, mask = forward(batch)
                scores, mask = scores.float().cpu(), None if mask is None else mask.cpu()  # one copy, not one per row
                for i, out in zip(indices, self.model.head.predict(scores, mask), strict=True):
                    outputs[i] = out
        return self.adapter.collect(data.records, data.examples, outputs)

    def score(self, data: Encoded, split: str) -> dict[str, Any]:
        predictions = self.predict(data, desc=f"eval {split}")
        result = score_predictions(self.spec, list(data.records), predictions)
        result["split"] = split
        return result | {"_predictions": predictions}

    def train(
        self,
        train: Encoded,
        dev: Encoded | None,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
    ) -> TrainResult:
        """Fine-tune on `train`, scoring `dev` after each epoch and keeping the best epoch."""
        cpu = self.device.type == "cpu"
        self._cpu_settings()
        with (
            cpu_attention(self.model.encoder) if self.config.cpu_attention else nullcontext(),
            fast_dropout(self.model, self.config.seed) if cpu and self.config.fast_dropout else nullcontext(),
        ):
            try:
                return self._train(train, dev, on_epoch)
            finally:
                self._bf16.drop()  # the weights moved, even if training was interrupted

    def _train(self, train: Encoded, dev: Encoded | None, on_epoch: Callable[[dict[str, Any]], None] | None) -> TrainResult:
        config, spec, model = self.config, self.spec, self.model
        lr = config.lr or spec.recipe.lr
        batch_size = config.batch_size or spec.recipe.batch_size
        epochs = config.epochs or spec.recipe.epochs
        rng = random.Random(config.seed)
        steps_per_epoch = math.ceil(len(train.examples) / batch_size)
        total = steps_per_epoch * epochs
        optimizer = build_optimizer(model, lr, config.weight_decay, fused=config.fused_optimizer, layer_decay=config.layer_decay)
        scheduler = slanted_triangular(optimizer, total, config.warmup_ratio)
        params = [p for p in model.parameters() if p.requires_grad]
        # fp16 (GPUs without bf16) needs loss scaling; for bf16 and fp32 the scaler passes through.
        scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        padded = self._padded(train)
        result = TrainResult(best_epoch=epochs)
        best_score, best_state = -math.inf, None
        progress = tqdm(total=total, desc=f"{spec.name} seed {config.seed}", disable=not config.progress, unit="step")
        for epoch in range(1, epochs + 1):
            model.train()
            started = time.perf_counter()
            running = torch.zeros((), device=self.device)
            if config.group_by_length:
                order = grouped_batches(train.examples, batch_size, rng)
            else:
                order = shuffled_batches(len(train.examples), batch_size, rng)
            for step, indices in enumerate(order, start=1):
                batch = self._to_device(padded.batch(indices))
                with self._autocast():
                    loss = self.loss(batch)
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm, foreach=True)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                running += loss.detach()
                result.steps += 1
                progress.update(1)
                if step % LOG_EVERY == 0 or step == len(order):  # the only host sync in the loop
                    progress.set_postfix(epoch=epoch, loss=f"{running.item() / (step % LOG_EVERY or LOG_EVERY):.4f}")
                    running.zero_()
            result.train_seconds += time.perf_counter() - started  # dev evaluation not counted
            self._bf16.drop()  # fused AdamW moves the weights without moving their version counters
            if dev is None:
                continue
            scored = self.score(dev, "dev")
            scored.pop("_predictions")
            scored["epoch"] = epoch
            result.dev_history.append(scored)
            if on_epoch:
                on_epoch(scored)
            if scored["score"] > best_score:
                best_score, result.best_epoch = scored["score"], epoch
                # The last epoch's weights are already in the model: no copy needed.
                best_state = copy.deepcopy(model.state_dict()) if epoch < epochs else None
        progress.close()
        if best_state is not None and result.best_epoch != epochs:
            model.load_state_dict(best_state)
        result.train_examples_per_second = len(train.examples) * epochs / max(result.train_seconds, 1e-9)
        return result
