"""The global aggregator: the only trained part of LLMVS.

Per step: the chosen features (columns of the embeddings file, each pooled over tokens; `qa` = max
over the query and answer tokens together, as the paper; several columns are concatenated) -> Linear(D -> M) + LayerNorm -> Transformer encoder over the T steps of the
video (3 layers, 2 heads, post-norm, no positional encoding: as the authors' code) -> MLP head
(M -> M/2 -> M/4 -> M/8 -> M/16 -> 1, i.e. 2048 -> 1024 -> 512 -> 256 -> 128 -> 1 at the paper's
M = 2048, LayerNorms after the 1st and 3rd layers) -> sigmoid: one score per step.
`aggregator="mlp"` drops the encoder (the paper's "w/o SA" ablation).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from llmvs.run_config import AGGREGATORS, ModelConfig


def _sinusoid(t: int, d: int, device) -> torch.Tensor:
    pos = torch.arange(t, device=device, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / d))
    pe = torch.zeros(t, d, device=device)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div[: d // 2])
    return pe


def center_steps(x: torch.Tensor, padding: torch.Tensor | None = None) -> torch.Tensor:
    """x [B, T, D] minus each video's mean over its unpadded steps (padding [B, T], True = padding)."""
    if padding is None:
        return x - x.mean(1, keepdim=True)
    keep = (~padding).unsqueeze(-1).to(x.dtype)
    return x - (x * keep).sum(1, keepdim=True) / keep.sum(1, keepdim=True)


class GlobalAggregator(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.aggregator not in AGGREGATORS:
            raise ValueError(f"unknown aggregator {cfg.aggregator!r}: expected one of {AGGREGATORS}")
        self.cfg = cfg
        m = cfg.d_model
        if cfg.standardize:  # set from the training data by `set_standardization`, saved with the weights
            self.register_buffer("in_mean", torch.zeros(cfg.input_dim))
            self.register_buffer("in_std", torch.ones(cfg.input_dim))
        self.proj = nn.Sequential(nn.LayerNorm(cfg.input_dim) if cfg.input_norm else nn.Identity(),
                                  nn.Linear(cfg.input_dim, m), nn.LayerNorm(m))
        self.encoder = None
        if cfg.aggregator == "attention":
            layer = nn.TransformerEncoderLayer(m, cfg.heads, cfg.dim_feedforward, cfg.dropout, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
            if cfg.attention_dropout is not None:  # dropout on the attention weights alone
                for block in self.encoder.layers:
                    block.self_attn.dropout = cfg.attention_dropout
        h = [max(m // 2 ** k, 8) for k in range(1, 5)]
        self.head = nn.Sequential(
            nn.Linear(m, h[0]), nn.LayerNorm(h[0]), nn.ReLU(),
            nn.Linear(h[0], h[1]), nn.ReLU(),
            nn.Linear(h[1], h[2]), nn.LayerNorm(h[2]), nn.ReLU(),
            nn.Linear(h[2], h[3]), nn.ReLU(),
            nn.Linear(h[3], 1), nn.Sigmoid())
        for p in self.parameters():  # parity: Xavier-uniform on every matrix, as the authors' code
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, x: torch.Tensor, padding: torch.Tensor | None = None) -> torch.Tensor:
        """x: [B, T, D] (padding: [B, T], True where a shorter video is padded) -> scores [B, T] in (0, 1)."""
        if self.cfg.center:
            x = center_steps(x, padding)
        if self.cfg.standardize:
            x = (x - self.in_mean) / self.in_std
        z = self.proj(x)
        if self.cfg.positional_encoding:
            z = z + _sinusoid(z.shape[1], z.shape[2], z.device)
        if self.encoder is not None:
            z = self.encoder(z, src_key_padding_mask=padding)
        return self.head(z).squeeze(-1)

    def set_standardization(self, steps: torch.Tensor) -> None:
        """Per-dimension mean and std of the training steps [N, D] (a constant dimension keeps std 1)."""
        std = steps.std(0)
        self.in_mean.copy_(steps.mean(0))
        self.in_std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))


class Ensemble(nn.Module):
    """The mean step scores of several aggregators (one member = that model itself)."""

    def __init__(self, members: list[GlobalAggregator]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor, padding: torch.Tensor | None = None) -> torch.Tensor:
        return torch.stack([m(x, padding) for m in self.members]).mean(0)
