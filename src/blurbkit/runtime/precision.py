"""How the model runs: the autocast dtype (bf16 where the hardware runs it fast, fp32 master
weights always), the bf16 copy of the encoder that CPU inference runs on, and whether the model
is compiled."""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from typing import Any

import torch

from blurbkit.runtime.capability import capability


def cpu_has_bf16() -> bool:
    """True when the CPU runs bf16 matmuls natively (AVX512-BF16, AMX, ARM BF16), as
    runtime/capability.py sees it (including the BLURBKIT_CPU_DTYPES override)."""
    return "bf16" in capability().cpu_dtypes


def autocast_dtype(requested: str, device: torch.device) -> torch.dtype | None:
    """None = plain fp32. A request the hardware cannot honour falls back with one notice."""
    if requested == "fp32":
        return None
    if device.type == "cuda":
        if requested in ("auto", "bf16") and capability().native("bf16"):
            return torch.bfloat16
        return torch.float16
    if requested == "fp16":
        print("blurbkit: fp16 autocast is for GPUs; using fp32 on the CPU", file=sys.stderr)
        return None
    if cpu_has_bf16():
        return torch.bfloat16
    if requested == "bf16":
        why = capability().not_native.get("bf16", "no native bf16")
        print(f"blurbkit: bf16 requested but {why}; falling back to fp32", file=sys.stderr)
    return None


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(device: torch.device, dtype: torch.dtype | None) -> Any:
    """The autocast context for `dtype` (None: autocast off, plain fp32)."""
    if dtype is None:
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=dtype)


def dtype_name(dtype: torch.dtype | None) -> str:
    return str(dtype).replace("torch.", "") if dtype else "fp32"


def maybe_compile(fn: Callable[..., Any], enabled: bool) -> Callable[..., Any]:
    """torch.compile `fn` when asked and possible; otherwise `fn` itself, with one notice.

    Shapes change with every batch (length-grouped), so the graph is compiled with dynamic
    shapes once instead of once per length. On a CPU inductor needs a C++ compiler."""
    if not enabled:
        return fn
    if not hasattr(torch, "compile"):
        print("blurbkit: this torch has no torch.compile; running eagerly", file=sys.stderr)
        return fn
    return torch.compile(fn, dynamic=True)


class Bf16Twin:
    """A bf16 copy of a model's encoder, with the model's own (fp32) featurizer and head, for CPU
    inference under bf16 autocast: the residual stream is then bf16 too, which saves casting the
    activations before every linear layer (+10-15 % sentences/s).

    The copy is keyed on which tensors the encoder holds, where, and how often they were changed
    in place: load_state_dict (with or without assign), a swapped encoder and autograd-visible
    edits make a new one. Writes through `.data` and fused optimizers do not move version
    counters, so whoever trains calls `drop()` (Engine.train does, after every epoch)."""

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.model: Any = None

    def of(self, model: Any) -> Any:
        key = tuple((id(p), p.data_ptr(), p._version) for p in model.encoder.parameters())
        if self.model is None or key != self.key:
            self.drop()  # free the old copy before making the new one
            encoder = copy.deepcopy(model.encoder).to(torch.bfloat16).eval()
            self.key, self.model = key, model.with_encoder(encoder)
        return self.model

    def drop(self) -> None:
        self.key = self.model = None
