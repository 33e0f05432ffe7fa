"""Training state as safetensors + JSON, never pickles: shared by the pretraining and the
fine-tuning checkpoints (pretrain/checkpoint.py, train/checkpoint.py).

* optimizer state: every tensor under ``state/<param index>/<name>`` in a safetensors file, the
  param groups and scalar state in JSON;
* RNG states: torch's (and CUDA's) as uint8 tensors; Python's and numpy's global generators, any
  `random.Random` and numpy bit generator as plain JSON lists and integers.

A JSON float round-trips exactly (Python writes the shortest repr), so a restored learning rate or
best score is the same double.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def optimizer_to_flat(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors for safetensors, JSON) of an optimizer's state_dict."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for index, entry in state_dict["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state/{index}/{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}/{name}"] = value
    groups = []
    for group in state_dict["param_groups"]:
        groups.append({k: (list(v) if isinstance(v, tuple) else v) for k, v in group.items()})
    return tensors, {"param_groups": groups, "scalars": scalars}


def optimizer_from_flat(tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> dict[str, Any]:
    """The state_dict `optimizer_to_flat` took apart."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, index, name = key.split("/", 2)
        state.setdefault(int(index), {})[name] = value
    for key, value in info.get("scalars", {}).items():
        index, name = key.split("/", 1)
        state.setdefault(int(index), {})[name] = value
    groups = []
    for group in info["param_groups"]:
        group = dict(group)
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    return {"state": state, "param_groups": groups}


def scheduler_state(scheduler: Any) -> dict[str, Any]:
    """A LambdaLR's state without its lambdas (they are rebuilt with the scheduler)."""
    return {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}


def load_scheduler_state(scheduler: Any, saved: dict[str, Any]) -> None:
    state = scheduler.state_dict()
    state.update(saved)
    scheduler.load_state_dict(state)


def torch_rng_state() -> dict[str, torch.Tensor]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_torch_rng_state(state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available() and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"])


def random_state(rng: random.Random | None = None) -> list[Any]:
    """A `random.Random`'s state (the module's global one by default) as JSON."""
    version, internal, gauss = (rng or random).getstate()
    return [version, list(internal), gauss]


def set_random_state(saved: list[Any], rng: random.Random | None = None) -> None:
    version, internal, gauss = saved
    (rng or random).setstate((version, tuple(internal), gauss))


def numpy_global_state() -> list[Any]:
    name, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    return [name, keys.tolist(), int(pos), int(has_gauss), float(gauss)]


def set_numpy_global_state(saved: list[Any], generator: np.random.RandomState | None = None) -> None:
    """numpy's global generator (or `generator`) to a state numpy_global_state saved."""
    name, keys, pos, has_gauss, gauss = saved
    (generator or np.random).set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))


def bit_generator_state(bits: np.random.BitGenerator) -> dict[str, Any]:
    """A numpy bit generator's state (e.g. the fast-dropout SFC64) as JSON."""
    return _plain(bits.state)


def set_bit_generator_state(bits: np.random.BitGenerator, saved: dict[str, Any]) -> None:
    state = dict(saved)
    inner = dict(state["state"])
    if isinstance(inner.get("state"), list):  # SFC64 / PCG keep their words in a uint64 array
        inner["state"] = np.asarray(inner["state"], dtype=np.uint64)
    state["state"] = inner
    bits.state = state


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.integer):
        return int(value)
    return value
