"""`blurbkit bench pretrain`: the Hugging Face MLM recipe (BertForMaskedLM + whole-word collator +
Trainer) and blurbkit's pretraining on the same sequences, in one process; a few steps on a micro corpus."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import torch

from blurbkit.cli.main import main

WORDS = ["lymphoma", "insulin", "naloxone", "receptor", "kinase", "patients", "treated", "acetyltransferase", "mice"]


def test_bench_pretrain_reports_both_sides(tmp_path, capsys):
    from blurbkit.pretrain.vocab import build_vocab
    from blurbkit.speed.pretrain import _features, mlm_training_flops

    rng = random.Random(0)
    docs = ["\n".join(" ".join(rng.choice(WORDS) for _ in range(9)).capitalize() + "." for _ in range(3)) for _ in range(20)]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    build_vocab((s for d in docs for s in d.split("\n")), tmp_path / "vocab", size=60, min_frequency=1)
    code = main(["bench", "pretrain", "--corpus", str(corpus), "--tokenizer", str(tmp_path / "vocab"), "--max-length", "32",
                 "--batch-size", "4", "--steps", "2", "--peak-seconds", "0.05", "--peak-size", "128",
                 "--results-dir", str(tmp_path / "results"), "--threads", "1"])
    assert code == 0
    out, err = capsys.readouterr()
    (line,) = out.strip().splitlines()  # one JSON line: the Trainer's per-step log printer is removed
    result = json.loads(line)
    assert result == json.loads((tmp_path / "results" / "speed_pretrain_tiny.json").read_text())
    for side in ("trainer", "blurbkit"):
        assert result[side]["tokens_per_s"] > 0 and result[side]["mlm_loss_last5"] > 0
        assert 0 < result[side]["mfu"] < 1  # the peaks are measured in the run (--peak-seconds)
    assert result["trainer"]["precision"] == "fp32"
    # What both learned, on the same held-out sequences and masks (their training tasks differ).
    assert result["heldout_sequences"] > 0
    vocabulary = len(json.loads((tmp_path / "vocab" / "tokenizer.json").read_text())["model"]["vocab"])
    for side in ("trainer", "blurbkit"):  # near a uniform guess after two steps, far from a blown-up model
        assert 0 < result[side]["heldout_mlm_loss"] < 2 * math.log(vocabulary)
    assert "held-out MLM loss on the same" in err
    assert result["tokens_per_s_ratio"] == round(result["blurbkit"]["tokens_per_s"] / result["trainer"]["tokens_per_s"], 2)
    assert "tokens/s: Trainer" in err and "MLM loss after 2 steps" in err
    # whole words as the Trainer's collator sees them: a ## piece touches the piece before it
    from transformers import AutoTokenizer

    from blurbkit.pretrain.data import Collator, make_examples
    from blurbkit.pretrain.token_cache import build_token_cache

    tok = AutoTokenizer.from_pretrained(str(tmp_path / "vocab"))
    cache = build_token_cache([corpus], tok, tmp_path / "cache")
    collate = Collator(tok, cache, 32, 0)
    feature = _features(collate, make_examples(cache, 32)[:1])[0]
    pieces = tok.convert_ids_to_tokens(feature["input_ids"])
    for i in range(2, len(pieces) - 1):
        touching = feature["offset_mapping"][i][0] == feature["offset_mapping"][i - 1][1]
        assert touching == pieces[i].startswith("##"), pieces[i - 1 : i + 1]
    # The held-out masks: whole words, every masked piece [MASK], labels there only, the same on every call.
    from blurbkit.speed.pretrain import heldout_batches

    examples = make_examples(cache, 32)
    batches = heldout_batches(tok, cache, 32, examples, np.arange(len(examples)), 0.15, 4)
    again = heldout_batches(tok, cache, 32, examples, np.arange(len(examples)), 0.15, 4)
    for batch, same in zip(batches, again, strict=True):
        masked = batch["labels"] != -100
        assert masked.any() and (batch["input_ids"][masked] == tok.mask_token_id).all()
        assert all(torch.equal(batch[k], same[k]) for k in batch)
    from transformers import BertConfig

    assert mlm_training_flops(BertConfig(vocab_size=10, hidden_size=4, num_hidden_layers=1, num_attention_heads=1,
                                         intermediate_size=8), 8, 2, 0.0) > 0
