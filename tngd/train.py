"""Training loop: TNGD, NGD, Adam or SGD on a small task, returning plain-data metrics.

:func:`train` returns::

    {"settings": {...every setting, n_params, solver repr, versions...},
     "steps": [{"step": 1, "loss": ..., "accuracy": ... | None, "time_s": ...}, ...],
     "final": {"loss", "accuracy", "time_s", "n_skipped", "diagnostics": {...}}}

``step`` counts from 1; ``loss`` is the training-batch loss at the parameters before that
step's update; ``accuracy`` is the test accuracy after the update, evaluated every
``eval_every`` steps and at the last step (None elsewhere); ``time_s`` is the cumulative wall
time of the optimizer steps (loss, gradient, curvature, solve, update), excluding batching and
evaluation.
"""

from __future__ import annotations

import math
import platform
import sys
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tngd.data import BatchIterator, Task, load_task
from tngd.models import make_model, n_params
from tngd.optimizer import NGD, TNGD

__all__ = ["DEFAULT_LR", "OPTIMIZERS", "batch_loss", "evaluate", "train"]

OPTIMIZERS = ("tngd", "ngd", "adam", "sgd")
#: Learning rates used when ``lr`` is None (paper: η = 0.01 for TNGD/NGD; Adam's usual 1e-3).
DEFAULT_LR = {"tngd": 0.01, "ngd": 0.01, "adam": 1e-3, "sgd": 0.01}


def batch_loss(out: Tensor, y: Tensor, loss: str = "ce") -> Tensor:
    """Mean loss with :mod:`tngd.curvature`'s conventions (CE; MSE = ½‖z − y‖² per sample)."""
    if loss == "ce":
        return F.cross_entropy(out, y)
    if loss == "mse":
        return 0.5 * (out - y.to(out.dtype).reshape(out.shape)).pow(2).sum(-1).mean()
    raise ValueError(f"unknown loss {loss!r}")


@torch.no_grad()
def evaluate(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 1000) -> float:
    """Classification accuracy of ``model`` on (x, y)."""
    correct = 0
    for i in range(0, x.shape[0], batch_size):
        out = model(x[i : i + batch_size])
        correct += int((out.argmax(-1) == y[i : i + batch_size]).sum())
    return correct / max(1, x.shape[0])


def _progress(steps: int, quiet: bool):
    from tqdm.auto import tqdm

    return tqdm(total=steps, disable=quiet or not sys.stderr.isatty(), leave=False, unit="step")


def train(
    task: str | Task = "digits",
    model: str | nn.Module = "mlp",
    optimizer_name: str = "tngd",
    solver: str | None = None,
    steps: int = 100,
    seed: int = 0,
    batch_size: int = 64,
    lr: float | None = None,
    damping: float = 0.01,
    t: float = 50.0,
    t_d: float = 0.0,
    kappa0: float = 0.0,
    *,
    base: str = "sgd",
    betas: tuple[float, float] | None = None,
    warm_start: bool = True,
    eval_every: int = 10,
    n_pca: int | None = None,
    loss: str = "ce",
    fisher: str = "ggn",
    dtype: torch.dtype = torch.float32,
    solver_kwargs: dict[str, Any] | None = None,
    on_nonfinite: str = "raise",
    quiet: bool = False,
) -> dict[str, Any]:
    """Train ``model`` on ``task`` for ``steps`` mini-batches and return the metrics dict.

    Args:
        task: ``"digits"``/``"mnist"`` or a :class:`~tngd.data.Task` (``n_pca`` for digits).
        model: ``"logreg"``/``"mlp"``/``"cnn"`` (initialised from ``seed``) or a module.
        optimizer_name: ``"tngd"``, ``"ngd"``, ``"adam"`` or ``"sgd"``.
        solver: TNGD/NGD solver name (default ``"ou-exact"`` for TNGD, ``"exact"`` for NGD);
            must be None for Adam/SGD.
        seed: model initialisation, batch order and the device noise.
        lr: η (default :data:`DEFAULT_LR`); damping, t, t_d, kappa0: TNGD's λ, analog time,
            delay and noise (t, t_d, κ₀ apply to the OU solvers only).
        base, betas, warm_start: TNGD's base rule (``"sgd"``/``"adam"``), Adam's betas (TNGD-Adam
            default (0, 0), plain Adam (0.9, 0.999)) and the device warm start.
        eval_every: test accuracy every this many steps (and at the last step).
    """
    if optimizer_name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer_name!r}; expected one of {OPTIMIZERS}")
    if steps < 1:
        raise ValueError(f"steps must be ≥ 1, got {steps}")
    if eval_every < 1:
        raise ValueError(f"eval_every must be ≥ 1, got {eval_every}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
    if optimizer_name in ("adam", "sgd") and solver is not None:
        raise ValueError(f"--solver applies to tngd/ngd only, not {optimizer_name}")
    lr = DEFAULT_LR[optimizer_name] if lr is None else float(lr)

    task_obj = task if isinstance(task, Task) else load_task(task, n_pca=n_pca)
    task_obj = task_obj.to(dtype=dtype)
    net = model if isinstance(model, nn.Module) else make_model(model, task_obj, seed=seed)
    net = net.to(dtype=dtype)
    batches = BatchIterator(task_obj.x_train, task_obj.y_train, batch_size, seed=seed)

    opt: torch.optim.Optimizer
    if optimizer_name == "tngd":
        solver = solver or "ou-exact"
        opt = TNGD(
            net,
            lr=lr,
            damping=damping,
            t=t,
            t_d=t_d,
            kappa0=kappa0,
            warm_start=warm_start,
            base=base,
            betas=betas or (0.0, 0.0),
            solver=solver,
            solver_kwargs=solver_kwargs,
            loss=loss,
            fisher=fisher,
            seed=seed,
            on_nonfinite=on_nonfinite,
        )
    elif optimizer_name == "ngd":
        solver = solver or "exact"
        opt = NGD(
            net,
            lr=lr,
            damping=damping,
            solver=solver,
            solver_kwargs=solver_kwargs,
            loss=loss,
            fisher=fisher,
            base=base,
            betas=betas or (0.0, 0.0),
            on_nonfinite=on_nonfinite,
        )
    elif optimizer_name == "adam":
        opt = torch.optim.Adam(net.parameters(), lr=lr, betas=betas or (0.9, 0.999))
    else:
        opt = torch.optim.SGD(net.parameters(), lr=lr)

    settings = {
        "task": task_obj.name,
        "model": model if isinstance(model, str) else type(model).__name__,
        "optimizer": optimizer_name,
        "solver": solver,
        "solver_repr": repr(getattr(opt, "solver", None)),
        "steps": steps,
        "seed": seed,
        "batch_size": batch_size,
        "lr": lr,
        "damping": damping,
        "t": t,
        "t_d": t_d,
        "kappa0": kappa0,
        "base": base,
        "betas": list(betas) if betas is not None else None,
        "warm_start": warm_start,
        "eval_every": eval_every,
        "n_pca": n_pca,
        "loss": loss,
        "fisher": fisher,
        "dtype": str(dtype).replace("torch.", ""),
        "n_params": n_params(net),
        "n_train": task_obj.n_train,
        "n_test": task_obj.n_test,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }

    records: list[dict[str, Any]] = []
    elapsed = 0.0
    accuracy = math.nan
    bar = _progress(steps, quiet)
    try:
        for i in range(1, steps + 1):
            xb, yb = next(batches)
            t0 = time.perf_counter()
            if isinstance(opt, TNGD):
                value = opt.step(xb, yb)
            else:
                opt.zero_grad(set_to_none=True)
                lv = batch_loss(net(xb), yb, loss)
                lv.backward()
                opt.step()
                value = float(lv.detach())
            elapsed += time.perf_counter() - t0
            acc = None
            if i % eval_every == 0 or i == steps:
                accuracy = acc = evaluate(net, task_obj.x_test, task_obj.y_test)
            records.append({"step": i, "loss": value, "accuracy": acc, "time_s": elapsed})
            bar.update(1)
            bar.set_postfix(loss=f"{value:.4g}")
    finally:
        bar.close()
        close = getattr(getattr(opt, "solver", None), "close", None)
        if callable(close):  # e.g. the spice solver's ngspice back-end
            close()

    final: dict[str, Any] = {
        "loss": records[-1]["loss"],
        "accuracy": accuracy,
        "time_s": elapsed,
    }
    if isinstance(opt, TNGD):
        diag = {k: v for k, v in opt.last_diagnostics.items() if isinstance(v, int | float | str)}
        final["n_skipped"] = opt.last_diagnostics.get("n_skipped", 0)
        final["diagnostics"] = diag
    return {"settings": settings, "steps": records, "final": final}
