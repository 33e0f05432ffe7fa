"""The fine-tuning configuration: one dataclass, filled from the dataset's recipe and CLI overrides."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class FinetuneConfig:
    dataset: str
    out: Path | None = None  # run directory; None = keep nothing on disk (in-memory run)
    data: str | None = None  # prepared dir or raw source folder (e.g. ../shared/data)
    model: str | None = None  # local HF directory; None = the embedded MiniLM
    seed: int = 0
    lr: float | None = None  # None = the dataset's recipe
    batch_size: int | None = None
    epochs: int | None = None
    max_length: int | None = None
    max_train_examples: int | None = None  # seeded subsample of train (budget / low-resource runs)
    max_eval_examples: int | None = None  # seeded subsample of dev for per-epoch evaluation only
    max_test_examples: int | None = None  # seeded subsample of test (budget runs; reported as such)
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    dropout: float = 0.1
    # Stabilisation and layer studies (SPEC §4, train/stabilise.py)
    layer_decay: float | None = None  # layer-wise lr decay d (0.8-0.9 in the papers); None = off
    reinit_layers: int = 0  # re-initialise the top k encoder blocks before fine-tuning
    freeze_lower_half: bool = False  # fix the embeddings and the lower half of the blocks
    drop_layers: int = 0  # pruning study: remove the top k blocks, fine-tune the rest
    precision: str = "auto"  # auto | bf16 | fp16 | fp32
    eval_tokens: int | None = None  # padded tokens per inference batch; None: 2048 on a CPU (stays in cache), 16384 on a GPU
    # Speed settings (docs/performance.md); the defaults are right on a CPU and on a GPU.
    group_by_length: bool = True  # length-grouped training batches (little padding); False = plain shuffle
    fused_optimizer: bool = True  # fused AdamW kernel (one pass per parameter); False = foreach
    cpu_attention: bool = True  # CPU: blurbkit's attention instead of SDPA's slow CPU paths (runtime/attention.py)
    bf16_inference: bool = True  # CPU inference under bf16 autocast: a bf16 copy of the encoder (no per-layer casts)
    last_layer_rows: bool = True  # inference: the last encoder layer only for the rows the featurizer reads (models/last_layer.py)
    tune_allocator: bool = True  # CPU: keep freed activation buffers in glibc's heap (runtime/allocator.py; process-wide)
    fast_dropout: bool = True  # CPU training: dropout masks from numpy's SFC64, ~4x faster than torch's (runtime/dropout.py)
    compile: bool = False  # torch.compile the model (needs a C++ compiler on CPU; pays only on long runs)
    threads: int | None = None  # torch intra-op threads; None = torch's default (one per physical core)
    encode_cache: bool = True  # keep tokenised splits on disk under $BLURBKIT_HOME/cache/encoded
    transform: str | None = None  # None = the task adapter's default part
    featurizer: str | None = None
    head: str | None = None
    scheme: str | None = None  # NER/PICO tagging scheme the model learns (bio, bioul, io); None = native
    part_options: dict[str, Any] = field(default_factory=dict)
    save_model: bool = True
    overwrite: bool = False
    progress: bool = True
    pico_train_from_dev: int | None = None
    fold: int = 0

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["out"] = str(self.out) if self.out else None
        return out
