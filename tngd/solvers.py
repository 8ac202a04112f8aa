"""Linear solvers for x ≈ F̃⁻¹ g, F̃ = F + λI, behind one interface.

A :class:`LinearProblem` holds g (N,), the damping λ and F in one of three forms: the factor
S (r, N) with F = SᵀS, a matvec callable v -> F v, or a dense F (N, N). A :class:`Solver` maps
a problem to a :class:`SolveResult`. Solvers are built by name with :func:`make_solver`; the
digital ones here are "exact" (dense Cholesky, i.e. NGD), "cg" and "woodbury". Other modules
add theirs (the reserved names "ou-exact", "ou-euler", "spice") with :func:`register_solver`.

Stateful solvers (e.g. an OU device warm-started from its previous output) take ``state`` in
``solve`` and return the state to pass next time as ``result.info["state"]``.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "REGISTRY",
    "RESERVED_NAMES",
    "CGSolver",
    "ExactSolver",
    "LinearProblem",
    "SolveResult",
    "Solver",
    "WoodburySolver",
    "available_solvers",
    "make_solver",
    "register_solver",
]


# --------------------------------------------------------------------------- problem


@dataclass
class LinearProblem:
    """F̃ x = g with F̃ = F + λI.

    Give at least one of ``S`` (r, N; F = SᵀS), ``fvp`` (v (N,) -> F v (N,)) or ``F`` (N, N).
    Products use, by preference, S, then F, then fvp; :meth:`dense` uses F, then S, then N
    calls of fvp.
    """

    g: Tensor
    damping: float
    S: Tensor | None = None
    fvp: Callable[[Tensor], Tensor] | None = None
    F: Tensor | None = None

    def __post_init__(self) -> None:
        if self.g.ndim != 1:
            raise ValueError(f"g must be a vector (N,), got shape {tuple(self.g.shape)}")
        if self.S is None and self.fvp is None and self.F is None:
            raise ValueError("LinearProblem needs one of S, fvp or F")
        n = self.N
        if self.S is not None and (self.S.ndim != 2 or self.S.shape[1] != n):
            raise ValueError(f"S must be (r, {n}), got {tuple(self.S.shape)}")
        if self.F is not None and self.F.shape != (n, n):
            raise ValueError(f"F must be ({n}, {n}), got {tuple(self.F.shape)}")
        self.damping = float(self.damping)

    @classmethod
    def from_curvature(cls, curv: Any, damping: float, *, g: Tensor | None = None) -> LinearProblem:
        """Problem from a :class:`tngd.curvature.Curvature` (its S and grad, or ``g``)."""
        return cls(g=curv.grad if g is None else g, damping=damping, S=curv.S)

    @property
    def N(self) -> int:
        return self.g.shape[0]

    @property
    def dtype(self) -> torch.dtype:
        return self.g.dtype

    @property
    def device(self) -> torch.device:
        return self.g.device

    def f_matvec(self, v: Tensor) -> Tensor:
        """F v (without damping)."""
        if self.S is not None:
            return self.S.T @ (self.S @ v)
        if self.F is not None:
            return self.F @ v
        assert self.fvp is not None
        return self.fvp(v)

    def matvec(self, v: Tensor) -> Tensor:
        """F̃ v = F v + λ v."""
        return self.f_matvec(v) + self.damping * v

    def dense(self) -> Tensor:
        """F̃ (N, N). From ``fvp`` alone this costs N products."""
        if self.F is not None:
            F = self.F
        elif self.S is not None:
            F = self.S.T @ self.S
        else:
            assert self.fvp is not None
            eye = torch.eye(self.N, dtype=self.dtype, device=self.device)
            F = torch.stack([self.fvp(e) for e in eye], dim=1)
            F = 0.5 * (F + F.T)
        return F + self.damping * torch.eye(self.N, dtype=F.dtype, device=F.device)

    def residual(self, x: Tensor) -> float:
        """‖F̃x − g‖ / ‖g‖ (the absolute ‖F̃x‖ when g = 0)."""
        r = torch.linalg.vector_norm(self.matvec(x) - self.g).item()
        gn = torch.linalg.vector_norm(self.g).item()
        return r / gn if gn > 0 else r


@dataclass
class SolveResult:
    """x (N,) ≈ F̃⁻¹g; residual ‖F̃x − g‖/‖g‖ (NaN if not computed); iterations (None when the
    notion does not apply); wall time of the solve in seconds; solver-specific info."""

    x: Tensor
    residual: float
    iterations: int | None
    time_s: float
    info: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- solvers


class Solver(ABC):
    """Estimates x ≈ (F + λI)⁻¹ g.

    Subclasses implement :meth:`_solve`; :meth:`solve` times it and adds the residual (one more
    product with F̃, skipped when ``compute_residual`` is False). A subclass may instead override
    :meth:`solve` itself.
    """

    name: str = "solver"

    def __init__(self, *, compute_residual: bool = True) -> None:
        self.compute_residual = compute_residual

    @abstractmethod
    def _solve(
        self, problem: LinearProblem, x0: Tensor | None, state: Any
    ) -> tuple[Tensor, int | None, dict[str, Any]]:
        """Return (x, iterations, info)."""

    def solve(
        self, problem: LinearProblem, x0: Tensor | None = None, state: Any = None
    ) -> SolveResult:
        t0 = time.perf_counter()
        x, iterations, info = self._solve(problem, x0, state)
        elapsed = time.perf_counter() - t0
        residual = problem.residual(x) if self.compute_residual else math.nan
        return SolveResult(x=x, residual=residual, iterations=iterations, time_s=elapsed, info=info)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ExactSolver(Solver):
    """Dense Cholesky of F̃ (exact NGD): O(N³). Falls back to LU if F̃ is not positive definite
    (``info["fallback"] = "lu"``)."""

    name = "exact"

    def _solve(self, problem, x0, state):
        A = problem.dense()
        L, err = torch.linalg.cholesky_ex(A)
        info: dict[str, Any] = {"method": "cholesky"}
        if int(err) == 0:
            x = torch.cholesky_solve(problem.g.unsqueeze(-1), L).squeeze(-1)
        else:
            info.update(method="lu", fallback="lu", cholesky_info=int(err))
            x = torch.linalg.solve(A, problem.g)
        return x, None, info


class CGSolver(Solver):
    """Matrix-free conjugate gradient on F̃ (one F̃ product per iteration).

    Stops when ‖r_k‖ ≤ tol·‖g‖ (recursive residual) or after ``max_iter`` iterations. Starts from
    ``x0`` if given (warm start), else from 0. ``info``: converged, breakdown, residual_history
    (relative recursive residuals, first entry at x0).
    """

    name = "cg"

    def __init__(self, max_iter: int = 100, tol: float = 1e-10, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if max_iter < 0:
            raise ValueError("max_iter must be >= 0")
        self.max_iter = int(max_iter)
        self.tol = float(tol)

    def __repr__(self) -> str:
        return f"CGSolver(max_iter={self.max_iter}, tol={self.tol})"

    def _solve(self, problem, x0, state):
        g = problem.g
        gnorm = torch.linalg.vector_norm(g).item()
        if x0 is None:
            x = torch.zeros_like(g)
            r = g.clone()
        else:
            x = x0.to(dtype=g.dtype, device=g.device).clone()
            r = g - problem.matvec(x)
        scale = gnorm if gnorm > 0 else 1.0
        rr = torch.dot(r, r)
        history = [math.sqrt(rr.item()) / scale]
        p = r.clone()
        converged = history[-1] <= self.tol
        breakdown = False
        k = 0
        while not converged and k < self.max_iter:
            Ap = problem.matvec(p)
            pAp = torch.dot(p, Ap)
            if not pAp.item() > 0:  # F̃ not positive definite along p (or NaN)
                breakdown = True
                break
            alpha = rr / pAp
            x = x + alpha * p
            r = r - alpha * Ap
            rr_new = torch.dot(r, r)
            k += 1
            history.append(math.sqrt(rr_new.item()) / scale)
            if history[-1] <= self.tol:
                converged = True
                break
            p = r + (rr_new / rr) * p
            rr = rr_new
        info = {"converged": converged, "breakdown": breakdown, "residual_history": history}
        return x, k, info


class WoodburySolver(Solver):
    """Woodbury identity on the factor: (λI + SᵀS)⁻¹ g = (g − Sᵀ(λI_r + SSᵀ)⁻¹ S g) / λ.

    O(r² N + r³) with an r×r Cholesky; needs ``problem.S`` and λ > 0.
    """

    name = "woodbury"

    def _solve(self, problem, x0, state):
        S, lam, g = problem.S, problem.damping, problem.g
        if S is None:
            raise ValueError("WoodburySolver needs a problem with the factor S")
        if not lam > 0:
            raise ValueError(f"WoodburySolver needs damping > 0, got {lam}")
        K = S @ S.T
        K = K + lam * torch.eye(K.shape[0], dtype=K.dtype, device=K.device)
        L, err = torch.linalg.cholesky_ex(K)
        if int(err) != 0:
            raise RuntimeError(f"Cholesky of λI + SSᵀ failed (info={int(err)})")
        z = torch.cholesky_solve((S @ g).unsqueeze(-1), L).squeeze(-1)
        x = (g - S.T @ z) / lam
        return x, None, {"r": S.shape[0]}


# --------------------------------------------------------------------------- registry

SolverFactory = Callable[..., Solver]

REGISTRY: dict[str, SolverFactory] = {
    "exact": ExactSolver,
    "cg": CGSolver,
    "woodbury": WoodburySolver,
}

#: Names other modules register (OU surrogate: exact transitions / Euler-Maruyama; ngspice).
RESERVED_NAMES: tuple[str, ...] = ("ou-exact", "ou-euler", "spice")


def register_solver(name: str, factory: SolverFactory, *, overwrite: bool = False) -> None:
    """Make ``make_solver(name, **kw)`` call ``factory(**kw)``. Re-registering a name raises
    unless ``overwrite`` (or it is the same factory)."""
    if not name or not isinstance(name, str):
        raise ValueError("solver name must be a non-empty string")
    if name in REGISTRY and REGISTRY[name] is not factory and not overwrite:
        raise ValueError(f"solver {name!r} is already registered")
    REGISTRY[name] = factory


def available_solvers() -> list[str]:
    """Registered names, sorted."""
    return sorted(REGISTRY)


def make_solver(name: str, **kwargs: Any) -> Solver:
    """Build the solver registered under ``name`` with ``kwargs``."""
    try:
        factory = REGISTRY[name]
    except KeyError:
        known = ", ".join(available_solvers())
        hint = (
            f" ({name!r} is registered by its own module when imported)"
            if name in RESERVED_NAMES
            else ""
        )
        raise ValueError(f"unknown solver {name!r}{hint}; known solvers: {known}") from None
    return factory(**kwargs)
