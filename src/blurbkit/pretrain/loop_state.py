"""The loop's bookkeeping: which examples each global batch holds (`DataOrder`, the whole data
position a checkpoint needs) and the training log (`TrainLog`, `truncate_log` on resume)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from blurbkit.fileio import atomic_write


class DataOrder:
    """Which examples each global batch holds: a seeded permutation of the examples per epoch, read
    in order across epoch ends; this process takes its slice. (epoch, offset) is the whole state."""

    def __init__(self, n_examples: int, seed: int, batch_size: int, rank: int, world: int) -> None:
        self.n_examples, self.seed, self.batch_size, self.rank = n_examples, seed, batch_size, rank
        self.global_batch = batch_size * world
        self.epoch, self.offset = 0, 0
        self._perm: tuple[int, np.ndarray] | None = None

    def permutation(self, epoch: int) -> np.ndarray:
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, np.random.default_rng([self.seed, epoch, 1]).permutation(self.n_examples))
        return self._perm[1]

    def next_batch(self) -> tuple[np.ndarray, np.ndarray]:
        """(this process's example indices, the epoch each was drawn in: it seeds its masks). Per
        example, so a batch that straddles an epoch end is masked the same however it is split."""
        take: list[np.ndarray] = []
        epochs: list[np.ndarray] = []
        need = self.global_batch
        while need:
            chunk = self.permutation(self.epoch)[self.offset : self.offset + need]
            take.append(chunk)
            epochs.append(np.full(len(chunk), self.epoch, dtype=np.int64))
            need -= len(chunk)
            self.offset += len(chunk)
            if self.offset >= self.n_examples:
                self.epoch, self.offset = self.epoch + 1, 0
        mine = slice(self.rank * self.batch_size, (self.rank + 1) * self.batch_size)
        return np.concatenate(take)[mine], np.concatenate(epochs)[mine]


class TrainLog:
    """Losses and tokens between two log lines, written to ``train_log.jsonl`` by the main process.
    A resumed run's lines continue the run's totals (`tokens`, `elapsed_s`: training time, not the
    pause between sessions) from the last line kept; `tokens_seen` counts this process's own."""

    def __init__(self, path: Path, enabled: bool, resumed: bool = False) -> None:
        self.path, self.enabled = path, enabled
        self.start = time.time()
        self.tokens_seen = 0
        self.ema: float | None = None
        self.tokens_before, self.elapsed_before = _totals_so_far(path) if resumed and enabled else (0, 0.0)
        self._reset(self.start)

    def _reset(self, now: float) -> None:
        self.losses: list[float] = []
        self.parts: dict[str, list[float]] = {}
        self.tokens, self.window_start = 0, now

    def micro_batch(self, parts: dict[str, Any], tokens: int) -> None:
        for name, value in parts.items():
            self.parts.setdefault(name, []).append(float(value))
        self.tokens_seen += tokens
        self.tokens += tokens

    def optimizer_step(self, loss: float) -> None:
        self.losses.append(loss)
        self.ema = loss if self.ema is None else 0.98 * self.ema + 0.02 * loss

    def write(self, step: int, lr: float, mask_rate: float, epoch: int) -> None:
        now = time.time()
        if self.enabled:
            entry = {"step": step, "loss": float(np.mean(self.losses))}
            entry |= {name: float(np.mean(values)) for name, values in self.parts.items()}
            entry |= {"lr": lr, "mask_rate": mask_rate, "epoch": epoch, "tokens_per_s": self.tokens / max(now - self.window_start, 1e-9),
                      "elapsed_s": self.elapsed_before + now - self.start, "tokens": self.tokens_before + self.tokens_seen}
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry) + "\n")
        self._reset(now)


def _totals_so_far(path: Path) -> tuple[int, float]:
    """(tokens, elapsed seconds) of the log's last line: where a resumed run's totals continue from.
    The steps between that line and the checkpoint (at most --log-every) go uncounted."""
    try:
        last = json.loads(path.read_text("utf-8").splitlines()[-1])
        return int(last["tokens"]), float(last["elapsed_s"])
    except (OSError, IndexError, KeyError, TypeError, ValueError):
        return 0, 0.0


def truncate_log(path: Path, step: int) -> None:
    """Keep the log lines up to `step` (the checkpoint resumed from); a fresh run starts an empty log."""
    kept = []
    if step and path.is_file():
        for line in path.read_text("utf-8").splitlines():
            try:
                if json.loads(line)["step"] <= step:
                    kept.append(line)
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
    with atomic_write(path) as handle:  # a kill here must not cost the history before `step`
        handle.write("".join(line + "\n" for line in kept))
