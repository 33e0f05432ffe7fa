"""Where blurbkit's files go: $BLURBKIT_CACHE moves every cache, $BLURBKIT_DATA the raw data default."""

from __future__ import annotations

from pathlib import Path


def test_the_encoding_cache_follows_blurbkit_cache(monkeypatch, tmp_path):
    from blurbkit.models import encode_cache

    monkeypatch.setenv("BLURBKIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BLURBKIT_CACHE", str(tmp_path / "elsewhere"))
    assert encode_cache._path("abc").parent == tmp_path / "elsewhere" / "encoded"
    monkeypatch.delenv("BLURBKIT_CACHE")
    assert encode_cache._path("abc").parent == tmp_path / "home" / "cache" / "encoded"


def test_the_raw_data_default_is_blurbkit_data_as_for_every_command(monkeypatch, tmp_path):
    from blurbkit.pretrain.testsets import default_data_dir

    monkeypatch.setenv("BLURBKIT_DATA", str(tmp_path / "raw"))
    monkeypatch.setenv("BLURBKIT_SHARED_DATA", str(tmp_path / "tests-only"))  # the test suite's variable, not a user's
    assert default_data_dir() == Path(tmp_path / "raw")
