"""The coupled-oscillator (second-order) SPU as a linear solver for TNGD: ``"ou2-exact"``.

The device obeys, in units of τ (``tngd.surrogate_second_order``),

    dx = v du,    dv = −(F̃ x − g) du − γ v du + sqrt(2γκ₀) dW,

whose x settles to F̃⁻¹g in ~√κ·ln(1/ε) instead of the first order's ~κ·ln(1/ε) (DESIGN §7).
:class:`OU2ExactSolver` (``"ou2-exact"``) runs it for time t with exact transitions (no
discretisation error):
:class:`~tngd.surrogate_second_order.LowRankOU2` (r×r Gram, O(N r) per transition) when the
problem has the factor S with r < N, else :class:`~tngd.surrogate_second_order.DenseOU2`.
:class:`OU2EulerSolver` (``"ou2-euler"``) simulates it with Euler steps instead, one
``problem.matvec`` each (the second-order twin of ``ou-euler``).

State and start (as for ``ou-exact``, with the velocity added): the run starts from ``x0`` when
given, else ``state["x"]``, else g; the velocity continues from ``state["v"]`` when the start is
the device's own end state (a warm start of the whole state (x, v)), else it starts at 0 (a
reset). The delay t_d runs under the previous system first. ``info["state"]`` is an
:class:`OU2State` (x, v, the system programmed last and its set-up); ``save_state`` /
``load_state`` turn it into plain tensors and back (the optimizer's state_dict round trip).

γ: a number, or None for 2√λ_min(F̃) of each system (λ_min = λ when r < N, else λ + μ_min(SSᵀ);
a dense F̃ by eigvalsh): the slowest mode critically damped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from tngd.solvers import REGISTRY, LinearProblem, register_solver
from tngd.solvers_ou import EulerStepping, OUSolverBase
from tngd.surrogate_second_order import DenseOU2, EulerOU2, LowRankOU2

__all__ = ["OU2EulerSolver", "OU2ExactSolver", "OU2State", "default_gamma"]


@dataclass
class OU2State:
    """The second-order device between two solves: x and v (N,) at the end of the last solve,
    the system programmed last (it acts during the next delay) and its set-up (never saved)."""

    x: Tensor
    v: Tensor
    prev: LinearProblem | None = None
    decomposition: Any = None

    def to_dict(self) -> dict[str, Any]:
        """x, v and prev as tensors (``torch.save``-able); ValueError for a matrix-free prev."""
        prev = None if self.prev is None else self.prev.to_dict()
        return {"x": self.x, "v": self.v, "prev": prev}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, like: Tensor | None = None) -> OU2State:
        def cast(t):
            return t if like is None or t is None else t.to(dtype=like.dtype, device=like.device)

        prev = d.get("prev")
        if isinstance(prev, Mapping):
            prev = LinearProblem.from_dict(prev, like=like)
        return cls(x=cast(d["x"]), v=cast(d["v"]), prev=prev)

    @classmethod
    def coerce(cls, state: Any) -> OU2State | None:
        """An OU2State from an OU2State, None, or a mapping {"x", "v"?, "prev"?}; a first-order
        state (x, prev: no velocity) starts the velocity at 0."""
        if state is None or isinstance(state, OU2State):
            return state
        if isinstance(state, Mapping):
            x = state.get("x")
            v = state.get("v")
            return cls(x=x, v=torch.zeros_like(x) if v is None and x is not None else v,
                       prev=state.get("prev"), decomposition=state.get("cache"))
        if hasattr(state, "x"):  # tngd.solvers_ou.OUState
            return cls(x=state.x, v=torch.zeros_like(state.x), prev=getattr(state, "prev", None))
        raise TypeError(f"state must be an OU2State, got {type(state).__name__}")


def default_gamma(problem: LinearProblem) -> float:
    """2√λ_min(F̃) of ``problem`` (float64)."""
    lam = problem.damping
    if problem.S is not None and problem.S.shape[0] < problem.N:
        lam_min = lam
    elif problem.S is not None:
        S64 = problem.S.to(torch.float64)
        lam_min = lam + max(float(torch.linalg.eigvalsh(S64 @ S64.T)[0]), 0.0)
    else:
        lam_min = float(torch.linalg.eigvalsh(problem.dense().to(torch.float64))[0])
    if not lam_min > 0:
        raise ValueError(f"F̃ must be positive definite for the oscillator (λ_min = {lam_min:.3g})")
    return 2.0 * math.sqrt(lam_min)


class OU2ExactSolver(OUSolverBase):
    """Exact second-order device runs of length t (see the module docstring).

    Args (besides those of :class:`~tngd.solvers_ou.OUSolverBase`: t, t_d, kappa0, seed,
    generator): gamma (None: 2√λ_min(F̃) per system); method "auto" | "gram" | "dense".
    """

    name = "ou2-exact"
    _allow_inf = True
    METHODS = ("auto", "gram", "dense")

    def __init__(self, t: float = 10.0, t_d: float = 0.0, kappa0: float = 0.0, *,
                 gamma: float | None = None, method: str = "auto", **kwargs: Any) -> None:
        super().__init__(t, t_d, kappa0, **kwargs)
        if gamma is not None and not (math.isfinite(float(gamma)) and float(gamma) > 0):
            raise ValueError(f"gamma must be positive and finite, got {gamma!r}")
        if method not in self.METHODS:
            raise ValueError(f"method must be one of {self.METHODS}, got {method!r}")
        self.gamma = None if gamma is None else float(gamma)
        self.method = method

    def __repr__(self) -> str:
        return (f"OU2ExactSolver(t={self.t}, t_d={self.t_d}, kappa0={self.kappa0}, "
                f"gamma={self.gamma}, method={self.method!r})")

    def method_for(self, problem: LinearProblem) -> str:
        if problem.S is None or not problem.damping > 0:
            if self.method == "gram":
                raise ValueError("method 'gram' needs the factor S and damping > 0")
            return "dense"
        if self.method == "auto":
            return "gram" if problem.S.shape[0] < problem.N else "dense"
        return self.method

    def save_state(self, state: Any) -> dict[str, Any] | None:
        state = OU2State.coerce(state)
        return None if state is None else state.to_dict()

    def load_state(self, saved: Mapping[str, Any] | None, *, like: Tensor) -> OU2State | None:
        return None if saved is None else OU2State.from_dict(saved, like=like)

    def _device(self, problem: LinearProblem, cache: dict):
        if "ou2" in cache:
            return cache["ou2"], 0
        gamma = self.gamma if self.gamma is not None else default_gamma(problem)
        if self.method_for(problem) == "gram":
            dev: Any = LowRankOU2(problem.S, problem.damping, problem.g, gamma, self.kappa0,
                                  dtype=problem.dtype)
            m = 0
        else:
            m = problem.N if (problem.F is None and problem.S is None) else 0
            dev = DenseOU2(problem.dense(), problem.g, gamma, self.kappa0, dtype=problem.dtype,
                           device=problem.device)
        cache["ou2"] = dev
        return dev, m

    def _evolve2(self, problem, y: Tensor, h: float, gen, cache) -> tuple[Tensor, int]:
        dev, m = self._device(problem, cache)
        if math.isinf(h):
            out = dev.y_star.to(y.dtype).clone()
            if self.kappa0 > 0:  # a stationary sample: x ~ N(x*, κ₀F̃⁻¹), v ~ N(0, κ₀I)
                n = problem.N
                xi = torch.randn(y.shape, generator=gen, dtype=y.dtype, device=y.device)
                if isinstance(dev, LowRankOU2):
                    k0 = self.kappa0
                    out[:n] += dev.apply(lambda a: torch.sqrt(k0 / a), xi[:n])
                else:
                    L = torch.linalg.cholesky(dev.Sigma64[:n, :n]).to(y.dtype)
                    out[:n] += L @ xi[:n]
                out[n:] += math.sqrt(self.kappa0) * xi[n:]
            return out, m
        return dev.step(y, h, gen), m

    def _solve(self, problem, x0, state):
        st = OU2State.coerce(state)
        prev = st.prev if st is not None else None
        if x0 is None and st is not None:
            x0 = st.x
        x = self._start(problem, x0, None)
        warm = (st is not None and st.v is not None and st.x is not None
                and st.x.shape == x.shape and torch.equal(st.x.to(x), x))
        v = st.v.to(x).clone() if warm else torch.zeros_like(x)
        y = torch.cat([x, v])
        gen = self._generator(problem.device) if self.kappa0 > 0 else None
        cache = (st.decomposition if st is not None and isinstance(st.decomposition, dict)
                 else {})
        new_cache: dict = {}
        segments: list[tuple[str, float]] = []
        matvecs = 0
        if self.t_d > 0:
            if prev is not None:
                y, m = self._evolve2(prev, y, self.t_d, gen, cache)
                matvecs += m
                segments.append(("previous", self.t_d))
            else:
                segments.append(("hold", self.t_d))
        rest = self.t - self.t_d
        if rest > 0:
            y, m = self._evolve2(problem, y, rest, gen, new_cache)
            matvecs += m
            segments.append(("current", rest))
        n = problem.N
        x, v = y[:n].contiguous(), y[n:].contiguous()
        dev = new_cache.get("ou2")
        info: dict[str, Any] = {
            "matvecs": matvecs, "t": self.t, "t_d": self.t_d, "kappa0": self.kappa0,
            "gamma": None if dev is None else dev.gamma, "segments": segments,
            "warm_velocity": warm,
            "state": OU2State(x=x, v=v, prev=problem, decomposition=new_cache),
        }
        return x, None, info


class OU2EulerSolver(EulerStepping, OU2ExactSolver):
    """Euler simulation of the second-order device (the first order's ``ou-euler``, one
    ``problem.matvec`` per step): semi-implicit Euler–Maruyama
    (:class:`~tngd.surrogate_second_order.EulerOU2`), ``v ← v − δ(F̃x − g + γv) +
    sqrt(2γκ₀δ) ξ``, then ``x ← x + δv``.

    A segment of length h runs ``n = ceil(h/dt)`` equal steps of h/n ≤ dt. Stable for
    dt·sqrt(λ_max(F̃)) < 2 and dt·γ < 2; weak order 1, and with κ₀ = 0 the error against
    ``ou2-exact`` is O(dt). γ, warm start (x and v), delay and state as in ``ou2-exact``;
    t must be finite. For a matrix-free problem pass γ (its default 2√λ_min needs F̃ dense).
    """

    name = "ou2-euler"
    _allow_inf = False

    def __init__(self, t: float = 10.0, t_d: float = 0.0, kappa0: float = 0.0, *,
                 gamma: float | None = None, dt: float = 0.1, **kwargs: Any) -> None:
        super().__init__(t, t_d, kappa0, gamma=gamma, **kwargs)
        self._set_dt(dt)

    def __repr__(self) -> str:
        return (f"OU2EulerSolver(t={self.t}, t_d={self.t_d}, kappa0={self.kappa0}, "
                f"gamma={self.gamma}, dt={self.dt})")

    def _evolve2(self, problem, y: Tensor, h: float, gen, cache) -> tuple[Tensor, int]:
        if "ou2" not in cache:
            gamma = self.gamma if self.gamma is not None else default_gamma(problem)
            cache["ou2"] = EulerOU2(problem.matvec, problem.g, gamma, self.kappa0,
                                    dtype=problem.dtype)
        return self._steps(cache["ou2"].step, y, h, gen)


if "ou2-exact" not in REGISTRY:  # registries without the lazy entry (older tngd.solvers)
    register_solver("ou2-exact", OU2ExactSolver)
