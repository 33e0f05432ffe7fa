"""A run's identity in the results store does not move with the code layout: the key of a run made
by blurbkit 0.1.0 (computed with that release, commit fc0a248) is the key the current code computes,
so stored runs of earlier sessions are still found and skipped."""

from __future__ import annotations

import json

from blurbkit.experiments.run_records import run_key
from blurbkit.train.config import FinetuneConfig

KEY_0_1 = "4de322d093dbe46309e76365c72f8fb7"


def test_run_key_equals_the_0_1_release():
    config = FinetuneConfig(dataset="gad", seed=1, lr=1e-4, max_train_examples=800, epochs=2, part_options={"lstm_hidden": 8})
    key = run_key("benchmark", "standard", config, "default (MiniLM-L6-H384)", "quick")
    assert key.digest() == KEY_0_1


def test_runtime_settings_do_not_change_the_key_and_hyperparameters_do():
    base = FinetuneConfig(dataset="gad", seed=1)
    key = run_key("benchmark", "standard", base, "m", "full")
    for faster in ({"threads": 1}, {"eval_tokens": 4096}, {"checkpoint_every": 10}, {"resume": True}, {"progress": False}):
        assert run_key("benchmark", "standard", base.replace(**faster), "m", "full") == key, faster
    assert run_key("benchmark", "standard", base.replace(lr=3e-5), "m", "full") != key


def test_adversarial_fields_stay_out_of_the_key_at_their_defaults():
    base = FinetuneConfig(dataset="gad", seed=1)
    key = run_key("benchmark", "standard", base, "m", "full")
    assert "adv" not in key.hyperparameters
    assert run_key("benchmark", "standard", base.replace(adversarial=False, adv_epsilon=1e-5), "m", "full") == key
    adversarial = run_key("benchmark", "standard", base.replace(adversarial=True), "m", "full")
    assert adversarial != key
    assert run_key("benchmark", "standard", base.replace(adversarial=True, adv_epsilon=1e-3), "m", "full") != adversarial
    # Every adversarial key names its ball and its fp32 term (runs before computed it under bf16
    # autocast and are not these); a run that is not adversarial never names them.
    assert json.loads(adversarial.hyperparameters)["adv_norm"] == "inf"
    assert json.loads(adversarial.hyperparameters)["adv_term"] == "fp32"
    l2 = run_key("benchmark", "standard", base.replace(adversarial=True, adv_norm="l2"), "m", "full")
    assert l2 != adversarial and json.loads(l2.hyperparameters)["adv_norm"] == "l2"
    assert run_key("benchmark", "standard", base.replace(adv_norm="l2"), "m", "full") == key


def test_new_options_at_their_defaults_keep_the_key_and_other_values_change_it():
    from blurbkit.train.config import ADDED_LATER as KEY_DEFAULTS

    base = FinetuneConfig(dataset="gad", seed=1, lr=1e-4, max_train_examples=800, epochs=2, part_options={"lstm_hidden": 8})
    key = run_key("benchmark", "standard", base, "default (MiniLM-L6-H384)", "quick")
    assert key.digest() == KEY_0_1
    assert all(name not in key.hyperparameters for name in KEY_DEFAULTS)
    assert run_key("benchmark", "standard", base.replace(**KEY_DEFAULTS), "default (MiniLM-L6-H384)", "quick") == key
    for changed in ({"bias_correction": False}, {"patience": 3}, {"final_on_train_dev": True}, {"last_epoch": True},
                    {"compile": True}):
        other = run_key("benchmark", "standard", base.replace(**changed), "default (MiniLM-L6-H384)", "quick")
        assert other != key and next(iter(changed)) in other.hyperparameters, changed


def test_the_default_encoder_has_one_store_label_however_it_is_named(tmp_path, monkeypatch):
    from blurbkit.models.loading import DEFAULT_STORE_LABEL, store_label

    monkeypatch.chdir(tmp_path)  # "default" must not become ./default
    assert store_label(None) == store_label("default") == DEFAULT_STORE_LABEL
    assert store_label(tmp_path / "m") == str((tmp_path / "m").resolve())
