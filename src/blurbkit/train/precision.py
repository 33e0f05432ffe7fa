"""How the model runs: the autocast dtype (bf16 where the hardware runs it fast, fp32 master
weights always) and whether it is compiled."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def cpu_has_bf16() -> bool:
    """True when the CPU has native bf16 matrix instructions (AVX512-BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags for flag in ("avx512_bf16", "amx_bf16"))


def autocast_dtype(requested: str, device: torch.device) -> torch.dtype | None:
    """None = plain fp32. A request the hardware cannot honour falls back with one notice."""
    if requested == "fp32":
        return None
    if device.type == "cuda":
        if requested in ("auto", "bf16") and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float16
    if requested == "fp16":
        print("blurbkit: fp16 autocast is for GPUs; using fp32 on the CPU", file=sys.stderr)
        return None
    if cpu_has_bf16():
        return torch.bfloat16
    if requested == "bf16":
        print("blurbkit: this CPU has no native bf16; falling back to fp32", file=sys.stderr)
    return None


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
