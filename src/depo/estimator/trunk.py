"""Trunk and dual heads of the difficulty estimator, exactly as docs/method.md section 2.2: a score
head (sigmoid = predicted pass rate) and a distill head (sigmoid = predicted policy confidence).

Head weights start at N(0, 0.001), so the first prediction for any prompt is sigmoid(~0) = 0.5 +- 0.01.
"""

from __future__ import annotations

import torch
from torch import nn

TRUNK_INIT_STD = 0.02
HEAD_INIT_STD = 0.001


class ResidualBlock(nn.Module):
    """x -> GELU(x + LN(Linear(Dropout(GELU(LN(Linear(x)))))))."""

    def __init__(self, width: int, dropout: float):
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.ln1 = nn.LayerNorm(width)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(width, width)
        self.ln2 = nn.LayerNorm(width)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inner = self.drop(self.act(self.ln1(self.fc1(x))))
        return self.act(x + self.ln2(self.fc2(inner)))


class DualHead(nn.Module):
    """Trunk + score head + distill head on top of a pooled encoder vector of width `input_width`."""

    def __init__(self, input_width: int, *, width: int = 1024, feature_width: int = 512,
                 num_blocks: int = 2, dropout: float = 0.1):
        super().__init__()
        self.stem = nn.Sequential(nn.Linear(input_width, width), nn.LayerNorm(width), nn.GELU())
        self.blocks = nn.Sequential(*(ResidualBlock(width, dropout) for _ in range(num_blocks)))
        self.neck = nn.Sequential(
            nn.Linear(width, feature_width), nn.LayerNorm(feature_width), nn.GELU(), nn.Dropout(dropout)
        )
        self.score = nn.Linear(feature_width, 1)
        self.distill = nn.Linear(feature_width, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Trunk N(0, 0.02), heads N(0, 0.001), zero biases, LayerNorms at identity (docs/method.md section 2.2)."""
        for module in (self.stem, self.blocks, self.neck):
            for sub in module.modules():
                if isinstance(sub, nn.Linear):
                    nn.init.normal_(sub.weight, 0.0, TRUNK_INIT_STD)
                    nn.init.zeros_(sub.bias)
                elif isinstance(sub, nn.LayerNorm):
                    nn.init.ones_(sub.weight)
                    nn.init.zeros_(sub.bias)
        for head in (self.score, self.distill):
            nn.init.normal_(head.weight, 0.0, HEAD_INIT_STD)
            nn.init.zeros_(head.bias)

    def forward(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(score logits, distill logits), each of shape (batch,)."""
        feature = self.neck(self.blocks(self.stem(pooled)))
        return self.score(feature).squeeze(-1), self.distill(feature).squeeze(-1)
