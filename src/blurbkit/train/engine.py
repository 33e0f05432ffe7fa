"""The one fine-tuning engine for every BLURB task: a loop you can read.

Train:   AdamW, linear warm-up over the first 10% of steps then linear decay to 0, gradient
         clipping, bf16 autocast where the hardware has it (fp32 master weights),
         length-grouped batches; dev metric after every epoch; the best epoch's weights kept.
Predict: inference/runner.py (the same loop `Predictor` uses); the task's label codec turns head
         outputs into predictions, scored by the official metric.
The engine reads resolved `Hyperparams` and `RuntimeSettings` (train/config.py), nothing else.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from blurbkit.inference.runner import InferenceRunner
from blurbkit.models.encoding import Encoded
from blurbkit.models.model import BlurbModel
from blurbkit.runtime.attention import cpu_attention
from blurbkit.runtime.batching import grouped_batches, shuffled_batches
from blurbkit.runtime.dropout import fast_dropout
from blurbkit.runtime.optim import adamw, parameter_groups, slanted_triangular
from blurbkit.runtime.precision import maybe_compile
from blurbkit.runtime.settings import RuntimeSettings
from blurbkit.scoring import score_predictions
from blurbkit.tasks.registry import DatasetSpec
from blurbkit.train.config import Hyperparams
from blurbkit.train.stabilise import encoder_layers

LOG_EVERY = 20  # steps between loss read-outs (each one waits for the device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class TrainResult:
    best_epoch: int
    dev_history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    train_examples_per_second: float = 0.0
    steps: int = 0


def build_optimizer(
    model: torch.nn.Module, lr: float, weight_decay: float, fused: bool = True, layer_decay: float | None = None
) -> torch.optim.Optimizer:
    """AdamW over the model's trainable parameters (runtime/optim.py); with `layer_decay` d, block l
    from the top of the encoder trains at lr * d**l."""
    num_layers = len(encoder_layers(model.encoder)) if layer_decay else 0
    groups = parameter_groups(model.named_parameters(), lr, weight_decay, layer_decay, num_layers)
    return adamw(groups, lr, fused=fused)


class Engine:
    def __init__(self, model: BlurbModel, tokenizer: Any, codec: Any, spec: DatasetSpec, hyper: Hyperparams,
                 settings: RuntimeSettings, seed: int = 0) -> None:
        self.model, self.tokenizer, self.codec, self.spec = model, tokenizer, codec, spec
        self.hyper, self.settings, self.seed = hyper, settings, seed
        self.runner = InferenceRunner(model, tokenizer, settings)
        self.loss = maybe_compile(self.model.loss, settings.compile)  # train: the head's loss

    @property
    def device(self) -> torch.device:
        return self.runner.device

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype (None: fp32), as the runner chose it for this hardware."""
        return self.runner.dtype

    def predict(self, data: Encoded, desc: str = "predict") -> Any:
        """Predictions for a split, in the evaluate format of its task."""
        return self.codec.collect(data.records, data.examples, self.runner.outputs(data, desc))

    def score(self, data: Encoded, split: str) -> dict[str, Any]:
        predictions = self.predict(data, desc=f"eval {split}")
        result = score_predictions(self.spec, list(data.records), predictions)
        result["split"] = split
        return result | {"_predictions": predictions}

    def train(self, train: Encoded, dev: Encoded | None, on_epoch: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
        """Fine-tune on `train`, scoring `dev` after each epoch and keeping the best epoch."""
        cpu = self.device.type == "cpu"
        self.runner.cpu_settings()
        with (
            cpu_attention(self.model.encoder) if self.settings.cpu_attention else nullcontext(),
            fast_dropout(self.model, self.seed) if cpu and self.settings.fast_dropout else nullcontext(),
        ):
            try:
                return self._train(train, dev, on_epoch)
            finally:
                self.runner.weights_changed()  # the weights moved, even if training was interrupted

    def _train(self, train: Encoded, dev: Encoded | None, on_epoch: Callable[[dict[str, Any]], None] | None) -> TrainResult:
        hyper, settings, model = self.hyper, self.settings, self.model
        rng = random.Random(self.seed)
        steps_per_epoch = math.ceil(len(train.examples) / hyper.batch_size)
        total = steps_per_epoch * hyper.epochs
        optimizer = build_optimizer(model, hyper.lr, hyper.weight_decay, fused=settings.fused_optimizer, layer_decay=hyper.layer_decay)
        scheduler = slanted_triangular(optimizer, total, hyper.warmup_ratio)
        params = [p for p in model.parameters() if p.requires_grad]
        # fp16 (GPUs without bf16) needs loss scaling; for bf16 and fp32 the scaler passes through.
        scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        padded = train.padded_with(self.tokenizer.pad_token_id)
        result = TrainResult(best_epoch=hyper.epochs)
        best_score, best_state = -math.inf, None
        progress = tqdm(total=total, desc=f"{self.spec.name} seed {self.seed}", disable=not settings.progress, unit="step")
        for epoch in range(1, hyper.epochs + 1):
            model.train()
            started = time.perf_counter()
            running = torch.zeros((), device=self.device)
            if settings.group_by_length:
                order = grouped_batches(train.examples, hyper.batch_size, rng)
            else:
                order = shuffled_batches(len(train.examples), hyper.batch_size, rng)
            for step, indices in enumerate(order, start=1):
                batch = self.runner.to_device(padded.batch(indices))
                with self.runner.autocast():
                    loss = self.loss(batch)
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, hyper.max_grad_norm, foreach=True)
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
            self.runner.weights_changed()  # fused AdamW moves the weights without moving their version counters
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
                best_state = copy.deepcopy(model.state_dict()) if epoch < hyper.epochs else None
        progress.close()
        if best_state is not None and result.best_epoch != hyper.epochs:
            model.load_state_dict(best_state)
        result.train_examples_per_second = len(train.examples) * hyper.epochs / max(result.train_seconds, 1e-9)
        return result
