"""OU-device solvers: the SPU's Ornstein–Uhlenbeck process as a linear solver for TNGD.

Two solvers (registered in :data:`tngd.solvers.REGISTRY` as device solvers):

* ``"ou-exact"`` (:class:`OUExactSolver`): exact OU transitions of ``A = λI + SᵀS`` (or a dense
  F̃): no discretisation error. By default (``method="krylov"`` when r < N) at the cost of the
  Woodbury solve it is equivalent to: one Cholesky of the r×r λI + SSᵀ gives x* = A⁻¹g, and the
  decay e^{−At} and the noise are evaluated by Lanczos on that factor in r-space
  (:class:`tngd.krylov.KrylovLowRankOU`); ``"gram"`` (eigendecomposition of SSᵀ,
  :class:`GramLowRankOU`), ``"lowrank"`` (SVD of S, :class:`tngd.surrogate.LowRankOU`) and
  ``"dense"`` (:class:`tngd.surrogate.DenseOU`) give the same law. With κ₀ = 0 and t → ∞ it
  returns F̃⁻¹g exactly (NGD); ``t = float("inf")`` is allowed.
* ``"ou-euler"`` (:class:`OUEulerSolver`): the paper's simulation, Euler–Maruyama with step δt
  (default 0.1τ), matrix-free through ``problem.matvec`` (one F̃ product per step).

Time is dimensionless (units of τ). The device obeys ``dx = −(A x − b) du + sqrt(2κ₀) dW`` with
A = F̃ = F + λI and b = g.

**Run of one iteration (both solvers).** ``solve(problem, x0, state)`` runs the device for a total
time ``t`` starting from

* ``x0`` when given (the optimizer passes its previous output g̃ for a warm start, or g_k for a
  reset);
* else ``state.x`` (the device's end state of the previous call: a warm start);
* else ``problem.g`` (the paper's first start g̃₀ = g₀).

**Delay t_d** (0 ≤ t_d ≤ t; 0 is the synchronous loop): the new system (A_k, g_k) reaches the
device t_d after the iteration starts. Meanwhile the device keeps evolving under the PREVIOUS
system (A_{k−1}, g_{k−1}), kept in ``state.prev``; it then evolves under the new system for the
remaining ``t − t_d``. At the first call there is no previous system: the device is held at its
start state during the delay (nothing programmed yet) and then runs ``t − t_d`` under the new
one. A reset start (x0 = g_k) is applied at the start of the iteration, before the delay.

**State.** ``result.state`` (also ``result.info["state"]``) is an :class:`OUState`: the device
output x, the system programmed last (``prev``) and its set-up (``decomposition``: the Gram
factor, eigendecomposition or dense eigenbasis), reused when that system acts during the next
delay. Pass it as ``state`` next time. :meth:`OUSolverBase.save_state` keeps x and prev as
tensors (the decomposition is recomputed after a reload, deterministically);
:meth:`OUSolverBase.load_state` restores it.

Diagnostics in ``info``: ``matvecs`` (F̃ products used by the dynamics, not counting the residual
check), ``t``, ``t_d``, ``kappa0``, ``segments`` (the (system, duration) pieces that were run),
for ou-exact ``method`` and ``krylov_iterations`` (r-space products; ``krylov_fallbacks``: the
times the exact eigendecomposition took over), and for Euler ``n_steps`` and ``dt``.
``SolveResult.residual`` is ‖F̃x − g‖/‖g‖ for the new system; ``time_s`` the wall time.

Randomness (κ₀ > 0) comes only from the solver's ``torch.Generator`` (``generator=`` or built
from ``seed=`` on first use on the problem's device; with neither, torch's global RNG).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from spu_circuits import ou_math
from tngd.gram import GramFactor
from tngd.krylov import KrylovLowRankOU
from tngd.lowrank_ou import GramLowRankOU
from tngd.solvers import LinearProblem, Solver
from tngd.surrogate import DenseOU, EulerMaruyamaOU, LowRankOU

__all__ = ["GramLowRankOU", "OUEulerSolver", "OUExactSolver", "OUSolverBase", "OUState"]


@dataclass
class OUState:
    """The device between two solves.

    x: its output at the end of the last solve (N,); prev: the system programmed last (it acts
    during the next delay); decomposition: prev's set-up as the solver built it (reused, never
    saved; None: build it when needed).
    """

    x: Tensor
    prev: LinearProblem | None = None
    decomposition: Any = None

    def to_dict(self) -> dict[str, Any]:
        """x and prev as tensors (``torch.save``-able); ValueError for a matrix-free prev."""
        return {"x": self.x, "prev": None if self.prev is None else self.prev.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, like: Tensor | None = None) -> OUState:
        """Inverse of :meth:`to_dict`; tensors cast to ``like``'s dtype and device if given."""
        x = d["x"]
        if like is not None and x is not None:
            x = x.to(dtype=like.dtype, device=like.device)
        prev = d.get("prev")
        if isinstance(prev, Mapping):
            prev = LinearProblem.from_dict(prev, like=like)
        return cls(x=x, prev=prev)

    @classmethod
    def coerce(cls, state: Any) -> OUState | None:
        """An OUState from an OUState, None, or the mapping ``{"x", "prev"[, "cache"]}`` that
        earlier versions returned."""
        if state is None or isinstance(state, OUState):
            return state
        if isinstance(state, Mapping):
            return cls(x=state.get("x"), prev=state.get("prev"))
        raise TypeError(f"state must be an OUState, got {type(state).__name__}")


def _check_time(t: float, t_d: float, *, allow_inf: bool) -> tuple[float, float]:
    t = float(t)
    t_d = float(t_d)
    if math.isnan(t) or t < 0 or (math.isinf(t) and not allow_inf):
        raise ValueError(f"t must be {'≥ 0' if allow_inf else 'finite and ≥ 0'}, got {t}")
    if math.isnan(t_d) or not 0 <= t_d <= t or math.isinf(t_d):
        raise ValueError(f"the delay must satisfy 0 ≤ t_d ≤ t (finite), got t_d={t_d}, t={t}")
    return t, t_d


class OUSolverBase(Solver):
    """Shared parts of the OU solvers: time, delay, noise, start state and the generator.

    Args:
        t: analog time of one iteration (units of τ).
        t_d: delay (units of τ), 0 ≤ t_d ≤ t.
        kappa0: noise level κ₀ ≥ 0 (0: deterministic).
        seed: seeds the solver's own generator (created lazily on the problem's device).
        generator: a torch.Generator to use instead (takes precedence over ``seed``).
        compute_residual: add ‖F̃x − g‖/‖g‖ to the result (one more product).
    """

    _allow_inf = False

    def __init__(
        self,
        t: float = 50.0,
        t_d: float = 0.0,
        kappa0: float = 0.0,
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        compute_residual: bool = True,
    ) -> None:
        super().__init__(compute_residual=compute_residual)
        self.t, self.t_d = _check_time(t, t_d, allow_inf=self._allow_inf)
        self.kappa0 = float(kappa0)
        if not self.kappa0 >= 0 or math.isinf(self.kappa0):
            raise ValueError(f"kappa0 must be finite and ≥ 0, got {kappa0}")
        self.seed = seed
        self.generator = generator

    # ---------------------------------------------------------------- randomness

    def _generator(self, device: torch.device) -> torch.Generator | None:
        if self.generator is None and self.seed is not None:
            self.generator = torch.Generator(device=device)
            self.generator.manual_seed(int(self.seed))
        return self.generator

    def get_rng_state(self) -> Tensor | None:
        """State of the solver's own generator (None when it uses torch's global RNG)."""
        if self.generator is None and self.seed is not None:
            self._generator(torch.device("cpu"))
        return None if self.generator is None else self.generator.get_state()

    def set_rng_state(self, rng_state: Tensor | None) -> None:
        if rng_state is None:
            return
        if self.generator is None:
            self.generator = torch.Generator()
        self.generator.set_state(rng_state)

    # ---------------------------------------------------------------- state

    def save_state(self, state: Any) -> dict[str, Any] | None:
        state = OUState.coerce(state)
        return None if state is None else state.to_dict()

    def load_state(self, saved: Mapping[str, Any] | None, *, like: Tensor) -> OUState | None:
        return None if saved is None else OUState.from_dict(saved, like=like)

    # ---------------------------------------------------------------- the run

    def _start(self, problem: LinearProblem, x0: Tensor | None, state: OUState | None) -> Tensor:
        if x0 is None and state is not None:
            x0 = state.x
        if x0 is None:
            x0 = problem.g
        x0 = torch.as_tensor(x0).to(dtype=problem.dtype, device=problem.device)
        if x0.shape != (problem.N,):
            raise ValueError(f"start state must be ({problem.N},), got {tuple(x0.shape)}")
        return x0.clone()

    def _setup(self, problem: LinearProblem) -> tuple[Any, int]:
        """Set-up for running ``problem`` (a decomposition; None when there is none) and the F̃
        products it cost."""
        return None, 0

    def _reusable(self, setup: Any, problem: LinearProblem) -> bool:
        """Whether a set-up found in the state (built by this or another solver) fits."""
        return True

    def _evolve(
        self, problem: LinearProblem, setup: Any, x: Tensor, h: float,
        gen: torch.Generator | None,
    ) -> tuple[Tensor, int]:
        """Evolve x for time h > 0 under ``problem`` (with its ``setup``); returns
        (x, matvecs)."""
        raise NotImplementedError

    def _solve(self, problem, x0, state):
        state = OUState.coerce(state)
        prev = state.prev if state is not None else None
        x = self._start(problem, x0, state)
        gen = self._generator(problem.device) if self.kappa0 > 0 else None
        segments: list[tuple[str, float]] = []
        matvecs = 0
        if self.t_d > 0:
            if prev is not None:
                setup = state.decomposition
                if setup is None or not self._reusable(setup, prev):
                    setup, m = self._setup(prev)
                    matvecs += m
                x, m = self._evolve(prev, setup, x, self.t_d, gen)
                matvecs += m
                segments.append(("previous", self.t_d))
            else:
                segments.append(("hold", self.t_d))
        rest = self.t - self.t_d
        new_setup = None
        if rest > 0:
            new_setup, m = self._setup(problem)
            x, m2 = self._evolve(problem, new_setup, x, rest, gen)
            matvecs += m + m2
            segments.append(("current", rest))
        info: dict[str, Any] = {
            "matvecs": matvecs,
            "t": self.t,
            "t_d": self.t_d,
            "kappa0": self.kappa0,
            "segments": segments,
            "state": OUState(x=x, prev=problem, decomposition=new_setup),
        }
        return x, None, info


class OUExactSolver(OUSolverBase):
    """Exact OU transitions of F̃ = λI + SᵀS for time t (see the module docstring).

    ``method``:

    * ``"auto"`` (default): ``"krylov"`` when the problem has the factor S with r < N and
      λ > 0, else ``"dense"``;
    * ``"krylov"``: :class:`tngd.krylov.KrylovLowRankOU` — one Cholesky of λI + SSᵀ (the
      Woodbury solve's) and Lanczos in r-space for the decay and the noise, O(r²N + r³/3);
    * ``"gram"``: :class:`GramLowRankOU` (eigh of the r×r Gram SSᵀ, O(r²N + r³));
    * ``"lowrank"``: :class:`tngd.surrogate.LowRankOU` (thin SVD of S, O(r²N) but slow on CPU);
    * ``"dense"``: :class:`tngd.surrogate.DenseOU` on ``problem.dense()`` (eigh of the N×N F̃,
      the cheapest when r ≥ N; from a matvec alone forming F̃ costs N products).

    One set-up per system: the previous system's is kept in the state for the delay. At most
    two exact transitions per call (one without delay), so the result has the exact law of x(t)
    for any t; with κ₀ = 0 and t = ∞ it is F̃⁻¹g. ``info["matvecs"]`` is 0 except for a dense F̃
    built from a matvec (N products). ``krylov_tol``/``krylov_max_iter`` go to the Krylov
    set-up (defaults: 1e-13 in float64, 1e-7 otherwise; 64 steps before the exact fallback).
    """

    name = "ou-exact"
    _allow_inf = True
    METHODS = ("auto", "krylov", "gram", "lowrank", "dense")

    def __init__(
        self,
        t: float = 50.0,
        t_d: float = 0.0,
        kappa0: float = 0.0,
        *,
        method: str = "auto",
        krylov_tol: float | None = None,
        krylov_max_iter: int = 64,
        **kwargs: Any,
    ) -> None:
        super().__init__(t, t_d, kappa0, **kwargs)
        if method not in self.METHODS:
            raise ValueError(f"method must be one of {self.METHODS}, got {method!r}")
        self.method = method
        self.krylov_tol = krylov_tol
        self.krylov_max_iter = int(krylov_max_iter)

    def __repr__(self) -> str:
        return (
            f"OUExactSolver(t={self.t}, t_d={self.t_d}, kappa0={self.kappa0}, "
            f"method={self.method!r})"
        )

    def method_for(self, problem: LinearProblem) -> str:
        """The set-up used for ``problem``: "krylov", "gram", "lowrank" or "dense"."""
        if problem.S is None or not problem.damping > 0:
            if self.method in ("krylov", "gram", "lowrank"):
                raise ValueError(f"method {self.method!r} needs the factor S and damping > 0")
            return "dense"
        if self.method == "auto":
            return "krylov" if problem.S.shape[0] < problem.N else "dense"
        return self.method

    def _setup(self, problem: LinearProblem) -> tuple[Any, int]:
        method = self.method_for(problem)
        S, lam, g = problem.S, problem.damping, problem.g
        if method == "krylov":
            ou: Any = KrylovLowRankOU(S, lam, g, self.kappa0, factor=GramFactor(S, lam),
                                      tol=self.krylov_tol, max_iter=self.krylov_max_iter)
        elif method == "gram":
            ou = GramLowRankOU(S, lam, g, self.kappa0)
        elif method == "lowrank":
            ou = LowRankOU(S, lam, g, self.kappa0, dtype=problem.dtype)
        else:
            m = problem.N if (problem.F is None and problem.S is None) else 0
            return DenseOU(problem.dense(), g, self.kappa0, dtype=problem.dtype), m
        return ou, 0

    _SETUP_TYPES = {"krylov": KrylovLowRankOU, "gram": GramLowRankOU, "lowrank": LowRankOU,
                    "dense": DenseOU}

    def _reusable(self, setup: Any, problem: LinearProblem) -> bool:
        return (type(setup) is self._SETUP_TYPES[self.method_for(problem)]
                and setup.kappa0 == self.kappa0)

    def _evolve(self, problem, setup, x, h, gen):
        if isinstance(setup, KrylovLowRankOU):
            return setup.step(x, h, gen), 0
        if math.isinf(h):
            x = setup.x_star.clone()
            if self.kappa0 > 0:  # a stationary sample
                xi = torch.randn(x.shape, generator=gen, dtype=x.dtype, device=x.device)
                k0 = self.kappa0
                x = x + setup.apply_function(lambda a: ou_math.transition_std(a, h, k0), xi)
            return x, 0
        return setup.step(x, h, gen), 0

    def _solve(self, problem, x0, state):
        state = OUState.coerce(state)
        old = state.decomposition if state is not None else None
        before = (old.iterations, old.fallbacks) if isinstance(old, KrylovLowRankOU) else (0, 0)
        x, it, info = super()._solve(problem, x0, state)
        setups = [info["state"].decomposition, old]
        kry = [s for s in setups if isinstance(s, KrylovLowRankOU)]
        info["method"] = self.method_for(problem)
        info["krylov_iterations"] = sum(s.iterations for s in kry) - before[0]
        info["krylov_fallbacks"] = sum(s.fallbacks for s in kry) - before[1]
        return x, it, info


class EulerStepping:
    """What the Euler-simulated devices share (``ou-euler``, ``ou2-euler``): the step bound
    ``dt``, ``n = ceil(h/dt)`` equal steps per segment, and ``dt`` / ``n_steps`` in the info.
    Mixed in before the solver class."""

    dt: float

    def _set_dt(self, dt: float) -> None:
        self.dt = float(dt)
        if not (self.dt > 0 and math.isfinite(self.dt)):
            raise ValueError(f"dt must be positive and finite, got {dt}")

    def n_steps(self, h: float) -> int:
        """Euler steps for a segment of length h."""
        return max(1, math.ceil(h / self.dt - 1e-9))

    def _steps(self, step, y: Tensor, h: float, gen) -> tuple[Tensor, int]:
        """n_steps(h) steps of h/n: y ← step(y, h/n, gen); returns (y, n)."""
        n = self.n_steps(h)
        du = h / n
        for _ in range(n):
            y = step(y, du, gen)
        return y, n

    def _solve(self, problem, x0, state):
        x, it, info = super()._solve(problem, x0, state)  # type: ignore[misc]
        info["dt"] = self.dt
        info["n_steps"] = info["matvecs"]
        return x, info["matvecs"], info


class OUEulerSolver(EulerStepping, OUSolverBase):
    """Euler–Maruyama simulation of the device (the paper's): ``x ← x − δu (F̃x − g) +
    sqrt(2κ₀δu) ξ`` with one ``problem.matvec`` per step.

    A segment of length h runs ``n = ceil(h/δt)`` equal steps of h/n ≤ δt (so t = 50, δt = 0.1
    gives 500 products). Stable only for δt·λ_max(F̃) < 2; the caller's non-finite checks catch a
    blow-up. Weak order 1 in δt; with κ₀ = 0 the error against the exact flow is O(δt).
    """

    name = "ou-euler"

    def __init__(
        self,
        t: float = 50.0,
        t_d: float = 0.0,
        kappa0: float = 0.0,
        *,
        dt: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(t, t_d, kappa0, **kwargs)
        self._set_dt(dt)

    def __repr__(self) -> str:
        return f"OUEulerSolver(t={self.t}, t_d={self.t_d}, kappa0={self.kappa0}, dt={self.dt})"

    def _evolve(self, problem, setup, x, h, gen):
        em = EulerMaruyamaOU(problem.matvec, problem.g, self.kappa0, dtype=problem.dtype)
        return self._steps(em.step, x, h, gen)
