"""LoRA fine-tuning of a small transformer-style model with TNGD: only the adapters train.

A frozen "pretrained" encoder (embedding, one self-attention block, MLP) gets rank-2 LoRA
adapters on its query/value projections; ``TNGD(adapter_params)`` updates only those. The task
is next-token-style tagging with outputs (b, T, C) and targets (b, T): CE over all tokens.

    python examples/lora_transformer.py
"""

from __future__ import annotations

import math

import torch
from torch import nn

from tngd import TNGD


class LoRALinear(nn.Module):
    """y = W x + (α/r) B A x with W frozen, A (r, in), B (out, r) trainable (B starts at 0)."""

    def __init__(self, base: nn.Linear, rank: int = 2, alpha: float = 2.0) -> None:
        super().__init__()
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.A = nn.Parameter(torch.randn(rank, base.in_features) / math.sqrt(base.in_features))
        self.B = nn.Parameter(torch.zeros(base.out_features, rank))
        self.scale = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scale * (x @ self.A.T) @ self.B.T


class TinyEncoder(nn.Module):
    def __init__(self, vocab: int = 12, d: int = 16, n_tags: int = 4) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.q, self.k, self.v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.norm = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.out = nn.Linear(d, n_tags)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.emb(tokens)                                   # (b, T, d)
        att = torch.softmax(self.q(h) @ self.k(h).transpose(1, 2) / math.sqrt(h.shape[-1]), -1)
        h = self.norm(h + att @ self.v(h))
        return self.out(h + self.mlp(h))                       # (b, T, n_tags)


def make_data(n: int = 512, T: int = 6, vocab: int = 12, seed: int = 0):
    """Tag of a token = its group of 3 (token // 3), flipped when the previous token is ≥ 6."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, vocab, (n, T), generator=g)
    prev = torch.cat([torch.zeros(n, 1, dtype=torch.long), tokens[:, :-1]], 1)
    return tokens, (tokens // 3 + 2 * (prev >= 6).long()) % 4


def main(steps: int = 30, batch: int = 16, seed: int = 0, quiet: bool = False) -> list[float]:
    torch.manual_seed(seed)
    model = TinyEncoder()              # stands in for a pretrained model
    for p in model.parameters():
        p.requires_grad_(False)
    model.q, model.v = LoRALinear(model.q), LoRALinear(model.v)
    model.out.requires_grad_(True)     # a trainable head, as usual in fine-tuning
    trainable = [p for p in model.parameters() if p.requires_grad]
    tokens, tags = make_data(seed=seed)
    opt = TNGD(trainable, lr=1.0, damping=0.1, t=50, loss="ce")
    losses = []
    for k in range(steps):
        i = torch.randint(0, len(tokens), (batch,))
        opt.zero_grad()
        loss = opt.step(model(tokens[i]), tags[i])     # outputs (b, T, C), targets (b, T)
        losses.append(loss.item())
        if not quiet and k % 10 == 0:
            n = sum(p.numel() for p in trainable)
            print(f"step {k:3d}  loss {loss.item():.4f}  ({n} trainable parameters)")
    return losses


if __name__ == "__main__":
    main()
