"""Pretraining checkpoints: safetensors for every tensor, JSON for everything else, never pickles.

A checkpoint is a directory ``CKPT_ROOT/step-00000100/`` holding

* ``model.safetensors``      the (unwrapped) pretraining model, tied weights handled by safetensors
* ``optimizer.safetensors``  every optimizer state tensor, keyed ``state/<param index>/<name>``
* ``rng-rank<r>.safetensors`` torch (and CUDA) RNG states of each process
* ``state.json``             format tag, step, data position, scheduler state, optimizer param
                             groups and scalar state, run signature (model config, tokenizer, data)

It is built under a temporary name and renamed into place (``fileio.atomic_dir``); ``latest.json``
is replaced atomically afterwards. A crash or a full disk while writing leaves the previous
checkpoint and pointer untouched.
"""

from __future__ import annotations

import contextlib
import errno
import json
import shutil
from pathlib import Path
from typing import Any

from blurbkit.errors import BlurbkitError
from blurbkit.fileio import atomic_dir, write_json
from blurbkit.runtime.state import (
    load_scheduler_state,
    optimizer_from_flat,
    optimizer_to_flat,
    scheduler_state,
    set_torch_rng_state,
    torch_rng_state,
)

FORMAT = "blurbkit-pretrain-checkpoint/1"


def save_checkpoint(root: Path, step: int, *, model, optimizer, scheduler, state: dict[str, Any],
                    rng_states: dict[int, dict[str, Any]], keep: int = 2) -> Path:
    """Write checkpoint ``step`` atomically; prune older ones beyond ``keep``. Main process only."""
    from safetensors.torch import save_file, save_model

    target = root / f"step-{step:08d}"
    previous = latest_checkpoint(root, validate=False)
    for stale in root.glob(".step-*"):  # a checkpoint a kill left half-written (model + optimizer each)
        shutil.rmtree(stale, ignore_errors=True)
    try:
        with atomic_dir(target) as tmp:
            save_model(model, str(tmp / "model.safetensors"))
            tensors, info = optimizer_to_flat(optimizer.state_dict())
            save_file(tensors, str(tmp / "optimizer.safetensors"))
            for rank, rng in rng_states.items():
                save_file(rng, str(tmp / f"rng-rank{rank}.safetensors"))
            full = dict(state, format=FORMAT, step=step, optimizer=info, scheduler=scheduler_state(scheduler),
                        ranks=sorted(rng_states))
            (tmp / "state.json").write_text(json.dumps(full, indent=2), "utf-8")
        write_json(root / "latest.json", {"checkpoint": target.name, "step": step})
    except OSError as err:
        what = "the disk is full" if err.errno == errno.ENOSPC else (err.strerror or str(err))
        kept = f"; the previous checkpoint {previous} is intact" if previous else ""
        raise BlurbkitError(f"cannot write checkpoint step {step} ({what}){kept}", path=root) from None
    checkpoints = sorted(p for p in root.glob("step-*") if p.is_dir())
    for old in checkpoints[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return target


def read_state(path: Path) -> dict[str, Any]:
    if not path.is_dir():
        raise BlurbkitError("checkpoint not found", path=path)
    state_file = path / "state.json"
    if not state_file.is_file():
        if any(path.glob("*.bin")) or any(path.glob("*.pt")) or any(path.glob("*.pth")):
            raise BlurbkitError("not a blurbkit checkpoint (pickled .bin/.pt files are never loaded)", path=path)
        raise BlurbkitError("not a blurbkit checkpoint (no state.json)", path=path)
    try:
        state = json.loads(state_file.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BlurbkitError(f"checkpoint state.json is corrupt ({err})", path=path) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise BlurbkitError(f"not a blurbkit pretraining checkpoint (format {state.get('format') if isinstance(state, dict) else None!r})", path=path)
    for name in ("model.safetensors", "optimizer.safetensors"):
        if not (path / name).is_file():
            raise BlurbkitError(f"checkpoint lacks {name}", path=path)
    _check_tensor_files(path)
    return state


def _check_tensor_files(path: Path) -> None:
    """Every safetensors file of the checkpoint has a readable header that covers the whole file
    (a truncated or overwritten file fails here, before anything is loaded into the model)."""
    from safetensors import SafetensorError, safe_open

    for file in sorted(path.glob("*.safetensors")):
        try:
            with safe_open(str(file), framework="pt") as handle:
                handle.keys()
        except (SafetensorError, OSError) as err:
            first = (str(err).splitlines() or [type(err).__name__])[0]
            raise BlurbkitError(f"checkpoint is corrupt ({file.name}: {first[:200]})", path=path) from None


def latest_checkpoint(root: Path, validate: bool = True, skipped: list[tuple[Path, str]] | None = None) -> Path | None:
    """The newest checkpoint under ``root`` that reads back (the pointer first, then by step).

    ``skipped`` (when given) receives (checkpoint, why) for each newer checkpoint passed over because
    it does not read back, so a resume can say which corrupt checkpoint it fell back from."""
    if not root.is_dir():
        return None
    candidates: list[Path] = []
    pointer = root / "latest.json"
    if pointer.is_file():
        with contextlib.suppress(json.JSONDecodeError, KeyError, UnicodeDecodeError, TypeError):
            name = json.loads(pointer.read_text("utf-8"))["checkpoint"]
            if isinstance(name, str) and name.startswith("step-") and "/" not in name:
                candidates.append(root / name)
    candidates += [p for p in sorted(root.glob("step-*"), reverse=True) if p.is_dir() and p not in candidates]
    for path in candidates:
        if not validate:
            if path.is_dir():
                return path
            continue
        try:
            read_state(path)
            return path
        except BlurbkitError as err:
            if skipped is not None and path.is_dir():
                skipped.append((path, str(err)))
            continue
    return None


def load_checkpoint(path: Path, *, model, optimizer, scheduler, rank: int, signature: dict[str, Any]) -> dict[str, Any]:
    """Restore model, optimizer, scheduler and this rank's RNG; returns the state (step, data position)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, load_model

    state = read_state(path)
    for key, value in signature.items():
        if state.get("signature", {}).get(key) != value:
            raise BlurbkitError(f"checkpoint belongs to a different run ({key} differs: "
                                f"{state.get('signature', {}).get(key)!r} vs {value!r}); "
                                "use the same settings, another --out, or --no-resume", path=path)
    try:
        missing, unexpected = load_model(model, str(path / "model.safetensors"), strict=False)
        if missing or unexpected:
            raise BlurbkitError(f"checkpoint weights do not fit this model (missing {list(missing)[:3]}, "
                                f"unexpected {list(unexpected)[:3]})", path=path)
        optimizer.load_state_dict(optimizer_from_flat(load_file(str(path / "optimizer.safetensors")), state["optimizer"]))
        rng_file = path / f"rng-rank{rank}.safetensors"
        if not rng_file.is_file():
            rng_file = path / "rng-rank0.safetensors"
        rng = load_file(str(rng_file))
    except (SafetensorError, RuntimeError, ValueError, KeyError, OSError) as err:
        raise BlurbkitError(f"checkpoint is corrupt or from another model ({str(err).splitlines()[0][:200]})", path=path) from None
    load_scheduler_state(scheduler, state["scheduler"])
    set_torch_rng_state(rng)
    return state


def rng_state() -> dict[str, Any]:
    return torch_rng_state()
