"""Trunk and dual heads: the exact shapes, residual formula and initialisation of SPEC.md section 2."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from depo.estimator.trunk import DualHead, ResidualBlock

torch.set_num_threads(1)


def test_layer_widths_follow_spec():
    head = DualHead(384)
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    shapes = [(m.in_features, m.out_features) for m in linears]
    # stem, 2 blocks x 2 linears, neck, score, distill
    assert shapes == [(384, 1024)] + [(1024, 1024)] * 4 + [(1024, 512), (512, 1), (512, 1)]
    assert len(head.blocks) == 2
    dropouts = [m.p for m in head.modules() if isinstance(m, nn.Dropout)]
    assert dropouts == [0.1, 0.1, 0.1]


def test_initialisation_trunk_002_heads_0001_zero_bias():
    torch.manual_seed(0)
    head = DualHead(384)
    trunk = [m for part in (head.stem, head.blocks, head.neck) for m in part.modules() if isinstance(m, nn.Linear)]
    for lin in trunk:
        assert abs(lin.weight.std().item() - 0.02) < 0.002
        assert torch.count_nonzero(lin.bias) == 0
    for lin in (head.score, head.distill):
        assert abs(lin.weight.std().item() - 0.001) < 0.0003
        assert torch.count_nonzero(lin.bias) == 0


def test_residual_block_formula():
    torch.manual_seed(1)
    block = ResidualBlock(16, dropout=0.1).eval()
    with torch.no_grad():
        for p in block.parameters():
            p.normal_()
    x = torch.randn(5, 16)
    inner = F.gelu(block.ln1(block.fc1(x)))  # dropout is identity in eval mode
    expected = F.gelu(x + block.ln2(block.fc2(inner)))
    assert torch.allclose(block(x), expected, atol=1e-6)


def test_first_predictions_are_near_half_for_any_input():
    torch.manual_seed(2)
    head = DualHead(384).eval()
    pooled = torch.randn(256, 384) * 3.0
    s, d = head(pooled)
    assert s.shape == d.shape == (256,)
    assert (torch.sigmoid(s) - 0.5).abs().max().item() < 0.01
    assert (torch.sigmoid(d) - 0.5).abs().max().item() < 0.01
