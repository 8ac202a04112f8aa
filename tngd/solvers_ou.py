"""OU-device solvers: the SPU's Ornstein–Uhlenbeck process as a linear solver for TNGD.

Registers two names with :func:`tngd.solvers.register_solver` on import:

* ``"ou-exact"`` (:class:`OUExactSolver`): exact OU transitions of ``A = λI + SᵀS`` (or a dense
  F̃): no discretisation error, O(N r) per transition after an O(N r²) set-up (the r×r Gram
  eigendecomposition of :class:`GramLowRankOU`, or :class:`tngd.surrogate.LowRankOU`'s SVD, or
  :class:`tngd.surrogate.DenseOU` when r ≥ N). With κ₀ = 0 and t → ∞ it returns F̃⁻¹g
  exactly (NGD); ``t = float("inf")`` is allowed.
* ``"ou-euler"`` (:class:`OUEulerSolver`): the paper's simulation, Euler–Maruyama with step δt
  (default 0.1τ), matrix-free through ``problem.matvec`` (one F̃ product per step).

Time is dimensionless (units of τ). The device obeys ``dx = −(A x − b) du + sqrt(2κ₀) dW`` with
A = F̃ = F + λI and b = g.

**Run of one iteration (both solvers).** ``solve(problem, x0, state)`` runs the device for a total
time ``t`` starting from

* ``x0`` when given (the optimizer passes its previous output g̃ for a warm start, or g_k for a
  reset);
* else ``state["x"]`` (the device's end state of the previous call: a warm start);
* else ``problem.g`` (the paper's first start g̃₀ = g₀).

**Delay t_d** (0 ≤ t_d ≤ t; 0 is the synchronous loop): the new system (A_k, g_k) reaches the
device t_d after the iteration starts. Meanwhile the device keeps evolving under the PREVIOUS
system (A_{k−1}, g_{k−1}), kept in ``state["prev"]``; it then evolves under the new system for the
remaining ``t − t_d``. At the first call there is no previous system: the device is held at its
start state during the delay (nothing programmed yet) and then runs ``t − t_d`` under the new
one. A reset start (x0 = g_k) is applied at the start of the iteration, before the delay.

The returned ``SolveResult.x`` is the device state at the end (the estimate of F̃⁻¹g);
``info["state"]`` = ``{"x": x, "prev": problem, "cache": {...}}`` (the cache holds the new
system's decomposition, reused when it acts as the previous one) is what to pass as ``state``
next time.
Diagnostics in ``info``: ``matvecs`` (F̃ products used by the dynamics, not counting the residual
check), ``t``, ``t_d``, ``kappa0``, ``segments`` (the (system, duration) pieces that were run),
and for Euler ``n_steps`` and ``dt``. ``SolveResult.residual`` is ‖F̃x − g‖/‖g‖ for the new
system; ``time_s`` the wall time.

Randomness (κ₀ > 0) comes only from the solver's ``torch.Generator`` (``generator=`` or built
from ``seed=`` on first use on the problem's device; with neither, torch's global RNG).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from tngd.solvers import LinearProblem, Solver, register_solver
from tngd.surrogate import DenseOU, EulerMaruyamaOU, LowRankOU

__all__ = ["GramLowRankOU", "OUEulerSolver", "OUExactSolver", "OUSolverBase"]


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

    # ---------------------------------------------------------------- the run

    def _start(self, problem: LinearProblem, x0: Tensor | None, state: Any) -> Tensor:
        if x0 is None and isinstance(state, dict):
            x0 = state.get("x")
        if x0 is None:
            x0 = problem.g
        x0 = torch.as_tensor(x0).to(dtype=problem.dtype, device=problem.device)
        if x0.shape != (problem.N,):
            raise ValueError(f"start state must be ({problem.N},), got {tuple(x0.shape)}")
        return x0.clone()

    def _evolve(
        self, problem: LinearProblem, x: Tensor, h: float, gen: torch.Generator | None, cache: dict
    ) -> tuple[Tensor, int]:
        """Evolve x for time h > 0 under ``problem``; returns (x, matvecs)."""
        raise NotImplementedError

    def _solve(self, problem, x0, state):
        prev = state.get("prev") if isinstance(state, dict) else None
        x = self._start(problem, x0, state)
        gen = self._generator(problem.device) if self.kappa0 > 0 else None
        cache: dict = state.get("cache", {}) if isinstance(state, dict) else {}
        segments: list[tuple[str, float]] = []
        matvecs = 0
        new_cache: dict = {}
        if self.t_d > 0:
            if prev is not None:
                x, m = self._evolve(prev, x, self.t_d, gen, cache)
                matvecs += m
                segments.append(("previous", self.t_d))
            else:
                segments.append(("hold", self.t_d))
        rest = self.t - self.t_d
        if rest > 0:
            x, m = self._evolve(problem, x, rest, gen, new_cache)
            matvecs += m
            segments.append(("current", rest))
        info: dict[str, Any] = {
            "matvecs": matvecs,
            "t": self.t,
            "t_d": self.t_d,
            "kappa0": self.kappa0,
            "segments": segments,
            "state": {"x": x, "prev": problem, "cache": new_cache},
        }
        return x, None, info


class GramLowRankOU:
    """Exact OU transitions for ``A = λI + SᵀS`` from the r×r Gram matrix (no SVD of S).

    With ``K = S Sᵀ = U diag(μ) Uᵀ`` (one ``eigh``, float64) every matrix function is

        f(A) v = f(λ) v + Sᵀ U diag(q(μ)) Uᵀ S v,    q(μ) = (f(λ + μ) − f(λ)) / μ   (q = 0 at μ = 0)

    (exact: Sᵀ q(SSᵀ) S = q(SᵀS) SᵀS = f(A) − f(λ)I). Set-up O(r² N + r³), the cost of
    NGD-Woodbury, and two products with S per function application; the singular vectors V of S
    are never formed, so no orthogonality is lost for small singular values. Same transition
    law as :class:`tngd.surrogate.LowRankOU` (whose SVD of a wide S is ~10× slower on CPU).
    """

    def __init__(self, S: Tensor, lam: float, b: Tensor, kappa0: float, dtype=None) -> None:
        if S.ndim != 2:
            raise ValueError("S must be r×N")
        if not lam > 0:
            raise ValueError("lam must be > 0")
        dtype = dtype or S.dtype
        S64 = S.to(torch.float64)
        mu, U = torch.linalg.eigh(S64 @ S64.T)
        self._mu64 = mu.clamp_min(0.0)
        self.lam = float(lam)
        self.kappa0 = float(kappa0)
        self.n = S.shape[1]
        self.S = S.to(dtype)
        self.U = U.to(dtype)
        self.b = b.to(dtype)
        self.x_star = self.apply_function(lambda a: 1.0 / a, self.b)

    @property
    def dtype(self) -> torch.dtype:
        return self.S.dtype

    def _coeffs(self, fn) -> tuple[float, Tensor]:
        lam64 = torch.tensor(self.lam, dtype=torch.float64, device=self._mu64.device)
        f_lam = fn(lam64)
        mu = self._mu64
        pos = mu > 0
        q = torch.where(pos, (fn(lam64 + mu) - f_lam) / torch.where(pos, mu, 1.0), 0.0)
        return float(f_lam), q.to(self.dtype)

    def apply_function(self, fn, v: Tensor) -> Tensor:
        """``f(A) v`` for v of shape (..., N); fn maps a float64 tensor of eigenvalues."""
        f_lam, q = self._coeffs(fn)
        w = (v @ self.S.T) @ self.U  # (..., r)
        return f_lam * v + ((q * w) @ self.U.T) @ self.S

    def step(self, x: Tensor, h: float, generator: torch.Generator | None = None) -> Tensor:
        """One exact transition of length h: mean x* + e^{−Ah}(x − x*), covariance
        κ₀ A⁻¹ (I − e^{−2Ah})."""
        x = self.x_star + self.apply_function(lambda a: torch.exp(-a * h), x - self.x_star)
        if self.kappa0 > 0:
            xi = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            k0 = self.kappa0
            x = x + self.apply_function(lambda a: torch.sqrt(k0 * -torch.expm1(-2 * a * h) / a), xi)
        return x


class OUExactSolver(OUSolverBase):
    """Exact OU transitions of F̃ = λI + SᵀS for time t (see the module docstring).

    ``method``:

    * ``"auto"`` (default): ``"gram"`` when the problem has the factor S with r < N and λ > 0,
      else ``"dense"``;
    * ``"gram"``: :class:`GramLowRankOU` (eigh of the r×r Gram SSᵀ, O(r²N));
    * ``"lowrank"``: :class:`tngd.surrogate.LowRankOU` (thin SVD of S, O(r²N) but slow on CPU);
    * ``"dense"``: :class:`tngd.surrogate.DenseOU` on ``problem.dense()`` (eigh of the N×N F̃,
      the cheapest when r ≥ N; from a matvec alone forming F̃ costs N products).

    One decomposition per system: the previous system's is kept in the state for the delay. At
    most two exact transitions per call (one without delay), so the result has the exact law of
    x(t) for any t; with κ₀ = 0 and t = ∞ it is F̃⁻¹g. ``info["matvecs"]`` is 0 except for a
    dense F̃ built from a matvec (N products).
    """

    name = "ou-exact"
    _allow_inf = True
    METHODS = ("auto", "gram", "lowrank", "dense")

    def __init__(
        self,
        t: float = 50.0,
        t_d: float = 0.0,
        kappa0: float = 0.0,
        *,
        method: str = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(t, t_d, kappa0, **kwargs)
        if method not in self.METHODS:
            raise ValueError(f"method must be one of {self.METHODS}, got {method!r}")
        self.method = method

    def __repr__(self) -> str:
        return (
            f"OUExactSolver(t={self.t}, t_d={self.t_d}, kappa0={self.kappa0}, "
            f"method={self.method!r})"
        )

    def method_for(self, problem: LinearProblem) -> str:
        """The decomposition used for ``problem``: "gram", "lowrank" or "dense"."""
        if problem.S is None or not problem.damping > 0:
            if self.method in ("gram", "lowrank"):
                raise ValueError(f"method {self.method!r} needs the factor S and damping > 0")
            return "dense"
        if self.method == "auto":
            return "gram" if problem.S.shape[0] < problem.N else "dense"
        return self.method

    def _ou(self, problem: LinearProblem, cache: dict) -> tuple[Any, int]:
        if "ou" in cache:
            return cache["ou"], 0
        method = self.method_for(problem)
        m = 0
        if method == "gram":
            ou: Any = GramLowRankOU(problem.S, problem.damping, problem.g, self.kappa0)
        elif method == "lowrank":
            ou = LowRankOU(problem.S, problem.damping, problem.g, self.kappa0, dtype=problem.dtype)
        else:
            m = problem.N if (problem.F is None and problem.S is None) else 0
            ou = DenseOU(problem.dense(), problem.g, self.kappa0, dtype=problem.dtype)
        cache["ou"] = ou
        return ou, m

    def _evolve(self, problem, x, h, gen, cache):
        ou, m = self._ou(problem, cache)
        if math.isinf(h):
            x = ou.x_star.clone()
            if self.kappa0 > 0:  # a stationary sample
                xi = torch.randn(x.shape, generator=gen, dtype=x.dtype, device=x.device)
                x = x + ou.apply_function(lambda a: torch.sqrt(self.kappa0 / a), xi)
            return x, m
        return ou.step(x, h, gen), m


class OUEulerSolver(OUSolverBase):
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
        self.dt = float(dt)
        if not (self.dt > 0 and math.isfinite(self.dt)):
            raise ValueError(f"dt must be positive and finite, got {dt}")

    def __repr__(self) -> str:
        return f"OUEulerSolver(t={self.t}, t_d={self.t_d}, kappa0={self.kappa0}, dt={self.dt})"

    def n_steps(self, h: float) -> int:
        """Euler steps for a segment of length h."""
        return max(1, math.ceil(h / self.dt - 1e-9))

    def _evolve(self, problem, x, h, gen, cache):
        n = self.n_steps(h)
        em = EulerMaruyamaOU(problem.matvec, problem.g, self.kappa0, dtype=problem.dtype)
        du = h / n
        for _ in range(n):
            x = em.step(x, du, gen)
        return x, n

    def _solve(self, problem, x0, state):
        x, it, info = super()._solve(problem, x0, state)
        info["dt"] = self.dt
        info["n_steps"] = info["matvecs"]
        return x, info["matvecs"], info


register_solver("ou-exact", OUExactSolver)
register_solver("ou-euler", OUEulerSolver)
