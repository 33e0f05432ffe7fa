"""The prediction loop every evaluation and every `Predictor` call runs: length-sorted batches under
inference_mode, on a bf16 copy of the encoder where the CPU runs bf16 natively, the last layer
only for the rows the featurizer reads. Returns the head's outputs, one per example; the task's
label codec turns them into predictions."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch
from tqdm.auto import tqdm

from blurbkit.models.encoding import Encoded
from blurbkit.models.last_layer import rows_only_last_layer
from blurbkit.models.model import BlurbModel
from blurbkit.runtime.allocator import HeapGuard, tune_allocator
from blurbkit.runtime.attention import cpu_attention
from blurbkit.runtime.batching import sorted_batches
from blurbkit.runtime.capability import torch_threads
from blurbkit.runtime.precision import Bf16Twin, autocast, autocast_dtype, maybe_compile, pick_device
from blurbkit.runtime.settings import RuntimeSettings


class InferenceRunner:
    """Runs a model's forward pass over encoded splits with the runtime settings' speed choices."""

    def __init__(self, model: BlurbModel, tokenizer: Any, settings: RuntimeSettings,
                 backend: Callable[[dict[str, torch.Tensor]], tuple[torch.Tensor, torch.Tensor | None]] | None = None) -> None:
        """backend: another implementation of the model's forward pass (e.g. inference/onnx.py's
        OnnxForward); the torch model still decodes its scores."""
        self.model, self.tokenizer, self.settings = model, tokenizer, settings
        self.backend = backend
        self.device = pick_device()
        self.dtype = autocast_dtype(settings.precision, self.device)
        self.model.to(self.device)
        self.forward = maybe_compile(self.model, settings.compile)  # (scores, mask)
        self._bf16 = Bf16Twin()  # the encoder copy CPU inference runs on
        self._predicting = threading.Lock()  # predict swaps parts of the model in and out: one call at a time
        # The tuned CPU heap keeps what it frees; the guard hands it back when memory runs short
        # (after every inference batch here, after every optimizer step in the training engine).
        self.heap = HeapGuard() if self.device.type == "cpu" and settings.tune_allocator else None

    def cpu_settings(self) -> None:
        if self.device.type == "cpu" and self.settings.tune_allocator:
            tune_allocator()

    def weights_changed(self) -> None:
        """Training moved the weights: the bf16 copy is stale."""
        self._bf16.drop()

    def autocast(self) -> Any:
        return autocast(self.device, self.dtype)

    def to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self.device.type == "cpu":
            return batch
        return {k: v.pin_memory().to(self.device, non_blocking=True) for k, v in batch.items()}

    def default_eval_tokens(self) -> int:
        # On a CPU, batches of ~2k padded tokens keep the attention scores in cache (Predictor on
        # BC5-chem, median of 4: 2048 gave 8% more sentences/s than 4096, 25% more than 16384,
        # re-measured with the allocator tuned); GPUs want big ones.
        return 2048 if self.device.type == "cpu" else 16384

    def _inference_model(self) -> BlurbModel:
        """What predictions run on: on a CPU under bf16 autocast, a bf16 twin (runtime/precision.py)."""
        cpu_bf16 = self.device.type == "cpu" and self.dtype == torch.bfloat16
        if not (cpu_bf16 and self.settings.bf16_inference) or self.settings.compile:
            return self.model
        return self._bf16.of(self.model)

    def outputs(self, data: Encoded, desc: str = "predict", probabilities: bool = False) -> list[Any]:
        """The head's output for every example of `data`, in order. probabilities: each output is
        ``(prediction, probabilities)`` instead, the probabilities being the softmax over the labels
        of the head's scores (one list per word for word-level heads, one list per example otherwise;
        heads with their own ``probabilities(scores)`` say what theirs are). The predictions are the
        same either way."""
        with self._predicting, torch_threads(self.settings.threads):  # the caller's count is back after
            return self._outputs(data, desc, probabilities)

    def _outputs(self, data: Encoded, desc: str, probabilities: bool = False) -> list[Any]:
        self.cpu_settings()
        self.model.eval()
        if self.backend is not None:
            return self._backend_outputs(data, desc, probabilities)
        model = self._inference_model()
        forward = self.forward if model is self.model else model
        outputs: list[Any] = [None] * len(data.examples)
        padded = data.padded_with(self.tokenizer.pad_token_id)
        batches = sorted_batches(data.examples, self.settings.eval_tokens or self.default_eval_tokens())
        cpu_fast = self.device.type == "cpu" and self.settings.cpu_attention
        rows_only = self.settings.last_layer_rows and not self.settings.compile and hasattr(model.featurizer, "rows")
        with (
            torch.inference_mode(),
            self.autocast(),
            cpu_attention(model.encoder) if cpu_fast else nullcontext(),
            rows_only_last_layer(model.encoder) if rows_only else nullcontext() as last_layer,
        ):
            for indices in tqdm(batches, desc=desc, leave=False, disable=not self.settings.progress):
                batch = self.to_device(padded.batch(indices))
                if last_layer is not None:  # the last layer computes only the rows the featurizer reads
                    last_layer.rows = model.featurizer.rows(batch)
                scores, mask = forward(batch)
                self._decode(indices, scores, mask, outputs, probabilities)
                if self.heap is not None:
                    self.heap.check()
        return outputs

    def _backend_outputs(self, data: Encoded, desc: str, probabilities: bool) -> list[Any]:
        """The same loop with the forward pass of `backend` (its own threads and kernels)."""
        outputs: list[Any] = [None] * len(data.examples)
        padded = data.padded_with(self.tokenizer.pad_token_id)
        with torch.inference_mode():
            for indices in tqdm(sorted_batches(data.examples, self.settings.eval_tokens or self.default_eval_tokens()),
                                desc=desc, leave=False, disable=not self.settings.progress):
                scores, mask = self.backend(padded.batch(indices))
                self._decode(indices, scores, mask, outputs, probabilities)
        return outputs

    def _decode(self, indices: list[int], scores: torch.Tensor, mask: torch.Tensor | None, outputs: list[Any],
                probabilities: bool) -> None:
        scores, mask = scores.float().cpu(), None if mask is None else mask.cpu()  # one copy, not one per row
        predictions = self.model.head.predict(scores, mask)
        if probabilities:
            predictions = list(zip(predictions, _probabilities(self.model.head, scores, mask), strict=True))
        for i, out in zip(indices, predictions, strict=True):
            outputs[i] = out


def _probabilities(head: Any, scores: torch.Tensor, mask: torch.Tensor | None) -> list[Any]:
    """Per-example label probabilities: softmax over the label scores (a CRF head's emissions, so
    the per-word marginals of its linear layer, not of the CRF), rows cut to the word mask."""
    probs = head.probabilities(scores) if hasattr(head, "probabilities") else scores.softmax(-1)
    if mask is None:
        return probs.tolist()
    return [row[: int(m.sum())].tolist() for row, m in zip(probs, mask, strict=True)]
