"""Small classifiers for the digits (8×8) and MNIST (28×28) tasks.

Every model takes either flat inputs (B, D) or images (B, C, H, W) and returns logits
(B, n_classes); none couples samples (no BatchNorm), as :mod:`tngd.curvature` requires.

* ``"logreg"``: one linear layer.
* ``"mlp"``: one small hidden layer of 32 tanh units (``hidden``).
* ``"cnn"`` (the paper's shape: one convolution and two fully connected layers):
  conv → ReLU → max-pool 2 → FC(hidden) → ReLU → FC(n_classes). Digits: 4 channels 3×3
  (padding 1), hidden 32 (N = 2,450); MNIST: 4 channels 5×5 stride 2, hidden 32 (N = 5,074), so
  exact NGD (dense N×N) stays feasible.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from tngd.data import Task

__all__ = ["MODELS", "make_model", "n_params"]

MODELS = ("logreg", "mlp", "cnn")


class _ToImage(nn.Module):
    def __init__(self, shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], *self.shape)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


def n_params(model: nn.Module) -> int:
    """Number of trainable parameters N."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def make_model(
    name: str,
    task: Task,
    *,
    hidden: int | None = None,
    channels: int | None = None,
    seed: int | None = 0,
    dtype: torch.dtype | None = None,
) -> nn.Module:
    """Build ``name`` (``"logreg"``, ``"mlp"``, ``"cnn"``) for ``task``.

    ``seed`` fixes the initialisation (torch's global RNG is left untouched); ``dtype``
    defaults to the task's input dtype.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {MODELS}")
    dtype = dtype or task.x_train.dtype
    d_in, k = task.input_dim, task.n_classes
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(int(seed))
        if name == "logreg":
            model: nn.Module = nn.Sequential(nn.Flatten(), nn.Linear(d_in, k))
        elif name == "mlp":
            h = hidden or 32
            model = nn.Sequential(nn.Flatten(), nn.Linear(d_in, h), nn.Tanh(), nn.Linear(h, k))
        else:
            if task.image_shape is None:
                raise ValueError(f"model 'cnn' needs image inputs; task {task.name!r} has none")
            c_in, H, W = task.image_shape
            c = channels or 4
            h = hidden or 32
            if H <= 8:
                conv = nn.Conv2d(c_in, c, kernel_size=3, padding=1)
                Ho, Wo = H, W
            else:
                conv = nn.Conv2d(c_in, c, kernel_size=5, stride=2)
                Ho, Wo = (H - 5) // 2 + 1, (W - 5) // 2 + 1
            flat = c * (Ho // 2) * (Wo // 2)
            model = nn.Sequential(
                _ToImage(task.image_shape),
                conv,
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Flatten(),
                nn.Linear(flat, h),
                nn.ReLU(),
                nn.Linear(h, k),
            )
    model = model.to(dtype=dtype)
    return model
