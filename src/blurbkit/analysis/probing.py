"""Layer probing with scalar mixing (BERT-RE paper, Fig. 1 and Fig. 4).

The encoder is frozen: every layer's output (0 = embeddings .. L) is computed once per example
under inference_mode and pooled to one vector per layer ([CLS], or the mean over the text's
tokens), giving features [N, L+1, H] per split (cached on disk beside the results). For each
depth l = 0..L a `LayerProbe` (scalar mix over exactly layers 0..l, MLP, the task's head) is
trained on train, its epoch chosen on dev and its test score taken there, all by the task's
official metric. Delta_l = score(l) - score(l-1) is what layer l adds that layers 0..l-1 lack.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from blurbkit.analysis.probe_results import ProbeResult, summarise  # noqa: F401 (part of this module's interface)
from blurbkit.errors import BlurbkitError
from blurbkit.fileio import atomic_write
from blurbkit.models.encoding import Encoded
from blurbkit.models.featurizers_sll import text_token_mask
from blurbkit.models.probe import LayerProbe
from blurbkit.runtime.attention import cpu_attention
from blurbkit.runtime.batching import sorted_batches
from blurbkit.scoring import score_predictions
from blurbkit.tasks.registry import DatasetSpec

POOLS = ("cls", "mean")
SPLITS = ("train", "dev", "test")


def check_probe_dataset(spec: DatasetSpec) -> None:
    """The probe classifies whole inputs: a token-level dataset is refused before any work."""
    if "sequence" not in spec.task.provides:
        raise BlurbkitError(f"probe: dataset {spec.name} is {spec.task.name}, a token-level task; the layer probe "
                            "classifies whole inputs (relation, classification, similarity, QA datasets)")


@dataclass(frozen=True)
class ProbeSettings:
    pool: str = "cls"
    epochs: int = 20
    lr: float = 1e-3
    batch_size: int = 64
    mlp_size: int = 256
    dropout: float = 0.1
    seeds: int = 3

    def __post_init__(self) -> None:
        if self.pool not in POOLS:
            raise BlurbkitError(f"--pool must be one of {', '.join(POOLS)} (got {self.pool!r})")
        for name in ("epochs", "batch_size", "mlp_size", "seeds"):
            if getattr(self, name) < 1:
                raise BlurbkitError(f"--{name.replace('_', '-')} must be at least 1 (got {getattr(self, name)})")
        if not self.lr > 0:
            raise BlurbkitError(f"--lr must be positive (got {self.lr})")


# ---- features from the frozen encoder ------------------------------------------------------------

def parameter_digest(module: torch.nn.Module) -> str:
    """sha256 over every parameter and buffer: the encoder's identity before and after probing."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def layer_features(encoder: torch.nn.Module, data: Encoded, pad_id: int, dtype: torch.dtype | None = None,
                   max_tokens: int = 4096, progress: Callable[[int], None] | None = None) -> dict[str, torch.Tensor]:
    """{pool: [N, L+1, H] fp32} for every example of `data`: each layer's [CLS] and its mean over the
    text tokens (not [CLS], [SEP] or padding). The encoder runs in eval mode under inference_mode and
    its parameters are never handed to an optimizer."""
    encoder.eval()
    padded = data.padded_with(pad_id)
    count = len(data.examples)
    layers = encoder.config.num_hidden_layers + 1
    hidden = encoder.config.hidden_size
    out = {pool: torch.zeros(count, layers, hidden) for pool in POOLS}
    autocast = torch.autocast("cpu", dtype=dtype) if dtype is not None else nullcontext()
    with torch.inference_mode(), autocast, cpu_attention(encoder):
        for indices in sorted_batches(data.examples, max_tokens):
            batch = padded.batch(indices)
            inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}
            states = torch.stack(encoder(**inputs, output_hidden_states=True).hidden_states, dim=1).float()  # [B, L+1, T, H]
            mask = text_token_mask(batch).float()  # [B, T]
            rows = torch.as_tensor(indices)
            out["cls"][rows] = states[:, :, 0]
            summed = torch.einsum("blth,bt->blh", states, mask)
            out["mean"][rows] = summed / mask.sum(1).clamp(min=1)[:, None, None]
            if progress is not None:
                progress(len(indices))
    return out


def feature_key(model_dir: Path, spec: DatasetSpec, max_length: int, precision: str, records: dict[str, Sequence[dict]]) -> str:
    """What the cached features depend on: the encoder's files, the inputs, length and precision."""
    digest = hashlib.sha256()
    for path in sorted(model_dir.glob("*.safetensors")) + [model_dir / "config.json"]:
        stat = path.stat()
        digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    digest.update(json.dumps([spec.name, max_length, precision]).encode())
    for split in SPLITS:
        digest.update(json.dumps([split, [r["id"] for r in records[split]]]).encode())
    return digest.hexdigest()[:24]


def load_cached(path: Path, key: str) -> dict[str, dict[str, torch.Tensor]] | None:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    meta = path.with_suffix(".json")
    if not (path.is_file() and meta.is_file()):
        return None
    try:
        if json.loads(meta.read_text("utf-8")).get("key") != key:
            return None
        flat = load_file(str(path))
    except (OSError, ValueError, SafetensorError, json.JSONDecodeError):
        return None  # unreadable cache: computed again
    out: dict[str, dict[str, torch.Tensor]] = {}
    for name, tensor in flat.items():
        split, _, pool = name.partition(".")
        out.setdefault(split, {})[pool] = tensor
    return out if set(out) == set(SPLITS) else None


def save_cached(path: Path, key: str, features: dict[str, dict[str, torch.Tensor]]) -> None:
    from safetensors.torch import save

    flat = {f"{split}.{pool}": tensor.contiguous() for split, pools in features.items() for pool, tensor in pools.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    # The key goes last and the old one first: a process killed between the two files leaves no
    # key, never an old key naming new features (a miss, computed again, not a wrong hit).
    path.with_suffix(".json").unlink(missing_ok=True)
    with atomic_write(path, "wb") as handle:
        handle.write(save(flat))
    with atomic_write(path.with_suffix(".json")) as handle:
        handle.write(json.dumps({"key": key}) + "\n")


# ---- training one probe --------------------------------------------------------------------------

def labels_tensor(examples: Sequence[dict]) -> torch.Tensor:
    """The examples' targets as collate builds them: floats (scores, multi-label rows) or class ids."""
    first = examples[0]["labels"]
    dtype = torch.float if isinstance(first, float | list) else torch.long
    return torch.tensor([ex["labels"] for ex in examples], dtype=dtype)


class ProbeTask:
    """One dataset's probing problem: features and labels per split, and how predictions are scored."""

    def __init__(self, spec: DatasetSpec, codec: Any, head: str, data: dict[str, Encoded],
                 features: dict[str, torch.Tensor]) -> None:
        self.spec, self.codec, self.head, self.data, self.features = spec, codec, head, data, features
        self.labels = {split: labels_tensor(data[split].examples) for split in ("train", "dev")}

    def score(self, probe: LayerProbe, split: str) -> dict[str, Any]:
        probe.eval()
        encoded = self.data[split]
        with torch.inference_mode():
            scores = torch.cat([probe(chunk) for chunk in self.features[split].split(1024)])
        outputs = probe.head.predict(scores, None)
        predictions = self.codec.collect(encoded.records, encoded.examples, outputs)
        return score_predictions(self.spec, list(encoded.records), predictions)

    def train(self, depth: int, seed: int, settings: ProbeSettings) -> ProbeResult:
        torch.manual_seed(seed)
        rng = random.Random(seed)
        hidden = self.features["train"].size(-1)
        probe = LayerProbe(depth, hidden, self.head, len(self.codec.labels), settings.mlp_size, settings.dropout)
        optimizer = torch.optim.Adam(probe.parameters(), lr=settings.lr)
        features, labels = self.features["train"], self.labels["train"]
        best: tuple[float, int, dict[str, torch.Tensor]] | None = None
        order = list(range(features.size(0)))
        for epoch in range(1, settings.epochs + 1):
            probe.train()
            rng.shuffle(order)
            for start in range(0, len(order), settings.batch_size):
                rows = torch.as_tensor(order[start : start + settings.batch_size])
                loss = probe.loss(features[rows], labels[rows])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            dev = self.score(probe, "dev")["score"]
            if best is None or dev > best[0]:
                best = (dev, epoch, copy.deepcopy(probe.state_dict()))
        assert best is not None
        probe.load_state_dict(best[2])
        test = self.score(probe, "test")
        return ProbeResult(depth, seed, best[0], test["score"], best[1], probe.mix.alphas().detach().tolist(),
                           probe.mix.gamma.item(), {k: v for k, v in test.items() if isinstance(v, int | float)})


# ---- the whole study -----------------------------------------------------------------------------

def run_probes(task: ProbeTask, layers: int, settings: ProbeSettings,
               progress: Callable[[str], None] | None = None) -> list[ProbeResult]:
    """A probe for every depth 0..layers and seed (depth 0 = the embeddings alone: the baseline Delta_1 is taken from)."""
    results = []
    for depth in range(layers + 1):
        for seed in range(settings.seeds):
            results.append(task.train(depth, seed, settings))
            if progress is not None:
                progress(f"depth {depth} seed {seed}")
    return results


def results_json(results: Sequence[ProbeResult], info: dict[str, Any]) -> str:
    return json.dumps({**info, "results": [asdict(r) for r in results]}, indent=2) + "\n"
