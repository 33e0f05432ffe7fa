"""Fine-tuning checkpoints: a run killed anywhere resumes to the same last digit.

``RUN_DIR/.checkpoint/`` holds the latest checkpoint of a run still training (the final run
directory replaces RUN_DIR whole, so the checkpoint goes away exactly when the run is complete):

* ``model.safetensors``      the weights now
* ``best.safetensors``       the best dev epoch's weights, when they are not the weights now
* ``optimizer.safetensors``  AdamW's moments and steps (runtime/state.py)
* ``rng.safetensors``        torch's (and CUDA's) RNG states
* ``state.json``             format, run signature, position (epoch, optimizer steps done in it,
                             its batch order), the batch-order, Python, numpy and fast-dropout
                             generators, scheduler, optimizer groups, GradScaler, best score and
                             epoch, dev history

Nothing is pickled. It is written whole under a temporary name and renamed into place
(fileio.atomic_dir) at the end of every epoch and every `checkpoint_every` optimizer steps, so a
kill while writing leaves the previous checkpoint in place (and a temporary directory the next run
removes). A checkpoint of another run (config, model or data differ) is refused.
"""

from __future__ import annotations

import copy
import errno
import json
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from blurbkit.errors import BlurbkitError
from blurbkit.fileio import atomic_dir, clean_stale
from blurbkit.runtime.dropout import MaskSource
from blurbkit.runtime.state import (
    bit_generator_state,
    load_scheduler_state,
    numpy_global_state,
    optimizer_from_flat,
    optimizer_to_flat,
    random_state,
    scheduler_state,
    set_bit_generator_state,
    set_numpy_global_state,
    set_random_state,
    set_torch_rng_state,
    torch_rng_state,
)
from blurbkit.testhook import kill_point

FORMAT = "blurbkit-finetune-checkpoint/1"
DIR_NAME = ".checkpoint"
FINAL_DIR_NAME = ".checkpoint-final"  # the train+dev final model's (run.py train_on_train_dev)


@dataclass
class Loop:
    """The fine-tuning loop's state: what it trains with and where it is."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    order_rng: random.Random  # draws each epoch's batch order
    masks: MaskSource | None  # the fast-dropout generator (CPU), None when torch's dropout runs
    result: Any  # engine.TrainResult: best epoch, dev history, seconds, steps
    epoch: int = 1
    step: int = 0  # optimizer steps done in `epoch`
    order: list[list[int]] | None = None  # `epoch`'s batches; None: not drawn yet
    best_score: float = -math.inf
    best_state: dict[str, torch.Tensor] | None = None  # the best epoch's weights, if not the last epoch's


@dataclass
class RunClock:
    """A run's wall time across the processes that ran it: every checkpoint records the time so far, and
    a resumed process adds the time its checkpoint recorded to its own (what a killed process did
    after its last checkpoint is not counted; redoing it is, in the process that redoes it)."""

    started: float = field(default_factory=time.perf_counter)  # this process's start of the run
    earlier: float = 0.0  # the killed processes' time, from the latest checkpoint restored
    resumed: bool = False  # this process continued a killed run (in either phase)

    def seconds(self) -> float:
        return self.earlier + time.perf_counter() - self.started

    def restored(self, recorded: float) -> None:
        # Both phases' checkpoints record on one clock: the later phase's holds the larger time.
        self.earlier = max(self.earlier, recorded)
        self.resumed = True


@dataclass
class Checkpoints:
    """Where a run keeps its checkpoint and when it writes one."""

    root: Path  # RUN_DIR/.checkpoint
    signature: dict[str, Any]  # what must match for a checkpoint to continue this run
    every: int | None = None  # optimizer steps between checkpoints (besides every epoch's end)
    resume: bool = False
    clock: RunClock = field(default_factory=lambda: RunClock())  # shared by a run's checkpoints (both phases)
    # resume + overwrite (what the sweep drivers ask): a checkpoint of another run, or one whose state
    # does not read, is removed and the run starts over (`discarded` says why) instead of failing
    # every drive over the store the same way; `finetune --resume` alone still refuses it.
    start_over_if_different: bool = False
    discarded: str | None = field(default=None, init=False)
    written: int = field(default=0, init=False)
    resumed: bool = field(default=False, init=False)  # this process continued a killed run

    def due(self, steps: int) -> bool:
        return bool(self.every) and steps % self.every == 0

    def save(self, loop: Loop) -> None:
        """Write the loop's state atomically over the previous checkpoint."""
        from safetensors.torch import save_file, save_model

        self.written += 1
        best = None
        if loop.best_state is not None:
            # right after the best epoch's evaluation its weights are the model's: not written twice
            best = "model" if loop.step == 0 and loop.result.best_epoch == loop.epoch - 1 else "file"
        state = {
            "format": FORMAT,
            "signature": self.signature,
            "position": {"epoch": loop.epoch, "step": loop.step, "order": loop.order},
            "result": asdict(loop.result),
            "best_score": loop.best_score,
            "best": best,
            "wall_seconds": self.clock.seconds(),
            "scheduler": scheduler_state(loop.scheduler),
            "scaler": loop.scaler.state_dict(),
            "rng": {
                "order": random_state(loop.order_rng),
                "python": random_state(),
                "numpy": numpy_global_state(),
                "masks": bit_generator_state(loop.masks.bits) if loop.masks is not None else None,
            },
        }
        try:
            with atomic_dir(self.root) as tmp:
                save_model(loop.model, str(tmp / "model.safetensors"))
                kill_point(f"checkpoint:{self.written}")
                tensors, state["optimizer"] = optimizer_to_flat(loop.optimizer.state_dict())
                save_file(tensors, str(tmp / "optimizer.safetensors"))
                save_file(torch_rng_state(), str(tmp / "rng.safetensors"))
                if best == "file":
                    save_file({k: v.detach().cpu().clone() for k, v in loop.best_state.items()}, str(tmp / "best.safetensors"))
                (tmp / "state.json").write_text(json.dumps(state), "utf-8")
        except OSError as err:
            what = "the disk is full" if err.errno == errno.ENOSPC else (err.strerror or str(err))
            raise BlurbkitError(f"cannot write the checkpoint ({what}); the previous one is intact", path=self.root) from None

    def restore(self, loop: Loop) -> bool:
        """With `resume`, load the checkpoint into `loop` (True) or leave it fresh when there is none
        (False). Without, remove any old checkpoint: this run starts over."""
        clean_stale(self.root)
        if not self.resume:
            shutil.rmtree(self.root, ignore_errors=True)
            return False
        if not self.root.is_dir():
            return False
        # A driver's resume (start_over_if_different) keeps the fresh weights to fall back on: a
        # checkpoint that fails half-way through loading must not leave them half-replaced.
        fresh = None
        if self.start_over_if_different:
            fresh = copy.deepcopy(loop.model.state_dict()), copy.deepcopy(loop.optimizer.state_dict())
        try:
            state = self._read_state()
            self._check_signature(state.get("signature"))
            position = _check_fields(state, loop.result, self.root)
            rng, best = self._load_tensors(loop, state)
            self._check_generators(state["rng"], loop.masks)
        except BlurbkitError as err:
            if fresh is None:
                raise
            loop.model.load_state_dict(fresh[0])
            loop.optimizer.load_state_dict(fresh[1])
            shutil.rmtree(self.root, ignore_errors=True)
            self.discarded = f"a checkpoint was removed and the run started over: {err}"
            return False
        self._apply(loop, state, position, rng, best)
        self.resumed = True
        return True

    def _check_generators(self, saved: dict[str, Any], masks: MaskSource | None) -> None:
        """Every saved generator state set on a throwaway generator first: one that does not fit is
        refused (and a driver starts over) before anything of the loop has changed."""
        try:
            set_random_state(saved["order"], random.Random())
            set_random_state(saved["python"], random.Random())
            set_numpy_global_state(saved["numpy"], np.random.RandomState())
            if masks is not None and saved.get("masks") is not None:
                set_bit_generator_state(type(masks.bits)(), saved["masks"])
        except (KeyError, IndexError, TypeError, ValueError, AttributeError, RuntimeError) as err:
            raise BlurbkitError(f"checkpoint state.json is damaged ({type(err).__name__}: {str(err)[:120]}); "
                                "pass --overwrite to start over", path=self.root) from None

    def _apply(self, loop: Loop, state: dict[str, Any], position: dict[str, Any], rng: dict[str, Any], best: Any) -> None:
        load_scheduler_state(loop.scheduler, state["scheduler"])
        loop.scaler.load_state_dict(state["scaler"])
        loop.epoch, loop.step, loop.order = position["epoch"], position["step"], position["order"]
        for name, value in state["result"].items():
            setattr(loop.result, name, value)
        loop.best_score = state["best_score"]
        loop.best_state = copy.deepcopy(loop.model.state_dict()) if state["best"] == "model" else best
        saved = state["rng"]
        set_random_state(saved["order"], loop.order_rng)
        set_random_state(saved["python"])
        set_numpy_global_state(saved["numpy"])
        if loop.masks is not None and saved.get("masks") is not None:
            set_bit_generator_state(loop.masks.bits, saved["masks"])
        set_torch_rng_state(rng)
        self.clock.restored(float(state.get("wall_seconds", 0.0)))  # absent in checkpoints written before it (checked)

    def _load_tensors(self, loop: Loop, state: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        """The checkpoint's weights and optimizer state into the loop; its RNG and best weights back."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file, load_model

        try:
            missing, unexpected = load_model(loop.model, str(self.root / "model.safetensors"), strict=False)
            if missing or unexpected:
                raise BlurbkitError(f"checkpoint weights do not fit this model (missing {list(missing)[:3]}, "
                                    f"unexpected {list(unexpected)[:3]})", path=self.root)
            optimizer = load_file(str(self.root / "optimizer.safetensors"))
            loop.optimizer.load_state_dict(optimizer_from_flat(optimizer, state["optimizer"]))
            rng = load_file(str(self.root / "rng.safetensors"))
            best = load_file(str(self.root / "best.safetensors")) if state["best"] == "file" else None
            if "torch" not in rng:
                raise KeyError("rng.safetensors has no torch generator state")
            torch.Generator().set_state(rng["torch"])  # a tensor of another kind is refused here, naming the file
        except (SafetensorError, RuntimeError, ValueError, KeyError, TypeError, AttributeError, OSError) as err:
            raise BlurbkitError(f"checkpoint does not read back ({str(err).splitlines()[0][:200]}); "
                                "pass --overwrite to start over", path=self.root) from None
        return rng, best

    def _read_state(self) -> dict[str, Any]:
        try:
            state = json.loads((self.root / "state.json").read_text("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise BlurbkitError(f"checkpoint does not read back ({err}); pass --overwrite to start over", path=self.root) from None
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise BlurbkitError("not a blurbkit fine-tuning checkpoint; pass --overwrite to start over", path=self.root)
        return state

    def _check_signature(self, saved: Any) -> None:
        if not isinstance(saved, dict):
            raise BlurbkitError("checkpoint state.json is damaged (no run signature); pass --overwrite to start over", path=self.root)
        for key in sorted(set(saved) | set(self.signature)):
            if saved.get(key) != self.signature.get(key):
                raise BlurbkitError(f"the checkpoint belongs to a different run ({key}: {self.signature.get(key)!r} now, "
                                    f"{saved.get(key)!r} in the checkpoint); use the same settings, or --overwrite to start over",
                                    path=self.root)


# The layout restore() reads: a state.json edited or cut short is refused before anything is applied,
# so that nothing _apply reads can fail half-way (a driver's resume then starts over from fresh weights).
_SECTIONS = {"position": dict, "result": dict, "scheduler": dict, "scaler": dict, "rng": dict, "optimizer": dict}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_fields(state: dict[str, Any], result: Any, root: Path) -> dict[str, Any]:
    """state.json's sections, the loop position, best score and run-so-far fields, checked; the position back."""
    def damaged(what: str) -> BlurbkitError:
        return BlurbkitError(f"checkpoint state.json is damaged ({what}); pass --overwrite to start over", path=root)

    for name, kind in _SECTIONS.items():
        if not isinstance(state.get(name), kind):
            raise damaged(f"'{name}' is missing or not an object")
    position = state["position"]
    for name, least in (("epoch", 1), ("step", 0)):
        value = position.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise damaged(f"position '{name}' is {value!r}, not a count from {least}")
    if position.get("order") is not None and not isinstance(position["order"], list):
        raise damaged("position 'order' is not a list")
    if not _number(state.get("best_score")):  # always written, -Infinity before the first dev score
        raise damaged(f"'best_score' is {state.get('best_score')!r}, not a number")
    if "wall_seconds" in state and not _number(state["wall_seconds"]):  # absent in checkpoints written before it
        raise damaged(f"'wall_seconds' is {state['wall_seconds']!r}, not a number")
    if "best" not in state or state["best"] not in ("model", "file", None):
        raise damaged(f"'best' is {state.get('best', 'missing')!r}")
    if not all(key in state["rng"] for key in ("order", "python", "numpy")):
        raise damaged("'rng' lacks a generator")
    for name, value in state["result"].items():  # each of the kind the run's own result holds
        current = getattr(result, name, None)
        kind = (int, float) if isinstance(current, float) else type(current)
        if current is None or isinstance(value, bool) or not isinstance(value, kind):
            raise damaged(f"result '{name}' is {value!r:.40}")
    return position


def saved_steps(run_dir: Path) -> int | None:
    """Optimizer steps of a run directory's latest checkpoint (the train+dev phase's when there is
    one), or None when it has none that reads back: where a re-run would continue from."""
    for name in (FINAL_DIR_NAME, DIR_NAME):
        try:
            state = json.loads((run_dir / name / "state.json").read_text("utf-8"))
            steps = state["result"]["steps"] if state.get("format") == FORMAT else None
        except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError, AttributeError):
            continue
        if isinstance(steps, int):
            return steps
    return None
