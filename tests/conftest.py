"""Shared test fixtures: where the real data lives, and tiny random BERTs built from a config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("BLURBKIT_SHARED_DATA", REPO.parent / "shared" / "data"))


def pytest_configure(config):
    """Under pytest-xdist, each worker gives torch its share of the cores. Every worker at torch's
    default (one thread per core) oversubscribes them, and OpenMP threads waiting on a descheduled
    sibling spin: two workers training at once ran 2-7x slower than either alone on 2 cores."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        torch.set_num_threads(max(1, torch.get_num_threads() // workers))


@pytest.fixture(scope="session")
def _shared_cache(tmp_path_factory) -> Path:
    """One cache of prepared raw data per test session (per worker): preparing is tested
    explicitly elsewhere, so other tests need not re-prepare every dataset."""
    return tmp_path_factory.mktemp("prepared_cache")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch, _shared_cache):
    """Each test gets its own BLURBKIT_HOME so user registries never leak between tests."""
    monkeypatch.setenv("BLURBKIT_HOME", str(tmp_path_factory.mktemp("blurbkit_home")))
    monkeypatch.setenv("BLURBKIT_CACHE", str(_shared_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The 13 BLURB datasets as distributed (../shared/data, or $BLURBKIT_SHARED_DATA). In CI they
    must be there: a missing folder fails the test instead of skipping it."""
    if not SHARED_DATA.is_dir():
        message = f"the BLURB data folder is not at {SHARED_DATA} (set BLURBKIT_SHARED_DATA to where it is)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return SHARED_DATA


# The quick subset (`pytest -m "not slow"`, about 60 % of the tests) leaves out what needs the real
# data, builds or trains a model, or runs processes: those tests are marked slow here, by what they
# use, so a new test is classified without anyone remembering to.
SLOW_FIXTURES = {"shared_data", "tiny_model", "tiny", "model_dir", "engine_and_data", "runs", "prepared", "setup",
                 "tiny_pipeline", "tiny_service"}
SLOW_MODULES = {"test_store_concurrency", "test_sweep_ray", "test_resume", "test_service", "test_fuzz_inputs", "test_task_type_plugin", "test_pretrain", "test_model_compat", "test_corpus"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__.rpartition(".")[2]
        if module in SLOW_MODULES or SLOW_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)
    # The tests that declare a timeout above the default are the longest (torchrun, Ray, the real
    # MiniLM: 20-50 s each on a slow 2-core CPU). Run first, they overlap the many short tests on the
    # other worker instead of running alone at the end of a parallel run. (A stable sort: modules
    # keep their order otherwise.)
    try:  # pytest-timeout's --timeout, else its ini value; neither when the plugin is off (-p no:timeout)
        default = float(config.getoption("timeout", None) or config.getini("timeout") or 0)
    except ValueError:
        default = 0.0

    def declared(item) -> float:
        mark = item.get_closest_marker("timeout")
        seconds = float(mark.args[0]) if mark and mark.args else 0.0
        return seconds if seconds > default else 0.0

    items.sort(key=lambda item: -declared(item))


def write_pretrain_corpus(root: Path, words: list[str]) -> tuple[Path, Path]:
    """A tiny seeded corpus (30 documents of 2-5 sentences of `words`) and a 120-piece WordPiece
    vocabulary built on it: what the pretraining tests train on."""
    import random

    from blurbkit.pretrain.vocab import build_vocab

    rng = random.Random(0)
    docs = ["\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(5, 12))).capitalize() + "."
                      for _ in range(rng.randint(2, 5))) for _ in range(30)]
    corpus = root / "corpus.txt"
    corpus.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    build_vocab((s for d in docs for s in d.split("\n")), root / "vocab", size=120, min_frequency=1)
    return corpus, root / "vocab"


def fake_model_dir(tmp_path: Path) -> Path:
    """A directory that passes resolve_model_dir's checks and holds no model: for tests whose
    fine-tuning is faked (planning, store and executor logic alone)."""
    model = tmp_path / "model"
    model.mkdir()
    for name in ("config.json", "model.safetensors", "vocab.txt"):
        (model / name).write_text("{}")
    return model


def _cli_in_child(args: list[str], env: dict[str, str], out: str, err: str) -> None:
    """The body of `python -m blurbkit ARGS` in a forked child: its own environment, one thread, its
    output to files; the exit code main() returns, or the signal that ended it."""
    import io

    import torch

    from blurbkit.cli.main import main

    os.environ.clear()
    os.environ.update(env)
    torch.set_num_threads(int(env.get("OMP_NUM_THREADS", "1")))
    for fd, path in ((1, out), (2, err)):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), fd)
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", line_buffering=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", line_buffering=True)
    try:
        code = main(args)
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


def blurbkit_process(args: list[str], tmp_path: Path, env: dict[str, str] | None = None,
                     timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m blurbkit ARGS` as a process of its own (it may be killed with -9: the test hook),
    forked from a server that imported torch and transformers once, as the local executor's runs
    are: a fresh interpreter pays that import again (~9 s on a slow CPU) in every test that kills one.
    Returns what subprocess.run would: the exit code (-9 for a kill) and both streams."""
    import multiprocessing

    from blurbkit.experiments.executors import PRELOAD

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    streams = tmp_path / f".child-{os.urandom(4).hex()}"
    env = dict(os.environ if env is None else env)
    env.setdefault("OMP_NUM_THREADS", "1")  # one thread: the same float reductions in every process
    child = context.Process(target=_cli_in_child, args=(args, env, f"{streams}.out", f"{streams}.err"))
    child.start()
    try:
        child.join(timeout)
        if child.exitcode is None:
            raise TimeoutError(f"blurbkit {' '.join(args[:1])} ran longer than {timeout:g} s")
        out, err = (Path(f"{streams}.{name}").read_text("utf-8") for name in ("out", "err"))
    finally:  # a child never outlives its test (pytest-timeout interrupting the join included)
        if child.is_alive():
            child.kill()
            child.join()
        for name in ("out", "err"):
            Path(f"{streams}.{name}").unlink(missing_ok=True)
    return subprocess.CompletedProcess(["blurbkit", *args], child.exitcode, out, err)
