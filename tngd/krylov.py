"""Exact OU transitions of ``A = λI + SᵀS`` at the cost of a Woodbury solve (Krylov in r-space).

Every matrix function the transition needs is ``f(A) v = f(λ) v + Sᵀ q_f(K) S v`` with
``K = SSᵀ`` and ``q_f(μ) = (f(λ+μ) − f(λ))/μ`` (:func:`spu_circuits.ou_math.divided_difference`).
Instead of an eigendecomposition of K (r³ work, several times a Cholesky), ``q_f(K) w`` is
evaluated by the Lanczos method in r-space, each step O(r²), on one of two operators:

* K itself (a matrix-vector product): for the decay e^{−Ah} the number of steps grows like
  sqrt(μ_max h);
* the shift-and-invert ``M = λ(λI + K)⁻¹`` (two triangular solves with the Cholesky factor of
  λI + K that the Woodbury solve computes anyway, :class:`tngd.gram.GramFactor`): eigenvalues
  ξ = λ/(λ+μ) ∈ (0, 1], the steps grow like sqrt(μ_max/λ), independent of h.

When λh < 1 the first is tried with a budget of 32 steps (enough when μ_max·h is small: 18
steps on the MNIST CNN at batch 64, t = 50τ); otherwise, or when that budget runs out, the
second (34 steps where K needed 68: an MLP with MSE, μ_max = 39, t = 50τ). The decay
e^{−λh/ξ} is smooth in ξ down to ξ = 0, so the shift-invert route does not slow down with the
spread of K the way the sqrt(μ_max/λ) count for an analytic function would suggest.

:func:`lanczos_function` stops when successive approximations (tested every second step)
agree to ``tol`` twice in a row, or at an invariant subspace (exact). When it has not converged
after ``max_iter`` steps the function is evaluated exactly from K's eigendecomposition instead
(counted in ``fallbacks``), so the result always has the exact law.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg as sla
import torch
from torch import Tensor

from spu_circuits import ou_math
from tngd.gram import GramFactor
from tngd.ou_base import Generator, OUBase

__all__ = ["KrylovLowRankOU", "LanczosResult", "lanczos_function"]

F64 = torch.float64

#: Lanczos steps on K itself before the shift-invert operator is tried (see the module doc)
PLAIN_BUDGET = 32


@dataclass(frozen=True)
class LanczosResult:
    """y ≈ f(M) w (float64, (r,), numpy or torch like w); iterations = operator products;
    converged: the stopping test was met (or an invariant subspace was found)."""

    y: Any
    iterations: int
    converged: bool


def lanczos_function(
    matvec: Callable[[Any], Any],
    w: Any,
    f_of_eig: Callable[[np.ndarray], np.ndarray],
    *,
    tol: float = 1e-13,
    max_iter: int = 64,
) -> LanczosResult:
    """f(M) w for an SPD operator M (``matvec``: (r,) float64 → (r,)) by Lanczos.

    w and matvec work on numpy arrays or on torch tensors (any device); numpy on the CPU keeps
    the per-step overhead at a few µs. With the Lanczos basis Q_m and tridiagonal
    T_m = Y diag(θ) Yᵀ: f(M) w ≈ ‖w‖ Q_m Y f(θ) Y[0]. Full re-orthogonalisation (m ≤ max_iter
    vectors). ``f_of_eig`` maps the Ritz values θ (numpy float64) to f(θ).
    """
    xp = ou_math.namespace(w)
    beta0 = math.sqrt(float(w @ w))
    r = w.shape[0]
    if beta0 == 0.0 or r == 0:
        return LanczosResult(w * 0.0, 0, True)
    m_max = max(1, min(int(max_iter), r))
    if xp is np:
        Q = np.empty((m_max, r))
    else:
        Q = torch.empty(m_max, r, dtype=F64, device=w.device)
    Q[0] = w / beta0
    alphas: list[float] = []
    betas: list[float] = []
    prev: np.ndarray | None = None
    agreed = 0
    coef = np.zeros(1)
    a_max = 0.0
    for j in range(m_max):
        q = Q[j]
        u = matvec(q)
        a = float(u @ q)
        alphas.append(a)
        a_max = max(a_max, abs(a))
        u = u - a * q
        if j > 0:
            u = u - betas[-1] * Q[j - 1]
        Qj = Q[: j + 1]
        u = u - (Qj @ u) @ Qj  # full re-orthogonalisation (the recurrence was the first pass)
        b = math.sqrt(float(u @ u))
        m = j + 1
        invariant = b <= 1e-14 * max(a_max, 1e-300)
        last = invariant or m == r or m == m_max
        if last or m <= 2 or m % 2 == 0:  # test every second step (the test costs m²)
            theta, Y = sla.eigh_tridiagonal(np.array(alphas), np.array(betas),
                                            check_finite=False)
            coef = beta0 * (Y @ (f_of_eig(theta) * Y[0]))
            if prev is not None:
                d = coef.copy()
                d[: prev.shape[0]] -= prev
                agreed = agreed + 1 if np.linalg.norm(d) <= tol * np.linalg.norm(coef) else 0
            prev = coef
            if invariant or agreed >= 2 or m == r:
                return LanczosResult(_combine(Q[:m], coef), m, True)
            if m == m_max:
                break
        betas.append(b)
        Q[j + 1] = u / b
    return LanczosResult(_combine(Q[: len(alphas)], coef), len(alphas), False)


def _combine(Q, coef: np.ndarray):
    if isinstance(Q, np.ndarray):
        return coef @ Q
    return torch.as_tensor(coef, dtype=F64, device=Q.device) @ Q


class KrylovLowRankOU(OUBase):
    """Exact OU transitions for ``A = λI + SᵀS`` from one Cholesky of λI + SSᵀ.

    x* = A⁻¹b by Woodbury; a transition of length h is
    ``x* + e^{−λh} d + Sᵀ q_decay(K) S d (+ noise)`` with d = x − x*, ``q_decay(K) S d`` by
    :func:`lanczos_function` on K or on ``M = λ(λI+K)⁻¹``; the noise
    ``√(κ₀(1 − e^{−2Ah})/A) ξ`` the same way, and a stationary sample (h = ∞) exactly as
    ``x* + √κ₀ A⁻¹(√λ ξ + Sᵀ ζ)`` (ξ ∈ R^N, ζ ∈ R^r standard normal: covariance κ₀A⁻¹).

    Args:
        S: (r, N); lam: λ > 0; b: (N,); kappa0: κ₀ ≥ 0.
        factor: a :class:`GramFactor` of (S, λ) to reuse (else built here).
        tol: Lanczos tolerance (default 1e-13 for float64 S, 1e-7 otherwise).
        max_iter: Lanczos steps before the exact eigendecomposition takes over (default 64).
    Counters ``iterations`` (operator products, all calls) and ``fallbacks``.
    """

    def __init__(
        self, S: Tensor, lam: float, b: Tensor, kappa0: float, *,
        factor: GramFactor | None = None, tol: float | None = None, max_iter: int = 64,
    ) -> None:
        if S.ndim != 2:
            raise ValueError("S must be r×N")
        if not float(kappa0) >= 0:
            raise ValueError("kappa0 must be ≥ 0")
        self.factor = factor if factor is not None else GramFactor(S, lam)
        self.S = S
        self.lam = float(lam)
        self.kappa0 = float(kappa0)
        self.n = S.shape[1]
        self.b = torch.as_tensor(b).to(dtype=S.dtype, device=S.device).reshape(self.n)
        self.tol = float(tol) if tol is not None else (1e-13 if S.dtype == F64 else 1e-7)
        self.max_iter = int(max_iter)
        self.iterations = 0
        self.fallbacks = 0
        self._np_ops: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.x_star = self.factor.solve(self.b)

    def _f_lam(self, fn: Callable[[Tensor], Tensor]) -> float:
        return float(fn(torch.tensor(self.lam, dtype=F64)))

    def _operator(self, shift_invert: bool) -> Callable:
        """K· or λ(λI+K)⁻¹· on numpy arrays (CPU) or torch tensors (other devices)."""
        fac = self.factor
        if fac.K.device.type != "cpu":
            return fac.shift_invert if shift_invert else (lambda v: fac.K @ v)
        if self._np_ops is None:
            self._np_ops = (fac.K.numpy(), fac.L.numpy(), fac.L.T.numpy())
        K, L, LT = self._np_ops
        if not shift_invert:
            return lambda v: K @ v
        lam = self.lam

        def si(v):
            y = sla.solve_triangular(L, v, lower=True, check_finite=False)
            return lam * sla.solve_triangular(LT, y, lower=False, check_finite=False)

        return si

    def q_apply(
        self, fn: Callable, w: Tensor, h: float = math.inf, *, numpy_fn: bool = False
    ) -> Tensor:
        """``q_f(K) w`` (float64 (r,)) for f given on A's eigenvalues (float64 tensors, or numpy
        arrays too when ``numpy_fn``); h: the time scale of f (picks the Lanczos operator, see
        the module docstring)."""
        lam = self.lam
        w64 = w.to(F64)
        cpu = w64.device.type == "cpu"
        # K first when λh < 1 (cheapest when μ_max·h is small), with a budget of 32 steps;
        # then the shift-invert operator; then the exact eigendecomposition
        plan = [(False, min(PLAIN_BUDGET, self.max_iter))] if lam * h < 1.0 else []
        plan.append((True, self.max_iter))
        for shift_invert, budget in plan:

            def f_of_eig(theta: np.ndarray, si: bool = shift_invert) -> np.ndarray:
                mu = np.maximum(lam * (1.0 / theta - 1.0) if si else theta, 0.0)
                if numpy_fn:
                    return ou_math.divided_difference(fn, lam, mu)
                return ou_math.divided_difference(fn, lam, torch.as_tensor(mu)).numpy()

            res = lanczos_function(self._operator(shift_invert), w64.numpy() if cpu else w64,
                                   f_of_eig, tol=self.tol, max_iter=budget)
            self.iterations += res.iterations
            if res.converged:
                return torch.from_numpy(res.y) if cpu else res.y
        self.fallbacks += 1
        mu, U = self.factor.eigh()
        q = ou_math.divided_difference(fn, lam, mu)
        return U @ (q * (U.T @ w.to(F64)))

    def _apply_rows(self, fn, v: Tensor, h: float = math.inf, numpy_fn: bool = False) -> Tensor:
        """Sᵀ q_f(K) S v for v (..., N) (row by row)."""
        flat = v.reshape(-1, self.n)
        W = flat @ self.S.T  # (m, r)
        if flat.shape[0]:
            C = torch.stack([self.q_apply(fn, w, h, numpy_fn=numpy_fn) for w in W])
        else:
            C = W.to(F64)
        return (C.to(dtype=self.S.dtype, device=self.S.device) @ self.S).reshape(v.shape)

    def apply_function(
        self, fn: Callable[[Tensor], Tensor], v: Tensor, h: float = math.inf
    ) -> Tensor:
        """``f(A) v`` for v of shape (..., N); fn maps a float64 tensor of eigenvalues; h: its
        time scale (a hint for the Lanczos operator; any value gives the same result)."""
        return self._f_lam(fn) * v + self._apply_rows(fn, v, h)

    def step(self, x: Tensor, h: float, generator: Generator = None) -> Tensor:
        """One exact transition of length h (h = ∞: a stationary sample)."""
        if math.isinf(h):
            return self.stationary_sample(x.shape, generator)
        d = x - self.x_star
        e_lam = math.exp(-self.lam * h)
        out = self.x_star.expand(d.shape).clone()
        if e_lam > 1e-18:  # else ‖e^{−Ah} d‖ ≤ e^{−λh}‖d‖ is below round-off
            dec = self._apply_rows(lambda a: ou_math.decay(a, h), d, h, numpy_fn=True)
            out = out + e_lam * d + dec
        if self.kappa0 > 0:
            xi = self._randn(x.shape, generator)
            std = lambda a: ou_math.transition_std(a, h, self.kappa0)  # noqa: E731
            out = out + self._f_lam(std) * xi + self._apply_rows(std, xi, h, numpy_fn=True)
        return out

    def stationary_sample(self, shape, generator: Generator = None) -> Tensor:
        """x* + √κ₀ A⁻¹(√λ ξ + Sᵀ ζ): exact draws of N(x*, κ₀A⁻¹), shape (..., N)."""
        out = self.x_star.expand(shape).clone()
        if self.kappa0 == 0:
            return out
        xi = self._randn(shape, generator)
        zeta = self._randn((*shape[:-1], self.factor.r), generator)
        u = math.sqrt(self.lam) * xi + zeta @ self.S
        rows = [self.factor.solve(v) for v in u.reshape(-1, self.n)]
        return out + math.sqrt(self.kappa0) * torch.stack(rows).reshape(shape)
