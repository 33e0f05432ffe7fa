"""Malformed raw data: one error line naming file and line, exit code 2, no traceback, nothing written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from blurbkit.cli.main import main
from blurbkit.data.load import load_split
from blurbkit.errors import BlurbkitError
from blurbkit.tasks.registry import user_registry_dir

GOOD = {
    "conll": {"{s}.tsv": "a\tB-Gene\nb\tO\n"},
    "pico": {"{s}.txt": "-DOCSTART- (1)\n\na NN O I-PAR\n"},
    "chemprot": {"{s}.tsv": "@CHEMICAL$ blocks @GENE$.\t1\n", "label2id.tsv": "0\t0\nCPR:3\t1\n"},
    "gad": {"{s}.tsv": "index\tsentence\tlabel\n0\t@GENE$ in @DISEASE$.\t1\n"},
    "biosses": {"{s}.tsv": "pair_id\tsent1\tsent2\tscore\n1\ta\tb\t2.0\n"},
    "hoc": {"{s}.json": '{"id": "1", "sentence": "a", "label": [0, 1]}\n'},
    "pubmedqa": {"{s}.json": '{"id": "1", "sentence1": "q?", "sentence2": "c", "label": "yes"}\n'},
    "bioasq": {"{s}.tsv": "q1\tq?\tc\tyes\n"},
}
TOML = {
    "conll": 'task_type = "ner"\nentity_types = ["Gene"]',
    "pico": 'task_type = "pico"\nentity_types = ["PAR", "INT", "OUT"]',
    "chemprot": 'task_type = "relation"\nlabels = ["false", "CPR:3"]\nnegative_label = "false"\nentity_types = ["CHEMICAL", "GENE"]',
    "gad": 'task_type = "relation"\nlabels = ["0", "1"]\nnegative_label = "0"\nentity_types = ["GENE", "DISEASE"]',
    "biosses": 'task_type = "similarity"',
    "hoc": 'task_type = "doc_classification"\nlabels = ["x", "y"]',
    "pubmedqa": 'task_type = "qa"\nlabels = ["yes", "no", "maybe"]',
    "bioasq": 'task_type = "qa"\nlabels = ["yes", "no"]',
}
# (case, format, the dev file's bad content, line named in the error or None, what the error says)
CASES = [
    ("conll-columns", "conll", "a\tO\tX\n", 1, "expected 2 tab-separated columns"),
    ("conll-unknown-tag", "conll", "a\tO\nb\tX-Gene\n", 2, "unknown tag 'X-Gene'"),
    ("conll-foreign-type", "conll", "a\tB-Chem\n", 1, "entity type 'Chem'"),
    ("conll-I-after-O", "conll", "a\tO\nb\tI-Gene\n", 2, "tag 'I-Gene' follows 'O'"),
    ("conll-empty-file", "conll", "", None, "file is empty"),
    ("conll-not-utf8", "conll", b"a\tO\n\xff\tO\n", 2, "not valid UTF-8"),
    ("conll-missing-file", "conll", None, None, "file not found"),
    ("conll-only-docstart", "conll", "-DOCSTART-\tO\n\n", None, "no sentences"),
    ("pico-columns", "pico", "-DOCSTART- (1)\n\na NN I-PAR\n", 3, "expected 4 space-separated columns"),
    ("pico-bio-tag", "pico", "-DOCSTART- (1)\n\na NN O B-PAR\n", 3, "unknown tag 'B-PAR'"),
    ("pico-unknown-element", "pico", "-DOCSTART- (1)\n\na NN O I-XYZ\n", 3, "PICO element 'XYZ'"),
    ("chemprot-label-id", "chemprot", "@CHEMICAL$ x @GENE$\t0\n@CHEMICAL$ y @GENE$\t7\n", 2, "unknown label id '7'"),
    ("chemprot-no-placeholders", "chemprot", "a sentence\t0\n", 1, "two entity placeholders"),
    ("chemprot-columns", "chemprot", "@CHEMICAL$ x @GENE$\n", 1, "expected 2 tab-separated columns"),
    ("gad-header", "gad", "idx\tsentence\tlabel\n0\t@GENE$ @DISEASE$\t1\n", 1, "expected the header"),
    ("gad-label", "gad", "index\tsentence\tlabel\n0\t@GENE$ @DISEASE$\t2\n", 2, "unknown label '2'"),
    ("gad-foreign-placeholder", "gad", "index\tsentence\tlabel\n0\t@DRUG$ @DISEASE$\t1\n", 2, "entity type 'DRUG'"),
    ("biosses-score", "biosses", "pair_id\tsent1\tsent2\tscore\n1\ta\tb\thigh\n", 2, "score 'high' is not a number"),
    ("hoc-label-vector", "hoc", '{"id": "1", "sentence": "a", "label": [0, 1, 1]}\n', 1, "list of 2 0/1 values"),
    ("hoc-bad-json", "hoc", '{"id": "1", "sentence": \n', 1, "not valid JSON"),
    ("pubmedqa-label", "pubmedqa", '{"id": "1", "sentence1": "q", "sentence2": "c", "label": "perhaps"}\n', 1, "unknown label 'perhaps'"),
    ("pubmedqa-missing-key", "pubmedqa", '{"id": "1", "sentence1": "q", "label": "yes"}\n', 1, "lacks 'sentence2'"),
    ("pubmedqa-question-number", "pubmedqa", '{"id": "1", "sentence1": 5, "sentence2": "c", "label": "yes"}\n', 1,
     "'sentence1' is int, not a string"),
    ("hoc-text-list", "hoc", '{"id": "1", "sentence": ["a"], "label": [0, 1]}\n', 1, "'sentence' is list, not a string"),
    ("bioasq-columns", "bioasq", "q1\tq?\tyes\n", 1, "expected 4 tab-separated columns"),
]  # fmt: skip


def make_dataset(root: Path, fmt: str, bad: str | bytes | None) -> tuple[str, Path]:
    """A user dataset (one-file TOML) of `fmt` whose dev file holds `bad` (None: no dev file)."""
    name = f"bad_{fmt}"
    source = root / name
    source.mkdir(parents=True)
    for pattern, content in GOOD[fmt].items():
        for split in ("train", "dev", "test"):
            (source / pattern.format(s=split)).write_text(content)
    dev = source / next(p for p in GOOD[fmt] if "{s}" in p).format(s="dev")
    if bad is None:
        dev.unlink()
    elif isinstance(bad, bytes):
        dev.write_bytes(bad)
    else:
        dev.write_text(bad)
    files = {
        split: next(p for p in GOOD[fmt] if "{s}" in p).format(s=split) for split in ("train", "dev", "test")
    }
    user_registry_dir().mkdir(parents=True, exist_ok=True)
    table = ", ".join(f'{split} = "{file}"' for split, file in files.items())
    (user_registry_dir() / f"{name}.toml").write_text(
        f'reader = "{fmt}"\nsource = "{source}"\nfiles = {{ {table} }}\nin_blurb = false\n{TOML[fmt]}\n'
    )
    return name, dev


def test_good_files_prepare(tmp_path, capsys):
    for fmt in GOOD:
        make_dataset(tmp_path / "src", fmt, GOOD[fmt][next(p for p in GOOD[fmt] if "{s}" in p)])
    names = ",".join(f"bad_{fmt}" for fmt in GOOD)
    assert main(["prepare", "--out", str(tmp_path / "out"), "--datasets", names]) == 0, (
        capsys.readouterr().err
    )
    # The control case of the table below: every good file was read, as one record per split.
    for fmt in GOOD:
        for split in ("train", "dev", "test"):
            assert len(load_split(f"bad_{fmt}", split, str(tmp_path / "out"))) == 1, (fmt, split)


@pytest.mark.parametrize(("case", "fmt", "bad", "line", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, capsys, case, fmt, bad, line, message):
    name, dev = make_dataset(tmp_path / "src", fmt, bad)
    out_root = tmp_path / "outroot"
    rc = main(["prepare", "--out", str(out_root / "out"), "--datasets", name])
    captured = capsys.readouterr()
    errors = captured.err.strip().splitlines()
    assert rc == 2
    assert len(errors) == 1 and "Traceback" not in captured.err
    where = f"{dev}:{line}: " if line is not None else f"{dev}: "
    assert errors[0].startswith(f"blurbkit: error: {where}"), errors[0]
    assert message in errors[0]
    assert not out_root.exists() or not any(out_root.iterdir())  # no output dir, no temp dir left


def test_failed_prepare_keeps_the_previous_output(tmp_path, capsys):
    name, dev = make_dataset(tmp_path / "src", "conll", "a\tO\n")
    out = tmp_path / "out"
    assert main(["prepare", "--out", str(out), "--datasets", name]) == 0
    before = (out / "manifest.json").read_bytes()
    dev.write_text("a\tO\tO\n")
    assert main(["prepare", "--out", str(out), "--datasets", name]) == 2
    assert (out / "manifest.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]


def test_bad_input_on_the_fly_leaves_no_cache(tmp_path):
    name, _ = make_dataset(tmp_path / "src", "gad", "index\tsentence\tlabel\n0\tno placeholders\t1\n")
    with pytest.raises(BlurbkitError, match=r"dev\.tsv:2: expected the pair's two entity placeholders"):
        load_split(name, "train")
    cache = Path(os.environ["BLURBKIT_CACHE"]) / "prepared"
    assert not cache.exists() or not any(name in p.name for p in cache.iterdir())


def test_out_must_be_a_prepared_or_new_directory(tmp_path, capsys):
    name, _ = make_dataset(tmp_path / "src", "conll", "a\tO\n")
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    assert main(["prepare", "--out", str(precious), "--datasets", name]) == 2
    assert (precious / "notes.txt").read_text() == "keep me"
    assert "not a blurbkit prepared directory" in capsys.readouterr().err
    assert (
        main(
            [
                "prepare",
                "--source",
                str(tmp_path / "src"),
                "--out",
                str(tmp_path / "src" / "x"),
                "--datasets",
                name,
            ]
        )
        == 2
    )
    assert (
        main(
            [
                "prepare",
                "--source",
                str(tmp_path / "nowhere"),
                "--out",
                str(tmp_path / "o"),
                "--datasets",
                name,
            ]
        )
        == 2
    )
    assert main(["prepare", "--out", str(tmp_path / "o"), "--datasets", "nosuch"]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert "inside the source folder" in errors[0] and "source folder not found" in errors[1]
    assert "unknown dataset(s) nosuch" in errors[2]
