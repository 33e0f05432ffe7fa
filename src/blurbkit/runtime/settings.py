"""Runtime settings: where and how fast work runs, not what a model learns. Those that may still move
a result's last digits (precision, batching order, dropout's random source, fused kernels,
torch.compile) are part of a stored run's key; those that cannot (eval_tokens, threads,
encode_cache, progress, checkpoint_every) are listed in train/config.py HOW_NOT_WHAT. The defaults are right on a CPU
and on a GPU; docs/performance.md measures each one."""

from __future__ import annotations

from dataclasses import dataclass

from blurbkit.arguments import check_fields
from blurbkit.errors import BlurbkitError

PRECISIONS = ("auto", "bf16", "fp16", "fp32")


@dataclass(frozen=True)
class RuntimeSettings:
    precision: str = "auto"  # auto | bf16 | fp16 | fp32
    eval_tokens: int | None = None  # padded tokens per inference batch; None: 2048 on a CPU (stays in cache), 16384 on a GPU
    group_by_length: bool = True  # length-grouped training batches (little padding); False = plain shuffle
    fused_optimizer: bool = True  # fused AdamW kernel (one pass per parameter); False = foreach
    cpu_attention: bool = True  # CPU: blurbkit's attention instead of SDPA's slow CPU paths (runtime/attention.py)
    bf16_inference: bool = True  # CPU inference under bf16 autocast: a bf16 copy of the encoder (no per-layer casts)
    last_layer_rows: bool = True  # inference: the last encoder layer only for the rows the featurizer reads (models/last_layer.py)
    tune_allocator: bool = True  # CPU: keep freed activation buffers in glibc's heap (runtime/allocator.py; process-wide)
    fast_dropout: bool = True  # CPU training: dropout masks from numpy's SFC64, ~4x faster than torch's (runtime/dropout.py)
    compile: bool = False  # torch.compile the model (needs a C++ compiler on CPU; pays only on long runs)
    threads: int | None = None  # torch intra-op threads; None = torch's default (one per physical core)
    encode_cache: bool = True  # keep tokenised splits on disk under $BLURBKIT_CACHE/encoded
    progress: bool = True  # progress bars
    checkpoint_every: int | None = None  # fine-tuning: a checkpoint every N optimizer steps too (always: every epoch's end)

    def __post_init__(self) -> None:
        # Settings arrive as KEY=VALUE strings too (--engine-option, Predictor settings): a value of
        # the wrong kind would otherwise be taken silently (precision=fp64 ran bf16 under that name).
        check_fields(self)
        if self.precision not in PRECISIONS:
            raise BlurbkitError(f"precision {self.precision!r}: one of {', '.join(PRECISIONS)}")
        for name in ("eval_tokens", "threads", "checkpoint_every"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise BlurbkitError(f"--{name.replace('_', '-')} must be at least 1 (got {value!r})")
