"""Exact OU transitions for ``A = λI + SᵀS`` (S: r×N, λ > 0) in O(N r) per step.

Both classes here rest on one base, :class:`LowRankSpectralOU`: a pair of maps
``project: R^N → R^k`` and ``lift: R^k → R^N`` and eigenvalues μ (k,) of the low-rank term with

    f(A) v = f(λ) v + lift(w_f ⊙ project(v))       and       A lift(c) = lift((λ + μ) ⊙ c),

for every scalar function f, where the weights w_f come from μ alone. Everything (transitions,
means, covariances, interpolated-noise paths) is written once against these three pieces:

* :class:`LowRankOU` — thin SVD ``S = U Σ Vᵀ``: project = Vᵀ·, lift = V·, μ = σ²,
  w_f = f(λ + μ) − f(λ);
* :class:`GramLowRankOU` — eigendecomposition of the r×r Gram ``K = SSᵀ = U diag(μ) Uᵀ``:
  project = UᵀS·, lift = SᵀU·, w_f = (f(λ + μ) − f(λ))/μ (the singular vectors of S are never
  formed, so nothing is lost for small singular values; set-up O(r²N + r³), the cost of
  NGD-Woodbury).

A further low-rank representation (e.g. the 2×2 modal blocks of a second-order device) is one
more subclass supplying ``_project``, ``_lift``, ``mu64`` and ``_scale64``. Set-up is float64;
results are cast to the working dtype. Convention as in :mod:`tngd.surrogate`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from spu_circuits import ou_math
from tngd.ou_base import ExactOU, Generator, times_tensor

__all__ = ["GramLowRankOU", "LowRankOU", "LowRankSpectralOU"]

F64 = torch.float64


def _to(t, dtype, device) -> Tensor:
    return torch.as_tensor(t).to(dtype=dtype, device=device)


class LowRankSpectralOU(ExactOU):
    """Exact OU transitions of ``A = λI + (low-rank term)`` from ``project``/``lift``/μ.

    Subclasses set ``lam`` (float), ``kappa0``, ``n``, ``b``, ``mu64`` (k,) float64 and
    ``_scale64`` (k,) float64 (w_f = divided difference of f × scale), implement
    :meth:`_project` ((..., N) → (..., k)) and :meth:`_lift` ((..., k) → (..., N)), and call
    :meth:`_finish` to set x* = A⁻¹b.
    """

    lam: float
    mu64: Tensor
    _scale64: Tensor
    x_star: Tensor

    # ---------------------------------------------------------------- the representation

    def _project(self, v: Tensor) -> Tensor:
        raise NotImplementedError

    def _lift(self, c: Tensor) -> Tensor:
        raise NotImplementedError

    def _finish(self) -> None:
        self.eig = torch.cat([self.lam + self.mu64, self.mu64.new_full((1,), self.lam)]).to(
            self.dtype
        )
        self.x_star = self.apply_function(lambda a: 1.0 / a, self.b)

    def weights(self, fn: Callable[[Tensor], Tensor]) -> tuple[float, Tensor]:
        """``(f(λ), w_f (k,))`` in float64; fn maps a float64 tensor of eigenvalues of A."""
        f_lam = float(fn(torch.tensor(self.lam, dtype=F64, device=self.mu64.device)))
        return f_lam, ou_math.divided_difference(fn, self.lam, self.mu64) * self._scale64

    # ---------------------------------------------------------------- matrix functions

    def apply_function(self, fn: Callable[[Tensor], Tensor], v: Tensor) -> Tensor:
        """``f(A) v`` for v of shape (..., N); fn maps a float64 tensor of eigenvalues."""
        f_lam, w = self.weights(fn)
        return f_lam * v + self._lift(w.to(self.dtype) * self._project(v))

    def mean_at(self, x0, u) -> Tensor:
        """Mean trajectory ``x* + e^{−Au}(x0 − x*)``; x0 (..., N), u scalar → (..., N),
        u 1-D of T times → (T, ..., N)."""
        x0 = torch.as_tensor(x0, dtype=self.dtype, device=self.device)
        ut, scalar = times_tensor(u, F64, self.device)
        d = x0 - self.x_star
        p = self._project(d)  # (..., k)
        el = torch.exp(-self.lam * ut).to(self.dtype)  # (T,)
        w = ou_math.divided_difference(
            lambda a: torch.exp(-a * ut[:, None]), self.lam, self.mu64
        ) * self._scale64  # (T, k)
        shape = (ut.shape[0], *([1] * (d.ndim - 1)))
        w = w.to(self.dtype).reshape(*shape, -1)
        out = self.x_star + el.reshape(*shape, 1) * d + self._lift(w * p)
        return out[0] if scalar else out

    # ---------------------------------------------------------------- sampling

    def step(self, x: Tensor, h: float, generator: Generator = None) -> Tensor:
        """One exact transition of length h (units of τ): x (..., N) → (..., N)."""
        d = x - self.x_star
        e_lam, w = self.weights(lambda a: ou_math.decay(a, h))
        out = self.x_star + e_lam * d
        c = w.to(self.dtype) * self._project(d)
        if self.kappa0 > 0:
            xi = self._randn(x.shape, generator)
            s_lam, ws = self.weights(lambda a: ou_math.transition_std(a, h, self.kappa0))
            out = out + s_lam * xi
            c = c + ws.to(self.dtype) * self._project(xi)
        return out + self._lift(c)

    def run_interpolated(self, h: float, z: Tensor, x0) -> Tensor:
        """Exact solution of ``dx/du = −(Ax − b) + s z(u)`` at the grid times u_k = k h.

        z: (K+1, N) or (K+1, chains, N) unit-variance samples; x0 broadcastable to z[0].
        Returns x at u_0..u_K, same shape as z, with x[0] = x0 and
        ``x_{k+1} = x* + Φ(x_k − x*) + s (Γ0 z_k + Γ1 z_{k+1})``.

        The deviation is carried as ``x_k − x* = E_k + lift(c_k)``: E_k follows the scalar map
        of the eigenvalue λ, c_k (k,) the modes λ + μ, fed by ``project(E_k)`` (which follows
        E's scalar map itself) and the projected samples; O(K (N + k)) after one batched
        projection of z.
        """
        if h <= 0:
            raise ValueError("h must be positive")
        z = torch.as_tensor(z, dtype=self.dtype, device=self.device)
        if z.ndim not in (2, 3) or z.shape[-1] != self.n:
            raise ValueError(f"z must be (K+1, N) or (K+1, chains, N) with N={self.n}")
        x0 = torch.as_tensor(x0, dtype=self.dtype, device=self.device).expand(z.shape[1:])
        s = math.sqrt(2.0 * self.kappa0 / h)
        lam_y = torch.tensor(self.lam * h, dtype=F64)
        p0_l, p1_l = ou_math.interp_coefficients(lam_y)
        phi_l, g0_l, g1_l = math.exp(-self.lam * h), s * h * float(p0_l), s * h * float(p1_l)

        def _w(fn):
            return (ou_math.divided_difference(fn, self.lam, self.mu64) * self._scale64).to(
                self.dtype
            )

        w_phi = _w(lambda a: ou_math.decay(a, h))
        w_g0 = _w(lambda a: s * h * ou_math.interp_coefficients(a * h)[0])
        w_g1 = _w(lambda a: s * h * ou_math.interp_coefficients(a * h)[1])
        phi_mu = ou_math.decay(self.lam + self.mu64, h).to(self.dtype)
        Z = self._project(z)  # (K+1, ..., k)
        E = torch.empty_like(z)
        E[0] = x0 - self.x_star
        P = torch.empty_like(Z)
        P[0] = self._project(E[0])
        c = torch.zeros_like(Z)
        for k in range(z.shape[0] - 1):
            E[k + 1] = phi_l * E[k] + g0_l * z[k] + g1_l * z[k + 1]
            P[k + 1] = phi_l * P[k] + g0_l * Z[k] + g1_l * Z[k + 1]
            c[k + 1] = phi_mu * c[k] + w_phi * P[k] + w_g0 * Z[k] + w_g1 * Z[k + 1]
        out = self.x_star + E + self._lift(c)
        out[0] = x0
        return out


def _check(S, lam: float, kappa0: float, dtype, device) -> tuple[Tensor, torch.dtype, object]:
    S = torch.as_tensor(S)
    dtype = dtype or (S.dtype if S.is_floating_point() else torch.get_default_dtype())
    device = device if device is not None else S.device
    if S.ndim != 2:
        raise ValueError("S must be r×N")
    if not lam > 0:
        raise ValueError("lam must be > 0")
    if not float(kappa0) >= 0:
        raise ValueError("kappa0 must be ≥ 0")
    return S, dtype, device


class LowRankOU(LowRankSpectralOU):
    """Exact OU transitions for ``A = λI + SᵀS`` (S: r×N, λ > 0) in O(N r) per step.

    With the thin SVD ``S = U Σ Vᵀ`` (zero singular values dropped, so r > N and rank-deficient
    S are fine; k = rank ≤ min(r, N)), ``f(A) v = f(λ)(v − VVᵀv) + V f(λ+Σ²) Vᵀ v``. Same
    transition law as :class:`tngd.surrogate.DenseOU` on the same A.
    """

    def __init__(
        self, S, lam: float, b, kappa0: float, dtype: torch.dtype | None = None, device=None
    ):
        S, dtype, device = _check(S, lam, kappa0, dtype, device)
        S64 = S.to(dtype=F64, device=device)
        r, n = S64.shape
        self.n = n
        self.lam = float(lam)
        self.kappa0 = float(kappa0)
        if r > 0:
            _, sig, Vh = torch.linalg.svd(S64, full_matrices=False)
            tol = max(r, n) * torch.finfo(F64).eps * (float(sig[0]) if sig.numel() else 0)
            keep = sig > tol
            sig, V = sig[keep], Vh[keep].T.contiguous()
        else:
            sig = torch.zeros(0, dtype=F64, device=device)
            V = torch.zeros(n, 0, dtype=F64, device=device)
        self.rank = int(sig.numel())
        self.sigma = sig.to(dtype)
        self.V = V.to(dtype)
        self.mu64 = sig**2
        self._scale64 = self.mu64.clone()
        self.b = _to(b, F64, device).reshape(n).to(dtype)
        self._finish()

    def _project(self, v: Tensor) -> Tensor:
        return v @ self.V

    def _lift(self, c: Tensor) -> Tensor:
        return c @ self.V.T


class GramLowRankOU(LowRankSpectralOU):
    """Exact OU transitions for ``A = λI + SᵀS`` from the r×r Gram matrix (no SVD of S).

    With ``K = S Sᵀ = U diag(μ) Uᵀ`` (one ``eigh``, float64) every matrix function is

        f(A) v = f(λ) v + Sᵀ U diag(q(μ)) Uᵀ S v,    q(μ) = (f(λ + μ) − f(λ)) / μ   (q = 0 at μ = 0)

    (exact: Sᵀ q(SSᵀ) S = q(SᵀS) SᵀS = f(A) − f(λ)I). Set-up O(r² N + r³), the cost of
    NGD-Woodbury, and two products with S per function application. ``gram`` (r×r, any dtype)
    may be given when K is already at hand (it is then not recomputed).
    """

    def __init__(
        self, S: Tensor, lam: float, b: Tensor, kappa0: float, dtype=None, device=None,
        *, gram: Tensor | None = None,
    ) -> None:
        S, dtype, device = _check(S, lam, kappa0, dtype, device)
        if gram is None:
            S64 = S.to(dtype=F64, device=device)
            gram = S64 @ S64.T
        K = gram.to(dtype=F64, device=device)
        mu, U = torch.linalg.eigh(0.5 * (K + K.T))
        self.mu64 = mu.clamp_min(0.0)
        self._scale64 = torch.ones_like(self.mu64)
        self.lam = float(lam)
        self.kappa0 = float(kappa0)
        self.n = S.shape[1]
        self.S = S.to(dtype=dtype, device=device)
        self.U = U.to(dtype)
        self.b = _to(b, F64, device).reshape(self.n).to(dtype)
        self._finish()

    def _project(self, v: Tensor) -> Tensor:
        return (v @ self.S.T) @ self.U

    def _lift(self, c: Tensor) -> Tensor:
        return (c @ self.U.T) @ self.S
