"""The fast CPU dropout (runtime/dropout.py): right rate and scaling, seeded, swapped in and out."""

from __future__ import annotations

import torch
from torch import nn

from blurbkit.runtime.attention import attention
from blurbkit.runtime.dropout import FastDropout, MaskSource, active_source, fast_dropout


def test_masks_drop_at_the_asked_rate_and_keep_the_expectation():
    source = MaskSource(seed=0)
    for p in (0.1, 0.3, 0.5):
        keep = source.keep(torch.Size([1000, 1000]), p)
        assert keep.dtype == torch.bool and keep.shape == (1000, 1000)
        assert abs((1 - keep.float().mean().item()) - p) < 0.002
    x = torch.ones(2000, 500)
    y = source.dropout(x, 0.1)
    assert abs(y.mean().item() - 1.0) < 0.01  # inverted dropout: kept values scaled by 1/(1-p)
    assert torch.allclose(torch.unique(y), torch.tensor([0.0, 1.0 / 0.9]))


def test_masks_are_seeded_and_not_correlated_across_calls():
    a, b = MaskSource(seed=3), MaskSource(seed=3)
    first, again = a.keep(torch.Size([64, 64]), 0.5), b.keep(torch.Size([64, 64]), 0.5)
    assert torch.equal(first, again)
    second = a.keep(torch.Size([64, 64]), 0.5)
    assert not torch.equal(first, second)
    assert not torch.equal(MaskSource(seed=4).keep(torch.Size([64, 64]), 0.5), first)


def test_edge_rates_and_bf16_inputs():
    source = MaskSource(seed=0)
    x = torch.randn(7, 5, dtype=torch.bfloat16)
    assert torch.equal(source.dropout(x, 0.0), x)
    assert torch.equal(source.dropout(x, 1.0), torch.zeros_like(x))
    assert source.dropout(x, 0.2).dtype == torch.bfloat16
    assert source.keep(torch.Size([3]), 0.5).shape == (3,)  # fewer elements than one 64-bit draw


def test_gradients_flow_through_kept_elements_only():
    x = torch.randn(50, 40, requires_grad=True)
    y = MaskSource(seed=1).dropout(x, 0.25)
    y.sum().backward()
    kept = y.detach() != 0
    assert torch.allclose(x.grad[kept], torch.full_like(x.grad[kept], 1 / 0.75))
    assert torch.all(x.grad[~kept] == 0)


def test_fast_dropout_swaps_modules_inside_the_block_only():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.2), nn.Sequential(nn.Dropout(0.3)))
    originals = [model[1], model[2][0]]
    with fast_dropout(model, seed=0) as source:
        assert isinstance(model[1], FastDropout) and model[1].p == 0.2
        assert isinstance(model[2][0], FastDropout) and model[2][0].p == 0.3
        assert active_source() is source
        model.eval()
        x = torch.randn(3, 4)
        assert torch.equal(model[1](x), x)  # identity in eval mode
    assert [model[1], model[2][0]] == originals
    assert active_source() is None


def test_training_attention_draws_its_masks_from_the_active_source():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 4) for _ in range(3))
    with fast_dropout(nn.Sequential(), seed=7):
        first, _ = attention(None, q, k, v, None, dropout=0.5)
    with fast_dropout(nn.Sequential(), seed=7):
        again, _ = attention(None, q, k, v, None, dropout=0.5)
    assert torch.equal(first, again)
    with fast_dropout(nn.Sequential(), seed=8):
        other, _ = attention(None, q, k, v, None, dropout=0.5)
    assert not torch.allclose(first, other)


def test_fp32_masks_by_multiplication_equal_the_where_form_forward_and_backward():
    # The fp32 path multiplies by a pre-scaled mask; it must give the values of where(keep, x/(1-p), 0).
    for p in (0.1, 0.25):
        x = torch.randn(33, 17, 9, requires_grad=True)
        y = MaskSource(seed=5).dropout(x, p)
        keep = MaskSource(seed=5).keep(x.shape, p)
        ref_x = x.detach().clone().requires_grad_(True)
        ref = torch.where(keep, ref_x * (1.0 / (1.0 - p)), 0.0)
        assert torch.equal(y, ref)
        grad = torch.randn_like(y)
        y.backward(grad)
        ref.backward(grad)
        assert torch.equal(x.grad, ref_x.grad)
