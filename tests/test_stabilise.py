"""Stabilisation options: re-initialisation, freezing, layer-wise lr decay, layer dropping."""

from __future__ import annotations

import pytest
import torch

from blurbkit.errors import BlurbkitError
from blurbkit.models.loading import load_encoder
from blurbkit.models.tiny import build_tiny_bert
from blurbkit.runtime.optim import parameter_groups
from blurbkit.train.stabilise import drop_top_layers, freeze_lower_half, reinit_top_layers


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_tiny_bert(tmp_path_factory.mktemp("tiny") / "bert", layers=4)


class Wrapped(torch.nn.Module):
    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder
        self.head = torch.nn.Linear(32, 2)


def test_reinit_changes_only_the_top_layers(model_dir):
    encoder = load_encoder(model_dir)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    torch.manual_seed(1)
    reinit_top_layers(encoder, 2)
    after = encoder.state_dict()
    changed = {k.split(".")[2] for k in before if k.startswith("encoder.layer.") and not torch.equal(before[k], after[k])}
    assert changed == {"2", "3"}
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("encoder.layer."))


def test_freeze_lower_half_fixes_embeddings_and_two_of_four_layers(model_dir):
    encoder = load_encoder(model_dir)
    freeze_lower_half(encoder)
    frozen = {n for n, p in encoder.named_parameters() if not p.requires_grad}
    assert any(n.startswith("embeddings.") for n in frozen)
    assert {n.split(".")[2] for n in frozen if n.startswith("encoder.layer.")} == {"0", "1"}
    assert all(p.requires_grad for n, p in encoder.named_parameters() if n.startswith(("encoder.layer.2", "encoder.layer.3")))


def test_layer_decay_gives_lr_times_d_to_the_depth_from_the_top(model_dir):
    model = Wrapped(load_encoder(model_dir))
    groups = parameter_groups(model.named_parameters(), lr=1.0, weight_decay=0.01, layer_decay=0.5, num_layers=4)
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert lr_of[id(named["head.weight"])] == 1.0
    assert lr_of[id(named["encoder.encoder.layer.3.attention.self.query.weight"])] == 1.0
    assert lr_of[id(named["encoder.encoder.layer.0.attention.self.query.weight"])] == 0.5**3
    assert lr_of[id(named["encoder.embeddings.word_embeddings.weight"])] == 0.5**4
    decay_of = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    assert decay_of[id(named["head.bias"])] == 0.0 and decay_of[id(named["head.weight"])] == 0.01


def test_drop_top_layers_and_refuse_to_drop_all(model_dir):
    encoder = load_encoder(model_dir)
    drop_top_layers(encoder, 3)
    assert len(encoder.encoder.layer) == 1 and encoder.config.num_hidden_layers == 1
    out = encoder(input_ids=torch.tensor([[101, 2000, 102]])).last_hidden_state
    assert out.shape == (1, 3, 32)
    with pytest.raises(BlurbkitError, match="the encoder has 1"):
        drop_top_layers(encoder, 1)


def test_finetune_cli_applies_the_layer_options(model_dir, shared_data, tmp_path):
    import json

    from blurbkit.cli.main import main

    out = tmp_path / "run"
    code = main(["finetune", "--dataset", "gad", "--data", str(shared_data), "--model", str(model_dir), "--out", str(out),
                 "--epochs", "1", "--max-train-examples", "16", "--max-eval-examples", "8", "--max-test-examples", "8",
                 "--layer-decay", "0.9", "--reinit-layers", "1", "--drop-layers", "1", "--freeze-lower-half", "--no-progress"])
    assert code == 0
    assert json.loads((out / "model" / "config.json").read_text())["num_hidden_layers"] == 3
    run = json.loads((out / "run.json").read_text())["config"]
    assert run["layer_decay"] == 0.9 and run["reinit_layers"] == 1 and run["freeze_lower_half"] is True
    # Applied, not only recorded: the frozen embeddings and lowest block come out as pretrained, the
    # re-initialised (and trained) top block does not.
    from safetensors.torch import load_file

    before, after = load_file(str(model_dir / "model.safetensors")), load_file(str(out / "model" / "model.safetensors"))

    def weight(weights, suffix):
        (name,) = [n for n in weights if n.endswith(suffix)]
        return weights[name]

    for suffix in ("embeddings.word_embeddings.weight", "layer.0.attention.self.query.weight"):
        assert torch.equal(weight(before, suffix), weight(after, suffix)), suffix
    for suffix in ("layer.1.attention.self.query.weight", "layer.2.attention.self.query.weight"):
        assert not torch.equal(weight(before, suffix), weight(after, suffix)), suffix


def test_finetune_trains_with_the_layer_decay_and_adam_it_was_given(model_dir, shared_data, tmp_path, monkeypatch):
    """The engine's optimizer itself (not the recorded config): --layer-decay 0.5 puts the embeddings
    at lr * 0.5**4 and the top block and head at lr, and --no-bias-correction is BERT's Adam."""
    from blurbkit.cli.main import main
    from blurbkit.runtime.optim import UncorrectedAdamW
    from blurbkit.train import engine

    built = []
    build = engine.build_optimizer

    def spy(model, *args, **kwargs):
        built.append((model, build(model, *args, **kwargs)))
        return built[-1][1]

    monkeypatch.setattr(engine, "build_optimizer", spy)
    code = main(["finetune", "--dataset", "gad", "--data", str(shared_data), "--model", str(model_dir),
                 "--out", str(tmp_path / "run"), "--epochs", "1", "--lr", "1e-3", "--max-train-examples", "8",
                 "--max-eval-examples", "4", "--max-test-examples", "4", "--layer-decay", "0.5", "--no-bias-correction",
                 "--no-progress"])
    assert code == 0
    [(model, optimizer)] = built
    assert isinstance(optimizer, UncorrectedAdamW)
    lr_of = {id(p): group["initial_lr"] for group in optimizer.param_groups for p in group["params"]}
    lr_by_name = {name: lr_of[id(p)] for name, p in model.named_parameters()}
    expected = {"embeddings.word_embeddings.weight": 1e-3 * 0.5**4, "layer.0.attention.self.query.weight": 1e-3 * 0.5**3,
                "layer.3.output.dense.weight": 1e-3, "head.linear.weight": 1e-3}
    for suffix, lr in expected.items():
        (name,) = [n for n in lr_by_name if n.endswith(suffix)]
        assert lr_by_name[name] == pytest.approx(lr), name
