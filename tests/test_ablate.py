"""`blurbkit ablate` and `blurbkit analyze attention` end to end with a tiny BERT and a few examples."""

from __future__ import annotations

import pytest

from blurbkit.cli.main import main
from blurbkit.models.tiny import build_tiny_bert
from blurbkit.store.results import ResultsStore


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_bert(tmp_path_factory.mktemp("tiny") / "bert")


def _tiny_options(tiny_model, shared_data, runs):
    return ["--data", str(shared_data), "--model", str(tiny_model), "--runs-dir", str(runs), "--epochs", "1",
            "--batch-size", "8", "--max-train-examples", "16", "--max-eval-examples", "8",
            "--max-test-examples", "24", "--no-progress"]


def test_relation_study_table_store_and_report(tiny_model, shared_data, tmp_path, capsys):
    runs = tmp_path / "runs"
    argv = ["ablate", "--study", "relation", "--datasets", "chemprot", "--variants", "dummy+start,original+cls",
            "--seeds", "2", *_tiny_options(tiny_model, shared_data, runs)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0] == "| dataset | dummy+start | original+cls |"
    row = next(line for line in lines if line.startswith("| ChemProt |"))
    cells = [c.strip() for c in row.strip("|").split("|")][1:]
    assert "±" in cells[0] and cells[1] == "n/a*"
    assert "masked text only" in captured.out and "published" in captured.out
    assert "chemprot [original+cls] not run" in captured.err
    rows = ResultsStore(runs / "results.sqlite").rows(study="relation")
    assert sorted((r["variant"], r["seed"]) for r in rows) == [("dummy+start", 0), ("dummy+start", 1)]
    assert (runs / "ablation-relation-custom-train16-dev8-test24.md").read_text().startswith("| dataset |")
    seed1 = list((runs / "relation" / "dummy+start" / "chemprot").glob("seed1-*"))
    assert len(seed1) == 1 and (seed1[0] / "metrics.json").is_file()
    # Stored runs are not repeated.
    assert main(argv) == 0
    assert "already stored" in capsys.readouterr().err
    # --plan with a third seed: one run left, costed from the two stored runs' throughput; nothing runs
    assert main([*argv[:argv.index("--seeds")], "--seeds", "3", *argv[argv.index("--seeds") + 2:], "--plan"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| ChemProt |"))
    threads = {r["threads"] for r in rows}  # each run stores the thread count its speeds were measured at
    assert len(threads) == 1 and next(iter(threads)) >= 1
    n = next(iter(threads))
    assert [c.strip() for c in row.strip("|").split("|")][1:4] == ["3", "2", "1"]
    assert f"store (2 runs, {n} thread{'s' if n > 1 else ''})" in row
    assert len(ResultsStore(runs / "results.sqlite").rows(study="relation")) == 2


def test_token_studies_and_sll_attention_analysis(tiny_model, shared_data, tmp_path, capsys):
    runs = tmp_path / "runs"
    options = _tiny_options(tiny_model, shared_data, runs)
    assert main(["ablate", "--study", "tagging", "--datasets", "ncbi_disease", "--variants", "bioul", "--seeds", "1", *options]) == 0
    assert main(["ablate", "--study", "heads", "--datasets", "ncbi_disease", "--variants", "bilstm+crf", "--seeds", "1", *options]) == 0
    assert main(["ablate", "--study", "sll", "--datasets", "gad", "--variants", "cls+attention", "--seeds", "1",
                 "--save-models", *options]) == 0
    out = capsys.readouterr().out
    assert "| NCBI-disease |" in out and "| GAD |" in out
    (run_dir,) = (runs / "sll" / "cls+attention" / "gad").glob("seed0-*")
    html = tmp_path / "attention.html"
    assert main(["analyze", "attention", str(run_dir), "--min-count", "1", "--examples", "3", "--out", str(html)]) == 0
    printed = capsys.readouterr().out
    assert "| rank | stem |" in printed and '"examples": 24' in printed
    page = html.read_text()
    assert page.count("<h3>") == 3 and "class=e" in page and "rgba(220,50,47," in page


def test_bad_ablations_fail_before_training(tiny_model, shared_data, tmp_path, capsys):
    options = _tiny_options(tiny_model, shared_data, tmp_path / "runs")
    assert main(["ablate", "--study", "tagging", "--datasets", "chemprot", *options]) == 2
    assert "study tagging applies to ner, pico datasets; chemprot is relation" in capsys.readouterr().err
    assert main(["ablate", "--study", "heads", "--head", "crf", "--datasets", "ncbi_disease", *options]) == 2
    assert "--head is what study heads varies" in capsys.readouterr().err
    assert main(["ablate", "--study", "relation", "--variants", "dummy+foo", *options]) == 2
    assert "unknown variants dummy+foo" in capsys.readouterr().err
    assert main(["ablate", "--study", "pretraining", "--plan", *options[2:]]) == 2
    assert "--plan: not for --study pretraining" in capsys.readouterr().err
    # A part that does not fit the task, through finetune: refused before any training.
    assert main(["finetune", "--dataset", "gad", "--head", "crf", "--out", str(tmp_path / "x"), *options[:4]]) == 2
    assert "head 'crf' does not apply to relation" in capsys.readouterr().err
    assert main(["finetune", "--dataset", "gad", "--transform", "markers", "--out", str(tmp_path / "y"), *options[:4]]) == 2
    assert "datasets that keep them: ddi, aimed" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("metrics.json"))


def test_a_part_option_goes_to_the_variants_whose_parts_read_it():
    from blurbkit.errors import BlurbkitError
    from blurbkit.experiments.ablation import build_grid, get_study
    from blurbkit.train.config import FinetuneConfig

    study = get_study("heads")

    def make(options):
        return lambda name, seed: FinetuneConfig(dataset=name, seed=seed, part_options=options)

    grid, _ = build_grid(study, ["bc5chem"], list(study.variants), 1, make({"lstm_hidden": 8, "crf_lr_scale": 10.0}))
    options = {variant: config.choices.part_options for variant, config in grid}
    assert options == {"linear": {}, "bilstm": {"lstm_hidden": 8}, "crf": {"crf_lr_scale": 10.0},
                       "bilstm+crf": {"lstm_hidden": 8, "crf_lr_scale": 10.0}}
    with pytest.raises(BlurbkitError, match="part option\\(s\\) lstm_hiden read by no featurizer or head of this study"):
        build_grid(study, ["bc5chem"], list(study.variants), 1, make({"lstm_hiden": 8}))


def test_published_rows_name_their_source_and_only_the_variants_shown():
    from blurbkit.experiments.ablation import STUDIES, ablation_table

    sll = STUDIES["sll"]
    chosen = [v for v in sll.variants if v.name in ("cls", "cls+attention", "lstm")]
    table = ablation_table(sll, {}, ["chemprot", "gad"], chosen, {}, "full").splitlines()
    assert "| *ChemProt, BioBERT (published)* | 75.3 | 76.3 |  |" in table
    assert "| *ChemProt, PubMedBERT (published)* | 77.3 | 77.9 |  |" in table
    assert not any(line.startswith("| *GAD") for line in table)  # BERT-RE has no GAD column
    assert any(line.startswith("Published rows: BERT-RE") for line in table)
    # Variants the paper did not run: no published row, and no note about one.
    lstm_only = ablation_table(sll, {}, ["chemprot"], [v for v in sll.variants if v.name == "lstm"], {}, "full")
    assert "published" not in lstm_only.lower()
    relation = STUDIES["relation"]
    table = ablation_table(relation, {}, ["ddi"], relation.variants, {}, "full").splitlines()
    assert [line for line in table if "(published)" in line] == [
        "| *DDI, PubMedBERT (published)* | 82.36 |  |  |  |  |  | 37.0 |  |  |"]
