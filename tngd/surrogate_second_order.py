"""Torch surrogates of the coupled-oscillator SPU (second order, underdamped Langevin).

Convention (``spu_circuits.theory_second_order``). Time u = t/τ; state ``y = (x, v)``, shape
``(..., 2N)`` (x first):

    dx = v du,     dv = −(A x − b) du − γ v du + sqrt(2γκ₀) dW.

Stationary law x ~ N(A⁻¹b, κ₀A⁻¹), v ~ N(0, κ₀I), independent.

* :class:`DenseOU2` — exact transitions for a dense A: ``e^{Mh}`` by ``torch.linalg.matrix_exp``
  of the 2N×2N drift and the transition covariance ``Σ − e^{Mh} Σ e^{Mᵀh}`` (Σ the solution of
  the Lyapunov equation M Σ + Σ Mᵀ + BBᵀ = 0, diag(κ₀A⁻¹, κ₀I)); O(N²) per transition.
* :class:`LowRankOU2` — exact transitions for ``A = λI + SᵀS``: every eigenmode is an
  independent 2×2 system, so each transition is four scalar functions of A applied through the
  r×r Gram eigendecomposition ``SSᵀ = U diag(μ) Uᵀ``: O(N r) per transition after O(N r²).
* :class:`EulerOU2` — matrix-free Euler-type integration (semi-implicit: v, then x with the new
  v), one product with A per step: the paper's kind of simulation, for comparison.
* :func:`run_interpolated2` / :func:`run_held2` — exact integration of given interpolated
  (linear, as ngspice's filesource) or held (zero-order hold) noise samples, for pathwise checks.

Set-up in float64; results cast to the working dtype. Randomness only from a torch.Generator.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from tngd.ou_base import TensorState

__all__ = ["DenseOU2", "EulerOU2", "LowRankOU2", "mode_exp", "run_held2", "run_interpolated2"]

Generator = torch.Generator | None


def _check(gamma: float, kappa0: float) -> tuple[float, float]:
    g, k = float(gamma), float(kappa0)
    if not (math.isfinite(g) and g > 0):
        raise ValueError(f"gamma must be positive and finite, got {gamma!r}")
    if not (math.isfinite(k) and k >= 0):
        raise ValueError(f"kappa0 must be finite and ≥ 0, got {kappa0!r}")
    return g, k


def _sinhc(z: Tensor) -> Tensor:
    """sinh(√z)/√z (z ≥ 0), sin(√−z)/√−z (z < 0); series near 0."""
    small = z.abs() < 1e-2
    zs = torch.where(small, z, torch.zeros_like(z))
    ser = 1 + zs / 6 * (1 + zs / 20 * (1 + zs / 42 * (1 + zs / 72)))
    zl = torch.where(small, torch.ones_like(z), z)
    r = zl.abs().sqrt()
    big = torch.where(zl > 0, torch.sinh(r.clamp_max(700.0)) / r, torch.sin(r) / r)
    return torch.where(small, ser, big)


def mode_exp(mu: Tensor, gamma: float, h: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Entries (E11, E12, E21, E22) of ``e^{M_μ h}``, ``M_μ = [[0, 1], [−μ, −γ]]``, elementwise
    over the float64 tensor μ (torch port of ``spu_circuits.theory_second_order.mode_exp``)."""
    g = float(gamma)
    w2 = 0.25 * g * g - mu
    z = w2 * h * h
    big = z > 1.0
    zc = torch.where(big, torch.ones_like(z), z)
    e = math.exp(-0.5 * g * h)
    rz = zc.abs().sqrt()
    c = e * torch.where(zc >= 0, torch.cosh(rz), torch.cos(rz))
    s = e * h * _sinhc(zc)
    if bool(big.any()):
        om = torch.where(big, w2, torch.ones_like(w2)).sqrt()
        r1 = mu / (0.5 * g + om)
        r2 = 0.5 * g + om
        e1, e2 = torch.exp(-r1 * h), torch.exp(-r2 * h)
        c = torch.where(big, 0.5 * (e1 + e2), c)
        s = torch.where(big, (e1 - e2) / (2 * om), s)
    return c + 0.5 * g * s, s, -mu * s, c - 0.5 * g * s


def _mode_chol(mu: Tensor, gamma: float, kappa0: float, h: float) -> tuple[Tensor, ...]:
    """Per mode: Cholesky factor (L11, L21, L22) of the 2×2 transition covariance
    ``P = Σ_μ − E Σ_μ Eᵀ``, ``Σ_μ = diag(κ₀/μ, κ₀)``."""
    e11, e12, e21, e22 = mode_exp(mu, gamma, h)
    k = kappa0
    p11 = (k / mu * (1 - e11 * e11) - k * e12 * e12).clamp_min(0.0)
    p21 = -(k / mu * e11 * e21 + k * e12 * e22)
    p22 = (k * (1 - e22 * e22) - k / mu * e21 * e21).clamp_min(0.0)
    l11 = p11.sqrt()
    l21 = torch.where(l11 > 0, p21 / torch.where(l11 > 0, l11, 1.0), 0.0)
    l22 = (p22 - l21 * l21).clamp_min(0.0).sqrt()
    return l11, l21, l22


class _OU2Base(TensorState):
    """Shared state and the sampling loop; subclasses implement :meth:`step`."""

    n: int
    gamma: float
    kappa0: float

    @property
    def y_star(self) -> Tensor:
        """(x*, 0) (2N,)."""
        return torch.cat([self.x_star, torch.zeros_like(self.x_star)])

    x_star: Tensor

    def _init(self, y0, chains: int | None) -> Tensor:
        y0 = torch.as_tensor(y0, dtype=self.dtype, device=self.device)
        if y0.shape[-1] != 2 * self.n:
            raise ValueError(f"the state must have 2N = {2 * self.n} entries (x then v), got "
                             f"{tuple(y0.shape)}")
        if chains is None:
            chains = y0.shape[0] if y0.ndim == 2 else 1
        return y0.expand(chains, 2 * self.n).clone()

    def step(self, y: Tensor, h: float, generator: Generator = None) -> Tensor:
        raise NotImplementedError

    def sample(self, y0, h: float, n_steps: int, burn_in: int = 0, chains: int | None = None,
               generator: Generator = None) -> tuple[Tensor, Tensor]:
        """``burn_in`` steps of h, then ``n_steps`` kept ones: (times (T,), y (T, chains, 2N))."""
        if n_steps < 0 or burn_in < 0:
            raise ValueError("need n_steps ≥ 0 and burn_in ≥ 0")
        y = self._init(y0, chains)
        for _ in range(burn_in):
            y = self.step(y, h, generator)
        kept = []
        for _ in range(n_steps):
            y = self.step(y, h, generator)
            kept.append(y)
        times = (burn_in + torch.arange(1, n_steps + 1, dtype=self.dtype)) * h
        if not kept:
            return times, torch.empty(0, y.shape[0], 2 * self.n, dtype=self.dtype)
        return times, torch.stack(kept)


class DenseOU2(_OU2Base):
    """Exact transitions of the second-order device for a dense SPD A (N, N).

    ``transition(h)`` returns ``(E = e^{Mh}, P)`` (2N×2N each, cached per h); ``step`` draws
    ``y* + E (y − y*) + chol(P) ξ``.
    """

    def __init__(self, A: Tensor, b: Tensor, gamma: float, kappa0: float = 0.0, *,
                 dtype: torch.dtype | None = None, device=None) -> None:
        self.gamma, self.kappa0 = _check(gamma, kappa0)
        A = torch.as_tensor(A)
        dtype = dtype or (A.dtype if A.is_floating_point() else torch.float64)
        device = device or A.device
        A64 = A.to(torch.float64, copy=True).cpu()
        A64 = 0.5 * (A64 + A64.T)
        w = torch.linalg.eigvalsh(A64)
        if w[0] <= 0:
            raise ValueError(f"A must be positive definite (smallest eigenvalue {w[0]:.3g})")
        self.n = A64.shape[0]
        n = self.n
        M = torch.zeros(2 * n, 2 * n, dtype=torch.float64)
        M[:n, n:] = torch.eye(n, dtype=torch.float64)
        M[n:, :n] = -A64
        M[n:, n:] = -self.gamma * torch.eye(n, dtype=torch.float64)
        self.M64 = M
        self.A64 = A64
        b64 = torch.as_tensor(b).to(torch.float64).cpu()
        Sig = torch.zeros_like(M)
        Sig[:n, :n] = self.kappa0 * torch.linalg.inv(A64)
        Sig[n:, n:] = self.kappa0 * torch.eye(n, dtype=torch.float64)
        self.Sigma64 = 0.5 * (Sig + Sig.T)
        self.b = b64.to(dtype=dtype, device=device)
        self.x_star = torch.linalg.solve(A64, b64).to(dtype=dtype, device=device)
        self._cache: dict[float, tuple[Tensor, Tensor, Tensor]] = {}

    @property
    def A(self) -> Tensor:
        return self.A64.to(dtype=self.dtype, device=self.device)

    def transition(self, h: float) -> tuple[Tensor, Tensor]:
        """(e^{Mh}, Σ − e^{Mh} Σ e^{Mᵀh}) in float64 (2N, 2N)."""
        E, P, _ = self._maps(h)
        return E, P

    def _maps(self, h: float):
        h = float(h)
        if h not in self._cache:
            E = torch.linalg.matrix_exp(self.M64 * h)
            P = self.Sigma64 - E @ self.Sigma64 @ E.T
            P = 0.5 * (P + P.T)
            w, V = torch.linalg.eigh(P)
            L = V * w.clamp_min(0.0).sqrt()
            self._cache[h] = (E, P, L)
        return self._cache[h]

    def mean(self, y0, u: float) -> Tensor:
        """Exact mean ``y* + e^{Mu}(y₀ − y*)`` (y₀ (..., 2N))."""
        E, _, _ = self._maps(u)
        ys = self.y_star
        y0 = torch.as_tensor(y0, dtype=self.dtype, device=self.device)
        return ys + (y0 - ys) @ E.to(self.dtype).T

    def step(self, y: Tensor, h: float, generator: Generator = None) -> Tensor:
        E, _, L = self._maps(h)
        ys = self.y_star
        out = ys + (y - ys) @ E.to(dtype=self.dtype, device=self.device).T
        if self.kappa0 > 0:
            xi = self._randn(y.shape, generator)
            out = out + xi @ L.to(dtype=self.dtype, device=self.device).T
        return out


class LowRankOU2(_OU2Base):
    """Exact transitions for ``A = λI + SᵀS`` (S: r×N) in O(N r) per transition.

    With ``SSᵀ = U diag(μ) Uᵀ`` (eigh of the r×r Gram, float64), a scalar function f of A acts as
    ``f(A) v = f(λ) v + Sᵀ U diag(q) Uᵀ S v``, ``q = (f(λ + μ) − f(λ))/μ``. A transition needs
    the four entries of each mode's 2×2 exponential and the three of its covariance's Cholesky
    factor: x' = E11 dx + E12 dv, v' = E21 dx + E22 dv (+ L11 ξ₁, L21 ξ₁ + L22 ξ₂).
    """

    def __init__(self, S: Tensor, lam: float, b: Tensor, gamma: float, kappa0: float = 0.0, *,
                 dtype: torch.dtype | None = None) -> None:
        self.gamma, self.kappa0 = _check(gamma, kappa0)
        if S.ndim != 2:
            raise ValueError("S must be r×N")
        if not lam > 0:
            raise ValueError("lam must be > 0")
        dtype = dtype or S.dtype
        S64 = S.to(torch.float64)
        mu, U = torch.linalg.eigh(S64 @ S64.T)
        self._mu64 = mu.clamp_min(0.0)
        self.lam = float(lam)
        self.n = S.shape[1]
        self.S = S.to(dtype)
        self.U = U.to(dtype)
        self.b = b.to(dtype)
        self.x_star = self.apply(lambda a: 1.0 / a, self.b)
        self._cache: dict[float, tuple] = {}

    def _coeffs(self, fn: Callable[[Tensor], Tensor]) -> tuple[float, Tensor]:
        lam = torch.tensor([self.lam], dtype=torch.float64, device=self._mu64.device)
        f_lam = fn(lam)
        mu = self._mu64
        pos = mu > 0
        q = torch.where(pos, (fn(lam + mu) - f_lam) / torch.where(pos, mu, 1.0), 0.0)
        return float(f_lam[0]), q.to(self.dtype)

    def _apply(self, coef: tuple[float, Tensor], v: Tensor, w: Tensor | None = None) -> Tensor:
        f_lam, q = coef
        w = (v @ self.S.T) @ self.U if w is None else w
        return f_lam * v + ((q * w) @ self.U.T) @ self.S

    def apply(self, fn: Callable[[Tensor], Tensor], v: Tensor) -> Tensor:
        """``f(A) v`` for v (..., N); fn maps a float64 tensor of eigenvalues."""
        return self._apply(self._coeffs(fn), v)

    def _maps(self, h: float):
        h = float(h)
        if h not in self._cache:
            g, k = self.gamma, self.kappa0
            es = [self._coeffs(lambda a, i=i: mode_exp(a, g, h)[i]) for i in range(4)]
            ls = ([self._coeffs(lambda a, i=i: _mode_chol(a, g, k, h)[i]) for i in range(3)]
                  if k > 0 else None)
            self._cache[h] = (es, ls)
        return self._cache[h]

    def mean(self, y0, u: float) -> Tensor:
        y0 = torch.as_tensor(y0, dtype=self.dtype)
        return self._propagate(y0, u, None, noise=False)

    def _propagate(self, y: Tensor, h: float, generator: Generator, noise: bool = True
                   ) -> Tensor:
        es, ls = self._maps(h)
        n = self.n
        dx, dv = y[..., :n] - self.x_star, y[..., n:]
        wx = (dx @ self.S.T) @ self.U
        wv = (dv @ self.S.T) @ self.U
        x = self.x_star + self._apply(es[0], dx, wx) + self._apply(es[1], dv, wv)
        v = self._apply(es[2], dx, wx) + self._apply(es[3], dv, wv)
        if ls is not None and noise:
            xi1 = self._randn(dx.shape, generator)
            xi2 = self._randn(dx.shape, generator)
            w1 = (xi1 @ self.S.T) @ self.U
            x = x + self._apply(ls[0], xi1, w1)
            v = v + self._apply(ls[1], xi1, w1) + self._apply(ls[2], xi2)
        return torch.cat([x, v], dim=-1)

    def step(self, y: Tensor, h: float, generator: Generator = None) -> Tensor:
        return self._propagate(y, h, generator)

    def transition(self, h: float) -> tuple[Tensor, Tensor]:
        """Dense (E, P) (2N×2N, float64) assembled from the modal functions (for tests)."""
        n = self.n
        eye = torch.eye(n, dtype=torch.float64)
        es, ls = self._maps(h)
        S64 = self.S.to(torch.float64)
        U64 = self.U.to(torch.float64)

        def dense(coef):
            f_lam, q = coef
            return f_lam * eye + S64.T @ U64 @ torch.diag(q.to(torch.float64)) @ U64.T @ S64

        E = torch.cat([torch.cat([dense(es[0]), dense(es[1])], 1),
                       torch.cat([dense(es[2]), dense(es[3])], 1)], 0)
        if ls is None:
            return E, torch.zeros_like(E)
        L11, L21, L22 = (dense(c) for c in ls)
        Lm = torch.cat([torch.cat([L11, torch.zeros_like(L11)], 1),
                        torch.cat([L21, L22], 1)], 0)
        return E, Lm @ Lm.T


class EulerOU2(_OU2Base):
    """Euler-type integration (semi-implicit Euler–Maruyama), one A-product per step:
    ``v ← v − δ(A x − b + γ v) + sqrt(2γκ₀δ) ξ``, then ``x ← x + δ v``.

    matvec: v (..., N) → A v. Stable for δ·sqrt(λ_max) < 2 (and δγ < 2); weak order 1.
    """

    def __init__(self, matvec: Callable[[Tensor], Tensor], b: Tensor, gamma: float,
                 kappa0: float = 0.0, *, dtype: torch.dtype | None = None) -> None:
        self.gamma, self.kappa0 = _check(gamma, kappa0)
        self.matvec = matvec
        self.b = b.to(dtype or b.dtype)
        self.n = self.b.shape[0]
        self.x_star = torch.full_like(self.b, float("nan"))  # not known matrix-free

    def step(self, y: Tensor, h: float, generator: Generator = None) -> Tensor:
        n = self.n
        x, v = y[..., :n], y[..., n:]
        v = v - h * (self.matvec(x) - self.b + self.gamma * v)
        if self.kappa0 > 0:
            v = v + math.sqrt(2 * self.gamma * self.kappa0 * h) * self._randn(v.shape, generator)
        x = x + h * v
        return torch.cat([x, v], dim=-1)


def _noise_maps(A64: Tensor, gamma: float, h: float) -> tuple[Tensor, Tensor, Tensor]:
    """(Φ, Γ0, Γ1) of the interpolated-noise grid map (one block matrix exponential)."""
    n = A64.shape[0]
    m = 2 * n
    big = torch.zeros(m + 2 * n, m + 2 * n, dtype=torch.float64)
    big[:n, n:m] = torch.eye(n, dtype=torch.float64)
    big[n:m, :n] = -A64
    big[n:m, n:m] = -gamma * torch.eye(n, dtype=torch.float64)
    big[n:m, m:m + n] = torch.eye(n, dtype=torch.float64)
    big[m:m + n, m + n:] = torch.eye(n, dtype=torch.float64)
    X = torch.linalg.matrix_exp(big * h)
    G, H = X[:m, m:m + n], X[:m, m + n:]
    return X[:m, :m], G - H / h, H / h


def _run_grid(A, b, gamma, kappa0, h, z, y0, held: bool) -> Tensor:
    g, k = _check(gamma, kappa0)
    A64 = torch.as_tensor(A).to(torch.float64)
    A64 = 0.5 * (A64 + A64.T)
    z = torch.as_tensor(z)
    dtype = z.dtype if z.is_floating_point() else torch.float64
    Phi, G0, G1 = _noise_maps(A64, g, float(h))
    s = math.sqrt(2.0 * g * k / h)
    b64 = torch.as_tensor(b).to(torch.float64)
    xs = torch.linalg.solve(A64, b64)
    ys = torch.cat([xs, torch.zeros_like(xs)])
    z64 = z.to(torch.float64)
    y = torch.as_tensor(y0).to(torch.float64) - ys
    y = y.expand(*z64.shape[1:-1], ys.shape[0]).clone()
    # forcing of every step at once, then the linear recursion
    if held:
        f = s * (z64[:-1] @ (G0 + G1).T)
    else:
        f = s * (z64[:-1] @ G0.T + z64[1:] @ G1.T)
    out = [y]
    PhiT = Phi.T
    for kk in range(f.shape[0]):
        y = y @ PhiT + f[kk]
        out.append(y)
    return (torch.stack(out) + ys).to(dtype)


def run_interpolated2(A, b, gamma: float, kappa0: float, h: float, z, y0) -> Tensor:
    """Exact grid solution for linearly interpolated noise samples z (K+1, [chains,] N) at
    u_k = k h forcing v by ``s z(u)``, s = sqrt(2γκ₀/h); y0 (2N,). Returns (K+1, [chains,] 2N)."""
    return _run_grid(A, b, gamma, kappa0, h, z, y0, held=False)


def run_held2(A, b, gamma: float, kappa0: float, h: float, z, y0) -> Tensor:
    """Same for held noise: z_k constant on [u_k, u_{k+1}) (ngspice TRRANDOM type 2)."""
    return _run_grid(A, b, gamma, kappa0, h, z, y0, held=True)
