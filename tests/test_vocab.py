"""WordPiece vocabulary build (tiny corpus made here) and the Table 1 comparison."""

from __future__ import annotations

import pytest

from blurbkit.cli.main import main
from blurbkit.errors import BlurbkitError
from blurbkit.pretrain.vocab import build_vocab, compare, load_any_tokenizer, table1_terms

SENTENCES = [
    "Lymphoma patients received acetyltransferase inhibitors and lidocaine.",
    "The lymphoma regressed after naloxone and clonidine were given.",
    "Acetyltransferase activity rose in cardiomyocyte cultures treated with chloramphenicol.",
] * 40


def test_build_loads_with_autotokenizer(tmp_path):
    from transformers import AutoTokenizer

    info = build_vocab(SENTENCES, tmp_path / "vocab", size=300, min_frequency=2)
    assert info["sentences"] == len(SENTENCES)
    assert (tmp_path / "vocab" / "vocab.txt").is_file() and (tmp_path / "vocab" / "tokenizer.json").is_file()
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "vocab"))
    assert tok.is_fast
    assert tok.tokenize("Lymphoma ACETYLTRANSFERASE") == ["lymphoma", "acetyltransferase"]  # uncased, whole
    enc = tok("lymphoma", "naloxone")
    assert tok.convert_ids_to_tokens(enc["input_ids"])[0] == "[CLS]" and enc["token_type_ids"][-1] == 1
    assert tok.mask_token == "[MASK]" and tok.pad_token_id == 0


def test_table1_on_default_vocab(tmp_path):
    terms = table1_terms()
    assert len(terms) == 17
    default = load_any_tokenizer("default")
    assert default.tokenize("lymphoma") == ["l", "##ym", "##ph", "##oma"]
    assert len(default.tokenize("acetyltransferase")) == 7
    build_vocab(SENTENCES, tmp_path / "vocab", size=300)
    result = compare(default, load_any_tokenizer(tmp_path / "vocab"), ["lymphoma", "acetyltransferase"], SENTENCES[:3])
    assert result["terms"][0]["b"] == ["lymphoma"]
    assert result["corpus_b"]["pieces_per_word"] < result["corpus_a"]["pieces_per_word"]


def test_cli_build_and_compare(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n\n".join(SENTENCES) + "\n", encoding="utf-8")
    assert main(["vocab", "build", "--corpus", str(corpus), "--size", "300", "--out", str(tmp_path / "v")]) == 0
    assert main(["vocab", "compare", "default", str(tmp_path / "v"), "--corpus", str(corpus)]) == 0
    out = capsys.readouterr().out
    assert "l ##ym ##ph ##oma" in out and "pieces per word" in out
    assert main(["vocab", "compare", "default", str(tmp_path / "nope")]) == 2
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(BlurbkitError):
        build_vocab(iter([]), tmp_path / "v2", size=300)
