"""Thermodynamic natural gradient descent (Donatella et al. 2024, arXiv 2405.13817, Algorithm 1).

Usage (the curvature needs the model and the batch, so ``step`` takes them instead of a
closure)::

    opt = TNGD(model, lr=0.01, damping=0.01, t=50.0)        # solver "ou-exact"
    for x, y in batches:
        loss = opt.step(x, y)          # float: the batch loss at the parameters BEFORE the update
        print(opt.last_diagnostics)    # residual, solve time, loss, grad norm, ...

Iteration k (k = number of updates applied so far; ``lr`` and ``damping`` may be callables of k):

1. loss, gradient g_k and the curvature factor S_k (F = SᵀS, GGN or empirical Fisher) at θ_k
   (:func:`tngd.curvature.compute_curvature`);
2. the device (a :class:`tngd.solvers.Solver`, by default the exact OU surrogate) runs with
   A = F̃_k = S_kᵀS_k + λ_k I, b = g_k for the analog time t, starting from its previous output
   g̃_{k−1} (``warm_start=True``; the first start is g̃₀ = g₀) or from g_k (``warm_start=False``,
   a reset: t = 0 then gives SGD, t → ∞ NGD). With a delay t_d the device first evolves t_d under
   the previous system (see :mod:`tngd.solvers_ou`). Its output is g̃_k;
3. update with the base rule: ``"sgd"``: θ ← θ − η g̃_k; ``"adam"`` (TNGD-Adam): torch's Adam
   rule fed with g̃_k, ``betas`` default (0, 0) as in the paper.

Numerical guards: a NaN/Inf in the loss, the gradient, the curvature factor, the solver output or
the updated parameters raises :class:`NumericalError` naming the quantity, with the parameters
and the optimizer state untouched; with ``on_nonfinite="skip"`` the step is skipped instead (no
update, the step counter k does not advance, ``last_diagnostics["n_skipped"]`` counts them).

``state_dict()``/``load_state_dict()`` carry, besides torch's param groups, the step count, the
device state g̃, the Adam moments, the solver's previous system (used by the delay) and the
solver's generator state, so that a reloaded optimizer takes identical subsequent steps.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from tngd.curvature import compute_curvature, flatten_params, load_params_, make_ggn_vp
from tngd.solvers import LinearProblem, Solver, build_solver

__all__ = ["NGD", "TNGD", "NumericalError", "build_solver"]

Schedule = float | Callable[[int], float]

class NumericalError(RuntimeError):
    """A NaN or Inf appeared in a quantity of the TNGD step (named in the message)."""


def _nonfinite(x: Tensor | None) -> bool:
    return x is not None and not bool(torch.isfinite(x).all())


class TNGD(torch.optim.Optimizer):
    """Thermodynamic natural gradient descent on all trainable parameters of ``model``.

    Args:
        model: the module; its trainable parameters (in ``named_parameters`` order) form θ.
        lr: η, a float or a callable of the step k (0, 1, …).
        damping: λ, a float or a callable of k.
        t: analog time per iteration in units of τ (default 50; OU solvers only).
        t_d: delay, 0 ≤ t_d ≤ t (default 0, the synchronous loop; OU solvers only).
        kappa0: device noise κ₀ (default 0; OU solvers only).
        warm_start: start the device from its previous output g̃ (True) or reset it to g_k.
        base: ``"sgd"`` or ``"adam"`` (TNGD-Adam); ``betas``/``eps`` for Adam.
        solver: a registered name (``"ou-exact"``, ``"ou-euler"``, ``"exact"``, ``"cg"``,
            ``"woodbury"``, ``"spice"``) or a :class:`~tngd.solvers.Solver` instance (then leave
            t, t_d, kappa0 unset). ``solver_kwargs`` go to the factory (e.g. ``dt`` for
            ou-euler, ``max_iter`` for cg).
        loss: ``"ce"`` or ``"mse"``; fisher: ``"ggn"`` or ``"empirical"``.
        curvature: ``"factor"`` (build S, default) or ``"matvec"`` (no S: matrix-free GGN
            products, for ou-euler/cg; GGN only).
        seed: seeds the solver's noise generator (reproducible κ₀ > 0 runs).
        on_nonfinite: ``"raise"`` (:class:`NumericalError`) or ``"skip"``.
        chunk_size: forwarded to the per-sample vmap of the curvature.
    """

    def __init__(
        self,
        model: nn.Module,
        lr: Schedule = 0.01,
        damping: Schedule = 0.01,
        t: float | None = None,
        t_d: float | None = None,
        kappa0: float | None = None,
        *,
        warm_start: bool = True,
        base: str = "sgd",
        betas: tuple[float, float] = (0.0, 0.0),
        eps: float = 1e-8,
        solver: str | Solver = "ou-exact",
        solver_kwargs: dict[str, Any] | None = None,
        loss: str = "ce",
        fisher: str = "ggn",
        curvature: str = "factor",
        seed: int | None = None,
        on_nonfinite: str = "raise",
        chunk_size: int | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError("TNGD takes the model (an nn.Module), not a parameter list")
        if base not in ("sgd", "adam"):
            raise ValueError(f"base must be 'sgd' or 'adam', got {base!r}")
        if loss not in ("ce", "mse"):
            raise ValueError(f"loss must be 'ce' or 'mse', got {loss!r}")
        if fisher not in ("ggn", "empirical"):
            raise ValueError(f"fisher must be 'ggn' or 'empirical', got {fisher!r}")
        if curvature not in ("factor", "matvec"):
            raise ValueError(f"curvature must be 'factor' or 'matvec', got {curvature!r}")
        if curvature == "matvec" and fisher != "ggn":
            raise ValueError("curvature='matvec' supports fisher='ggn' only")
        if on_nonfinite not in ("raise", "skip"):
            raise ValueError(f"on_nonfinite must be 'raise' or 'skip', got {on_nonfinite!r}")
        b1, b2 = (float(b) for b in betas)
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        for name, v in (("lr", lr), ("damping", damping)):
            if not callable(v):
                self._check_hp(name, v)
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("the model has no trainable parameters")
        defaults = {"lr": lr, "damping": damping, "betas": (b1, b2), "eps": float(eps)}
        super().__init__(params, defaults)
        self.model = model
        self.warm_start = bool(warm_start)
        self.base = base
        self.loss_name = loss
        self.fisher = fisher
        self.curvature = curvature
        self.on_nonfinite = on_nonfinite
        self.chunk_size = chunk_size
        self.solver = build_solver(
            solver, t=t, t_d=t_d, kappa0=kappa0, seed=seed, **(solver_kwargs or {})
        )
        self.t = getattr(self.solver, "t", None)
        self.t_d = getattr(self.solver, "t_d", None)
        self.kappa0 = getattr(self.solver, "kappa0", None)
        self._tngd: dict[str, Any] = {
            "step": 0,
            "n_skipped": 0,
            "device_state": None,
            "exp_avg": None,
            "exp_avg_sq": None,
            "solver_state": None,
        }
        self.last_diagnostics: dict[str, Any] = {}

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _check_hp(name: str, v: Any) -> float:
        v = float(v)
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"{name} must be finite and ≥ 0, got {v}")
        return v

    def _hp(self, name: str, k: int) -> float:
        v = self.param_groups[0][name]
        return self._check_hp(name, v(k) if callable(v) else v)

    @property
    def step_count(self) -> int:
        """Number of updates applied (k of the next step)."""
        return self._tngd["step"]

    @property
    def device_state(self) -> Tensor | None:
        """g̃, the device's last output (None before the first step)."""
        return self._tngd["device_state"]

    def _fail(self, what: str, diag: dict[str, Any]) -> float:
        msg = f"non-finite {what} at step {self._tngd['step']}; parameters left unchanged"
        if self.on_nonfinite == "raise":
            raise NumericalError(msg)
        self._tngd["n_skipped"] += 1
        diag.update(skipped=True, reason=msg, n_skipped=self._tngd["n_skipped"])
        self.last_diagnostics = diag
        return diag.get("loss", math.nan)

    # ------------------------------------------------------------------ the step

    def step(self, x: Tensor, y: Tensor) -> float:  # type: ignore[override]
        """One TNGD iteration on the batch (x, y); returns the batch loss before the update."""
        st = self._tngd
        k = st["step"]
        group = self.param_groups[0]
        lr = self._hp("lr", k)
        lam = self._hp("damping", k)
        theta, spec = flatten_params(self.model)
        diag: dict[str, Any] = {
            "step": k,
            "lr": lr,
            "damping": lam,
            "skipped": False,
            "n_skipped": st["n_skipped"],
        }

        t0 = time.perf_counter()
        curv = compute_curvature(
            self.model,
            theta,
            x,
            y,
            self.loss_name,
            self.fisher,
            spec=spec,
            with_factor=self.curvature == "factor",
            chunk_size=self.chunk_size,
        )
        diag["curvature_time_s"] = time.perf_counter() - t0
        loss = float(curv.loss)
        diag["loss"] = loss
        g = curv.grad
        diag["grad_norm"] = float(torch.linalg.vector_norm(g))
        if not math.isfinite(loss):
            return self._fail("loss", diag)
        if _nonfinite(g):
            return self._fail("gradient", diag)
        if _nonfinite(curv.S):
            return self._fail("curvature", diag)

        if self.curvature == "factor":
            problem = LinearProblem(g=g, damping=lam, S=curv.S)
        else:
            fvp = make_ggn_vp(self.model, theta, x, self.loss_name, spec=spec)
            problem = LinearProblem(g=g, damping=lam, fvp=fvp)
        prev_out = st["device_state"]
        x0 = prev_out if (self.warm_start and prev_out is not None) else g
        result = self.solver.solve(problem, x0=x0, state=st["solver_state"])
        g_tilde = result.x
        diag.update(
            residual=result.residual,
            solve_time_s=result.time_s,
            iterations=result.iterations,
            matvecs=result.info.get("matvecs", result.iterations),
        )
        if _nonfinite(g_tilde):
            return self._fail("solver output", diag)

        # ---- commit: optimizer state, then the parameters
        if self.base == "sgd":
            new_theta = theta.add(g_tilde, alpha=-lr)
        else:
            b1, b2 = group["betas"]
            eps = group["eps"]
            m = st["exp_avg"] if st["exp_avg"] is not None else torch.zeros_like(theta)
            v = st["exp_avg_sq"] if st["exp_avg_sq"] is not None else torch.zeros_like(theta)
            m = m.lerp(g_tilde, 1 - b1)
            v = v.mul(b2).addcmul(g_tilde, g_tilde, value=1 - b2)
            n = k + 1
            step_size = lr / (1 - b1**n)
            denom = (v.sqrt() / math.sqrt(1 - b2**n)).add_(eps)
            new_theta = theta.addcdiv(m, denom, value=-step_size)
        if _nonfinite(new_theta):
            return self._fail("updated parameters", diag)
        if self.base == "adam":
            st["exp_avg"], st["exp_avg_sq"] = m, v
        st["device_state"] = g_tilde
        st["solver_state"] = result.state
        st["step"] = k + 1
        load_params_(self.model, new_theta, spec)
        diag["update_norm"] = float(torch.linalg.vector_norm(new_theta - theta))
        diag["time_s"] = time.perf_counter() - t0
        self.last_diagnostics = diag
        return loss

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        st = self._tngd
        sd["tngd"] = copy.deepcopy(
            {
                "step": st["step"],
                "n_skipped": st["n_skipped"],
                "device_state": st["device_state"],
                "exp_avg": st["exp_avg"],
                "exp_avg_sq": st["exp_avg_sq"],
                "solver_state": self.solver.save_state(st["solver_state"]),
                "solver_rng_state": self.solver.get_rng_state(),
            }
        )
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        extra = state_dict.pop("tngd", None)
        super().load_state_dict(state_dict)
        if extra is None:
            return
        extra = copy.deepcopy(extra)
        ref = next(iter(self.param_groups[0]["params"]))

        def cast(v: Tensor | None) -> Tensor | None:
            return None if v is None else v.to(dtype=ref.dtype, device=ref.device)

        st = self._tngd
        st["step"] = int(extra["step"])
        st["n_skipped"] = int(extra["n_skipped"])
        st["device_state"] = cast(extra["device_state"])
        st["exp_avg"] = cast(extra["exp_avg"])
        st["exp_avg_sq"] = cast(extra["exp_avg_sq"])
        st["solver_state"] = self.solver.load_state(extra.get("solver_state"), like=ref)
        self.solver.set_rng_state(extra.get("solver_rng_state"))


class NGD(TNGD):
    """Natural gradient descent θ ← θ − η (F + λI)⁻¹ g: :class:`TNGD` with a direct solver
    (default ``"exact"``, dense Cholesky; ``"woodbury"`` scales to larger N)."""

    def __init__(
        self,
        model: nn.Module,
        lr: Schedule = 0.01,
        damping: Schedule = 0.01,
        *,
        solver: str | Solver = "exact",
        **kwargs: Any,
    ) -> None:
        super().__init__(model, lr, damping, solver=solver, **kwargs)
