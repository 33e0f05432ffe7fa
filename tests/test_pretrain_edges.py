"""Pretraining's edge cases: a sequence whose every word is longer than its mask budget, pair
truncation on long segments, NSP on a corpus of one-sentence documents, a too-short --max-length,
the adversarial noise under DDP slicing, and one stop decision for every process."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from conftest import write_pretrain_corpus

from blurbkit.errors import BlurbkitError
from blurbkit.pretrain.config import PretrainConfig
from blurbkit.pretrain.trainer import pretrain

WORDS = ["lymphoma", "insulin", "naloxone", "acetyltransferase", "patients", "treated", "cells", "kinase"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from transformers import AutoTokenizer

    from blurbkit.pretrain.data import Collator
    from blurbkit.pretrain.token_cache import build_token_cache

    root = tmp_path_factory.mktemp("edges")
    corpus, vocab = write_pretrain_corpus(root, WORDS)
    tok = AutoTokenizer.from_pretrained(str(vocab))
    cache = build_token_cache([corpus], tok, root / "cache")
    return root, corpus, vocab, tok, Collator(tok, cache, 32, seed=0)


def test_a_sequence_of_words_longer_than_the_budget_still_gets_a_masked_word(setup):
    from blurbkit.pretrain.data import MaskingConfig

    *_, tok, collate = setup
    vocab = tok.get_vocab()
    tails = sorted(piece for piece in vocab if piece.startswith("##"))[:2]
    assert len(tails) == 2
    # One word of three pieces (a start and two ## pieces): alone it is over a 15 % budget of one piece.
    ids = np.asarray([tok.cls_token_id, vocab["insulin"], vocab[tails[0]], vocab[tails[1]], tok.sep_token_id])
    for seed in range(5):
        masked, positions, labels = collate.mask_sequence(ids, np.random.default_rng(seed), MaskingConfig(), 0.15)
        # Before: no position at all, and a batch of such rows is an MLM loss of NaN.
        assert positions.tolist() == list(range(1, len(ids) - 1))  # the whole word, never [CLS]/[SEP]
        assert (labels == ids[positions]).all()


def _bert_truncation(a: np.ndarray, b: np.ndarray, budget: int) -> tuple[int, int]:
    while len(a) + len(b) > budget:  # BERT's create_pretraining_data: one token off the longer segment
        if len(a) > len(b):
            a = a[:-1]
        else:
            b = b[:-1]
    return len(a), len(b)


def test_pair_truncation_cuts_long_segments_as_bert_does(setup):
    *_, collate = setup
    budget = collate.max_length - 3
    rng = np.random.default_rng(0)
    lengths = [(5, 5), (40, 2), (2, 40), (29, 29), (30, 29), (400, 3), (3, 5000), (5000, 4000), (budget, budget), (0, 90)]
    lengths += [tuple(rng.integers(0, 300, size=2)) for _ in range(50)]
    for la, lb in lengths:
        collate._ids = lambda start, end: np.arange(end - start, dtype=np.int64) + 5  # segment of end-start tokens
        ids, types_ = collate.sequence(np.asarray([0, la, 0, lb, 0]))
        want_a, want_b = _bert_truncation(np.arange(la), np.arange(lb), budget)
        assert len(ids) == want_a + want_b + 3 and int((types_ == 0).sum()) == want_a + 2, (la, lb)


def test_nsp_on_mostly_one_sentence_documents_is_a_warning(setup, tmp_path, capsys):
    from blurbkit.pretrain.data import nsp_pair_notes

    balanced = np.asarray([[0, 1, 2, 3, label] for label in [0, 1] * 10])
    assert nsp_pair_notes(balanced) == []
    titles = np.asarray([[0, 1, 2, 3, 0]] + [[0, 1, 2, 3, 1]] * 9)
    (note,) = nsp_pair_notes(titles)
    assert note.startswith("only 10 % of the 10 segment pairs are true continuations")
    # The run goes on, and says so once.
    root, corpus, vocab, *_ = setup
    docs = [f"{w} {w} treated cells." for w in WORDS * 6] + ["Insulin treated cells.\nNaloxone kinase patients."]
    lines = tmp_path / "titles.txt"
    lines.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    pretrain(PretrainConfig(corpus=[str(lines)], out=str(tmp_path / "out"), tokenizer=str(vocab), from_scratch="tiny",
                            max_length=16, batch_size=2, max_steps=1, objective="mlm_nsp", progress=False))
    assert capsys.readouterr().err.count("segment pairs are true continuations") == 1


def test_a_too_short_max_length_is_refused_before_the_corpus_is_read(setup, tmp_path):
    root, corpus, vocab, *_ = setup
    with pytest.raises(BlurbkitError, match="--max-length 6 is too short"):
        pretrain(PretrainConfig(corpus=[str(corpus)], out=str(tmp_path / "out"), tokenizer=str(vocab), from_scratch="tiny",
                                max_length=6, cache_dir=str(tmp_path / "cache"), progress=False))
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()


def test_the_adversarial_noise_depends_on_its_key_alone():
    from blurbkit.runtime.adversarial import AdversarialConfig, Adversary

    embeddings = torch.nn.Embedding(10, 4)
    adversary = Adversary(embeddings, AdversarialConfig(epsilon=1.0, steps=1, init_std=0.5))
    ids = torch.arange(6).view(2, 3)
    clean = embeddings(ids)

    def first(key):
        adversary.reseed(key)
        return adversary.perturbation(lambda: embeddings(ids), clean, torch.Size([2, 3, 4]))

    # The slice index, not the process or the accumulation step, picks the noise: slice 1 is the
    # second micro-batch of one process or the first of process 1 alike.
    torch.manual_seed(0)
    a = first([3, 1, 7, 13])
    torch.manual_seed(99)  # the global stream (what every process shared before) plays no part
    assert torch.equal(first([3, 1, 7, 13]), a)
    assert not torch.equal(first([3, 0, 7, 13]), a) and not torch.equal(first([3, 1, 8, 13]), a)


def test_one_process_out_of_time_stops_every_process():
    from blurbkit.pretrain.trainer import _any_process

    votes = []

    class TwoProcesses:  # this process's vote, summed with the other process's (as the all-reduce does)
        num_processes, device = 2, torch.device("cpu")

        def __init__(self, other: bool) -> None:
            self.other = other

        def reduce(self, tensor, reduction):
            votes.append(reduction)
            return tensor + float(self.other)

    for mine, other in ((False, False), (True, False), (False, True), (True, True)):
        run = types.SimpleNamespace(accelerator=TwoProcesses(other))
        assert _any_process(run, mine) == (mine or other)
    assert votes == ["sum"] * 4
    single = types.SimpleNamespace(accelerator=types.SimpleNamespace(num_processes=1))
    assert _any_process(single, True) and not _any_process(single, False)


def test_a_kill_among_the_final_renames_never_leaves_a_finished_looking_folder(tmp_path, monkeypatch):
    """The final model's files are renamed into OUT one by one: until all are there, OUT must not
    hold a summary saying "finished" (the pretraining study would then reuse an earlier model's
    weights as this run's). A leftover temporary folder of an earlier kill is removed."""
    import json
    import os

    from transformers import BertConfig, BertForMaskedLM

    from blurbkit.experiments.pretraining import finished
    from blurbkit.models.loading import default_model_dir, load_tokenizer
    from blurbkit.pretrain import trainer

    out = tmp_path / "out"
    out.mkdir()
    (out / "config.json").write_text("{}")
    (out / "model.safetensors").write_text("an earlier run's weights")
    (out / "pretrain_summary.json").write_text(json.dumps({"stopped": "finished"}))
    (out / ".final.leftover").mkdir()
    assert finished(out)
    model = BertForMaskedLM(BertConfig(vocab_size=30522, hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                                       intermediate_size=8))
    renames, real = [], os.replace

    def killed_after_one(src, dst):
        if renames:
            raise KeyboardInterrupt  # stands in for the kill: nothing after it runs
        renames.append(dst)
        real(src, dst)

    monkeypatch.setattr(trainer.os, "replace", killed_after_one)
    with pytest.raises(KeyboardInterrupt):
        trainer._finalize(out, model, load_tokenizer(default_model_dir()))
    assert len(renames) == 1 and not finished(out)
    assert not list(out.glob(".final.*"))
