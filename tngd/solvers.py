"""Linear solvers for x ≈ F̃⁻¹ g, F̃ = F + λI, behind one interface.

A :class:`LinearProblem` holds g (N,), the damping λ and F in one of three forms: the factor
S (r, N) with F = SᵀS, a matvec callable v -> F v, or a dense F (N, N). A :class:`Solver` maps
a problem to a :class:`SolveResult`. Solvers are built by name with :func:`make_solver` (or
:func:`build_solver`, which also passes the device settings t, t_d, κ₀ and seed to the solvers
that model a device). :data:`REGISTRY` maps each name to a :class:`SolverEntry`: a lazy import
path ``"module:attribute"`` and whether the solver is a device (takes t, t_d, κ₀, seed):

=============  ==========================================  ======
name           factory                                     device
=============  ==========================================  ======
exact          tngd.solvers:ExactSolver (dense Cholesky)   no
cg             tngd.solvers:CGSolver                       no
woodbury       tngd.solvers:WoodburySolver                 no
ou-exact       tngd.solvers_ou:OUExactSolver               yes
ou-euler       tngd.solvers_ou:OUEulerSolver               yes
ou2-exact      tngd.solvers_ou2:OU2ExactSolver             yes
ou2-euler      tngd.solvers_ou2:OU2EulerSolver             yes
spice          tngd.solvers_spice:SpiceSolver (ngspice)    yes
spice-board    tngd.solvers_board:BoardSpiceSolver         yes
board-         tngd.solvers_board:BoardSurrogateSolver     yes
surrogate
=============  ==========================================  ======

A new solver is one line in that table (or a :func:`register_solver` call); nothing is
registered by importing a module.

Stateful solvers (an OU device warm-started from its previous output) take ``state`` in
``solve`` and return the state to pass next time as ``result.state`` (also
``result.info["state"]``); :meth:`Solver.save_state`/:meth:`Solver.load_state` turn it into
tensors for a checkpoint and back. :meth:`Solver.close` releases what a solver holds (the
`spice` solver's ngspice instance); solvers are context managers.
"""

from __future__ import annotations

import importlib
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from tngd.gram import GramFactor

__all__ = [
    "DEVICE_DEFAULTS",
    "REGISTRY",
    "RESERVED_NAMES",
    "CGSolver",
    "ExactSolver",
    "LinearProblem",
    "SolveResult",
    "Solver",
    "SolverEntry",
    "WoodburySolver",
    "available_solvers",
    "build_solver",
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

    def to_dict(self) -> dict[str, Any]:
        """The problem as tensors and a float (for a checkpoint); a matrix-free problem (fvp
        only) cannot be saved: ValueError."""
        if self.S is None and self.F is None:
            raise ValueError(
                "cannot save the solver's previous system: it is matrix-free "
                "(curvature='matvec'); use curvature='factor' to checkpoint with a delay"
            )
        return {"g": self.g, "damping": self.damping, "S": self.S, "F": self.F}

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, like: Tensor | None = None) -> LinearProblem:
        """Inverse of :meth:`to_dict`; tensors cast to ``like``'s dtype and device if given."""

        def cast(v: Tensor | None) -> Tensor | None:
            if v is None or like is None:
                return v
            return v.to(dtype=like.dtype, device=like.device)

        return cls(g=cast(d["g"]), damping=d["damping"], S=cast(d["S"]), F=cast(d["F"]))

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
    #: what to pass as ``state`` to the next solve (None for stateless solvers)
    state: Any = None


# --------------------------------------------------------------------------- solvers


class Solver(ABC):
    """Estimates x ≈ (F + λI)⁻¹ g.

    Subclasses implement :meth:`_solve`; :meth:`solve` times it and adds the residual (one more
    product with F̃, skipped when ``compute_residual`` is False). A subclass may instead override
    :meth:`solve` itself. A stateful subclass returns its next state as ``info["state"]`` and
    overrides :meth:`save_state`/:meth:`load_state`; one with its own random generator
    overrides :meth:`get_rng_state`/:meth:`set_rng_state`; one that holds resources overrides
    :meth:`close`.
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
        return SolveResult(x=x, residual=residual, iterations=iterations, time_s=elapsed,
                           info=info, state=info.get("state"))

    # ---------------------------------------------------------------- state and resources

    def save_state(self, state: Any) -> dict[str, Any] | None:
        """A solve's ``state`` as plain tensors/numbers (``torch.save``-able); None when the
        solver keeps none."""
        return None

    def load_state(self, saved: dict[str, Any] | None, *, like: Tensor) -> Any:
        """Inverse of :meth:`save_state`; tensors moved to ``like``'s dtype and device."""
        return None

    def get_rng_state(self) -> Tensor | None:
        """State of the solver's own random generator (None: it has none)."""
        return None

    def set_rng_state(self, rng_state: Tensor | None) -> None:
        """Restore :meth:`get_rng_state`'s value (no-op for solvers without a generator)."""
        return None

    def close(self) -> None:
        """Release what the solver holds (a simulator instance); idempotent."""
        return None

    def __enter__(self) -> Solver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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

    O(r² N + r³) with an r×r Cholesky (:class:`tngd.gram.GramFactor`: SSᵀ in S's dtype, the
    r×r factorisation in float64); needs ``problem.S`` and λ > 0.
    """

    name = "woodbury"

    def _solve(self, problem, x0, state):
        S, lam, g = problem.S, problem.damping, problem.g
        if S is None:
            raise ValueError("WoodburySolver needs a problem with the factor S")
        if not lam > 0:
            raise ValueError(f"WoodburySolver needs damping > 0, got {lam}")
        return GramFactor(S, lam).solve(g), None, {"r": S.shape[0]}


# --------------------------------------------------------------------------- registry

SolverFactory = Callable[..., Solver]

#: t, t_d and κ₀ given to a device solver when the caller leaves them unset (the paper's loop)
DEVICE_DEFAULTS: dict[str, float] = {"t": 50.0, "t_d": 0.0, "kappa0": 0.0}


@dataclass(frozen=True)
class SolverEntry:
    """A registered solver: ``target`` is a factory or a lazy ``"module:attribute"`` path;
    ``device``: it models the analog device and takes t, t_d, kappa0 and seed."""

    target: str | SolverFactory
    device: bool = False

    def load(self, name: str) -> SolverFactory:
        """The factory (importing its module on first use); ValueError when that fails."""
        if not isinstance(self.target, str):
            return self.target
        module, _, attr = self.target.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ValueError(
                f"solver {name!r} is not available ({self.target} could not be imported: {exc})"
            ) from None


REGISTRY: dict[str, SolverEntry] = {
    "exact": SolverEntry("tngd.solvers:ExactSolver"),
    "cg": SolverEntry("tngd.solvers:CGSolver"),
    "woodbury": SolverEntry("tngd.solvers:WoodburySolver"),
    "ou-exact": SolverEntry("tngd.solvers_ou:OUExactSolver", device=True),
    "ou-euler": SolverEntry("tngd.solvers_ou:OUEulerSolver", device=True),
    "ou2-exact": SolverEntry("tngd.solvers_ou2:OU2ExactSolver", device=True),
    "ou2-euler": SolverEntry("tngd.solvers_ou2:OU2EulerSolver", device=True),
    "spice": SolverEntry("tngd.solvers_spice:make_spice_solver", device=True),
    "spice-board": SolverEntry("tngd.solvers_board:BoardSpiceSolver", device=True),
    "board-surrogate": SolverEntry("tngd.solvers_board:BoardSurrogateSolver", device=True),
}

#: The device solvers of the table above (kept for scripts that read it).
RESERVED_NAMES: tuple[str, ...] = ("ou-exact", "ou-euler", "ou2-exact", "spice")


def register_solver(
    name: str, factory: str | SolverFactory, *, device: bool = False, overwrite: bool = False
) -> None:
    """Make ``make_solver(name, **kw)`` call ``factory(**kw)`` (a callable or a lazy
    ``"module:attribute"`` path); ``device=True`` for a device model taking t, t_d, kappa0 and
    seed. Re-registering a name raises unless ``overwrite`` (or it is the same entry)."""
    if not name or not isinstance(name, str):
        raise ValueError("solver name must be a non-empty string")
    entry = SolverEntry(factory, device=device)
    if name in REGISTRY and REGISTRY[name] != entry and not overwrite:
        raise ValueError(f"solver {name!r} is already registered")
    REGISTRY[name] = entry


def available_solvers() -> list[str]:
    """Registered names, sorted."""
    return sorted(REGISTRY)


def _entry(name: str) -> SolverEntry:
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(available_solvers())
        raise ValueError(f"unknown solver {name!r}; known solvers: {known}") from None


def make_solver(name: str, **kwargs: Any) -> Solver:
    """Build the solver registered under ``name`` with ``kwargs``."""
    return _entry(name).load(name)(**kwargs)


def build_solver(
    solver: str | Solver,
    *,
    t: float | None = None,
    t_d: float | None = None,
    kappa0: float | None = None,
    seed: int | None = None,
    **solver_kwargs: Any,
) -> Solver:
    """A solver from a name or an instance (returned unchanged; t, t_d, κ₀ must then be None:
    configure the instance).

    For a device solver (``SolverEntry.device``) unset t, t_d, κ₀ take
    :data:`DEVICE_DEFAULTS` and ``seed`` is passed on; a digital solver ignores t and seed and
    refuses a nonzero t_d or κ₀.
    """
    if isinstance(solver, Solver):
        given = [k for k, v in (("t", t), ("t_d", t_d), ("kappa0", kappa0)) if v is not None]
        if given or solver_kwargs:
            raise ValueError(
                f"{', '.join(given + list(solver_kwargs))} given with a Solver instance; "
                "configure the instance instead"
            )
        return solver
    if not isinstance(solver, str):
        raise TypeError(f"solver must be a name or a Solver, got {type(solver).__name__}")
    entry = _entry(solver)
    kw = dict(solver_kwargs)
    values = {"t": t, "t_d": t_d, "kappa0": kappa0}
    if entry.device:
        for key, val in values.items():
            kw[key] = DEVICE_DEFAULTS[key] if val is None else val
        if seed is not None:
            kw["seed"] = seed
    else:
        for key, val in values.items():
            if val is not None and key != "t" and float(val) != 0.0:
                raise ValueError(f"solver {solver!r} does not support {key} (got {val})")
    return entry.load(solver)(**kw)
