"""`blurbkit probe`: the scalar mix, a frozen encoder, the per-depth table, one-line refusals."""

from __future__ import annotations

import json

import pytest
import torch

from blurbkit.cli.main import main
from blurbkit.models.probe import LayerProbe, ScalarMix
from blurbkit.models.tiny import build_tiny_bert


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_bert(tmp_path_factory.mktemp("tiny") / "bert", layers=3)


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_alpha_is_a_softmax_over_exactly_depth_plus_one_layers(depth):
    torch.manual_seed(0)
    probe = LayerProbe(depth, hidden_size=8, head="softmax", num_labels=3, mlp_size=4).eval()
    assert probe.mix.weights.shape == (depth + 1,)
    with torch.no_grad():
        probe.mix.weights.normal_()
    alphas = probe.mix.alphas().detach()
    assert torch.allclose(alphas, torch.softmax(probe.mix.weights.detach(), 0)) and abs(float(alphas.sum()) - 1) < 1e-6
    assert (alphas > 0).all()
    features = torch.randn(5, 4, 8)  # an encoder with 3 layers: embeddings + 3
    before = probe(features)
    changed = features.clone()
    changed[:, depth + 1 :] += 100.0  # layers above the probe's depth must not matter
    assert torch.equal(probe(changed), before)
    changed[:, depth] += 1.0  # its own top layer does
    assert not torch.allclose(probe(changed), before)


def test_scalar_mix_is_gamma_times_the_weighted_sum():
    mix = ScalarMix(2)
    with torch.no_grad():
        mix.weights.copy_(torch.tensor([0.0, 1.0]))
        mix.gamma.fill_(2.0)
    stacked = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    a = torch.softmax(torch.tensor([0.0, 1.0]), 0)
    assert torch.allclose(mix(stacked), 2.0 * torch.tensor([[a[0], a[1]]]))
    with pytest.raises(ValueError):
        mix(torch.zeros(1, 3, 2))


def test_features_and_probes_leave_the_encoder_unchanged(tiny_model, shared_data):
    from blurbkit.analysis.probing import ProbeSettings, ProbeTask, layer_features, parameter_digest
    from blurbkit.data.load import load_split, subsample
    from blurbkit.models.build import make_recipe
    from blurbkit.models.encoding import encode
    from blurbkit.models.loading import load_encoder, load_tokenizer
    from blurbkit.tasks.registry import get_dataset

    spec = get_dataset("chemprot")
    records = {split: subsample(load_split("chemprot", split, shared_data), 24, 0) for split in ("train", "dev", "test")}
    codec = spec.task.codec(spec, records["train"])
    recipe = make_recipe(spec, codec, 64)
    tokenizer = load_tokenizer(tiny_model)
    encoder = load_encoder(tiny_model)
    encoder.train()  # features must be computed in eval mode whatever the encoder's mode was
    before = parameter_digest(encoder)
    grads = [p.requires_grad for p in encoder.parameters()]
    data = {s: encode(r, codec, recipe, tokenizer) for s, r in records.items()}
    features = {s: layer_features(encoder, d, tokenizer.pad_token_id)["cls"] for s, d in data.items()}
    assert features["train"].shape == (24, 4, 32)  # embeddings + 3 layers, hidden 32
    again = layer_features(encoder, data["train"], tokenizer.pad_token_id)["cls"]
    assert torch.equal(features["train"], again)  # eval mode: no dropout
    result = ProbeTask(spec, codec, recipe.head, data, features).train(3, 0, ProbeSettings(epochs=2, seeds=1))
    assert len(result.alphas) == 4 and abs(sum(result.alphas) - 1) < 1e-6
    assert parameter_digest(encoder) == before
    assert [p.requires_grad for p in encoder.parameters()] == grads
    assert all(p.grad is None for p in encoder.parameters())


def test_probe_cli_table_results_and_cache(tiny_model, shared_data, tmp_path, capsys):
    out = tmp_path / "probe"
    argv = ["probe", "--dataset", "gad", "--model", str(tiny_model), "--data", str(shared_data), "--out", str(out),
            "--max-train-examples", "40", "--max-eval-examples", "16", "--max-test-examples", "16", "--epochs", "2",
            "--seeds", "2", "--no-progress", "--store", str(tmp_path / "results.sqlite")]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    rows = [line for line in printed.splitlines() if line.startswith("| ") and not line.startswith("| layer")]
    assert [row.split("|")[1].strip() for row in rows] == ["0 (embeddings)", "1", "2", "3"]
    assert "Δ_3 =" in printed and "BUDGET RUN" in printed
    info = json.loads((out / "probe.json").read_text())
    assert info["features"] == "computed" and info["encoder_unchanged"] is True
    assert [len(r["alphas"]) for r in info["results"]] == [d + 1 for d in range(4) for _ in range(2)]
    assert all(abs(sum(r["alphas"]) - 1) < 1e-6 for r in info["results"])
    assert [row["depth"] for row in info["summary"]] == [0, 1, 2, 3] and info["summary"][0]["delta"] is None
    assert (out / "probe.csv").read_text().startswith("layer,test_mean") and (out / "probe.png").stat().st_size > 0
    # A second run (other pooling) reuses the frozen encoder's features.
    assert main([*argv, "--pool", "mean"]) == 0
    assert json.loads((out / "probe.json").read_text())["features"] == "cached"
    # Both poolings are in the store, a row per depth and seed, for the report.
    from blurbkit.store.results import read_rows

    rows = read_rows(tmp_path / "results.sqlite")
    assert len(rows) == 2 * 4 * 2 and {r["variant"] for r in rows} == {f"depth-{d}" for d in range(4)}
    assert {json.loads(r["hyperparameters"])["pool"] for r in rows} == {"cls", "mean"}
    assert {r["budget"] for r in rows} == {"custom-train40-dev16-test16"} and {r["model"] for r in rows} == {str(tiny_model.resolve())}


def test_probe_bad_inputs_are_one_line(tmp_path, capsys):
    # A token-level dataset is refused before the model is even looked at.
    assert main(["probe", "--dataset", "bc5chem", "--model", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bc5chem is ner, a token-level task" in err[0]
    (tmp_path / "notamodel").mkdir()
    assert main(["probe", "--dataset", "chemprot", "--model", str(tmp_path / "notamodel")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no config.json" in err[0]
    assert main(["probe", "--dataset", "chemprot", "--seeds", "0"]) == 2
    assert "--seeds must be at least 1" in capsys.readouterr().err


def test_a_feature_cache_killed_between_its_two_files_is_a_miss_not_a_wrong_hit(tmp_path, monkeypatch):
    import torch

    from blurbkit.analysis import probing

    path = tmp_path / "features.safetensors"
    old = {split: {"cls": torch.zeros(2, 3)} for split in probing.SPLITS}
    probing.save_cached(path, "old-settings", old)
    assert probing.load_cached(path, "old-settings") is not None
    real = probing.atomic_write
    calls = []

    def killed_at_the_key(target, *args, **kwargs):
        calls.append(target)
        if str(target).endswith(".json"):
            raise KeyboardInterrupt  # killed after the new features replaced the old ones
        return real(target, *args, **kwargs)

    monkeypatch.setattr(probing, "atomic_write", killed_at_the_key)
    new = {split: {"cls": torch.ones(2, 3)} for split in probing.SPLITS}
    with pytest.raises(KeyboardInterrupt):
        probing.save_cached(path, "new-settings", new)
    assert probing.load_cached(path, "old-settings") is None  # the old key no longer names these features
