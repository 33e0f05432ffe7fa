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


def test_the_raw_data_default_is_blurbkit_data_as_for_every_command(monkeypatch, tmp_path, capsys):
    from blurbkit.cli.main import main
    from blurbkit.data.load import default_data

    monkeypatch.setenv("BLURBKIT_DATA", str(tmp_path / "raw"))
    monkeypatch.setenv("BLURBKIT_SHARED_DATA", str(tmp_path / "tests-only"))  # the test suite's variable, not a user's
    assert default_data() == Path(tmp_path / "raw")
    # the corpus commands that read BLURB's raw files without --data look there too
    (tmp_path / "raw").mkdir()
    assert main(["corpus", "terms", "--topic", "drug", "--out", str(tmp_path / "terms.txt")]) == 2
    assert str(tmp_path / "raw") in capsys.readouterr().err
