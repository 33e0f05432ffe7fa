"""Masked-LM pretraining on a tiny corpus and a micro BERT: masking, exact resume, bad input."""

from __future__ import annotations

import json
from itertools import pairwise

import numpy as np
import pytest
from conftest import write_pretrain_corpus

from blurbkit.cli.main import main
from blurbkit.errors import BlurbkitError
from blurbkit.pretrain.config import PretrainConfig
from blurbkit.pretrain.trainer import pretrain

WORDS = ["lymphoma", "insulin", "naloxone", "clonidine", "receptor", "kinase", "patients", "treated", "dose", "acetyltransferase", "cells", "expression", "tumour", "mice", "increased", "reduced", "levels", "protein", "gene", "binding"]
MICRO = {"num_hidden_layers": 1, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64,
         "max_position_embeddings": 64}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain")
    corpus, vocab = write_pretrain_corpus(root, WORDS)
    config = root / "micro.json"
    config.write_text(json.dumps(MICRO), encoding="utf-8")
    return root, corpus, vocab, config


def _cfg(setup, out, **kw):
    root, corpus, vocab, config = setup
    base = dict(corpus=[str(corpus)], out=str(out), tokenizer=str(vocab), from_scratch=str(config), max_length=32,
                batch_size=4, max_steps=6, save_every=3, log_every=1, progress=False, lr=1e-3, seed=3)
    base.update(kw)
    return PretrainConfig(**base)


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_masking_rules(setup):
    from transformers import AutoTokenizer

    from blurbkit.pretrain.data import Collator, MaskingConfig, make_examples, mask_rate_at
    from blurbkit.pretrain.token_cache import build_token_cache

    root, corpus, vocab, _ = setup
    tok = AutoTokenizer.from_pretrained(str(vocab))
    cache = build_token_cache([corpus], tok, root / "cache_mask")
    collate = Collator(tok, cache, 64, seed=0)
    body = tok.encode(" ".join(["lymphoma", "cells", "insulin", "kinase"] * 150), add_special_tokens=False)
    assert len(body) > 600  # multi-piece words present
    body = body[:600]
    ids = np.asarray([tok.cls_token_id] + body + [tok.sep_token_id])
    masked, positions, labels = collate.mask_sequence(ids, np.random.default_rng(0), MaskingConfig(), 0.15)
    n = int((~collate.special[ids]).sum())  # [UNK] is special too, as in transformers' collator
    assert abs(len(positions) - 0.15 * n) <= 8  # 15% of the tokens (whole words of up to 8 pieces)
    assert 0 not in positions and len(ids) - 1 not in positions  # never [CLS]/[SEP]
    replaced = masked[positions]
    frac_mask = np.mean(replaced == tok.mask_token_id)
    frac_keep = np.mean(replaced == labels)
    assert 0.7 < frac_mask < 0.9 and 0.03 < frac_keep < 0.2
    # whole-word: every chosen piece's whole word is chosen
    pieces = tok.convert_ids_to_tokens(ids)
    chosen = set(positions.tolist())
    for p in chosen:
        start = p
        while pieces[start].startswith("##"):
            start -= 1
        end = p + 1
        while end < len(pieces) and pieces[end].startswith("##"):
            end += 1
        assert set(range(start, end)) <= chosen
    _, sub_positions, _ = collate.mask_sequence(ids, np.random.default_rng(0), MaskingConfig(whole_word=False), 0.15)
    assert len(sub_positions) == round(0.15 * n)
    assert [mask_rate_at(s, 100, True, 0.15) for s in (0, 19, 20, 59, 80, 99)] == pytest.approx([0.05, 0.05, 0.10, 0.15, 0.25, 0.25])
    nsp = make_examples(cache, 32, mode="nsp", seed=0)
    assert set(nsp[:, 4].tolist()) == {0, 1}
    packed = make_examples(cache, 32, mode="packed")
    assert (packed[:, 1] - packed[:, 0] == 30).all()


def test_cache_ignores_tokenizer_padding(setup):
    """MiniLM's tokenizer.json pads/truncates to 128; the corpus stream must not contain that padding."""
    from transformers import AutoTokenizer

    from blurbkit.pretrain.token_cache import build_token_cache

    root, corpus, vocab, _ = setup
    plain = build_token_cache([corpus], AutoTokenizer.from_pretrained(str(vocab)), root / "cache_plain")
    padded_tok = AutoTokenizer.from_pretrained(str(vocab))
    padded_tok.backend_tokenizer.enable_padding(length=64)
    padded_tok.backend_tokenizer.enable_truncation(max_length=8)
    padded = build_token_cache([corpus], padded_tok, root / "cache_padded")
    assert padded.n_tokens == plain.n_tokens
    assert 0 not in set(np.asarray(plain.tokens).tolist())  # no [PAD] in the stream


def test_resume_is_exact_and_output_loads(setup, tmp_path):
    from transformers import AutoModel

    from blurbkit.models.loading import load_encoder, resolve_model_dir

    full = pretrain(_cfg(setup, tmp_path / "full"))
    assert full["steps"] == 6 and full["stopped"] == "finished"
    part = pretrain(_cfg(setup, tmp_path / "resumed", stop_after=3))
    assert part["stopped"] == "interrupted"
    assert not (tmp_path / "resumed" / "model.safetensors").exists()
    resumed = pretrain(_cfg(setup, tmp_path / "resumed"))
    assert resumed["resumed_from"].endswith("step-00000003") and resumed["steps"] == 6
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "resumed")
    assert a.keys() == b.keys()
    for key in a:
        assert np.allclose(a[key].numpy(), b[key].numpy(), atol=1e-6), key
    log = [json.loads(line) for line in (tmp_path / "resumed" / "train_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [1, 2, 3, 4, 5, 6]
    # the resumed lines continue the run's totals: the same tokens at every step as the run never stopped
    uninterrupted = [json.loads(line) for line in (tmp_path / "full" / "train_log.jsonl").read_text().splitlines()]
    assert [e["tokens"] for e in log] == [e["tokens"] for e in uninterrupted]
    assert all(a["elapsed_s"] <= b["elapsed_s"] for a, b in pairwise(log))
    # a Hugging Face model directory that AutoModel and the fine-tuning loader accept
    model = AutoModel.from_pretrained(str(tmp_path / "full"))
    assert model.config.hidden_size == 32
    load_encoder(resolve_model_dir(tmp_path / "full"))


def test_modes_and_continual(setup, tmp_path):
    summary = pretrain(_cfg(setup, tmp_path / "nsp", nsp=True, masking="subword", mask_schedule=True, max_steps=2,
                            grad_accum=2, packing=False))
    assert summary["steps"] == 2
    log = [json.loads(line) for line in (tmp_path / "nsp" / "train_log.jsonl").read_text().splitlines()]
    assert "nsp_loss" in log[-1]
    # continual from the model just written keeps its vocabulary
    cont = pretrain(_cfg(setup, tmp_path / "cont", from_scratch=None, init=str(tmp_path / "nsp"), tokenizer=None,
                         max_steps=2))
    assert cont["steps"] == 2
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(str(tmp_path / "cont")).get_vocab() == \
        AutoTokenizer.from_pretrained(str(tmp_path / "nsp")).get_vocab()


def test_bad_input(setup, tmp_path, capsys):
    from blurbkit.models.tiny import build_tiny_bert

    root, corpus, vocab, config = setup
    tiny = build_tiny_bert(tmp_path / "tiny", hidden=16, layers=1, heads=1)
    with pytest.raises(BlurbkitError, match="continual pretraining keeps the model's own vocabulary"):
        pretrain(_cfg(setup, tmp_path / "x", from_scratch=None, init=str(tiny)))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(BlurbkitError, match="the corpus has no text"):
        pretrain(_cfg(setup, tmp_path / "y", corpus=[str(empty)]))
    bad_config = tmp_path / "bad.json"
    bad_config.write_text(json.dumps(dict(MICRO, vocab_size=999)), encoding="utf-8")
    with pytest.raises(BlurbkitError, match="vocab_size 999"):
        pretrain(_cfg(setup, tmp_path / "z", from_scratch=str(bad_config)))
    assert main(["pretrain", "--corpus", str(corpus), "--from-scratch", "huge", "--tokenizer", str(vocab),
                 "--out", str(tmp_path / "w")]) == 2
    assert "--from-scratch 'huge' is neither a preset" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_checkpoint_failures(setup, tmp_path, monkeypatch):
    import safetensors.torch

    out = tmp_path / "run"
    pretrain(_cfg(setup, out, stop_after=3))
    good = out / "checkpoints" / "step-00000003"
    assert (good / "state.json").is_file()

    # disk full while writing the next checkpoint: clear error, previous checkpoint intact and used on resume
    real = safetensors.torch.save_file

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    with pytest.raises(BlurbkitError, match="disk is full.*previous checkpoint .*step-00000003 is intact"):
        pretrain(_cfg(setup, out))
    monkeypatch.setattr(safetensors.torch, "save_file", real)
    assert sorted(p.name for p in (out / "checkpoints").iterdir() if not p.name.startswith(".")) == ["latest.json", "step-00000003"]

    # corrupt weights and no older checkpoint: one-line error naming it, nothing overwritten
    (good / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(BlurbkitError, match="none reads back .*step-00000003: checkpoint is corrupt .*model.safetensors"):
        pretrain(_cfg(setup, out))
    # a foreign (pickled) checkpoint is refused, never unpickled
    foreign = tmp_path / "foreign" / "checkpoints" / "step-00000001"
    foreign.mkdir(parents=True)
    (foreign / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(BlurbkitError, match="none reads back"):
        pretrain(_cfg(setup, tmp_path / "foreign"))
    # different settings refuse to resume rather than silently mixing runs
    out2 = tmp_path / "run2"
    pretrain(_cfg(setup, out2, stop_after=3))
    with pytest.raises(BlurbkitError, match="different run"):
        pretrain(_cfg(setup, out2, max_steps=8))
    for other in ({"masking": "subword"}, {"mask_rate": 0.3}, {"mask_schedule": True}):  # nor mixed masking
        with pytest.raises(BlurbkitError, match="different run"):
            pretrain(_cfg(setup, out2, **other))


def test_resume_falls_back_to_the_newest_intact_checkpoint(setup, tmp_path, capsys):
    """A truncated newest checkpoint: resume from the one before it, with one notice naming the corrupt one,
    and end with the weights of an uninterrupted run."""
    out, ref = tmp_path / "run", tmp_path / "ref"
    pretrain(_cfg(setup, out, max_steps=8, stop_after=6, save_every=2, keep_checkpoints=3))
    root = out / "checkpoints"
    assert sorted(p.name for p in root.glob("step-*")) == ["step-00000002", "step-00000004", "step-00000006"]
    newest = root / "step-00000006" / "model.safetensors"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # a crash mid-copy, say
    capsys.readouterr()
    summary = pretrain(_cfg(setup, out, max_steps=8, save_every=2, keep_checkpoints=3))
    notices = [line for line in capsys.readouterr().err.splitlines() if "notice" in line]
    assert len(notices) == 1 and "step-00000006" in notices[0] and "step-00000004" in notices[0], notices
    assert summary["resumed_from"].endswith("step-00000004")
    pretrain(_cfg(setup, ref, max_steps=8, save_every=2, keep_checkpoints=3))
    a, b = _weights(out), _weights(ref)
    assert a.keys() == b.keys() and all(np.allclose(a[k].numpy(), b[k].numpy(), atol=1e-6) for k in a)


def test_objectives_registered_and_selectable(setup, tmp_path, capsys):
    from blurbkit.pretrain.objectives import OBJECTIVES, get_objective
    from blurbkit.pretrain.objectives.mlm import MaskedLMModule
    from blurbkit.pretrain.objectives.mlm_nsp import MaskedLMWithNSPModule
    from blurbkit.pretrain.objectives.mlm_pairs import PairedMaskedLMModule

    assert OBJECTIVES.names() == ["electra", "mlm", "mlm_nsp", "mlm_pairs"]
    assert [get_objective(name).name for name in OBJECTIVES.names()] == ["electra", "mlm", "mlm_nsp", "mlm_pairs"]
    assert get_objective("mlm").example_mode(True) == "packed" and get_objective("mlm").example_mode(False) == "document"
    assert get_objective("mlm_nsp").example_mode(True) == "nsp"
    assert get_objective("mlm_pairs").example_mode(False) == "nsp"  # MLM only over the NSP segment pairs
    # selected by name on the command line; the model written is the objective's
    root, corpus, vocab, config = setup
    args = ["pretrain", "--corpus", str(corpus), "--tokenizer", str(vocab), "--from-scratch", str(config),
            "--max-length", "32", "--batch-size", "4", "--max-steps", "1", "--no-progress"]
    from transformers.utils import logging as hf_logging

    hf_logging.enable_progress_bar()  # as in a fresh process (loading a model elsewhere turns it off)
    capsys.readouterr()
    for name, architecture, module in (("mlm", "BertForMaskedLM", MaskedLMModule),
                                       ("mlm_nsp", "BertForPreTraining", MaskedLMWithNSPModule),
                                       ("mlm_pairs", "BertForMaskedLM", PairedMaskedLMModule)):
        assert main([*args, "--out", str(tmp_path / name), "--objective", name]) == 0
        saved = json.loads((tmp_path / name / "config.json").read_text())
        assert saved["architectures"] == [architecture]
        summary = json.loads((tmp_path / name / "pretrain_summary.json").read_text())
        assert summary["objective"] == name and type(get_objective(name).module(_tiny_bert(name))) is module
    assert "Writing model shards" not in capsys.readouterr().err  # --no-progress: no bar, transformers' neither
    # --nsp with another objective is a clash, one line
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "clash"), "--objective", "mlm", "--nsp"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--nsp means --objective mlm_nsp" in err
    assert not (tmp_path / "clash").exists()


def _tiny_bert(objective):
    from transformers import BertConfig

    from blurbkit.pretrain.objectives import get_objective

    return get_objective(objective).new_model(BertConfig(vocab_size=30, **MICRO))


def test_mlm_nsp_equals_legacy_nsp_flag(setup, tmp_path):
    kw = dict(max_steps=3, grad_accum=2, packing=False, save_every=10)
    legacy = pretrain(_cfg(setup, tmp_path / "legacy", nsp=True, **kw))
    named = pretrain(_cfg(setup, tmp_path / "named", objective="mlm_nsp", **kw))
    assert legacy["objective"] == named["objective"] == "mlm_nsp"
    a, b = _weights(tmp_path / "legacy"), _weights(tmp_path / "named")
    assert a.keys() == b.keys() and any("seq_relationship" in key for key in a)
    for key in a:
        assert np.array_equal(a[key].numpy(), b[key].numpy()), key

    def losses(name):
        lines = (tmp_path / name / "train_log.jsonl").read_text().splitlines()
        return [(e["loss"], e["mlm_loss"], e["nsp_loss"]) for e in map(json.loads, lines)]

    assert losses("legacy") == losses("named")


def test_unknown_objective_and_nsp_without_documents(setup, tmp_path):
    with pytest.raises(BlurbkitError) as caught:
        pretrain(_cfg(setup, tmp_path / "x", objective="xlnet"))
    assert str(caught.value) == "unknown pretraining objective 'xlnet' (known: electra, mlm, mlm_nsp, mlm_pairs)"
    assert not (tmp_path / "x").exists()  # refused before any work
    # plain text without blank lines: one document a line, each one sentence long -> no next sentence
    lines = tmp_path / "lines.txt"
    lines.write_text("".join(f"Insulin binding reduced the levels of kinase {i} in mice.\n" for i in range(40)), "utf-8")
    with pytest.raises(BlurbkitError, match=r"^next-sentence prediction needs documents of two or more sentences, "
                                            r"but all 40 documents") as caught:
        pretrain(_cfg(setup, tmp_path / "lines", corpus=[str(lines)], objective="mlm_nsp"))
    assert "\n" not in str(caught.value)
    # one single document: no random next segment to draw
    single = tmp_path / "single.jsonl"
    single.write_text(json.dumps({"sentences": [f"Insulin binding reduced kinase {i} in mice." for i in range(40)]}) + "\n")
    with pytest.raises(BlurbkitError, match="needs a corpus of several documents, this one is a single document"):
        pretrain(_cfg(setup, tmp_path / "single", corpus=[str(single)], nsp=True))
    for out in ("lines", "single"):
        assert not (tmp_path / out / "checkpoints").exists() and not (tmp_path / out / "train_log.jsonl").exists()
    # the same corpora are fine for plain MLM
    assert pretrain(_cfg(setup, tmp_path / "lines_mlm", corpus=[str(lines)], max_steps=1))["steps"] == 1


def test_an_explicit_bf16_request_on_a_cpu_without_native_bf16_pretrains_in_fp32(monkeypatch, tmp_path, capsys):
    """As fine-tuning does (runtime/precision.py): never an emulated bf16 run, one notice instead."""
    from blurbkit.pretrain.trainer import _accelerator
    from blurbkit.runtime.capability import ENV_CPU_DTYPES, capability

    monkeypatch.setenv(ENV_CPU_DTYPES, "fp32")  # what an AVX2-only CPU reports by itself
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    for requested in ("bf16", "auto", "no"):
        accelerator = _accelerator(PretrainConfig(corpus=[], out=str(tmp_path), mixed_precision=requested))
        assert accelerator.mixed_precision == "no", requested
    assert f"bf16 requested but {capability().not_native['bf16']}; falling back to fp32" in capsys.readouterr().err


def test_whole_word_masking_is_refused_for_a_tokenizer_without_continuation_pieces(setup):
    from transformers import AutoTokenizer

    from blurbkit.pretrain.data import check_whole_words

    _, _, vocab, _ = setup
    tokenizer = AutoTokenizer.from_pretrained(vocab)
    check_whole_words(tokenizer, True)  # WordPiece: fine

    class BytePairLike:  # a vocabulary without '##' pieces
        def get_vocab(self):
            return {t: i for t, i in tokenizer.get_vocab().items() if not t.startswith("##")}

    with pytest.raises(BlurbkitError, match="use --masking subword"):
        check_whole_words(BytePairLike(), True)
    check_whole_words(BytePairLike(), False)
