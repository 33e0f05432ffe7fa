"""Shared test fixtures: where the real data lives, and tiny random BERTs built from a config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("BLURBKIT_SHARED_DATA", REPO.parent / "shared" / "data"))


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
