"""The one fine-tuning engine for every BLURB task: a loop you can read.

Train:   AdamW, linear warm-up over the first 10% of steps then linear decay to 0, gradient
         clipping, bf16 autocast where the hardware has it (fp32 master weights),
         length-grouped batches; dev metric after every epoch; the best epoch's weights kept; with
         `patience`, training stops once dev has not improved for that many epochs, not before
         `min_epochs` (the schedule stays the one of all `epochs`: early stopping cuts it).
Resume:  with `Checkpoints` (train/checkpoint.py) the loop's whole state is saved at every epoch's
         end and every N steps, and a killed run continues from it to the same last digit. A NaN or
         infinite loss stops the run (checked wherever the loop syncs with the device anyway).
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

from blurbkit.errors import BlurbkitError
from blurbkit.inference.runner import InferenceRunner
from blurbkit.models.encoding import Encoded
from blurbkit.models.model import BlurbModel
from blurbkit.runtime.adversarial import AdversarialConfig, Adversary, embedding_shape
from blurbkit.runtime.attention import cpu_attention
from blurbkit.runtime.batching import grouped_batches, shuffled_batches
from blurbkit.runtime.dropout import MaskSource, fast_dropout
from blurbkit.runtime.optim import adamw, parameter_groups, slanted_triangular
from blurbkit.runtime.precision import maybe_compile
from blurbkit.runtime.settings import RuntimeSettings
from blurbkit.scoring import score_predictions
from blurbkit.tasks.registry import DatasetSpec
from blurbkit.testhook import kill_point
from blurbkit.train.checkpoint import Checkpoints, Loop
from blurbkit.train.config import Hyperparams
from blurbkit.train.heartbeat import Heartbeat
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
    # each epoch's share (kept in checkpoints; an epoch resumed mid-way counts its resumed part only);
    # the first holds the run's one-time warm-up (lazy optimizer state, kernels built for new shapes)
    epoch_train_seconds: list[float] = field(default_factory=list)
    # the token positions those seconds computed (rows x the longest row, per batch): cost plans time a
    # token position, since a 64-example calibration's few batches pad far more than a full run's
    epoch_padded_tokens: list[int] = field(default_factory=list)
    train_cpu_seconds: float = 0.0  # CPU time of the process in the same spans (speed benchmarks on a shared machine)
    train_examples_per_second: float = 0.0
    steps: int = 0
    epochs_run: int = 0  # fewer than the epochs asked for when dev-based early stopping ended the run


def build_optimizer(
    model: torch.nn.Module, lr: float, weight_decay: float, fused: bool = True, layer_decay: float | None = None,
    bias_correction: bool = True,
) -> torch.optim.Optimizer:
    """AdamW over the model's trainable parameters (runtime/optim.py); with `layer_decay` d, block l
    from the top of the encoder trains at lr * d**l; without `bias_correction`, BERT's original Adam."""
    num_layers = len(encoder_layers(model.encoder)) if layer_decay else 0
    groups = parameter_groups(model.named_parameters(), lr, weight_decay, layer_decay, num_layers)
    return adamw(groups, lr, fused=fused, bias_correction=bias_correction)


def adversary(model: BlurbModel, hyper: Hyperparams) -> Adversary | None:
    """The --adversarial perturbation of the encoder's token embeddings (checked), or None."""
    if not hyper.adversarial:
        return None
    config = AdversarialConfig(epsilon=hyper.adv_epsilon, steps=hyper.adv_steps, step_size=hyper.adv_step_size,
                               alpha=hyper.adv_alpha, norm=hyper.adv_norm)
    # The head says what its scores are: one softmax distribution (default) or a sigmoid per label.
    return Adversary(model.encoder.get_input_embeddings(), config, getattr(model.head, "outputs", "categorical"))


class Engine:
    def __init__(self, model: BlurbModel, tokenizer: Any, codec: Any, spec: DatasetSpec, hyper: Hyperparams,
                 settings: RuntimeSettings, seed: int = 0) -> None:
        self.model, self.tokenizer, self.codec, self.spec = model, tokenizer, codec, spec
        self.hyper, self.settings, self.seed = hyper, settings, seed
        self.runner = InferenceRunner(model, tokenizer, settings)
        self.loss = maybe_compile(self.model.loss, settings.compile)  # train: the head's loss
        self.adversary = adversary(model, hyper)
        if self.adversary is not None:
            self.loss = self.adversarial_loss

    def adversarial_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The head's loss + alpha * symmetric KL between clean and embedding-perturbed predictions."""
        model = self.model
        scores, mask = model(batch)
        loss = model.head.loss(scores, batch["labels"], mask)
        mask = mask if mask is not None and mask.shape == scores.shape[:-1] else None
        shape = embedding_shape(batch["input_ids"], self.adversary.embeddings)
        term, _ = self.adversary.loss(lambda: model(batch)[0], scores, shape, mask)
        return loss + term

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

    def train(self, train: Encoded, dev: Encoded | None, on_epoch: Callable[[dict[str, Any]], None] | None = None,
              checkpoints: Checkpoints | None = None, heartbeat: Heartbeat | None = None,
              max_steps: int | None = None) -> TrainResult:
        """Fine-tune on `train`, scoring `dev` after each epoch and keeping the best epoch; with
        `checkpoints`, save the loop's state as it goes (and resume from it, when asked); with
        `heartbeat`, keep the run's position readable from outside (train/heartbeat.py); with
        `max_steps`, stop after that many optimizer steps (the schedule spans them), inside an epoch
        if need be."""
        cpu = self.device.type == "cpu"
        self.runner.cpu_settings()
        with (
            cpu_attention(self.model.encoder) if self.settings.cpu_attention else nullcontext(),
            fast_dropout(self.model, self.seed) if cpu and self.settings.fast_dropout else nullcontext() as masks,
        ):
            try:
                return self._train(train, dev, on_epoch, checkpoints, masks, heartbeat, max_steps)
            finally:
                self.runner.weights_changed()  # the weights moved, even if training was interrupted

    def _train(self, train: Encoded, dev: Encoded | None, on_epoch: Callable[[dict[str, Any]], None] | None,
               checkpoints: Checkpoints | None, masks: MaskSource | None, heartbeat: Heartbeat | None,
               max_steps: int | None) -> TrainResult:
        hyper, settings, model = self.hyper, self.settings, self.model
        steps_per_epoch = math.ceil(len(train.examples) / hyper.batch_size)
        total = steps_per_epoch * hyper.epochs if max_steps is None else min(max_steps, steps_per_epoch * hyper.epochs)
        optimizer = build_optimizer(model, hyper.lr, hyper.weight_decay, fused=settings.fused_optimizer,
                                    layer_decay=hyper.layer_decay, bias_correction=hyper.bias_correction)
        params = [p for p in model.parameters() if p.requires_grad]
        # fp16 (GPUs without bf16) needs loss scaling; for bf16 and fp32 the scaler passes through.
        scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        loop = Loop(model, optimizer, slanted_triangular(optimizer, total, hyper.warmup_ratio), scaler,
                    order_rng=random.Random(self.seed), masks=masks, result=TrainResult(best_epoch=hyper.epochs))
        if checkpoints is not None and checkpoints.restore(loop):  # resumed: model, optimizer, RNGs, position
            self.runner.weights_changed()
        result, padded = loop.result, train.padded_with(self.tokenizer.pad_token_id)
        heap = self.runner.heap  # the tuned CPU heap's guard (runtime/allocator.py), None elsewhere
        progress = tqdm(total=total, initial=result.steps, desc=f"{self.spec.name} seed {self.seed}",
                        disable=not settings.progress, unit="step")
        if heartbeat is not None:  # a resumed run reports its last dev score from the start
            heartbeat.dev = result.dev_history[-1]["score"] if result.dev_history else None
            heartbeat.begin(result.steps, total, min(loop.epoch, hyper.epochs), hyper.epochs)
        for epoch in range(loop.epoch, hyper.epochs + 1):
            if self._patience_ran_out(dev, result, epoch - 1):  # checked here too: a resumed run may be done
                break
            loop.epoch = epoch
            model.train()
            started, cpu = time.perf_counter(), time.process_time()
            running = torch.zeros((), device=self.device)
            bad_step = torch.zeros((), dtype=torch.long, device=self.device)  # first step of a non-finite loss
            if loop.order is None:
                if settings.group_by_length:
                    loop.order = grouped_batches(train.examples, hyper.batch_size, loop.order_rng)
                else:
                    loop.order = shuffled_batches(len(train.examples), hyper.batch_size, loop.order_rng)
            order = loop.order
            last = min(len(order), loop.step + total - result.steps)  # the epoch's last step (max_steps: maybe inside it)
            timed_tokens = padded.padded_tokens(order[loop.step:last])
            for step in range(loop.step + 1, last + 1):
                batch = self.runner.to_device(padded.batch(order[step - 1]))
                with self.runner.autocast():
                    loss = self.loss(batch)
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, hyper.max_grad_norm, foreach=True)
                scaler.step(optimizer)
                scaler.update()
                loop.scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                running += loss.detach()
                bad_step = torch.where((bad_step == 0) & ~torch.isfinite(loss.detach()), step, bad_step)
                loop.step = step
                result.steps += 1
                progress.update(1)
                if heartbeat is not None:
                    heartbeat.step(result.steps, epoch)
                if step % LOG_EVERY == 0 or step == last:  # the only host syncs in the loop
                    self._check_finite(int(bad_step), loop, train, checkpoints)
                    progress.set_postfix(epoch=epoch, loss=f"{running.item() / (step % LOG_EVERY or LOG_EVERY):.4f}")
                    running.zero_()
                if heap is not None:
                    heap.check()
                if checkpoints is not None and checkpoints.due(result.steps):
                    self._check_finite(int(bad_step), loop, train, checkpoints)  # never save broken weights
                    checkpoints.save(loop)
                kill_point(f"step:{result.steps}")
            elapsed = time.perf_counter() - started  # dev evaluation not counted
            result.train_seconds += elapsed
            result.epoch_train_seconds.append(round(elapsed, 3))
            result.epoch_padded_tokens.append(timed_tokens)
            if heartbeat is not None:  # the epoch's last steps, before a dev evaluation (or test) that reports nothing
                heartbeat.step(result.steps, epoch, force=True)
            result.train_cpu_seconds += time.process_time() - cpu
            self.runner.weights_changed()  # fused AdamW moves the weights without moving their version counters
            if dev is not None:
                scored = self.score(dev, "dev")
                scored.pop("_predictions")
                scored["epoch"] = epoch
                kill_point(f"eval:{epoch}")
                result.dev_history.append(scored)
                if on_epoch:
                    on_epoch(scored)
                if heartbeat is not None:
                    heartbeat.scored(result.steps, epoch, scored["score"])
                if scored["score"] > loop.best_score:
                    loop.best_score, result.best_epoch = scored["score"], epoch
                    # The last epoch's weights are already in the model: no copy needed (nor with
                    # --last-epoch, which scores those whatever the best epoch was).
                    keep = epoch < hyper.epochs and not hyper.last_epoch
                    loop.best_state = copy.deepcopy(model.state_dict()) if keep else None
            if heap is not None:  # and once an epoch, whatever the memory: one release per epoch is cheap
                heap.release()
            loop.epoch, loop.step, loop.order = epoch + 1, 0, None
            if checkpoints is not None:
                checkpoints.save(loop)
            if result.steps >= total:
                break
        progress.close()
        result.epochs_run = min(loop.epoch - 1, hyper.epochs)
        if loop.best_state is not None and result.best_epoch != hyper.epochs and not hyper.last_epoch:
            model.load_state_dict(loop.best_state)
        # Stopped inside an epoch (max_steps): only its batches trained.
        trained = min(len(train.examples) * result.epochs_run, result.steps * hyper.batch_size)
        result.train_examples_per_second = trained / max(result.train_seconds, 1e-9)
        return result

    def _patience_ran_out(self, dev: Encoded | None, result: TrainResult, epoch: int) -> bool:
        """Early stopping: dev has not improved on the best epoch for `patience` epochs after `epoch`
        (never before `min_epochs` have run)."""
        patience = self.hyper.patience
        if patience is None or dev is None or epoch < max(1, self.hyper.min_epochs or 0) or not result.dev_history:
            return False
        return epoch - result.best_epoch >= patience

    def _check_finite(self, bad_step: int, loop: Loop, train: Encoded, checkpoints: Checkpoints | None) -> None:
        """One line naming the first step whose loss was NaN or infinite, and its batch."""
        if not bad_step:
            return
        indices = loop.order[bad_step - 1]
        records = [train.examples[i].get("record_index", i) for i in indices]
        ids = [train.records[r].get("id", r) if isinstance(r, int) and r < len(train.records) else r for r in records]
        global_step = loop.result.steps - (loop.step - bad_step)
        saved = checkpoints is not None and checkpoints.root.is_dir()
        kept = f"the last good checkpoint is kept in {checkpoints.root}" if saved else "no checkpoint was written"
        raise BlurbkitError(f"{self.spec.name} seed {self.seed}: the training loss is not finite (NaN or inf) at epoch "
                            f"{loop.epoch}, step {bad_step} of {len(loop.order)} (optimizer step {global_step}), "
                            f"batch of train examples {indices} (records {ids}); try a lower --lr; {kept}")
