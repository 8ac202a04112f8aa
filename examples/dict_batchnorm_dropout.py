"""TNGD on a model with dict inputs, BatchNorm (train mode) and Dropout.

``opt.step(outputs, targets)`` builds S from the graph of your own forward pass, so BatchNorm's
batch statistics and Dropout's masks are those of this batch, exactly as in training (the GGN
of the batch as a function).

    python examples/dict_batchnorm_dropout.py
"""

from __future__ import annotations

import torch
from torch import nn

from tngd import TNGD


class TwoInputNet(nn.Module):
    """{"image": (b, 1, 8, 8), "tabular": (b, 5)} -> logits (b, 3)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                  nn.MaxPool2d(2), nn.Flatten())
        self.tab = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(4 * 16 + 8, 3))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(torch.cat([self.conv(batch["image"]), self.tab(batch["tabular"])], 1))


def make_data(n: int = 512, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(n, 1, 8, 8, generator=g)
    tabular = torch.randn(n, 5, generator=g)
    score = image[:, 0, :4, :4].mean((1, 2)) * 4 + tabular[:, 0] - tabular[:, 1]
    y = torch.bucketize(score, torch.tensor([-0.7, 0.7]))
    return {"image": image, "tabular": tabular}, y


def main(steps: int = 30, batch: int = 32, seed: int = 0, quiet: bool = False) -> list[float]:
    torch.manual_seed(seed)
    data, y = make_data(seed=seed)
    model = TwoInputNet().train()
    opt = TNGD(model.parameters(), lr=0.3, damping=0.1, t=50, loss="ce")
    losses = []
    for k in range(steps):
        i = torch.randint(0, len(y), (batch,))
        opt.zero_grad()
        outputs = model({key: v[i] for key, v in data.items()})
        loss = opt.step(outputs, y[i])
        losses.append(loss.item())
        if not quiet and k % 10 == 0:
            print(f"step {k:3d}  loss {loss.item():.4f}")
    return losses


if __name__ == "__main__":
    main()
