"""TNGD with param groups and a torch learning-rate scheduler; TNGD as a preconditioner of Adam.

Part 1: ``TNGD`` is a ``torch.optim.Optimizer``: param groups carry their own lr and damping,
and ``torch.optim.lr_scheduler`` schedules act on them. Part 2 (``preconditioned=True``): keep
your optimizer and let ``TNGDPreconditioner`` replace ``.grad`` by the TNGD direction.

    python examples/scheduler.py
"""

from __future__ import annotations

import torch
from torch import nn

from tngd import TNGD, TNGDPreconditioner


def make_data(n: int = 512, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 10, generator=g)
    y = (x[:, :3].sum(1) > 0).long() + (x[:, 3] > 1).long()
    return x, y


def main(steps: int = 30, batch: int = 32, seed: int = 0, quiet: bool = False,
         preconditioned: bool = False) -> list[float]:
    torch.manual_seed(seed)
    x, y = make_data(seed=seed)
    model = nn.Sequential(nn.Linear(10, 32), nn.Tanh(), nn.Linear(32, 3))
    if preconditioned:
        precond = TNGDPreconditioner(model.parameters(), damping=0.1, t=50, loss="ce")
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
    else:
        precond = None
        opt = TNGD([{"params": model[0].parameters(), "lr": 0.5, "damping": 0.1},
                    {"params": model[2].parameters(), "lr": 0.2, "damping": 0.05}], t=50)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
    losses = []
    for k in range(steps):
        i = torch.randint(0, len(y), (batch,))
        opt.zero_grad()
        outputs = model(x[i])
        if precond is not None:
            loss = precond.step(outputs, y[i])   # computes g, then .grad <- TNGD direction
            opt.step()
        else:
            loss = opt.step(outputs, y[i])
        sched.step()
        losses.append(loss.item())
        if not quiet and k % 10 == 0:
            print(f"step {k:3d}  loss {loss.item():.4f}  lr {sched.get_last_lr()}")
    return losses


if __name__ == "__main__":
    main()
    main(preconditioned=True)
