"""TNGD with a custom loss: any callable ``loss(outputs, targets)`` that is a mean over samples.

TNGD finds the loss's per-sample Hessian with respect to the outputs with torch.func (a
non-PSD Hessian is replaced by its PSD part, with a warning). Here: a Huber-like smooth
regression loss (log-cosh) on a small MLP.

    python examples/custom_loss.py
"""

from __future__ import annotations

import torch
from torch import nn

from tngd import TNGD


def log_cosh(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """mean over samples of Σ_j log cosh(z_j − y_j) (PSD Hessian diag(1 − tanh²))."""
    d = outputs - targets
    return (d + nn.functional.softplus(-2 * d) - torch.log(torch.tensor(2.0))).sum(-1).mean()


def main(steps: int = 30, batch: int = 32, seed: int = 0, quiet: bool = False) -> list[float]:
    torch.manual_seed(seed)
    x = torch.randn(256, 8)
    w = torch.randn(8, 2)
    y = torch.tanh(x @ w) + 0.05 * torch.randn(256, 2)
    model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 2))
    opt = TNGD(model.parameters(), lr=0.5, damping=0.05, t=50, loss=log_cosh)
    losses = []
    for k in range(steps):
        i = torch.randint(0, 256, (batch,))
        opt.zero_grad()
        loss = opt.step(model(x[i]), y[i])
        losses.append(loss.item())
        if not quiet and k % 10 == 0:
            print(f"step {k:3d}  loss {loss.item():.4f}")
    return losses


if __name__ == "__main__":
    main()
