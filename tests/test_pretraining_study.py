"""`blurbkit ablate --study pretraining`: four pretraining settings at equal FLOPs on the tiny preset and
a tiny corpus, the pretrained models reused (and an interrupted one resumed), the Table 2-shaped table."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from conftest import write_pretrain_corpus

from blurbkit.cli.main import main
from blurbkit.experiments import pretraining as study
from blurbkit.pretrain.trainer import pretrain

WORDS = ["lymphoma", "insulin", "naloxone", "clonidine", "receptor", "kinase", "patients", "treated", "dose", "cells",
         "expression", "mice"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_pretrain_corpus(tmp_path_factory.mktemp("corpus"), WORDS)


def _budget(corpus, steps: int = 6) -> study.Budget:
    text, vocab = corpus
    return study.Budget(corpus=(str(text),), tokenizer=str(vocab), preset="tiny", steps=steps, batch_size=4, max_length=32)


def test_the_four_settings_get_equal_flops_and_electra_pays_for_its_generator(corpus, tmp_path):
    plans = {p.setting.name: p for p in study.plan(_budget(corpus, steps=40), study.SETTINGS, tmp_path, progress=False)}
    assert list(plans) == ["standard", "mlm-only", "mlm-single", "electra"]
    budget = plans["standard"].flops
    assert plans["standard"].steps == 40
    for item in plans.values():  # equal within one step of that setting
        assert abs(item.flops - budget) <= item.flops_per_step / 2
    # The same segment pairs with and without NSP: the same steps and tokens.
    assert plans["mlm-only"].steps == 40 and plans["mlm-only"].tokens == plans["standard"].tokens
    # Single sequences are full windows: fewer steps, about the same tokens.
    assert plans["mlm-single"].mean_length == 32 > plans["standard"].mean_length
    assert plans["mlm-single"].steps < 40
    assert plans["mlm-single"].tokens == pytest.approx(plans["standard"].tokens, rel=0.05)
    # ELECTRA's generator costs FLOPs per token: fewer steps and tokens than single-sequence MLM.
    electra, single = plans["electra"], plans["mlm-single"]
    assert electra.steps < single.steps and electra.flops / electra.tokens > single.flops / single.tokens
    assert 0 < electra.generator_params < electra.encoder_params / 4
    assert len({p.out for p in plans.values()}) == 4


def test_each_objective_counts_its_own_flops_and_electra_its_generator():
    from transformers import BertConfig

    from blurbkit.models.flops import masked_lm_training_flops
    from blurbkit.pretrain.objectives import get_objective

    bert = BertConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256)
    mlm = get_objective("mlm").sequence_flops(bert, 32, 4.5)
    assert mlm == masked_lm_training_flops(bert, 32, 4.5) == get_objective("mlm_pairs").sequence_flops(bert, 32, 4.5)
    assert get_objective("mlm_nsp").sequence_flops(bert, 32, 4.5) == mlm + 3 * (2 * 64 * 64 + 2 * 64 * 2)
    electra = get_objective("electra")
    small = electra.sequence_flops(bert, 32, 4.5)
    electra.generator_size = 0.5
    larger = electra.sequence_flops(bert, 32, 4.5)
    assert mlm < small < larger
    # Only ELECTRA trains parameters beyond the encoder it saves (its generator).
    assert get_objective("mlm").parameter_counts(bert)[1] == 0
    assert 0 < electra.parameter_counts(bert)[1] < electra.parameter_counts(bert)[0]


@pytest.mark.slow  # 4 tiny pretrainings + 4 tiny fine-tunings, twice: ~20 s on a busy 2-core machine
def test_study_pretrains_once_resumes_an_interrupted_run_and_prints_the_table(corpus, shared_data, tmp_path, capsys):
    text, vocab = corpus
    runs = tmp_path / "runs"
    budget = _budget(corpus)
    # An interrupted ELECTRA pretraining (checkpoint at step 2) is continued by the study, not restarted.
    electra = study.plan(budget, study.select_settings("electra"), runs / "pretraining", progress=False)[0]
    pretrain(replace(study.pretrain_config(budget, electra, runs / "pretraining", False), stop_after=2))
    assert not study.finished(electra.out)
    argv = ["ablate", "--study", "pretraining", "--corpus", str(text), "--tokenizer", str(vocab), "--preset", "tiny",
            "--pretrain-steps", "6", "--pretrain-batch-size", "4", "--pretrain-max-length", "32", "--datasets", "biosses",
            "--seeds", "1", "--data", str(shared_data), "--runs-dir", str(runs), "--epochs", "1", "--batch-size", "8",
            "--max-train-examples", "16", "--max-eval-examples", "8", "--no-progress"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0] == "| dataset | BERT (MLM+NSP) | MLM only | MLM, single seq | ELECTRA |"
    assert next(line for line in lines if line.startswith("| BIOSSES |")).count("±") == 4
    assert any(line.startswith("| **BLURB-style average** |") for line in lines)
    assert "| BIOSSES | 93.46 | 93.12 | 75.50 | 80.24 |" in captured.out  # the paper's Table 2 beside
    assert "| ELECTRA | electra | single sequences |" in captured.err  # the budget per setting, printed first
    assert f"electra): {electra.steps} steps" in captured.err and "(continuing from its last checkpoint)" in captured.err
    summary = json.loads((electra.out / "pretrain_summary.json").read_text())
    assert summary["resumed_from"].endswith("step-00000002") and summary["steps"] == electra.steps
    report = runs / "ablation-pretraining-custom-train16-dev8.md"
    assert "## Pretraining budget" in report.read_text() and (runs / "ablation-pretraining-custom-train16-dev8.png").is_file()
    assert len((runs / "ablation-pretraining-custom-train16-dev8.csv").read_text().splitlines()) == 1 + 4
    # Again: the pretrained models are reused and the stored runs not repeated.
    stamps = {p: p.stat().st_mtime_ns for p in (runs / "pretraining" / "models").glob("*/model.safetensors")}
    assert len(stamps) == 4
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert err.count("reusing the finished model") == 4 and err.count("already stored") == 4
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}


def test_bad_study_input_is_one_line(corpus, tmp_path, capsys):
    text, vocab = corpus
    options = ["ablate", "--study", "pretraining", "--corpus", str(text), "--tokenizer", str(vocab), "--preset", "tiny",
               "--runs-dir", str(tmp_path / "runs")]
    assert main([*options, "--variants", "standard,bert"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("unknown variants bert (known: standard, mlm-only, mlm-single, electra)") and "\n" not in err
    assert main([*options, "--model", "default"]) == 2
    assert "fine-tunes the encoders it pretrains" in capsys.readouterr().err
    assert main([*options, "--pretrain-steps", "0"]) == 2
    assert "--pretrain-steps must be at least 1" in capsys.readouterr().err
    assert main([*options, "--generator-size", "2"]) == 2
    assert "--generator-size 2" in capsys.readouterr().err
    # Without ELECTRA too: the size is part of every model's digest.
    assert main([*options, "--variants", "standard,mlm-only", "--generator-size", "2"]) == 2
    assert "--generator-size 2" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "pretraining" / "models").exists()
