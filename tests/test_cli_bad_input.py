"""Bad command-line input across commands: one line naming what is wrong, exit 2, no traceback, and
nothing written or deleted. Every case here fails before any model trains (most before one loads)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from blurbkit.cli.main import main

FIXTURES = Path(__file__).parent / "fixtures" / "v0_1_models"
NER = FIXTURES / "ner_bio"  # a saved tiny tagger: max_position_embeddings 64


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("blurbkit: error: ") and "Traceback" not in err[0], err
    return err[0]


def usage_error(capsys, argv: list[str]) -> str:
    """argparse's refusal: exit 2 and one error line (no usage block) naming the command and argument."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    line = one_error_line(capsys)
    command = " ".join(argv[:2]) if argv[0] in NESTED else argv[0]  # `bench speed`: the sub-command's own name
    assert line.startswith(f"blurbkit: error: {command}: "), line
    return line


NESTED = {"analyze", "bench", "corpus", "datasets", "store", "vocab"}  # commands with sub-commands


@pytest.mark.parametrize("kind", ["folder", "file"])
def test_export_never_replaces_what_is_not_an_earlier_export(kind, tmp_path, capsys):
    out = tmp_path / "precious"
    if kind == "folder":
        out.mkdir()
        (out / "notes.txt").write_text("important")
    else:
        out.write_text("important")
    assert main(["export", "--model", str(NER), "--out", str(out)]) == 2
    assert "exists and is not an earlier export; choose a new or empty --out" in one_error_line(capsys)
    assert (out / "notes.txt" if kind == "folder" else out).read_text() == "important"


def test_predict_out_that_is_a_folder_is_refused_before_predicting(tmp_path, capsys):
    (tmp_path / "in.txt").write_text("Aspirin helps.\n")
    (tmp_path / "results").mkdir()
    assert main(["predict", "--model", str(NER), "--input", str(tmp_path / "in.txt"), "--out", str(tmp_path / "results")]) == 2
    assert "the --out file is a directory; give a file name" in one_error_line(capsys)
    assert list((tmp_path / "results").iterdir()) == []


@pytest.mark.parametrize("argv", [
    ["predict", "--model", str(NER), "--input", "IN", "--out", "/proc/blurbkit-test/out.jsonl"],
    ["prepare", "--source", "SRC", "--datasets", "gad", "--out", "/proc/blurbkit-test-prepared"],
    ["report", "--store", "STORE", "--out", "/proc/blurbkit-test-report"],
])
def test_an_output_that_cannot_be_written_is_one_line(argv, tmp_path, capsys):
    (tmp_path / "in.txt").write_text("Aspirin helps.\n")
    (tmp_path / "src").mkdir()
    from blurbkit.store.results import ResultsStore

    ResultsStore(tmp_path / "results.sqlite").close()
    swap = {"IN": str(tmp_path / "in.txt"), "SRC": str(tmp_path / "src"), "STORE": str(tmp_path / "results.sqlite")}
    assert main([swap.get(arg, arg) for arg in argv]) == 2
    assert "/proc/blurbkit-test" in one_error_line(capsys)


def test_a_folder_given_as_an_input_file_says_so(tmp_path, capsys):
    assert main(["score", str(tmp_path)]) == 2
    assert f"{tmp_path}: is a directory, not a file" in one_error_line(capsys)


@pytest.mark.parametrize("flag, value, message", [
    ("--lr", "-1", "--lr must be a positive number (got -1.0)"),
    ("--lr", "0", "--lr must be a positive number (got 0.0)"),
    ("--epochs", "0", "--epochs must be at least 1 (got 0)"),
    ("--epochs", "-1", "--epochs must be at least 1 (got -1)"),
    ("--batch-size", "-2", "--batch-size must be at least 1 (got -2)"),
    ("--max-length", "-5", "--max-length must be at least 4 (got -5)"),
    ("--seed", "-1", "--seed must be an integer from 0 to 2**32 - 1 (got -1)"),
    ("--max-test-examples", "-1", "--max-test-examples must be at least 1 (got -1)"),
    ("--fold", "3", "--fold 3: dataset gad is not split into folds"),
])
def test_finetune_numbers_out_of_range_are_refused_before_any_work(flag, value, message, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["finetune", "--dataset", "gad", "--out", str(out), flag, value, "--data", str(tmp_path / "nowhere")]) == 2
    assert message in one_error_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize("extra, message", [
    (["--part-option", "lstm_hiden=8"], "part option(s) lstm_hiden read by neither featurizer 'cls' nor head 'softmax' "
                                        "(they read: no options)"),
    (["--featurizer", "sll_lstm", "--part-option", "lstm_hidden=8", "--part-option", "crf_lr_scale=5"],
     "part option(s) crf_lr_scale read by neither featurizer 'sll_lstm' nor head 'softmax' (they read: lstm_hidden)"),
])
def test_a_part_option_no_part_reads_is_refused_before_any_work(extra, message, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["finetune", "--dataset", "gad", "--out", str(out), *extra, "--data", str(tmp_path / "nowhere")]) == 2
    assert message in one_error_line(capsys)
    assert not out.exists() or not any(out.iterdir())


def test_the_part_options_each_part_reads():
    from blurbkit.models.build import check_part_options, part_option_names
    from blurbkit.models.featurizers import FEATURIZERS
    from blurbkit.models.heads import HEADS

    assert part_option_names(HEADS.get("bilstm_crf")) == {"lstm_hidden", "crf_lr_scale"}
    assert part_option_names(HEADS.get("cosine")) == {"cosent_scale"}
    assert part_option_names(FEATURIZERS.get("sll_bilstm")) == {"lstm_hidden"}
    check_part_options("first_subword", "bilstm_crf", {"lstm_hidden": 8, "crf_lr_scale": 10.0})


def test_an_encoder_shorter_than_the_inputs_is_refused_before_training(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["finetune", "--dataset", "gad", "--out", str(out), "--model", str(NER), "--max-length", "100",
                 "--data", str(tmp_path / "nowhere")]) == 2
    assert "--max-length 100 is more than the encoder's max_position_embeddings 64" in one_error_line(capsys)
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("field, value, message", [
    ("head", "nosuch", "blurbkit.json: unknown head 'nosuch'"),
    ("task_type", "nosuch", "blurbkit.json: unknown task type 'nosuch'"),
    ("labels", ["O", "X-Foo", "I-Chemical"], "blurbkit.json: label tag 'X-Foo'"),
    ("max_length", 100000, "blurbkit.json: the recipe's max_length 100000 is more than the encoder's "
                           "max_position_embeddings 64"),
    ("labels", 5, "blurbkit.json: not a blurbkit model recipe ('labels' must be a list of strings, found 5)"),
    ("max_length", "64", "blurbkit.json: not a blurbkit model recipe ('max_length' must be a whole number of at "
                         "least 1, found '64')"),
    ("pairs", 5, "blurbkit.json: not a blurbkit model recipe ('pairs' must be an object, found 5)"),
    ("colour", "red", "blurbkit.json: not a blurbkit model recipe (it has unknown field(s) 'colour')"),
    ("dataset", None, "blurbkit.json: not a blurbkit model recipe (it lacks 'dataset')"),  # None: the field removed
    # two more labels than the saved head has outputs: the size mismatch is kept, not cut at the first line
    ("labels", ["O", "B-Chemical", "I-Chemical", "B-Drug", "I-Drug"],
     "blurbkit_head.safetensors is corrupt or does not fit blurbkit.json (Error(s) in loading state_dict for "
     "SoftmaxHead: size mismatch for linear.weight: copying a param with shape torch.Size([3, 16])"),
])
def test_a_broken_recipe_is_named_before_anything_is_predicted(field, value, message, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(NER, model)
    recipe = json.loads((model / "blurbkit.json").read_text())
    recipe[field] = value
    if value is None:
        del recipe[field]
    (model / "blurbkit.json").write_text(json.dumps(recipe))
    (tmp_path / "in.txt").write_text("Aspirin helps.\n")
    assert main(["predict", "--model", str(model), "--input", str(tmp_path / "in.txt")]) == 2
    assert message in one_error_line(capsys)


def test_a_tokenizer_file_that_is_not_utf8_is_named_with_its_line(tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(NER, model)
    (model / "tokenizer.json").unlink()  # the vocabulary alone, as BERT checkpoints ship it
    vocab = (model / "vocab.txt").read_bytes().split(b"\n")
    vocab[2] = b"caf\xe9"  # Latin-1, not UTF-8
    (model / "vocab.txt").write_bytes(b"\n".join(vocab))
    (tmp_path / "in.txt").write_text("Aspirin helps.\n")
    assert main(["predict", "--model", str(model), "--input", str(tmp_path / "in.txt")]) == 2
    assert one_error_line(capsys) == f"blurbkit: error: {model / 'vocab.txt'}:3: byte 0xe9 is not valid UTF-8"


@pytest.mark.parametrize("command", ["predict", "vocab"])
def test_a_config_field_of_the_wrong_type_is_blamed_on_config_json(command, tmp_path, capsys):
    """The encoder's loader and the tokenizer's (which reads config.json too) both name the file."""
    model = tmp_path / "model"
    shutil.copytree(NER, model)
    config = json.loads((model / "config.json").read_text())
    config["num_hidden_layers"] = "x"
    (model / "config.json").write_text(json.dumps(config))
    (tmp_path / "in.txt").write_text("Aspirin helps.\n")
    argv = {"predict": ["predict", "--model", str(model), "--input", str(tmp_path / "in.txt")],
            "vocab": ["vocab", "compare", str(NER), str(model), "--terms", str(tmp_path / "in.txt")]}[command]
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"blurbkit: error: {model}: config.json: Validation error for field 'num_hidden_layers'"), line
    assert "int" in line, line  # the second line of the library's message: what the field should be


def test_a_missing_model_folder_is_not_called_a_hub_name(tmp_path, capsys):
    assert main(["finetune", "--dataset", "gad", "--out", str(tmp_path / "run"), "--model", str(tmp_path / "nosuch")]) == 2
    line = one_error_line(capsys)
    assert f"model directory {tmp_path / 'nosuch'} does not exist" in line and "hub" not in line
    (tmp_path / "in.txt").write_text("Aspirin helps.\n")
    assert main(["predict", "--model", str(tmp_path / "nosuch"), "--input", str(tmp_path / "in.txt")]) == 2
    assert f"{tmp_path / 'nosuch'}: model directory not found" in one_error_line(capsys)


@pytest.mark.parametrize("argv, message", [
    (["benchmark", "--seeds", "0"], "argument --seeds: must be at least 1 (got 0)"),
    (["benchmark", "--seeds", "-3"], "argument --seeds: must be at least 1 (got -3)"),
    (["ablate", "--study", "stability", "--seeds", "0"], "argument --seeds: must be at least 1 (got 0)"),
    (["stilt", "--intermediate", "gad", "--target", "ddi", "--seeds", "0"], "argument --seeds: must be at least 1 (got 0)"),
    (["prepare", "--source", "x", "--out", "y", "--datasets", ","], "argument --datasets: no name in ','"),
    (["serve", "--ner", str(NER), "--port", "99999"], "argument --port: a port is 0-65535 (got 99999)"),
    (["report", "--serve", "--port", "-1"], "argument --port: a port is 0-65535 (got -1)"),
    (["serve", "--ner", str(NER), "--max-documents", "0"], "argument --max-documents: must be at least 1 (got 0)"),
    (["compare", "--seed", "-1"], "argument --seed: must be 0 or more (got -1)"),
    (["bench", "speed", "--seed", "-1"], "argument --seed: must be 0 or more (got -1)"),
    (["bench", "pretrain", "--corpus", "c", "--seed", "-1"], "argument --seed: must be 0 or more (got -1)"),
    (["pretrain", "--corpus", "c", "--out", "o", "--rtd-weight", "nan"], "argument --rtd-weight: not a finite number: 'nan'"),
    (["probe", "--dataset", "chemprot", "--lr", "inf"], "argument --lr: not a finite number: 'inf'"),
    (["finetune", "--dataset", "gad", "--out", "r", "--layer-decay", "nan"], "argument --layer-decay: not a finite number: 'nan'"),
    (["finetune", "--dataset", "gad", "--out", "r", "--lr", "nan"], "argument --lr: not a finite number: 'nan'"),
    (["finetune", "--dataset", "gad", "--out", "r", "--adversarial", "--adv-alpha", "nan"], "argument --adv-alpha: not a finite number: 'nan'"),
    (["vocab", "build", "--corpus", "c", "--out", "v", "--max-sentences", "-1"], "argument --max-sentences: must be at least 1 (got -1)"),
    (["vocab", "build", "--corpus", "c", "--out", "v", "--max-sentences", "0"], "argument --max-sentences: must be at least 1 (got 0)"),
    (["pretrain", "--corpus", "c", "--out", "o", "--threads", "0"], "argument --threads: must be at least 1 (got 0)"),
    (["pretrain", "--corpus", "c", "--out", "o", "--max-steps", "-3"], "argument --max-steps: must be at least 1 (got -3)"),
    (["pretrain", "--corpus", "c", "--out", "o", "--lr", "-1"], "argument --lr: must be more than 0 (got -1)"),
    (["pretrain", "--corpus", "c", "--out", "o", "--weight-decay", "-1"], "argument --weight-decay: must be 0 or more (got -1)"),
    (["bench", "pretrain", "--corpus", "c", "--threads", "-1"], "argument --threads: must be at least 1 (got -1)"),
    (["bench", "speed", "--train-examples", "-5"], "argument --train-examples: must be at least 1 (got -5)"),
    (["bench", "inference", "--sentences", "-1"], "argument --sentences: must be at least 1 (got -1)"),
    (["corpus", "build", "--out", "o.jsonl", "--window", "0"], "argument --window: must be 5 or more (got 0)"),
    (["benchmark", "--gpus-per-run", "-1"], "argument --gpus-per-run: must be 0 or more (got -1)"),
    (["vocab", "build", "--corpus", "c", "--out", "v", "--min-frequency", "-1"], "argument --min-frequency: must be 0 or more (got -1)"),
    (["pretrain", "--corpus", "c", "--out", "o", "--seed", "-1"], "argument --seed: must be 0 or more (got -1)"),
    (["pretrain", "--corpus", "c", "--out", "o", "--warmup", "-1"], "argument --warmup: must be 0 or more (got -1)"),
    (["pretrain", "--corpus", "c", "--out", "o", "--epochs", "0"], "argument --epochs: must be more than 0 (got 0)"),
    (["pretrain", "--corpus", "c", "--out", "o", "--keep-checkpoints", "0"], "argument --keep-checkpoints: must be at least 1 (got 0)"),
    (["pretrain", "--corpus", "c", "--out", "o", "--max-minutes", "-1"], "argument --max-minutes: must be more than 0 (got -1)"),
    (["pretrain", "--corpus", "c", "--out", "o", "--max-docs", "0"], "argument --max-docs: must be at least 1 (got 0)"),
    (["analyze", "attention", "r", "--window", "-1"], "argument --window: must be 0 or more (got -1)"),
    (["analyze", "attention", "r", "--top", "-5"], "argument --top: must be at least 1 (got -5)"),
    (["analyze", "attention", "r", "--max-examples", "-2"], "argument --max-examples: must be at least 1 (got -2)"),
    (["corpus", "build", "i", "--out", "o.jsonl", "--min-words", "-1"], "argument --min-words: must be 0 or more (got -1)"),
    (["corpus", "select", "--corpus", "c", "--topic", "drug", "--out", "o.jsonl", "--min-hits", "0"],
     "argument --min-hits: must be at least 1 (got 0)"),
    (["bench", "speed", "--peak-size", "0"], "argument --peak-size: must be at least 1 (got 0)"),
    (["bench", "inference", "--peak-seconds", "-1"], "argument --peak-seconds: must be more than 0 (got -1)"),
])
def test_numbers_and_lists_out_of_range_are_usage_errors(argv, message, capsys):
    assert usage_error(capsys, argv).endswith(message)


def test_benchmark_with_no_dataset_named_is_refused(tmp_path, capsys):
    assert main(["benchmark", "--datasets", ",", "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "no dataset named in ','" in one_error_line(capsys)
    assert not (tmp_path / "runs" / "results.sqlite").exists()


def test_serve_on_an_address_that_cannot_be_listened_on_is_one_line(capsys):
    assert main(["serve", "--ner", str(NER), "--host", "no-such-host.invalid", "--port", "8765"]) == 2
    assert "cannot listen on no-such-host.invalid:8765" in one_error_line(capsys)


def test_pretrain_on_a_missing_corpus_leaves_no_output_folder(tmp_path, capsys):
    out = tmp_path / "pretrained"
    assert main(["pretrain", "--corpus", str(tmp_path / "nosuch.txt"), "--init", str(NER), "--out", str(out),
                 "--max-steps", "1", "--max-length", "32"]) == 2
    assert "nosuch.txt: corpus not found" in one_error_line(capsys)
    assert not out.exists()


def test_a_database_of_another_program_is_not_read_as_an_empty_store(tmp_path, capsys):
    import sqlite3

    with sqlite3.connect(tmp_path / "other.sqlite") as db:
        db.execute("CREATE TABLE invoices (id INTEGER)")
    assert main(["status", "--runs-dir", str(tmp_path), "--store", str(tmp_path / "other.sqlite")]) == 2
    assert "not a blurbkit results store (its tables: invoices)" in one_error_line(capsys)


def test_an_unusable_path_no_check_caught_is_one_line_and_an_io_fault_keeps_its_traceback(tmp_path, monkeypatch, capsys):
    import errno

    import blurbkit.cli.score as score_command

    def denied(args):  # a rename into a folder the user may not write: the target is named, not the temporary file
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / ".out.json.x1y2z3w4.tmp"), None,
                              str(tmp_path / "out.json"))

    monkeypatch.setattr(score_command, "run", denied)
    assert main(["score", "x.json"]) == 2
    assert one_error_line(capsys) == f"blurbkit: error: {tmp_path / 'out.json'}: Permission denied"

    def disk_fault(args):
        raise OSError(errno.EIO, "Input/output error", str(tmp_path / "checkpoint"))

    monkeypatch.setattr(score_command, "run", disk_fault)
    with pytest.raises(OSError, match="Input/output error"):
        main(["score", "x.json"])


@pytest.mark.parametrize("argv, message", [
    (["bench", "speed", "--no-trainer", "--engine-option", "lr=1e-4"],
     "--engine-option: lr would apply to blurbkit's side only; use the bench's own flags"),
    (["bench", "speed", "--no-trainer", "--engine-option", "threads=0"], "--engine-option: --threads must be at least 1 (got 0)"),
    (["bench", "speed", "--no-trainer", "--engine-option", "precision=fp64"],
     "--engine-option: precision 'fp64': one of auto, bf16, fp16, fp32"),
    (["bench", "speed", "--no-trainer", "--engine-option", "compile"], "--engine-option 'compile': expected KEY=VALUE"),
    (["bench", "inference", "--engine-option", "bf16_inference=maybe"], "--engine-option: bf16_inference must be true or false, not 'maybe'"),
    (["bench", "speed", "--results-dir", "in.txt"], "in.txt: the --results-dir is a file; give a folder"),
    (["benchmark", "--protocol", "full", "--datasets", "gad", "--gpus-per-run", "1"], "--gpus-per-run: only with --executor ray"),
    (["evaluate", "--dataset", "bc5chem", "--predictions", "p.txt", "--fold", "3"], "--fold 3: dataset bc5chem is not split into folds"),
    (["evaluate", "--dataset", "gad", "--predictions", "p.txt", "--scheme", "iobes"], "--scheme applies to token-level datasets, not to gad"),
    (["finetune", "--dataset", "gad", "--out", "r", "--pico-train-from-dev", "100"], "--pico-train-from-dev: only for EBM PICO, not gad"),
    (["finetune", "--dataset", "gad", "--out", "r", "--adv-alpha", "2"], "--adv-alpha: only with --adversarial"),
    (["ablate", "--study", "relation", "--preset", "tiny"], "--preset: only with --study pretraining"),
    (["vocab", "build", "--corpus", "in.txt", "--out", "v", "--size", "3000000000"], "--size 3000000000 is more than 1,000,000 pieces"),
    (["benchmark", "--datasets", "biosses,gad,biosses"], "--datasets names biosses more than once"),
    (["pretrain", "--corpus", "in.txt", "--out", "o", "--from-scratch", "tiny", "--rtd-weight", "10"],
     "--rtd-weight: only with --objective electra"),
    (["benchmark", "--protocol", "full", "--datasets", "gad", "--grid", ";;", "--plan"], "--grid ';;': names no grid key"),
    (["predict", "--model", "m", "--input", "in.txt", "--keep-negative"],
     "--keep-negative: for the document pipeline (--ner/--relations), not --model"),
    (["datasets", "add", "toy", "--format", "conll", "--source", "~nosuchuser4242/x"], "no such user's home directory"),
    (["prepare", "--datasets", "gad", "--out", "p", "--pico-train-from-dev", "5"],
     "--pico-train-from-dev: none of the datasets to prepare reads it (gad)"),
    (["prepare", "--datasets", "gad,biosses", "--out", "p", "--fold", "0"], "--fold: none of the datasets to prepare reads it (gad, biosses)"),
])
def test_options_a_command_would_ignore_or_crash_on_are_one_line(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.txt").write_text("Aspirin helps.\n")
    assert main(argv) == 2
    assert message in one_error_line(capsys)


def test_an_output_that_is_an_input_is_refused_and_the_input_kept(tmp_path, capsys):
    text = tmp_path / "in.txt"
    text.write_text("Aspirin helps.\n")
    assert main(["predict", "--model", str(NER), "--input", str(text), "--out", str(text)]) == 2
    assert "--out is the --input file" in one_error_line(capsys)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Aspirin helps patients with pain after surgery in most trials.\n")
    for report in (corpus, tmp_path / "out.jsonl"):  # the report would replace the input, or the corpus just built
        assert main(["corpus", "build", str(corpus), "--out", str(tmp_path / "out.jsonl"), "--report", str(report),
                     "--no-test-filter"]) == 2
        assert "write it somewhere else" in one_error_line(capsys)
    assert text.read_text() == "Aspirin helps.\n" and corpus.read_text().startswith("Aspirin helps patients")
    assert not (tmp_path / "out.jsonl").exists()


def test_pretraining_paths_that_cannot_be_folders_are_one_line(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Aspirin helps patients with pain.\n\nInsulin lowers glucose in most patients.\n")
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "gone" / "runs")
    base = ["pretrain", "--corpus", str(corpus), "--from-scratch", "tiny", "--tokenizer", "default", "--max-steps", "1",
            "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "o"), "--cache-dir", str(corpus)]) == 2
    assert "the --cache-dir is a file; give a folder" in one_error_line(capsys)
    assert main([*base, "--out", str(dangling)]) == 2
    assert "the --out folder is a link to nothing" in one_error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.txt", "dangling"]


@pytest.mark.parametrize("config, message", [
    ({"hidden_size": "x"}, "not a usable BERT config (Validation error for field 'hidden_size':"),
    ({"num_hidden_layers": -1}, "num_hidden_layers is -1; it must be a whole number of at least 1"),
    ({"intermediate_size": 0}, "intermediate_size is 0; it must be a whole number of at least 1"),
])
def test_a_from_scratch_config_that_cannot_build_an_encoder_is_one_line(config, message, tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Aspirin helps patients with pain.\n\nInsulin lowers glucose in most patients.\n")
    (tmp_path / "c.json").write_text(json.dumps(config))
    out = tmp_path / "o"
    assert main(["pretrain", "--corpus", str(corpus), "--from-scratch", str(tmp_path / "c.json"), "--tokenizer", "default",
                 "--max-steps", "1", "--no-progress", "--out", str(out)]) == 2
    assert one_error_line(capsys).startswith(f"blurbkit: error: {tmp_path / 'c.json'}: {message}")
    assert not out.exists()


def test_corpus_build_with_a_data_folder_that_is_not_there_is_refused(tmp_path, capsys):
    """Datasets added with `datasets add` live elsewhere and would still be read: the BLURB test splits
    would silently not be filtered out of the corpus."""
    (tmp_path / "in.txt").write_text("Aspirin lowered the pain of most patients in the trial.\n")
    out = tmp_path / "o.jsonl"
    assert main(["corpus", "build", str(tmp_path / "in.txt"), "--out", str(out), "--data", str(tmp_path / "nosuch")]) == 2
    assert one_error_line(capsys) == (f"blurbkit: error: {tmp_path / 'nosuch'}: data folder not found "
                                      "(the BLURB test splits to filter out are read from it)")
    assert not out.exists()


def test_a_number_longer_than_python_reads_is_one_line(tmp_path, capsys):
    scores = tmp_path / "scores.json"
    scores.write_text('{"gad": ' + "9" * 5000 + "}")
    assert main(["score", str(scores)]) == 2
    assert "not valid JSON (a number too long to read, value has 5000 digits)" in one_error_line(capsys)
