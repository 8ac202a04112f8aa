"""TNGD as a preconditioner of any torch optimizer (the kfac-pytorch pattern).

Usage::

    precond = TNGDPreconditioner(model.parameters(), damping=0.01, t=50, loss="ce")
    opt = torch.optim.SGD(model.parameters(), lr=0.01)       # or Adam, with any scheduler
    for inputs, targets in loader:
        opt.zero_grad()
        outputs = model(inputs)
        loss = loss_fn(outputs, targets)
        loss.backward(retain_graph=True)   # optional: your own gradient (+ regularisers, ...)
        precond.step(outputs, targets)     # .grad <- g̃ ≈ (F + λI)⁻¹ g
        opt.step()

``precond.step(outputs, targets)``:

* g: the parameters' ``.grad`` if any of them has one (what your ``loss.backward()`` left; then
  keep the graph with ``retain_graph=True``), else the gradient of ``loss(outputs, targets)``
  (no backward of your own needed). Parameters without ``.grad`` count as 0 in the first case.
* S: from the outputs' graph (:func:`tngd.curvature_graph.curvature_from_outputs`).
* The device (any solver; ``ou-exact`` by default, warm-started from its previous output) gives
  g̃, which replaces ``.grad``; the learning rate is the optimizer's.

Returns the loss ``loss(outputs, targets)`` (0-d tensor).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from spu_circuits.errors import InputError
from tngd.curvature_graph import curvature_from_outputs
from tngd.limits import SizeLimits, check_step_size
from tngd.losses import resolve_loss
from tngd.optimizer import NumericalError, build_solver, device_solve, solver_name
from tngd.solvers import Solver

__all__ = ["TNGDPreconditioner"]


class TNGDPreconditioner:
    """Replace ``.grad`` by the TNGD direction g̃ ≈ (F + λI)⁻¹ g (see the module docstring).

    Args:
        params: the tensors to precondition (e.g. ``model.parameters()``, LoRA parameters).
        damping: λ (float ≥ 0, or a callable of the step k).
        t, t_d, kappa0, seed, solver, solver_kwargs: the device, as for :class:`tngd.TNGD`.
        warm_start: start the device from its previous output.
        loss, fisher, chunk_size, limits: as for :class:`tngd.optimizer.TNGD`.
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        damping: float | Any = 0.01,
        t: float | None = None,
        t_d: float | None = None,
        kappa0: float | None = None,
        *,
        warm_start: bool = True,
        solver: str | Solver = "ou-exact",
        solver_kwargs: dict[str, Any] | None = None,
        loss: Any = "ce",
        fisher: str = "ggn",
        seed: int | None = None,
        chunk_size: int | None = None,
        limits: SizeLimits | None = None,
    ) -> None:
        if isinstance(params, Tensor):
            raise TypeError("params must be an iterable of tensors (e.g. model.parameters())")
        self.params = [p for p in params if p.requires_grad]
        if not self.params:
            raise InputError("TNGDPreconditioner got no parameters that require grad")
        self.damping = damping
        self.warm_start = bool(warm_start)
        self.loss = resolve_loss(loss)
        if fisher not in ("ggn", "empirical"):
            raise ValueError(f"fisher must be 'ggn' or 'empirical', got {fisher!r}")
        self.fisher = fisher
        self.chunk_size = chunk_size
        self.limits = limits or SizeLimits()
        self.solver = build_solver(solver, t=t, t_d=t_d, kappa0=kappa0, seed=seed,
                                   **(solver_kwargs or {}))
        self.steps = 0
        self.device_state: Tensor | None = None
        self.solver_state: Any = None
        self._checked: set[tuple[int, int]] = set()
        self.last_diagnostics: dict[str, Any] = {}

    def _lam(self) -> float:
        v = self.damping(self.steps) if callable(self.damping) else self.damping
        v = float(v)
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"damping must be finite and ≥ 0, got {v}")
        return v

    def step(self, outputs: Tensor, targets: Any) -> Tensor:
        """Precondition ``.grad`` in place; returns the loss (see the module docstring)."""
        params = self.params
        N = sum(p.numel() for p in params)
        if isinstance(outputs, Tensor) and outputs.ndim >= 1:
            r = self.loss.rows(outputs.shape) if self.fisher == "ggn" else int(outputs.shape[0])
            if (N, r) not in self._checked:
                check_step_size(N, r, dtype=params[0].dtype, device=params[0].device,
                                solver=solver_name(self.solver), limits=self.limits)
                self._checked.add((N, r))
        own = any(p.grad is not None for p in params)
        g = None
        if own:
            g = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                           for p in params])
        t0 = time.perf_counter()
        curv = curvature_from_outputs(outputs, targets, params, self.loss, self.fisher,
                                      chunk_size=self.chunk_size, grad=g)
        t1 = time.perf_counter()
        for what, v in (("gradient", curv.grad), ("curvature", curv.S)):
            if v is not None and not bool(torch.isfinite(v).all()):
                raise NumericalError(f"non-finite {what} at preconditioner step {self.steps}; "
                                     ".grad left unchanged")
        x0 = self.device_state if (self.warm_start and self.device_state is not None) \
            else curv.grad
        lam = self._lam()
        x, result = device_solve(self.solver, curv.grad, lam, S=curv.S, x0=x0,
                                 state=self.solver_state)
        if not bool(torch.isfinite(x).all()):
            raise NumericalError(f"non-finite solver output at preconditioner step "
                                 f"{self.steps}; .grad left unchanged")
        o = 0
        for p in params:
            p.grad = x[o:o + p.numel()].view_as(p).clone()
            o += p.numel()
        self.device_state = x
        self.solver_state = result.state
        self.last_diagnostics = {
            "step": self.steps, "damping": lam, "loss": float(curv.loss),
            "grad_source": "param.grad" if own else "loss", "curvature_time_s": t1 - t0,
            "solve_time_s": result.time_s, "residual": result.residual,
            "grad_norm": float(torch.linalg.vector_norm(curv.grad)),
            "direction_norm": float(torch.linalg.vector_norm(x)),
        }
        self.steps += 1
        return curv.loss

    def state_dict(self) -> dict[str, Any]:
        """Step count, device state, the solver's state (delay) and its generator state."""
        return copy.deepcopy({"steps": self.steps, "device_state": self.device_state,
                              "solver_state": self.solver.save_state(self.solver_state),
                              "solver_rng_state": self.solver.get_rng_state()})

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])
        ds = state.get("device_state")
        ref = self.params[0]
        self.device_state = None if ds is None else ds.to(dtype=ref.dtype, device=ref.device)
        self.solver_state = self.solver.load_state(state.get("solver_state"), like=ref)
        self.solver.set_rng_state(state.get("solver_rng_state"))
