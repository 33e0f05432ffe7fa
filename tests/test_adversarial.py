"""Adversarial training (runtime/adversarial.py) for pretraining and fine-tuning: the perturbation stays
in the epsilon-ball, the loss carries the symmetric KL, bad settings are refused in one line."""

from __future__ import annotations

import json
import random

import pytest
import torch

from blurbkit.cli.main import main
from blurbkit.errors import BlurbkitError
from blurbkit.runtime.adversarial import AdversarialConfig, Adversary, embedding_shape, symmetric_kl


def _bert_mlm():
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                       intermediate_size=32, max_position_embeddings=32))
    return model.eval()  # no dropout: the only difference between two passes is the perturbation


def _batch():
    torch.manual_seed(1)
    return {"input_ids": torch.randint(5, 40, (3, 10)), "attention_mask": torch.ones(3, 10, dtype=torch.long),
            "token_type_ids": torch.zeros(3, 10, dtype=torch.long), "masked_index": torch.tensor([1, 4, 12, 25]),
            "mlm_labels": torch.tensor([6, 7, 8, 9])}


def _perturbed_mlm():
    """(the MLM's token embeddings, a predict() re-running the batch, its clean logits, the embeddings' shape)."""
    model = _bert_mlm()
    batch = _batch()
    embeddings = model.get_input_embeddings()

    def predict():
        return model(input_ids=batch["input_ids"]).logits

    return embeddings, predict, predict(), embedding_shape(batch["input_ids"], embeddings)


def test_perturbation_stays_within_epsilon():
    embeddings, predict, clean, shape = _perturbed_mlm()
    for epsilon, steps, step_size in ((0.05, 3, 1.0), (1e-5, 1, 1e-3), (0.5, 5, 0.2)):
        # L2: each token's norm within epsilon
        adversary = Adversary(embeddings, AdversarialConfig(epsilon=epsilon, steps=steps, step_size=step_size, norm="l2"))
        delta = adversary.perturbation(predict, clean, shape)
        norms = delta.norm(dim=-1)
        assert delta.shape == (3, 10, 16)
        assert float(norms.max()) <= epsilon * (1 + 1e-5), (epsilon, float(norms.max()))
        if step_size >= epsilon:  # one normalised step already leaves the ball: every token sits on its edge
            assert float(norms.min()) == pytest.approx(epsilon, rel=1e-4)
        # L-infinity (ALUM, the default): every coordinate within epsilon
        adversary = Adversary(embeddings, AdversarialConfig(epsilon=epsilon, steps=steps, step_size=step_size))
        delta = adversary.perturbation(predict, clean, shape)
        assert float(delta.abs().max()) <= epsilon * (1 + 1e-6)  # (float32)
        if step_size >= epsilon:  # the step's largest coordinate alone leaves the ball: each token has one on the edge
            assert torch.allclose(delta.abs().amax(dim=-1), torch.full((3, 10), epsilon))


def test_the_linf_ascent_follows_alums_algorithm_on_a_hand_made_gradient():
    from blurbkit.runtime.adversarial import ascent_direction, project

    grad = torch.tensor([[[0.2, -0.4, 0.1, 0.0]]])
    step = ascent_direction(grad)  # g / ||g||_inf
    assert torch.allclose(step, torch.tensor([[[0.5, -1.0, 0.25, 0.0]]]))
    delta = project(torch.tensor([[[0.001, 0.0, -0.003, 0.0]]]) + 0.004 * step, 0.003)
    assert torch.allclose(delta, torch.tensor([[[0.003, -0.003, -0.002, 0.0]]]))  # clipped per coordinate
    l2 = project(torch.tensor([[[3.0, 4.0, 0.0, 0.0]]]), 1.0, "l2")
    assert torch.allclose(l2, torch.tensor([[[0.6, 0.8, 0.0, 0.0]]]))


def test_loss_includes_the_symmetric_kl():
    from blurbkit.pretrain.objectives.mlm import MaskedLMModule

    model = _bert_mlm()
    batch = _batch()
    embeddings = model.get_input_embeddings()
    adversary = Adversary(embeddings, AdversarialConfig(epsilon=0.1, steps=2, step_size=0.05, alpha=3.0))

    def predict():
        return model(input_ids=batch["input_ids"]).logits

    clean = predict()
    zero = torch.zeros(embedding_shape(batch["input_ids"], embeddings))
    assert float(adversary.divergence(predict, clean, zero).detach()) == pytest.approx(0.0, abs=1e-7)
    delta = adversary.perturbation(predict, clean, zero.shape)
    assert float(adversary.divergence(predict, clean, delta).detach()) > 0
    assert float(symmetric_kl(clean, clean).detach()) == 0.0
    # the MLM training module adds alpha * KL to the MLM loss and logs the KL
    module = MaskedLMModule(model)
    plain, parts = module(**batch)
    plain = plain.detach()
    assert set(parts) == {"mlm_loss"}
    module.adversary = adversary
    module.eval()  # eval: the adversary is off
    assert float(module(**batch)[0].detach()) == pytest.approx(float(plain))
    module.train()
    for layer in model.modules():  # keep dropout off so the KL is the perturbation's alone
        if isinstance(layer, torch.nn.Dropout):
            layer.p = 0.0
    loss, parts = module(**batch)
    assert set(parts) == {"mlm_loss", "adv_kl"} and float(parts["adv_kl"]) > 0
    assert float(parts["mlm_loss"]) == pytest.approx(float(plain), rel=1e-5)
    assert float(loss.detach()) == pytest.approx(float(plain) + 3.0 * float(parts["adv_kl"]), rel=1e-5)
    loss.backward()
    assert model.bert.embeddings.word_embeddings.weight.grad is not None


def test_bad_settings_are_refused_in_one_line(tmp_path, capsys):
    for bad in ({"epsilon": 0.0}, {"epsilon": -1e-3}, {"steps": 0}, {"step_size": 0.0}):
        with pytest.raises(BlurbkitError) as caught:
            AdversarialConfig(**bad)
        assert "\n" not in str(caught.value)
    with pytest.raises(BlurbkitError, match="adv-epsilon 0.0: the perturbation radius must be positive"):
        AdversarialConfig(epsilon=0.0)
    corpus = tmp_path / "c.txt"
    corpus.write_text("Insulin binding reduced kinase levels.\nMice were treated.\n\nA second document here.\n")
    for argv in (["finetune", "--dataset", "gad", "--out", str(tmp_path / "ft"), "--adversarial", "--adv-epsilon", "0"],
                 ["pretrain", "--corpus", str(corpus), "--from-scratch", "tiny", "--tokenizer", str(tmp_path),
                  "--out", str(tmp_path / "pt"), "--adversarial", "--adv-epsilon", "-1"]):
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "perturbation radius must be positive" in err, err
    assert not (tmp_path / "ft").exists() and not (tmp_path / "pt").exists()


def test_adversarial_pretraining_and_finetuning_run(tmp_path, shared_data, monkeypatch):
    from blurbkit.pretrain.config import PretrainConfig
    from blurbkit.pretrain.trainer import pretrain
    from blurbkit.pretrain.vocab import build_vocab
    from blurbkit.train.api import finetune

    rng = random.Random(0)
    words = ["insulin", "kinase", "mice", "treated", "levels", "reduced", "protein", "binding", "cells", "dose"]
    docs = ["\n".join(" ".join(rng.choice(words) for _ in range(8)).capitalize() + "." for _ in range(3)) for _ in range(20)]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    build_vocab((s for d in docs for s in d.split("\n")), tmp_path / "vocab", size=60, min_frequency=1)
    micro = tmp_path / "micro.json"
    micro.write_text(json.dumps({"num_hidden_layers": 1, "hidden_size": 16, "num_attention_heads": 2,
                                 "intermediate_size": 32, "max_position_embeddings": 64}))
    summary = pretrain(PretrainConfig(corpus=[str(corpus)], out=str(tmp_path / "pt"), tokenizer=str(tmp_path / "vocab"),
                                      from_scratch=str(micro), max_length=32, batch_size=4, max_steps=2, log_every=1,
                                      progress=False, adversarial=True, adv_epsilon=1e-2, adv_step_size=1e-2))
    assert summary["steps"] == 2
    log = [json.loads(line) for line in (tmp_path / "pt" / "train_log.jsonl").read_text().splitlines()]
    assert all(entry["adv_kl"] > 0 and entry["loss"] > entry["mlm_loss"] for entry in log)
    calls = []
    real = Adversary.loss
    monkeypatch.setattr(Adversary, "loss", lambda self, *a, **k: calls.append(self.config) or real(self, *a, **k))
    metrics = finetune("gad", out=None, data=str(shared_data), model=str(tmp_path / "pt"), epochs=1, batch_size=8,
                       max_length=32, max_train_examples=8, max_eval_examples=4, max_test_examples=8, progress=False,
                       adversarial=True, adv_epsilon=1e-2, adv_steps=2, adv_step_size=1e-2)
    assert 0.0 <= metrics["test"]["score"] <= 1.0
    assert len(calls) == 1 and calls[0].steps == 2 and calls[0].epsilon == 1e-2  # 8 examples, batch 8: one step


def test_a_sigmoid_per_label_gets_the_bernoulli_divergence_not_a_softmax_over_labels():
    from blurbkit.models.heads import HEADS
    from blurbkit.train.engine import adversary

    a, b = torch.tensor([[0.0, 0.0]]), torch.tensor([[5.0, 5.0]])
    assert float(symmetric_kl(a, b)) == 0.0  # a softmax over the labels sees no change at all
    p, q = a.sigmoid(), b.sigmoid()
    kl = lambda x, y: (x * (x / y).log() + (1 - x) * ((1 - x) / (1 - y)).log()).sum()  # noqa: E731
    assert float(symmetric_kl(a, b, outputs="independent")) == pytest.approx(float(kl(p, q) + kl(q, p)), rel=1e-5)

    class Model(torch.nn.Module):  # what `adversary` reads of a BlurbModel: its encoder and head
        def __init__(self, head: str) -> None:
            super().__init__()
            self.encoder = torch.nn.Module()
            self.encoder.get_input_embeddings = lambda: torch.nn.Embedding(10, 4)
            self.head = HEADS.get(head)(4, 3)

    from blurbkit.train.config import Hyperparams

    hyper = Hyperparams(adversarial=True)
    assert adversary(Model("sigmoid"), hyper).outputs == "independent"
    assert adversary(Model("softmax"), hyper).outputs == "categorical"


def test_under_bf16_autocast_the_term_is_the_fp32_one_not_rounding_noise():
    model, batch = _bert_mlm(), _batch()
    embeddings = model.get_input_embeddings()
    adversary = Adversary(embeddings, AdversarialConfig())  # ALUM's eps 1e-5

    def predict():
        return model(input_ids=batch["input_ids"]).logits

    shape = embedding_shape(batch["input_ids"], embeddings)
    torch.manual_seed(2)
    _, exact = adversary.loss(predict, predict(), shape)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        clean = predict()
        assert clean.dtype == torch.bfloat16  # the main loss's pass stays low precision
        torch.manual_seed(2)
        term, kl = adversary.loss(predict, clean, shape)
    assert term.dtype == torch.float32 and float(kl) == pytest.approx(float(exact), rel=1e-3)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # what the term was before: bf16 passes against bf16
        torch.manual_seed(2)
        _, noisy = adversary._loss(predict, predict(), shape, None)
    assert float(noisy) > 10 * float(exact)  # bf16 rounding, not the perturbation (47x on this tiny model)


@pytest.mark.parametrize("norm", ["inf", "l2"])
def test_the_perturbation_climbs_the_divergence(norm):
    """A few ascent steps from a tiny start end far above random points of the same ball's edge (a
    step down the gradient instead would stay near zero, where the divergence is smallest)."""
    from blurbkit.runtime.adversarial import project

    embeddings, predict, clean, shape = _perturbed_mlm()
    adversary = Adversary(embeddings, AdversarialConfig(epsilon=0.5, steps=5, step_size=0.1, norm=norm))
    torch.manual_seed(2)
    delta = adversary.perturbation(predict, clean, shape)
    with torch.no_grad():
        found = float(adversary.divergence(predict, clean, delta))
        for seed in range(5):
            edge = project(torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 10, 0.5, norm)
            assert found > 1.5 * float(adversary.divergence(predict, clean, edge)), seed
