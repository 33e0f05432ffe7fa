"""Kill -9 anywhere, lose nothing: a fine-tuning (or benchmark) process killed at exact points by
the test hook (blurbkit/testhook.py) resumes to the same result, to the last digit, as a run that
was never interrupted; SIGTERM, NaN losses and unwritable outputs end in one line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import blurbkit_process

from blurbkit.cli.main import main
from blurbkit.models.tiny import build_tiny_bert
from blurbkit.runtime.capability import torch_threads
from blurbkit.store.results import ResultsStore

REPO_SRC = Path(__file__).resolve().parents[1] / "src"

# gad: 24 train examples in batches of 4 = 6 steps per epoch, 2 epochs; a checkpoint every 2 steps too.
RUN = ["--dataset", "gad", "--epochs", "2", "--batch-size", "4", "--max-train-examples", "24",
       "--max-eval-examples", "8", "--max-test-examples", "16", "--max-length", "64", "--lr", "1e-3",
       "--checkpoint-every", "2", "--no-progress"]
TIMING = {"train_seconds", "epoch_train_seconds", "epoch_padded_tokens", "train_examples_per_second", "encode_seconds", "wall_seconds", "resumed"}  # + how it ran


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_bert(tmp_path_factory.mktemp("tiny") / "bert")


def blurbkit(args: list[str], kill_at: str | None = None, *, tmp_path: Path) -> subprocess.CompletedProcess:
    """blurbkit ARGS in a process of its own, at one thread (the same numbers in every process). Only
    the kill needs a process of its own: what is compared with it runs here, under torch_threads(1)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("BLURBKIT_TEST_KILL_AT", None)
    if kill_at:
        env["BLURBKIT_TEST_KILL_AT"] = kill_at
    return blurbkit_process(args, tmp_path, env)


def finetune_args(model: Path, shared_data: Path, out: Path) -> list[str]:
    return ["finetune", *RUN, "--model", str(model), "--data", str(shared_data), "--out", str(out)]


def outcome(run_dir: Path) -> dict[str, object]:
    """Everything a run computed: metrics without timings, the dev history, prediction and weight bytes."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    files = sorted(p for p in run_dir.rglob("*") if p.is_file() and p.name not in ("metrics.json", "run.json"))
    return {"metrics": {k: v for k, v in metrics.items() if k not in TIMING},
            **{str(p.relative_to(run_dir)): p.read_bytes() for p in files}}


def leftovers(run_dir: Path) -> list[str]:
    """Hidden temporaries and checkpoints beside or inside a finished run directory."""
    beside = [p.name for p in run_dir.parent.iterdir() if p.name.startswith(f".{run_dir.name}.")]
    inside = [p.name for p in run_dir.iterdir() if p.name.startswith(".")] if run_dir.is_dir() else []
    return beside + inside


@pytest.fixture(scope="module")
def uninterrupted(tiny_model, shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "run"
    with torch_threads(1):
        assert main(finetune_args(tiny_model, shared_data, out)) == 0
    assert json.loads((out / "metrics.json").read_text())["resumed"] is False
    return outcome(out)


KILL_POINTS = [
    "step:9",  # mid epoch 2, after the step-8 checkpoint (the best epoch's weights are not the model's)
    "eval:1",  # during epoch 1's dev evaluation (resumes from the step-6 checkpoint, then evaluates)
    "checkpoint:3",  # while writing the 3rd checkpoint (step 6): resumes from step 4's
    "rundir",  # while writing the final run directory: resumes from the last epoch's checkpoint
]


@pytest.mark.parametrize("point", KILL_POINTS)
def test_killed_finetune_resumes_to_the_same_last_digit(point, tiny_model, shared_data, tmp_path, uninterrupted,
                                                       monkeypatch, capsys):
    out = tmp_path / "run"
    killed = blurbkit(finetune_args(tiny_model, shared_data, out), kill_at=point, tmp_path=tmp_path)
    assert killed.returncode == -9, killed.stderr
    state_file = out / ".checkpoint" / "state.json"
    state = json.loads(state_file.read_text())
    assert state["wall_seconds"] > 0  # the killed process's time up to its checkpoint
    state["wall_seconds"] = 1000.0  # as if it had run long: the resumed run's wall time must include it
    state_file.write_text(json.dumps(state))
    started = time.perf_counter()
    # Every kill point leaves a checkpoint at step 4 or later: a run that trained from step 0 again
    # (rather than from the checkpoint) would reach step 1 and stop there.
    _interrupt_at(monkeypatch, "step:1")
    with torch_threads(1):
        code = main([*finetune_args(tiny_model, shared_data, out), "--resume"])
    this_process = time.perf_counter() - started
    assert code == 0, capsys.readouterr().err
    assert outcome(out) == uninterrupted
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["resumed"] is True and 1000 < metrics["wall_seconds"] <= 1000 + this_process
    assert leftovers(out) == []  # checkpoint gone with the finished run; the killed save's temporaries removed


def test_sigterm_says_terminated_removes_temporaries_and_keeps_the_checkpoint(tiny_model, shared_data, tmp_path):
    out = tmp_path / "run"
    # A fresh interpreter, not a forked child: exiting with 143 includes the interpreter's own shutdown
    # (non-daemon threads joined, atexit handlers, buffered output flushed), which a fork skips.
    env = dict(os.environ, OMP_NUM_THREADS="1", BLURBKIT_TEST_KILL_AT="rundir:TERM",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_SRC), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-m", "blurbkit", *finetune_args(tiny_model, shared_data, out)], env=env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 143
    assert done.stderr.strip().splitlines()[-1] == "blurbkit: terminated" and "Traceback" not in done.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # the half-written run directory is gone
    assert sorted(p.name for p in out.iterdir()) == [".checkpoint", ".progress.json"]  # ready for --resume


def _interrupt_at(monkeypatch, point: str) -> None:
    """In-process stand-in for a kill: the hook raises instead of signalling."""
    import blurbkit.train.engine as engine

    class Killed(BaseException):
        pass

    def kill_point(name: str) -> None:
        if name == point:
            raise Killed

    monkeypatch.setattr(engine, "kill_point", kill_point)
    return Killed


def test_checkpoint_of_another_run_is_refused_in_one_line(tiny_model, shared_data, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    argv = ["finetune", *RUN, "--model", str(tiny_model), "--data", str(shared_data), "--out", str(out)]
    killed = _interrupt_at(monkeypatch, "step:3")
    with pytest.raises(killed):
        main(argv)
    assert (out / ".checkpoint").is_dir()
    capsys.readouterr()
    assert main(argv) == 2  # without --resume: not silently started over
    assert "holds an interrupted run; pass --resume to continue it or --overwrite to start over" in capsys.readouterr().err
    assert main([*argv, "--resume", "--lr", "5e-4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "belongs to a different run (lr: 0.0005 now, 0.001 in the checkpoint)" in err[0]
    assert main([*argv, "--resume", "--max-train-examples", "20"]) == 2  # other data
    assert "belongs to a different run (data_sha256.train" in capsys.readouterr().err


def test_a_run_killed_in_its_train_dev_phase_counts_both_phases_time(tiny_model, shared_data, tmp_path, monkeypatch, capsys):
    """--final-on-train-dev: killed in the second phase, the resumed run's wall time adds the time the
    latest checkpoint recorded (the second phase's, on the same run clock), not only the first phase's."""
    import blurbkit.train.engine as engine

    class Killed(BaseException):
        pass

    seen = []

    def kill_point(name: str) -> None:
        seen.append(name)
        if name == "step:3" and seen.count(name) == 2:  # the second phase's third step
            raise Killed

    out = tmp_path / "run"
    argv = ["finetune", *RUN, "--model", str(tiny_model), "--data", str(shared_data), "--out", str(out),
            "--final-on-train-dev"]
    with monkeypatch.context() as patch:
        patch.setattr(engine, "kill_point", kill_point)
        with pytest.raises(Killed):
            main(argv)
    walls = {}
    for phase, recorded in ((".checkpoint", 1000.0), (".checkpoint-final", 2000.0)):
        state_file = out / phase / "state.json"
        state = json.loads(state_file.read_text())
        walls[phase] = state["wall_seconds"]
        state["wall_seconds"] = recorded  # as if each phase had run long
        state_file.write_text(json.dumps(state))
    assert 0 < walls[".checkpoint"] <= walls[".checkpoint-final"]  # one clock over both phases
    capsys.readouterr()
    started = time.perf_counter()
    assert main([*argv, "--resume"]) == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["resumed"] is True and 2000 < metrics["wall_seconds"] <= 2000 + time.perf_counter() - started


def test_final_steps_killed_inside_its_cut_short_epoch_resumes_to_the_same_last_digit(tiny_model, shared_data, tmp_path,
                                                                                    monkeypatch):
    """--final-steps: the chosen model took 2 x 6 steps (24 records at batch 4), so train+dev (32
    records, 8 steps an epoch) trains 8 + 4. Killed at its step 11 (after the step-10 checkpoint,
    inside the cut-short epoch), the resumed run equals one never killed."""
    import blurbkit.train.engine as engine

    class Killed(BaseException):
        pass

    seen = []

    def kill_point(name: str) -> None:
        seen.append(name)
        if name == "step:11" and seen.count(name) == 2:  # the second phase's 11th step
            raise Killed

    def argv(out: Path) -> list[str]:
        return ["finetune", *RUN, "--model", str(tiny_model), "--data", str(shared_data), "--out", str(out),
                "--last-epoch", "--final-on-train-dev", "--final-steps"]

    with torch_threads(1):
        assert main(argv(tmp_path / "whole")) == 0
        with monkeypatch.context() as patch:
            patch.setattr(engine, "kill_point", kill_point)
            with pytest.raises(Killed):
                main(argv(tmp_path / "run"))
        assert main([*argv(tmp_path / "run"), "--resume"]) == 0
    whole, run = outcome(tmp_path / "whole"), outcome(tmp_path / "run")
    for result in (whole, run):  # the second phase's own timing
        result["metrics"]["final_on_train_dev"].pop("train_seconds")
    assert whole["metrics"]["final_on_train_dev"]["steps"] == 12 and whole["metrics"]["final_on_train_dev"]["epochs"] == 2
    assert run == whole


def _nan_at(monkeypatch, call: int) -> None:
    """The training loss turns NaN from the `call`-th batch on."""
    import blurbkit.train.engine as engine

    def poisoned(fn, enabled):
        calls = [0]

        def loss(batch):
            calls[0] += 1
            value = fn(batch)
            return value * float("nan") if calls[0] >= call else value

        return loss

    monkeypatch.setattr(engine, "maybe_compile", poisoned)


def test_nan_loss_stops_with_one_line_and_keeps_the_last_good_checkpoint(tiny_model, shared_data, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    _nan_at(monkeypatch, 9)  # epoch 2, step 3
    code = main(["finetune", *RUN, "--model", str(tiny_model), "--data", str(shared_data), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("blurbkit: error:")]
    assert code == 2 and len(errors) == 1, err
    assert "loss is not finite (NaN or inf) at epoch 2, step 3 of 6 (optimizer step 9), batch of train examples [" in errors[0]
    assert "the last good checkpoint is kept in" in errors[0]
    state = json.loads((out / ".checkpoint" / "state.json").read_text())
    assert state["position"]["epoch"] == 2 and state["position"]["step"] == 2  # step 8: before the NaN
    from safetensors.torch import load_file

    assert all(t.isfinite().all() for t in load_file(out / ".checkpoint" / "model.safetensors").values())


def test_unwritable_out_fails_before_any_training(tiny_model, shared_data, tmp_path, monkeypatch, capsys):
    import blurbkit.train.run as run

    monkeypatch.setattr(run, "load_splits", lambda *a: pytest.fail("data loaded before the output was checked"))
    (tmp_path / "file").write_text("x")
    for out in (tmp_path / "file" / "run", Path("/proc/blurbkit-test/run")):
        code = main(["finetune", *RUN, "--model", str(tiny_model), "--data", str(shared_data), "--out", str(out)])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and "cannot write the run directory here" in err[0], err


def test_stale_temporaries_of_a_killed_save_are_cleaned(tmp_path):
    from blurbkit.fileio import clean_stale

    run = tmp_path / "run"
    (tmp_path / ".run.ab12_xyz.tmp").mkdir()  # atomic_dir's half-written directory
    (tmp_path / ".run.q9w8e7r6.tmp").write_text("x")  # atomic_write's half-written file
    (tmp_path / ".run.old").mkdir()  # killed between the two renames of a replace: the old one is put back
    (tmp_path / ".run.old" / "keep").write_text("x")
    (tmp_path / ".run.backup").mkdir()  # not ours: untouched
    (tmp_path / ".runner.ab12_xyz.tmp").mkdir()  # another target's
    clean_stale(run)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".run.backup", ".runner.ab12_xyz.tmp", "run"]
    assert (run / "keep").is_file()


def _benchmark_args(model: Path, shared_data: Path, runs: Path) -> list[str]:
    return ["benchmark", "--datasets", "gad", "--seeds", "1", "--data", str(shared_data), "--model", str(model),
            "--runs-dir", str(runs), *RUN[2:]]


def test_killed_benchmark_rerun_stores_one_row_equal_to_an_uninterrupted_run(tiny_model, shared_data, tmp_path, uninterrupted):
    killed = blurbkit(_benchmark_args(tiny_model, shared_data, tmp_path), kill_at="step:5", tmp_path=tmp_path)
    assert killed.returncode == -9
    with torch_threads(1):
        assert main(_benchmark_args(tiny_model, shared_data, tmp_path)) == 0
    [row] = ResultsStore(tmp_path / "results.sqlite").rows()
    # the benchmark's run is the same run as `uninterrupted` (settings, seed, data), written elsewhere
    assert row["status"] == "ok" and row["test_score"] == uninterrupted["metrics"]["test"]["score"]
    assert json.loads(row["test_metrics"]) == uninterrupted["metrics"]["test"]
    assert json.loads(row["dev_metrics"]) == uninterrupted["metrics"]["dev"]
    run_dir = Path(row["run_dir"])
    for name in ("epochs.jsonl", "predictions/test.jsonl", "predictions/dev.jsonl"):
        assert (run_dir / name).read_bytes() == uninterrupted[name]
    assert leftovers(run_dir) == []


def test_benchmark_keep_going_stores_a_failed_run_counts_it_and_retries_it(tiny_model, shared_data, tmp_path, monkeypatch, capsys):
    runs = tmp_path / "runs"
    _nan_at(monkeypatch, 3)
    assert main([*_benchmark_args(tiny_model, shared_data, runs), "--epochs", "1", "--keep-going"]) == 1
    printed = capsys.readouterr()
    assert "| GAD | — (1 failed) |" in printed.out
    [row] = ResultsStore(runs / "results.sqlite").rows()
    assert row["status"] == "failed" and "loss is not finite" in row["error"] and row["test_score"] is None
    monkeypatch.undo()
    assert main([*_benchmark_args(tiny_model, shared_data, runs), "--epochs", "1"]) == 0  # tried again: now it trains
    [row] = ResultsStore(runs / "results.sqlite").rows()
    assert row["status"] == "ok" and row["error"] is None and isinstance(row["test_score"], float)


def test_free_heap_pages_go_back_after_every_epoch_and_when_memory_is_short(tiny_model, shared_data, tmp_path,
                                                                            monkeypatch):
    """With the tuned allocator (the default on a CPU) the engine hands free heap pages back once an
    epoch, and asks its guard after every optimizer step whether memory is short."""
    import blurbkit.inference.runner as runner
    from blurbkit.runtime.allocator import HeapGuard

    events = []

    class Recording(HeapGuard):
        def __init__(self) -> None:
            super().__init__(release=lambda: events.append("release") or True)

        def check(self) -> bool:
            events.append("check")
            return False

    monkeypatch.setattr(runner, "HeapGuard", Recording)  # the engine uses its inference runner's guard
    decode = runner.InferenceRunner._decode
    monkeypatch.setattr(runner.InferenceRunner, "_decode",
                        lambda self, *args: events.append("batch") or decode(self, *args))
    argv = ["finetune", *RUN, "--model", str(tiny_model), "--data", str(shared_data)]
    assert main([*argv, "--out", str(tmp_path / "tuned")]) == 0
    assert events.count("release") == 2  # two epochs
    # every optimizer step (2 epochs of 24 examples in batches of 4) and every inference batch (dev, test)
    assert events.count("batch") >= 3
    assert events.count("check") == 2 * 24 // 4 + events.count("batch")


def test_a_drivers_resume_starts_over_from_another_runs_checkpoint_and_says_so(tiny_model, shared_data, tmp_path,
                                                                               monkeypatch, capsys):
    # The sweep drivers pass resume + overwrite: a checkpoint their key cannot tell apart from this
    # run's (other data under the same path, say) must not fail every drive over the store.
    out = tmp_path / "run"
    argv = ["finetune", *RUN, "--model", str(tiny_model), "--data", str(shared_data), "--out", str(out)]
    killed = _interrupt_at(monkeypatch, "step:3")
    with pytest.raises(killed):
        main(argv)
    monkeypatch.undo()
    assert main([*argv, "--resume", "--overwrite", "--lr", "5e-4"]) == 0
    run = json.loads((out / "run.json").read_text("utf-8"))
    assert any("started over: " in note and "lr: 0.0005 now" in note for note in run["notes"]), run["notes"]
    fresh = json.loads((out / "metrics.json").read_text("utf-8"))["test"]["score"]
    # weights that do not read back (a truncated file) start over too, from the fresh weights
    out2 = tmp_path / "run2"
    killed = _interrupt_at(monkeypatch, "step:3")
    with pytest.raises(killed):
        main([*argv[:-1], str(out2), "--lr", "5e-4"])
    monkeypatch.undo()
    (out2 / ".checkpoint" / "optimizer.safetensors").write_bytes(b"truncated")  # after the weights loaded
    assert main([*argv[:-1], str(out2), "--lr", "5e-4", "--resume", "--overwrite"]) == 0
    notes = json.loads((out2 / "run.json").read_text("utf-8"))["notes"]
    assert any("started over: " in note and "does not read back" in note for note in notes), notes
    assert json.loads((out2 / "metrics.json").read_text("utf-8"))["test"]["score"] == fresh  # as if never resumed
    # a generator state no generator accepts (edited by hand) is found before the loop changes: started over too
    out3 = tmp_path / "run3"
    killed = _interrupt_at(monkeypatch, "step:3")
    with pytest.raises(killed):
        main([*argv[:-1], str(out3), "--lr", "5e-4"])
    monkeypatch.undo()
    state_file = out3 / ".checkpoint" / "state.json"
    state = json.loads(state_file.read_text())
    _python_generator_garbled(state, state_file.parent)
    state_file.write_text(json.dumps(state))
    assert main([*argv[:-1], str(out3), "--lr", "5e-4", "--resume", "--overwrite"]) == 0
    notes = json.loads((out3 / "run.json").read_text("utf-8"))["notes"]
    assert any("started over: " in note and "state vector is the wrong size" in note for note in notes), notes
    assert json.loads((out3 / "metrics.json").read_text("utf-8"))["test"]["score"] == fresh


def test_a_relative_model_path_resumes_under_its_absolute_path(tiny_model, shared_data, tmp_path, monkeypatch):
    # `ablate --model ./m` in this process, then the same study on --executor local (absolute paths)
    out = tmp_path / "run"
    monkeypatch.chdir(tiny_model.parent)
    base = ["finetune", *RUN, "--data", str(shared_data), "--out", str(out)]
    killed = _interrupt_at(monkeypatch, "step:3")
    with pytest.raises(killed):
        main([*base, "--model", tiny_model.name])
    monkeypatch.undo()  # the kill point, and back to the first directory
    assert main([*base, "--model", str(tiny_model.resolve()), "--resume"]) == 0
    assert json.loads((out / "metrics.json").read_text("utf-8"))["resumed"] is True


def test_a_mention_featurizer_run_notes_the_inputs_that_lost_a_mention_to_truncation(tiny_model, shared_data, tmp_path):
    base = ["finetune", "--dataset", "gad", "--epochs", "1", "--batch-size", "8", "--max-train-examples", "16",
            "--max-eval-examples", "8", "--max-test-examples", "32", "--max-length", "12", "--no-progress",
            "--model", str(tiny_model), "--data", str(shared_data)]

    def notes(out: Path, *extra: str) -> list[str]:
        assert main([*base, "--out", str(out), *extra]) == 0
        return json.loads((out / "run.json").read_text("utf-8"))["notes"]

    lost = [n for n in notes(tmp_path / "start", "--featurizer", "entity_start") if "lost a mention past 12 subwords" in n]
    assert any(n.startswith("test: ") for n in lost), lost
    assert not any("lost a mention" in n for n in notes(tmp_path / "cls"))  # [CLS] reads no mention


@pytest.fixture(scope="module")
def killed_at_step_3(tiny_model, shared_data, tmp_path_factory):
    """A run directory holding the checkpoint of a run stopped at its third optimizer step."""
    import blurbkit.train.engine as engine

    class Killed(BaseException):
        pass

    def kill_point(name: str) -> None:
        if name == "step:3":
            raise Killed

    out = tmp_path_factory.mktemp("killed") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine, "kill_point", kill_point)
        with pytest.raises(Killed):
            main(["finetune", *RUN, "--model", str(tiny_model), "--data", str(shared_data), "--out", str(out)])
    return out


def _no_signature(state: dict, ck: Path) -> None:
    del state["signature"]


def _signature_not_an_object(state: dict, ck: Path) -> None:
    state["signature"] = 5


def _no_position(state: dict, ck: Path) -> None:
    del state["position"]


def _epoch_not_a_count(state: dict, ck: Path) -> None:
    state["position"]["epoch"] = "x"


def _scheduler_not_an_object(state: dict, ck: Path) -> None:
    state["scheduler"] = 5


def _best_score_text(state: dict, ck: Path) -> None:
    state["best_score"] = "high"  # would fail only at the next epoch's comparison


def _best_score_null(state: dict, ck: Path) -> None:
    state["best_score"] = None


def _result_steps_text(state: dict, ck: Path) -> None:
    state["result"]["steps"] = "x"  # would fail only at the next optimizer step


def _wall_seconds_null(state: dict, ck: Path) -> None:
    state["wall_seconds"] = None


def _python_generator_garbled(state: dict, ck: Path) -> None:
    state["rng"]["python"] = [3, [1, 2], None]  # the right place, a state random.setstate refuses


def _rng_file_of_another_kind(state: dict, ck: Path) -> None:
    import torch
    from safetensors.torch import save_file

    save_file({"weights": torch.zeros(2)}, str(ck / "rng.safetensors"))  # valid safetensors, no generator in it


def _rng_tensor_of_another_kind(state: dict, ck: Path) -> None:
    import torch
    from safetensors.torch import save_file

    save_file({"torch": torch.zeros(3)}, str(ck / "rng.safetensors"))  # a float tensor where a byte state goes


@pytest.mark.parametrize(("damage", "message"), [
    (_no_signature, "checkpoint state.json is damaged (no run signature)"),
    (_signature_not_an_object, "checkpoint state.json is damaged (no run signature)"),
    (_no_position, "checkpoint state.json is damaged ('position' is missing or not an object)"),
    (_epoch_not_a_count, "checkpoint state.json is damaged (position 'epoch' is 'x', not a count from 1)"),
    (_scheduler_not_an_object, "checkpoint state.json is damaged ('scheduler' is missing or not an object)"),
    (_best_score_text, "checkpoint state.json is damaged ('best_score' is 'high', not a number)"),
    (_best_score_null, "checkpoint state.json is damaged ('best_score' is None, not a number)"),
    (_result_steps_text, "checkpoint state.json is damaged (result 'steps' is 'x')"),
    (_wall_seconds_null, "checkpoint state.json is damaged ('wall_seconds' is None, not a number)"),
    (_python_generator_garbled, "checkpoint state.json is damaged (ValueError: state vector is the wrong size)"),
    (_rng_file_of_another_kind, "checkpoint does not read back ('rng.safetensors has no torch generator state')"),
    (_rng_tensor_of_another_kind, "checkpoint does not read back (RNG state must be a torch.ByteTensor)"),
])
def test_a_damaged_checkpoint_is_one_line_on_resume(damage, message, tiny_model, shared_data, killed_at_step_3, tmp_path,
                                                     capsys):
    """A checkpoint edited or half-replaced by hand is refused in one line naming what is wrong, not a
    KeyError / TypeError from deep inside the restore."""
    out = tmp_path / "run"
    shutil.copytree(killed_at_step_3, out)  # one killed run for every case, each damaged in a copy
    argv = ["finetune", *RUN, "--model", str(tiny_model), "--data", str(shared_data), "--out", str(out)]
    ck = out / ".checkpoint"
    state = json.loads((ck / "state.json").read_text())
    damage(state, ck)
    (ck / "state.json").write_text(json.dumps(state))
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 2
    # (the first case may prepare the data set first, and say so)
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("blurbkit: prepar")]
    assert len(err) == 1 and err[0].startswith(f"blurbkit: error: {ck}: {message}"), err
    assert err[0].endswith("pass --overwrite to start over"), err


@pytest.mark.parametrize("where", ["missing", "empty"])
def test_resume_with_nothing_to_resume_says_it_trains_from_the_start(where, tiny_model, shared_data, tmp_path, capsys):
    out = tmp_path / "typo"
    if where == "empty":
        out.mkdir()
    argv = ["finetune", *RUN, "--epochs", "1", "--model", str(tiny_model), "--data", str(shared_data), "--out", str(out)]
    assert main([*argv, "--resume"]) == 0
    said = "does not exist" if where == "missing" else "has no checkpoint"
    assert f"blurbkit: --resume: {out} {said}; training from the start" in capsys.readouterr().err
    assert json.loads((out / "metrics.json").read_text())["resumed"] is False
    notes = json.loads((out / "run.json").read_text())["notes"]
    assert f"--resume found no checkpoint ({out} {said}): trained from the start" in notes
    # the note comes only once every other check passed: a finished run, a dataset that is not there
    assert main([*argv, "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds a finished run: nothing to resume" in err[0], err
    assert main([*argv, "--resume", "--dataset", "nosuch", "--out", str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nosuch" in err[0], err
