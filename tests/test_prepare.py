"""`blurbkit prepare` / `datasets` / load_split: manifest contents, deviations, caching, user datasets."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import pytest

import blurbkit
from blurbkit.cli.main import main
from blurbkit.data.load import load_manifest, load_split, resolve_data, split_notes, split_size
from blurbkit.data.readers import SplitUnavailable
from blurbkit.data.readers.base import ReadOptions
from blurbkit.errors import BlurbkitError
from blurbkit.fileio import sha256_file
from blurbkit.tasks.registry import get_dataset, user_registry_dir

SMALL = "biosses,gad,ebm_pico,aimed"


@pytest.fixture(scope="module")
def prepared(shared_data, tmp_path_factory):
    """One prepare run of a few real datasets, with a local deviation and a non-default fold."""
    out = tmp_path_factory.mktemp("prep") / "out"
    rc = main(["prepare", "--source", str(shared_data), "--out", str(out), "--datasets", SMALL,
               "--pico-train-from-dev", "20", "--fold", "3"])  # fmt: skip
    assert rc == 0
    return out


def test_manifest_counts_hashes_options(prepared, shared_data):
    manifest = json.loads((prepared / "manifest.json").read_text())
    assert manifest["blurbkit_version"] == blurbkit.__version__
    assert manifest["options"] == {"pico_train_from_dev": 20, "fold": 3}
    assert list(manifest["datasets"]) == SMALL.split(",")
    gad = manifest["datasets"]["gad"]
    assert gad["splits"]["dev"] | {"notes": []} == gad["splits"]["dev"] | {
        "status": "ok", "measured": 535, "published": 535, "difference": 0, "records": 535, "notes": [],
    }  # fmt: skip
    assert gad["source_files"] == {
        f: sha256_file(shared_data / "gad" / f) for f in ("train.tsv", "dev.tsv", "test.tsv")
    }
    assert len((prepared / "gad" / "test.jsonl").read_text().splitlines()) == 534
    aimed = manifest["datasets"]["aimed"]
    assert (
        aimed["options"] == {"fold": 3} and aimed["splits"]["test"]["measured"] == 587
    )  # fold 3 in SOURCE.md
    assert aimed["splits"]["test"]["published"] is None and len(aimed["source_files"]) == 10


def test_local_deviation_in_manifest_and_output(prepared, shared_data, tmp_path, capsys):
    manifest = json.loads((prepared / "manifest.json").read_text())
    pico = manifest["datasets"]["ebm_pico"]
    assert pico["options"] == {"pico_train_from_dev": 20}
    assert pico["splits"]["train"]["status"] == "ok" and pico["splits"]["train"]["details"]["documents"] == 20
    assert pico["splits"]["dev"]["details"]["documents"] == 940
    assert any("LOCAL DEVIATION" in line for line in manifest["local_deviations"])
    # printed too, in its own run
    out = tmp_path / "p"
    assert main(["prepare", "--source", str(shared_data), "--out", str(out), "--datasets", "ebm_pico",
                 "--pico-train-from-dev", "5"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "!! ebm_pico train: LOCAL DEVIATION from BLURB" in printed and "prepared ebm_pico" in printed


def test_missing_pico_train_is_recorded_not_fatal(shared_data, tmp_path, capsys):
    out = tmp_path / "p"
    assert (
        main(["prepare", "--source", str(shared_data), "--out", str(out), "--datasets", "ebm_pico,biosses"])
        == 0
    )
    printed = capsys.readouterr().out
    train = json.loads((out / "manifest.json").read_text())["datasets"]["ebm_pico"]["splits"]["train"]
    assert train["status"] == "missing" and "--pico-train-from-dev" in train["reason"]
    assert not (out / "ebm_pico" / "train.jsonl").exists() and (out / "ebm_pico" / "dev.jsonl").exists()
    assert "missing/339167" in printed and "87913/85321" in printed  # the counts table
    for read in (load_split, split_size):
        with pytest.raises(SplitUnavailable, match="--pico-train-from-dev"):
            read("ebm_pico", "train", out)
    assert any(n.startswith("train: ") and "not distributed" in n for n in split_notes("ebm_pico", out))


def test_absent_source_folders_are_skipped_unless_asked_for(tmp_path, capsys):
    source = tmp_path / "src"
    _tiny_gad(source)
    assert main(["prepare", "--source", str(source), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "skip     hoc" in printed and "prepared gad" in printed
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert list(manifest["datasets"]) == ["gad"] and "hoc" in manifest["skipped"]
    assert manifest["datasets"]["gad"]["splits"]["test"]["difference"] == 1 - 534
    # asked for by name, or a source with none of the folders (one level too deep): one line, nothing written
    for argv, message in ((["--source", str(source), "--datasets", "gad,hoc"], "no folder for hoc in"),
                          (["--source", str(tmp_path / "src" / "gad")], "none of the")):
        assert main(["prepare", *argv, "--out", str(tmp_path / "out2")]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and not (tmp_path / "out2").exists()


def test_a_user_dataset_without_a_source_names_its_toml_when_its_folder_is_missing(tmp_path, capsys):
    from blurbkit.tasks.registry import user_registry_dir

    user_registry_dir().mkdir(parents=True)
    toml = user_registry_dir() / "mine.toml"
    toml.write_text('reader = "conll"\ntask_type = "ner"\nentity_types = ["Chemical"]\nin_blurb = false\n'
                    'files = { train = "train.tsv", dev = "dev.tsv", test = "test.tsv" }\n')  # no `source`
    (tmp_path / "src").mkdir()
    for argv in (["--source", str(tmp_path / "src")], []):  # --source, or none at all
        assert main(["prepare", *argv, "--datasets", "mine", "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "no folder for mine " in err and f"({toml} names no source)" in err, err
    # a TOML naming a source that is not a folder is named with it (not --source, which it overrides)
    toml.write_text(toml.read_text() + f'source = "{tmp_path / "gone"}"\n')
    assert main(["prepare", "--source", str(tmp_path / "src"), "--datasets", "mine", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"no folder for mine: {toml} names source '{tmp_path / 'gone'}', which is not a folder" in err, err
    # a built-in dataset has no TOML of its own to blame
    assert main(["prepare", "--source", str(tmp_path / "src"), "--datasets", "gad", "--out", str(tmp_path / "out")]) == 2
    assert "names no source" not in capsys.readouterr().err


def test_load_from_prepared_dir_checks_options(prepared):
    records = load_split("aimed", "test", prepared)
    assert len(records) == 587 == split_size("aimed", "test", prepared)  # a plan's count: the manifest's, unparsed
    assert load_split("aimed", "test", prepared, ReadOptions(fold=3)) == records
    with pytest.raises(BlurbkitError, match="prepared with"):
        load_split("aimed", "test", prepared, ReadOptions(fold=0))
    with pytest.raises(BlurbkitError, match="not in this prepared directory"):
        load_split("bc5chem", "test", prepared)
    assert any("LOCAL DEVIATION" in note for note in split_notes("ebm_pico", prepared))


def test_load_from_raw_source_uses_a_cache(shared_data, monkeypatch):
    monkeypatch.delenv("BLURBKIT_CACHE")  # the default cache under BLURBKIT_HOME, empty at the start
    first = load_split("biosses", "dev", shared_data)
    cache = Path(os.environ["BLURBKIT_HOME"]) / "cache" / "prepared"
    entries = sorted(cache.iterdir())
    assert len(first) == 16 and len(entries) == 1 and entries[0].name.startswith("biosses-")
    stamp = (entries[0] / "manifest.json").stat().st_mtime_ns
    assert load_split("biosses", "test", shared_data) and sorted(cache.iterdir()) == entries
    assert (entries[0] / "manifest.json").stat().st_mtime_ns == stamp  # reused, not rebuilt
    load_split("aimed", "dev", shared_data, ReadOptions(fold=1))
    load_split("aimed", "dev", shared_data, ReadOptions(fold=2))
    assert len(list(cache.iterdir())) == 3  # the options are part of the key


def _tiny_gad(source: Path) -> None:
    (source / "gad").mkdir(parents=True)
    for split in ("train", "dev", "test"):
        (source / "gad" / f"{split}.tsv").write_text(
            "index\tsentence\tlabel\n0\t@GENE$ causes @DISEASE$.\t1\n"
        )


def test_manifest_of_a_raw_folder(tmp_path):
    _tiny_gad(tmp_path)
    manifest = load_manifest(tmp_path)
    assert list(manifest["datasets"]) == ["gad"] and "bc5chem" in manifest["skipped"]
    assert manifest["datasets"]["gad"]["splits"]["dev"]["measured"] == 1


def test_default_data(monkeypatch, tmp_path, shared_data):
    monkeypatch.setenv("BLURBKIT_DATA", str(shared_data))
    assert resolve_data(None) == shared_data
    monkeypatch.delenv("BLURBKIT_DATA")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BlurbkitError, match="no data folder"):
        resolve_data(None)
    (tmp_path / "work").mkdir()
    (tmp_path / "shared" / "data").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work")
    assert resolve_data(None) == Path("..") / "shared" / "data"


def _conll(path: Path, sentences: list[list[tuple[str, str]]]) -> None:
    path.write_text("\n\n".join("\n".join(f"{w}\t{t}" for w, t in s) for s in sentences) + "\n\n")


def test_user_conll_dataset_end_to_end(tmp_path, capsys, monkeypatch):
    source = tmp_path / "mygenes"
    source.mkdir()
    sentence = [("BRCA1", "B-Gene"), ("binds", "O"), ("TP53", "B-Gene"), ("protein", "I-Gene")]
    for split in ("train", "dev", "test"):
        _conll(source / f"{split}.tsv", [sentence, [("no", "O"), ("gene", "O")]])
    assert main(["datasets", "add", "mygenes", "--format", "conll", "--source", str(source)]) == 0
    table = tomllib.loads((user_registry_dir() / "mygenes.toml").read_text())
    assert table["entity_types"] == ["Gene"] and table["source"] == str(source.resolve())  # inferred
    spec = get_dataset("mygenes")
    assert spec.task_type == "ner" and spec.source == source.resolve() and not spec.in_blurb

    monkeypatch.chdir(tmp_path)  # no ../shared/data here: the user dataset needs none
    out = tmp_path / "out"
    assert main(["prepare", "--out", str(out), "--datasets", "mygenes"]) == 0
    assert main(["datasets", "--data", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "mygenes" in printed and "2/-" in printed
    records = load_split("mygenes", "train", out)
    assert records[0] == {
        "id": "mygenes-train-0",
        "doc_id": None,
        "tokens": [w for w, _ in sentence],
        "tags": [t for _, t in sentence],
    }
    assert load_split("mygenes", "test") == load_split("mygenes", "test", out)  # raw, from its `source`


def test_user_dataset_one_file_alternative(tmp_path):
    source = tmp_path / "d"
    source.mkdir()
    for split in ("train", "dev", "test"):
        _conll(source / f"{split}.tsv", [[("aspirin", "B-Drug"), ("works", "O")]])
    user_registry_dir().mkdir(parents=True)
    (user_registry_dir() / "drugs.toml").write_text(
        f'task_type = "ner"\nreader = "conll"\nsource = "{source}"\n'
        'files = { train = "train.tsv", dev = "dev.tsv", test = "test.tsv" }\n'
    )
    assert load_split("drugs", "dev")[0]["tags"] == ["B-Drug", "O"]  # entity types inferred


def test_datasets_add_rejects_bad_input(tmp_path, capsys):
    source = tmp_path / "x"
    source.mkdir()
    assert main(["datasets", "add", "bc5chem", "--format", "conll", "--source", str(source)]) == 2
    assert main(["datasets", "add", "mine", "--format", "conll", "--source", str(source)]) == 2
    (source / "train.tsv").write_text("a\tB-X\n")
    (source / "dev.tsv").write_text("a\tB-X\n")
    (source / "test.tsv").write_text("a\tI-X\n")
    assert main(["datasets", "add", "mine", "--format", "conll", "--source", str(source)]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert "built-in" in errors[0] and "train file not found" in errors[1]
    assert "test.tsv:1: tag 'I-X' follows 'O'" in errors[2]
    assert not (user_registry_dir() / "mine.toml").exists()


def test_datasets_table_without_any_data(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("BLURBKIT_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["datasets"]) == 0
    printed = capsys.readouterr().out
    assert "bc5chem" in printed and "339167" in printed and "no data folder found" in printed


@pytest.mark.parametrize("changed", ["relation.py", "fileio.py", "chemprot.py"])
def test_the_prepared_data_cache_follows_the_code_that_makes_records(changed, monkeypatch):
    from pathlib import Path

    from blurbkit.data import load

    before = load._code_digest()
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: real(self) + (b"\n# changed" if self.name == changed else b""))
    assert load._code_digest() != before


def test_a_misspelt_dataset_field_is_refused_not_defaulted():
    from blurbkit.errors import BlurbkitError
    from blurbkit.tasks.registry import _spec_from_table

    table = {"task_type": "relation", "reader": "gad", "files": {"train": "train.tsv"}, "seed": 10}
    with pytest.raises(BlurbkitError, match="unknown field.s. seed .known: task_type"):
        _spec_from_table("toy", table, "toy.toml")
    table = {"task_type": "relation", "reader": "gad", "files": {"train": "train.tsv"}, "recipe": {"batch": 16}}
    with pytest.raises(BlurbkitError, match="unknown field.s. recipe.batch"):
        _spec_from_table("toy", table, "toy.toml")
