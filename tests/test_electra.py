"""ELECTRA pretraining (objectives/electra.py) on a micro model: replaced-token labels, shared
embeddings, the saved discriminator fine-tuned through blurbkit, ELECTRA layer names in the
stabilisation options, and a generator larger than the discriminator refused."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import write_pretrain_corpus
from safetensors.torch import load_file

from blurbkit.cli.main import main
from blurbkit.errors import BlurbkitError
from blurbkit.pretrain.config import PretrainConfig
from blurbkit.pretrain.trainer import pretrain

WORDS = ["lymphoma", "insulin", "naloxone", "clonidine", "receptor", "kinase", "patients", "treated", "dose",
         "acetyltransferase", "cells", "expression", "tumour", "mice", "increased", "reduced", "levels", "protein"]
MICRO = {"num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 4, "intermediate_size": 64,
         "max_position_embeddings": 64}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("electra")
    corpus, vocab = write_pretrain_corpus(root, WORDS)
    config = root / "micro.json"
    config.write_text(json.dumps(MICRO), encoding="utf-8")
    return root, corpus, vocab, config


def _cfg(setup, out, **kw):
    root, corpus, vocab, config = setup
    base = dict(corpus=[str(corpus)], out=str(out), tokenizer=str(vocab), from_scratch=str(config), max_length=32,
                batch_size=4, max_steps=3, save_every=10, log_every=1, progress=False, lr=1e-3, seed=3,
                objective="electra")
    base.update(kw)
    return PretrainConfig(**base)


def _pair(size=0.25, vocab=50):
    from transformers import BertConfig

    from blurbkit.pretrain.objectives import get_objective

    objective = get_objective("electra")
    objective.generator_size = size
    torch.manual_seed(0)
    return objective, objective.new_model(BertConfig(vocab_size=vocab, **MICRO))


def test_labels_are_exactly_the_replaced_positions():
    from blurbkit.pretrain.objectives.electra import ElectraModule

    input_ids = torch.tensor([[2, 10, 11, 12, 13, 3], [2, 14, 15, 16, 3, 0]])
    masked_index = torch.tensor([1, 2, 4, 7, 9])  # flattened: (0,1) (0,2) (0,4) (1,1) (1,3)
    originals = torch.tensor([20, 21, 22, 23, 24])
    # The generator is certain: positions 0, 2, 3 sample their original token, 1 and 4 another one.
    sampled = torch.tensor([20, 30, 22, 23, 31])
    logits = torch.full((5, 40), -1e4)
    logits[torch.arange(5), sampled] = 1e4
    corrupted, labels = ElectraModule.replace(input_ids, masked_index, originals, logits)
    assert corrupted.reshape(-1)[masked_index].tolist() == sampled.tolist()
    unmasked = torch.ones(12, dtype=torch.bool)
    unmasked[masked_index] = False
    assert torch.equal(corrupted.reshape(-1)[unmasked], input_ids.reshape(-1)[unmasked])
    expected = torch.zeros(12)
    expected[[2, 9]] = 1.0  # only where the sample differs from the original
    assert torch.equal(labels.reshape(-1), expected)
    # sampled from the generator's softmax, not its argmax: a flat generator replaces most positions
    torch.manual_seed(0)
    flat = torch.zeros(5, 40)
    draws = [ElectraModule.replace(input_ids, masked_index, originals, flat)[1].sum().item() for _ in range(20)]
    assert 3 < sum(draws) / 20 <= 5


def test_samples_follow_the_collators_uniforms_whatever_the_batch_split(setup):
    from blurbkit.pretrain.data import MaskingConfig, make_examples
    from blurbkit.pretrain.objectives.electra import ElectraCollator, ElectraModule
    from blurbkit.pretrain.token_cache import build_token_cache
    from blurbkit.pretrain.vocab import load_any_tokenizer

    # inverse CDF: u below the first token's probability picks it, u past the last cumulative value the last
    probs = torch.tensor([[0.5, 0.25, 0.25], [0.5, 0.25, 0.25], [0.1, 0.1, 0.8]])
    ids, index, originals = torch.tensor([[5, 6, 7]]), torch.tensor([0, 1, 2]), torch.tensor([0, 0, 2])
    corrupted, labels = ElectraModule.replace(ids, index, originals, probs.log(), torch.tensor([0.4, 0.6, 0.9999999]))
    assert corrupted.tolist() == [[0, 1, 2]] and labels.tolist() == [[0.0, 1.0, 0.0]]
    # the uniforms of an example are its own: the same alone or batched with others
    root, corpus, vocab, _ = setup
    tokenizer = load_any_tokenizer(str(vocab))
    cache = build_token_cache([str(corpus)], tokenizer, root / "electra-cache")
    rows = make_examples(cache, 32)
    collate = ElectraCollator(tokenizer, cache, 32, seed=5)
    masking = MaskingConfig()
    both = collate(rows[[3, 4]], [3, 4], 0, masking, 0.15)
    alone = collate(rows[[4]], [4], 0, masking, 0.15)
    assert len(both["sample_uniform"]) == len(both["masked_index"]) > len(alone["sample_uniform"]) > 0
    assert torch.equal(both["sample_uniform"][-len(alone["sample_uniform"]):], alone["sample_uniform"])
    assert not torch.equal(collate(rows[[4]], [4], 1, masking, 0.15)["sample_uniform"][:2], alone["sample_uniform"][:2])


def test_the_generator_input_is_corrupted_as_in_electra_not_bert(setup, tmp_path, monkeypatch):
    """85 % [MASK], 15 % kept, no random tokens (ELECTRA's pretrain_helpers.mask), through the trainer."""
    from blurbkit.pretrain.objectives.electra import ElectraCollator

    seen = []
    original = ElectraCollator.__call__

    def spy(self, rows, indices, epoch, masking, rate):
        seen.append((masking.mask_fraction, masking.random_fraction))
        return original(self, rows, indices, epoch, masking, rate)

    monkeypatch.setattr(ElectraCollator, "__call__", spy)
    pretrain(_cfg(setup, tmp_path / "out", max_steps=1))
    assert seen and set(seen) == {(0.85, 0.0)}


def test_embeddings_are_one_tensor_and_the_generator_is_smaller():
    objective, pair = _pair()
    gen, disc = pair.generator, pair.discriminator
    for name in ("word_embeddings", "position_embeddings", "token_type_embeddings", "LayerNorm"):
        assert getattr(gen.electra.embeddings, name).weight.data_ptr() == getattr(disc.electra.embeddings, name).weight.data_ptr()
    assert gen.generator_lm_head.weight.data_ptr() == disc.electra.embeddings.word_embeddings.weight.data_ptr()
    assert gen.config.hidden_size == 8 and gen.config.num_hidden_layers == disc.config.num_hidden_layers == 2
    assert gen.config.intermediate_size == 16 and gen.electra.embeddings_project.in_features == 32
    module = objective.module(pair)
    names = [name for name, _ in module.named_parameters()]
    assert sum("word_embeddings" in name for name in names) == 1  # one parameter, trained once
    # one step: both models learn, the shared embeddings get gradient from both losses
    batch = {"input_ids": torch.randint(5, 50, (2, 12)), "attention_mask": torch.ones(2, 12, dtype=torch.long),
             "token_type_ids": torch.zeros(2, 12, dtype=torch.long), "masked_index": torch.tensor([1, 3, 14]),
             "mlm_labels": torch.tensor([7, 8, 9])}
    loss, parts = module(**batch)
    assert set(parts) == {"gen_loss", "rtd_loss", "rtd_accuracy", "replaced_fraction"}
    assert loss.item() == pytest.approx(parts["gen_loss"].item() + 50 * parts["rtd_loss"].item(), rel=1e-5)
    loss.backward()
    assert gen.electra.encoder.layer[0].attention.self.query.weight.grad is not None
    assert disc.discriminator_predictions.dense_prediction.weight.grad is not None


def test_the_discriminator_learns_replacements_it_can_see(monkeypatch):
    """Against a uniform generator (its samples are ids the text never uses) the discriminator must
    leave its prior within a few dozen steps: the path from replaced positions to its loss works.
    (The pretraining study's discriminator stays at its prior because a weak generator's samples are
    frequent, plausible tokens; this separates that from a broken objective.)"""
    from blurbkit.pretrain.objectives.electra import ElectraModule

    objective, pair = _pair(vocab=200)
    module = objective.module(pair)
    monkeypatch.setattr(ElectraModule, "generate", lambda self, ids, *rest: torch.zeros(int(rest[-1].numel()), 200))
    optimizer = torch.optim.Adam(module.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)

    def batch():
        ids = torch.randint(5, 15, (8, 16), generator=generator)  # the text's words: ids 5..14 only
        masked = torch.randperm(8 * 16, generator=generator)[:32]
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids),
                "masked_index": masked, "mlm_labels": ids.reshape(-1)[masked]}

    module.train()
    for _ in range(25):
        loss, _ = module(**batch())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    module.eval()
    with torch.no_grad():
        _, parts = module(**batch())
    prior = 1 - parts["replaced_fraction"].item()  # accuracy of "nothing was replaced"
    assert prior < 0.8 and parts["rtd_accuracy"].item() > prior + 0.15


def test_generator_larger_than_discriminator_is_refused(setup, tmp_path, capsys):
    with pytest.raises(BlurbkitError, match="generator-size 1.5") as caught:
        pretrain(_cfg(setup, tmp_path / "x", generator_size=1.5))
    assert "\n" not in str(caught.value) and not (tmp_path / "x").exists()
    root, corpus, vocab, config = setup
    capsys.readouterr()
    assert main(["pretrain", "--corpus", str(corpus), "--tokenizer", str(vocab), "--from-scratch", str(config),
                 "--out", str(tmp_path / "y"), "--objective", "electra", "--generator-size", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "larger than the discriminator" in err and not (tmp_path / "y").exists()


def test_saved_discriminator_loads_and_finetunes(setup, tmp_path, shared_data):
    from transformers import AutoModel, ElectraForPreTraining, ElectraModel

    from blurbkit.train.api import finetune

    out = tmp_path / "electra"
    summary = pretrain(_cfg(setup, out, max_steps=4, save_every=2, stop_after=2))
    assert summary["stopped"] == "interrupted"
    summary = pretrain(_cfg(setup, out, max_steps=4, save_every=2))  # resumes the pair (shared tensors) exactly
    assert summary["resumed_from"].endswith("step-00000002") and summary["objective"] == "electra"
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [1, 2, 3, 4] and all("rtd_loss" in e and "gen_loss" in e for e in log)
    # Exactly: the same 4 steps uninterrupted give the same losses and the same saved discriminator.
    whole = tmp_path / "electra_whole"
    pretrain(_cfg(setup, whole, max_steps=4, save_every=2))
    whole_log = [json.loads(line) for line in (whole / "train_log.jsonl").read_text().splitlines()]
    assert [(e["gen_loss"], e["rtd_loss"]) for e in log] == [(e["gen_loss"], e["rtd_loss"]) for e in whole_log]
    resumed, uninterrupted = load_file(str(out / "model.safetensors")), load_file(str(whole / "model.safetensors"))
    assert resumed.keys() == uninterrupted.keys()
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in resumed)
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["ElectraForPreTraining"] and config["hidden_size"] == 32
    assert isinstance(AutoModel.from_pretrained(str(out)), ElectraModel)
    ElectraForPreTraining.from_pretrained(str(out))
    metrics = finetune("gad", out=None, data=str(shared_data), model=str(out), epochs=1, batch_size=8, max_length=32,
                       max_train_examples=8, max_eval_examples=4, max_test_examples=8, progress=False,
                       layer_decay=0.9, reinit_layers=1)
    assert metrics["test"]["dataset"] == "gad" and 0.0 <= metrics["test"]["score"] <= 1.0


def test_electra_layer_names_work_with_the_stabilisation_options():
    from transformers import ElectraConfig, ElectraModel

    from blurbkit.runtime.optim import depth_from_top, parameter_groups
    from blurbkit.train.stabilise import drop_top_layers, encoder_layers, freeze_lower_half, reinit_top_layers

    # embedding_size < hidden_size, as google/electra-small: the embeddings are projected up
    config = ElectraConfig(vocab_size=50, embedding_size=16, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                           intermediate_size=64, max_position_embeddings=64)
    encoder = ElectraModel(config)
    names = [name for name, _ in encoder.named_parameters()]
    assert any(name.startswith("embeddings.word_embeddings.") for name in names)
    assert any(name.startswith("embeddings_project.") for name in names)
    assert {name.split(".")[2] for name in names if name.startswith("encoder.layer.")} == {"0", "1", "2", "3"}
    assert len(encoder_layers(encoder)) == 4
    for name in names:  # as the fine-tuning model names them (BlurbModel.encoder.*)
        depth = depth_from_top(f"encoder.{name}", 4)
        if name.startswith(("embeddings.", "embeddings_project.")):
            assert depth == 4, name
        else:
            assert depth == 3 - int(name.split(".")[2]), name

    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = encoder
            self.head = torch.nn.Linear(32, 2)

    groups = parameter_groups(Wrapped().named_parameters(), 1.0, 0.0, layer_decay=0.5, num_layers=4)
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert lr_of[id(encoder.embeddings_project.weight)] == lr_of[id(encoder.embeddings.word_embeddings.weight)] == 0.5 ** 4
    assert lr_of[id(encoder.encoder.layer[3].output.dense.weight)] == 1.0
    freeze_lower_half(encoder)
    frozen = {name for name, p in encoder.named_parameters() if not p.requires_grad}
    assert {n.split(".")[0] for n in frozen} == {"embeddings", "embeddings_project", "encoder"}
    assert {n.split(".")[2] for n in frozen if n.startswith("encoder.")} == {"0", "1"}
    before = encoder.encoder.layer[3].output.dense.weight.clone()
    reinit_top_layers(encoder, 1)
    assert not torch.equal(before, encoder.encoder.layer[3].output.dense.weight)
    drop_top_layers(encoder, 2)
    assert encoder.config.num_hidden_layers == 2
