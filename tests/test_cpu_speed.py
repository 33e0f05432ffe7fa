"""CPU speed settings of the engine: inference attention, the bf16 inference twin, the allocator."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
from torch.nn import functional as F

from blurbkit.data.load import load_split
from blurbkit.models.encoding import encode
from blurbkit.models.tiny import build_tiny_bert
from blurbkit.runtime.attention import attention
from blurbkit.speed.compare import Workload, build_engine
from blurbkit.speed.speed import subsample
from blurbkit.tasks.registry import get_dataset
from blurbkit.train.config import FinetuneConfig

MODULE = SimpleNamespace(is_causal=False, training=False)


def padded_inputs(dtype: torch.dtype):
    torch.manual_seed(0)
    q, k, v = (torch.randn(3, 4, 9, 8, dtype=dtype) for _ in range(3))
    k[1:, :, 6:] += 30.0  # padded keys that would dominate the softmax if the mask were ignored
    lengths = torch.tensor([9, 6, 6])
    keep = torch.arange(9)[None, :] < lengths[:, None]
    return q, k, v, keep[:, None, None, :].expand(3, 1, 9, 9), lengths


def test_inference_attention_equals_sdpa_in_fp32_to_bf16_precision():
    q, k, v, mask, lengths = padded_inputs(torch.bfloat16)
    with torch.inference_mode():
        ours, _ = attention(MODULE, q, k, v, mask, scaling=8**-0.5, dropout=0.0)
    assert ours.dtype == torch.bfloat16 and ours.shape == (3, 9, 4, 8)  # [batch, length, heads, dim]
    reference = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask, scale=8**-0.5)
    reference = reference.transpose(1, 2)
    for row, n in enumerate(lengths.tolist()):
        assert torch.allclose(ours[row, :n].float(), reference[row, :n], atol=3e-2), row


def test_fp32_inference_keeps_sdpa_exactly():
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    q, k, v, mask, _ = padded_inputs(torch.float32)
    with torch.inference_mode():
        ours, _ = attention(MODULE, q, k, v, mask, scaling=8**-0.5, dropout=0.0)
        theirs, _ = sdpa_attention_forward(MODULE, q, k, v, mask, scaling=8**-0.5, dropout=0.0)
    assert torch.equal(ours, theirs)


@pytest.fixture(scope="module")
def engine_and_data(tmp_path_factory, shared_data):
    model_dir = build_tiny_bert(tmp_path_factory.mktemp("tiny"), hidden=64, heads=2)
    spec = get_dataset("bc5chem")
    records = subsample(load_split("bc5chem", "dev", str(shared_data)), 48, 0)
    work = Workload(spec=spec, model_dir=model_dir, train=records, dev=records)
    engine, recipe = build_engine(work, FinetuneConfig(dataset="bc5chem", epochs=1, batch_size=16, progress=False))
    engine.runner.dtype = torch.bfloat16  # autocast bf16 runs on any CPU (slowly where it is not native)
    return engine, encode(records, engine.codec, recipe, engine.tokenizer)


def set_runtime(engine, **changes) -> None:
    engine.settings = engine.runner.settings = replace(engine.runner.settings, **changes)


def test_bf16_inference_twin_follows_the_weights(engine_and_data):
    engine, data = engine_and_data
    engine.predict(data)
    twin = engine.runner._bf16.model
    assert twin.head is engine.model.head and twin.featurizer is engine.model.featurizer
    weight = engine.model.encoder.embeddings.word_embeddings.weight
    assert weight.dtype == torch.float32
    assert torch.equal(twin.encoder.embeddings.word_embeddings.weight, weight.detach().bfloat16())
    engine.predict(data)
    assert engine.runner._bf16.model is twin  # unchanged weights: the same copy is reused
    with torch.no_grad():
        weight.mul_(-1.0)
    engine.predict(data)
    assert engine.runner._bf16.model is not twin
    assert torch.equal(engine.runner._bf16.model.encoder.embeddings.word_embeddings.weight, weight.detach().bfloat16())
    before = engine.runner._bf16.model
    engine.train(data, None)  # an optimizer step also moves the versions
    engine.predict(data)
    assert engine.runner._bf16.model is not before


def test_bf16_twin_scores_like_autocast_over_fp32_weights(engine_and_data):
    engine, data = engine_and_data
    engine.predict(data)
    twin = engine.runner._bf16.model
    batch = data.padded_with(engine.tokenizer.pad_token_id).batch(list(range(len(data.examples))))
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        ours, mask = twin(batch)
        reference, _ = engine.model(batch)
    assert ours.dtype == reference.dtype
    difference = (ours.float() - reference.float())[mask].abs()
    assert difference.max() < 0.03 * reference.float()[mask].abs().max()  # bf16 rounding, not another model


ALLOCATION = textwrap.dedent("""
    import ctypes, sys
    from blurbkit.runtime.allocator import allocator_state, tune_allocator

    libc = ctypes.CDLL("libc.so.6")
    # mallinfo2 (size_t fields) is glibc >= 2.33; older ones (RHEL 8, Ubuntu 20.04) have mallinfo (int)
    stats = getattr(libc, "mallinfo2", None) or libc.mallinfo
    field = ctypes.c_size_t if hasattr(libc, "mallinfo2") else ctypes.c_int

    class Info(ctypes.Structure):
        _fields_ = [(name, field) for name in
                    "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

    stats.restype = Info
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]

    def mapped_by(size):
        before = stats().hblkhd
        block = libc.malloc(size)
        grew = stats().hblkhd - before
        libc.free(block)
        return grew

    default = mapped_by(8 << 20)
    tuned = tune_allocator()
    print(default > 0, tuned, mapped_by(8 << 20) == 0, mapped_by(300 << 20) > 0, allocator_state())
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings")
def test_allocator_keeps_large_blocks_in_the_heap():
    out = subprocess.run([sys.executable, "-c", ALLOCATION], capture_output=True, text=True, check=True).stdout.split()
    # by default an 8 MiB block is its own mmap; tuned, it comes from the heap; above 256 MiB still mmapped
    assert out[:4] == ["True", "True", "True", "True"], out
    assert "blurbkit" in " ".join(out[4:])


def tiny_encoder(model_type: str = "bert"):
    """A tiny random encoder of that architecture and a padded batch for it."""
    from transformers import AutoConfig, AutoModel

    torch.manual_seed(0)
    extra = {"pad_token_id": 1} if model_type != "esm" else {"pad_token_id": 1, "mask_token_id": 2}
    config = AutoConfig.for_model(model_type, vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=64, max_position_embeddings=64, attn_implementation="sdpa", **extra)
    ids = torch.randint(5, 100, (3, 11))
    mask = torch.ones(3, 11, dtype=torch.long)
    mask[1, 7:] = 0
    mask[2, 4:] = 0
    return AutoModel.from_config(config).eval(), {"input_ids": ids, "attention_mask": mask}


def test_key_padding_mask_gives_the_same_encodings_as_sdpa_masks():
    from blurbkit.runtime.attention import cpu_attention

    model, inputs = tiny_encoder()
    with torch.inference_mode():
        reference = model(**inputs).last_hidden_state
        with cpu_attention(model) as installed:
            assert installed
            ours = model(**inputs).last_hidden_state
    real = inputs["attention_mask"].bool()
    assert torch.allclose(ours[real], reference[real], atol=1e-5)


@pytest.mark.parametrize(("model_type", "use_cpu_attention"), [
    ("bert", False), ("bert", True), ("roberta", False), ("xlm-roberta", False), ("electra", True), ("camembert", False)])
def test_last_layer_rows_equal_the_full_layer_on_those_rows(model_type, use_cpu_attention):
    from contextlib import nullcontext

    from blurbkit.models.last_layer import rows_only_last_layer
    from blurbkit.runtime.attention import cpu_attention

    model, inputs = tiny_encoder(model_type)
    rows = torch.tensor([[0, 3, 10, 3], [0, 6, 2, 1], [0, 1, 3, 0]])  # [CLS], words, entity starts, repeats
    with torch.inference_mode(), cpu_attention(model) if use_cpu_attention else nullcontext():
        full = model(**inputs).last_hidden_state
        with rows_only_last_layer(model) as last:
            assert last is not None, model_type
            last.rows = rows
            pruned = model(**inputs).last_hidden_state
            last.rows = None
            again = model(**inputs).last_hidden_state
    index = rows.unsqueeze(-1).expand(-1, -1, full.size(-1))
    assert torch.allclose(pruned.gather(1, index), full.gather(1, index), atol=1e-5)
    assert torch.equal(again, full)  # rows None: the whole layer
    assert type(model.encoder.layer[-1]).__name__.endswith("Layer")  # put back, not a RowsOnlyLayer
    assert type(model.encoder.layer[-1]).__name__ != "RowsOnlyLayer"


def test_featurizers_read_only_the_rows_they_declare():
    from blurbkit.models.featurizers import FEATURIZERS

    torch.manual_seed(0)
    hidden = torch.randn(2, 9, 8)
    batch = {"input_ids": torch.ones(2, 9, dtype=torch.long), "word_positions": torch.tensor([[1, 2, 5], [1, 4, 0]]),
             "word_mask": torch.tensor([[True, True, True], [True, True, False]]),
             "entity_spans": torch.tensor([[[1, 3], [5, 6]], [[2, 4], [7, 9]]])}
    for name in ("cls", "first_subword", "entity_start"):
        featurizer = FEATURIZERS.get(name)(8)
        rows = featurizer.rows(batch)
        kept = torch.zeros_like(hidden).scatter_(1, rows.unsqueeze(-1).expand(-1, -1, 8), hidden.gather(1, rows.unsqueeze(-1).expand(-1, -1, 8)))
        assert torch.equal(featurizer(kept, batch)[0], featurizer(hidden, batch)[0]), name


def test_engine_predicts_the_same_with_the_last_layer_pruned(engine_and_data):
    engine, data = engine_and_data
    engine.runner.dtype = None  # fp32: the two paths must agree exactly
    set_runtime(engine, bf16_inference=False)
    try:
        pruned = engine.predict(data)
        set_runtime(engine, last_layer_rows=False)
        full = engine.predict(data)
    finally:
        engine.runner.dtype = torch.bfloat16
        set_runtime(engine, bf16_inference=True, last_layer_rows=True)
    assert pruned == full


def test_bf16_twin_is_dropped_when_training_stops_midway_or_weights_are_replaced(engine_and_data):
    engine, data = engine_and_data
    engine.predict(data)
    assert engine.runner._bf16.model is not None
    loss, calls = engine.loss, []

    def interrupted(batch):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return loss(batch)

    engine.loss, engine.hyper = interrupted, replace(engine.hyper, epochs=2)
    try:
        with pytest.raises(KeyboardInterrupt):
            # epoch 1: three fused AdamW steps, then dev scoring builds a twin; epoch 2 stops at once
            engine.train(data, data)
    finally:
        engine.loss, engine.hyper = loss, replace(engine.hyper, epochs=1)
    assert engine.runner._bf16.model is None
    engine.predict(data)
    weight = engine.model.encoder.embeddings.word_embeddings.weight
    assert torch.equal(engine.runner._bf16.model.encoder.embeddings.word_embeddings.weight, weight.detach().bfloat16())
    state = {k: v.clone() + 1.0 for k, v in engine.model.encoder.state_dict().items() if v.is_floating_point()}
    engine.model.encoder.load_state_dict(state, strict=False, assign=True)  # new tensors, versions at 0
    engine.predict(data)
    fresh = engine.model.encoder.embeddings.word_embeddings.weight
    assert torch.equal(engine.runner._bf16.model.encoder.embeddings.word_embeddings.weight, fresh.detach().bfloat16())


@pytest.mark.parametrize("model_type", ["xlm-roberta-xl", "esm"])
def test_look_alike_layers_keep_the_full_last_layer(model_type):
    from blurbkit.models.last_layer import rows_only_last_layer

    with rows_only_last_layer(tiny_encoder(model_type)[0]) as last:
        assert last is None  # pre-LayerNorm / rotary q-k: the rows shortcut would be wrong


def test_key_padding_mask_defers_to_sdpa_mask_while_compiling(monkeypatch):
    from transformers.masking_utils import bidirectional_mask_function

    from blurbkit.runtime.attention import key_padding_mask

    padding = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    short = key_padding_mask(2, 4, 4, mask_function=bidirectional_mask_function, attention_mask=padding)
    assert short.shape == (2, 1, 1, 4) and torch.equal(short[:, 0, 0], padding.bool())
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    full = key_padding_mask(2, 4, 4, mask_function=bidirectional_mask_function, attention_mask=padding)
    assert full.shape == (2, 1, 4, 4) and torch.equal(full[:, 0, 2], padding.bool())


def test_predictor_takes_engine_settings(engine_and_data, tmp_path):
    from blurbkit.inference.predictor import Predictor

    engine, _ = engine_and_data
    engine.model.save(tmp_path / "m", engine.tokenizer)
    predictor = Predictor.load(tmp_path / "m", settings={"tune_allocator": False, "precision": "fp32"})
    assert predictor.runner.settings.tune_allocator is False and predictor.runner.dtype is None
