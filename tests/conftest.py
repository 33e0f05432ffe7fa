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
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA
