"""DDP pretraining proven on CPU: `torchrun --nproc_per_node 2` (gloo) on the tiny preset computes what
one process computes with the same global batch (--grad-accum 2): the same loss curve and the same
final weights. Only process 0 writes the log, the checkpoints and the model; both processes killed
after a checkpoint resume to one process's final weights.

Three torchrun launches in all (two processes importing torch and transformers: 10-20 s each) plus
an in-process run per test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_pretrain_corpus

from blurbkit.pretrain.config import PretrainConfig
from blurbkit.pretrain.trainer import pretrain

WORDS = ["lymphoma", "insulin", "naloxone", "clonidine", "receptor", "kinase", "patients", "treated", "dose", "cells",
         "expression", "mice"]
# 34 packed examples: the 6 steps of 8 sequences cross an epoch end (step 5), split differently by
# one process (two micro-batches) and two (one slice each).
ARGS = ["--max-length", "32", "--batch-size", "4", "--max-steps", "6", "--save-every", "3", "--log-every", "1",
        "--lr", "1e-3", "--seed", "42", "--no-progress", "--threads", "1"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    corpus, vocab = write_pretrain_corpus(root, WORDS)
    return root, corpus, vocab


def torchrun(setup, out: Path, kill_at: str | None = None, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    root, corpus, vocab = setup
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(filter(None, [
        str(Path(__file__).resolve().parents[1] / "src"), os.environ.get("PYTHONPATH")])))
    env.pop("BLURBKIT_TEST_KILL_AT", None)
    if kill_at:
        env["BLURBKIT_TEST_KILL_AT"] = kill_at  # both processes kill themselves there
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "blurbkit", "pretrain", "--corpus", str(corpus), "--tokenizer", str(vocab),
               "--from-scratch", "tiny", "--out", str(out), *ARGS, *extra]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def _weights(out: Path) -> dict[str, np.ndarray]:
    from safetensors.torch import load_file

    return {k: v.numpy() for k, v in load_file(str(out / "model.safetensors")).items()}


def _same_weights(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        np.testing.assert_allclose(wa[key], wb[key], atol=1e-5, rtol=0, err_msg=key)


def _single_process(setup, out: Path, **kw) -> None:
    root, corpus, vocab = setup
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each torchrun process (OMP_NUM_THREADS=1): the same float reductions
    try:
        pretrain(PretrainConfig(corpus=[str(corpus)], out=str(out), tokenizer=str(vocab), from_scratch="tiny",
                                max_length=32, batch_size=4, grad_accum=2, max_steps=6, save_every=3, log_every=1,
                                lr=1e-3, seed=42, progress=False, **kw))
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
@pytest.mark.timeout(600)  # one torchrun launch: slow on a busy 2-core machine
def test_electra_on_two_processes_equals_one_with_gradient_accumulation(setup, tmp_path):
    """ELECTRA adds the generator's sampling to what must not depend on the split of a global batch:
    its samples come from each example's own stream (objectives/electra.py), so two processes again
    log the same losses (generator MLM and replaced-token detection) and end with the same discriminator."""
    single = tmp_path / "single"
    _single_process(setup, single, objective="electra")
    ddp = tmp_path / "ddp"
    done = torchrun(setup, ddp, extra=("--objective", "electra"))
    assert done.returncode == 0, done.stderr[-3000:]
    log, reference = _log(ddp), _log(single)
    assert [e["step"] for e in log] == [1, 2, 3, 4, 5, 6]
    for part in ("loss", "gen_loss", "rtd_loss", "replaced_fraction"):
        assert [e[part] for e in log] == pytest.approx([e[part] for e in reference], abs=1e-5), part
    assert [e["tokens"] for e in log] == [e["tokens"] for e in reference]
    assert json.loads((ddp / "config.json").read_text())["architectures"] == ["ElectraForPreTraining"]
    _same_weights(ddp, single)


@pytest.mark.timeout(900)  # two torchrun launches: slow on a busy 2-core machine
def test_two_processes_killed_and_resumed_equal_one_with_gradient_accumulation(setup, tmp_path):
    """Both processes killed right after the checkpoint of step 3, then the same command again: the
    log of the two launches, the gradients and the final weights are one process's (a third launch,
    never killed, would only add its start-up: the killed-and-resumed run is held to the same digits).
    The tolerances leave room for another CPU's reduction order; on the AVX2-only EPYC the two runs'
    losses, gradient norms and weights were identical (0.0 apart), and a resume off by one step (its
    learning-rate schedule, its data position) moves the loss of steps 4-6 by far more than 1e-5."""
    single = tmp_path / "single"
    _single_process(setup, single)

    ddp = tmp_path / "ddp"
    killed = torchrun(setup, ddp, kill_at="step:3")
    assert killed.returncode != 0
    assert (ddp / "checkpoints" / "step-00000003" / "state.json").is_file()
    assert not (ddp / "model.safetensors").exists()
    assert [e["step"] for e in _log(ddp)] == [1, 2, 3]
    assert not [line for line in killed.stdout.splitlines() if line.startswith("{")]  # no summary: it never finished

    done = torchrun(setup, ddp)
    assert done.returncode == 0, done.stderr[-3000:]
    # only process 0 prints, logs and writes: one summary, one log line per step, one set of checkpoints
    summaries = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1 and summaries[0]["steps"] == 6
    assert summaries[0]["resumed_from"].endswith("step-00000003")
    assert json.loads((ddp / "pretrain_summary.json").read_text())["world_size"] == 2
    log, reference = _log(ddp), _log(single)
    assert [e["step"] for e in log] == [1, 2, 3, 4, 5, 6]
    assert [e["loss"] for e in log] == pytest.approx([e["loss"] for e in reference], abs=1e-5)
    # The gradient itself, before clipping and Adam hide its scale: a sum over processes or
    # micro-batches where a mean belongs would show as exactly 2x here.
    assert [e["grad_norm"] for e in log] == pytest.approx([e["grad_norm"] for e in reference], rel=1e-4)
    assert [e["tokens"] for e in log] == [e["tokens"] for e in reference]
    _same_weights(ddp, single)
    checkpoints = ddp / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["latest.json", "step-00000003", "step-00000006"]
    assert sorted(p.name for p in (checkpoints / "step-00000006").glob("rng-rank*")) == \
        ["rng-rank0.safetensors", "rng-rank1.safetensors"]  # every process's RNG, written by process 0
