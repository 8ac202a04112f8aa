"""Torch surrogates of the SPU's Ornstein–Uhlenbeck process.

Convention (shared with the SPICE side, see ``spu_circuits.theory``). Dimensionless time
``u = t/τ``; the device obeys ``dx = −(A x − b) du + sqrt(2 κ₀) dW_u`` with A SPD, stationary
law ``N(A⁻¹b, κ₀ A⁻¹)``. Interpolated noise: samples ``z_k ~ N(0, I_N)`` at ``u_k = k h``,
linearly interpolated; ``dx/du = −(A x − b) + s z(u)``, ``s = sqrt(2 κ₀/h)``.

Surrogates (all batched over independent chains, state ``x`` of shape ``(chains, N)`` or
``(N,)``; any float dtype; CPU or GPU; randomness only from a ``torch.Generator``):

* :class:`DenseOU` — exact transitions for dense A (eigendecomposition).
* :class:`LowRankOU` — exact transitions for ``A = λI + SᵀS`` in O(N r) per step (defined in
  :mod:`tngd.lowrank_ou`, on the low-rank base it shares with the solvers' Gram form).
* :class:`EulerMaruyamaOU` — matrix-free Euler–Maruyama with step δu.
* :func:`run_interpolated` — exact integration of given interpolated-noise samples z.

Set-up (eigen/SVD decompositions and scalar coefficient functions) is done in float64 and the
results are cast to the working dtype. The scalar functions (decay, transition variance,
interpolated-noise weights) are those of :mod:`spu_circuits.ou_math`, which the numpy theory
uses too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from spu_circuits import ou_math
from tngd.lowrank_ou import LowRankOU
from tngd.ou_base import ExactOU, Generator, OUBase, times_tensor

__all__ = [
    "DenseOU",
    "LowRankOU",
    "EulerMaruyamaOU",
    "interp_coefficients",
    "run_interpolated",
]


def interp_coefficients(y: Tensor) -> tuple[Tensor, Tensor]:
    """``(ψ0(y), ψ1(y))`` with ``Γ0 = h ψ0(Ah)``, ``Γ1 = h ψ1(Ah)`` (elementwise, y = a h ≥ 0):
    :func:`spu_circuits.ou_math.interp_coefficients` (one definition for numpy and torch)."""
    return ou_math.interp_coefficients(y)


# ----------------------------------------------------------------------------- exact (spectral)


class _SpectralOU(ExactOU):
    """Exact OU transitions through a spectral representation of A.

    A subclass supplies ``_coords(v) → (..., M)``, ``_from_coords(c) → (..., N)`` and the
    eigenvalue of each coordinate ``self.eig (M,)`` such that
    ``f(A) v = _from_coords(f(eig) · _coords(v))`` for every scalar function f.
    """

    eig: Tensor
    x_star: Tensor

    def _coords(self, v: Tensor) -> Tensor:
        raise NotImplementedError

    def _from_coords(self, c: Tensor) -> Tensor:
        raise NotImplementedError

    def _f(self, fn: Callable[[Tensor], Tensor]) -> Tensor:
        """fn evaluated on the eigenvalues in float64, cast to the working dtype."""
        return fn(self._eig64).to(self.dtype)

    def apply_function(self, fn: Callable[[Tensor], Tensor], v: Tensor) -> Tensor:
        """``f(A) v`` for v of shape (..., N); fn maps a float64 tensor of eigenvalues."""
        return self._from_coords(self._f(fn) * self._coords(v))

    def mean_at(self, x0, u) -> Tensor:
        """Mean trajectory ``x* + e^{−Au}(x0 − x*)``; x0 (..., N), u scalar → (..., N),
        u 1-D of T times → (T, ..., N)."""
        x0 = torch.as_tensor(x0, dtype=self.dtype, device=self.device)
        ut, scalar = times_tensor(u, torch.float64, self.device)
        c = self._coords(x0 - self.x_star)
        decay = torch.exp(-ut[:, None] * self._eig64[None, :]).to(self.dtype)  # (T, M)
        decay = decay.reshape(ut.shape[0], *([1] * (c.ndim - 1)), -1)
        out = self.x_star + self._from_coords(decay * c)
        return out[0] if scalar else out

    def step(self, x: Tensor, h: float, generator: Generator = None) -> Tensor:
        """One exact transition of length h (units of τ): x (..., N) → (..., N)."""
        phi = self._f(lambda a: ou_math.decay(a, h))
        c = phi * self._coords(x - self.x_star)
        if self.kappa0 > 0:
            xi = self._randn(x.shape, generator)
            c = c + self._f(lambda a: ou_math.transition_std(a, h, self.kappa0)) * self._coords(xi)
        return self.x_star + self._from_coords(c)

    def run_interpolated(self, h: float, z: Tensor, x0) -> Tensor:
        """Exact solution of ``dx/du = −(Ax − b) + s z(u)`` at the grid times u_k = k h.

        z: (K+1, N) or (K+1, chains, N) unit-variance samples (float or numpy; cast to the
        working dtype). x0 broadcastable to z[0]. Returns x at u_0..u_K, same shape as z, with
        x[0] = x0 and ``x_{k+1} = x* + Φ(x_k − x*) + s (Γ0 z_k + Γ1 z_{k+1})``.
        """
        if h <= 0:
            raise ValueError("h must be positive")
        z = torch.as_tensor(z, dtype=self.dtype, device=self.device)
        if z.ndim not in (2, 3) or z.shape[-1] != self.n:
            raise ValueError(f"z must be (K+1, N) or (K+1, chains, N) with N={self.n}")
        x0 = torch.as_tensor(x0, dtype=self.dtype, device=self.device).expand(z.shape[1:])
        s = math.sqrt(2.0 * self.kappa0 / h)
        y64 = self._eig64 * h
        p0, p1 = interp_coefficients(y64)
        phi = ou_math.decay(self._eig64, h).to(self.dtype)
        g0 = (s * h * p0).to(self.dtype)
        g1 = (s * h * p1).to(self.dtype)
        cz = self._coords(z)  # (K+1, ..., M)
        drive = g0 * cz[:-1] + g1 * cz[1:]  # (K, ..., M)
        c = torch.empty_like(cz)
        c[0] = self._coords(x0 - self.x_star)
        for k in range(z.shape[0] - 1):
            c[k + 1] = torch.addcmul(drive[k], phi, c[k])
        out = self.x_star + self._from_coords(c)
        out[0] = x0
        return out


def _to(t, dtype, device) -> Tensor:
    return torch.as_tensor(t).to(dtype=dtype, device=device)


class DenseOU(_SpectralOU):
    """Exact OU transitions for a dense SPD A (N×N) via ``A = Q diag(w) Qᵀ``.

    ``step(x, h)`` draws ``x_next ~ N(x* + Φ(x − x*), κ₀ A⁻¹ (I − Φ²))``, Φ = e^{−Ah}; cost
    O(N²) per chain per step after the O(N³) set-up.
    """

    def __init__(self, A, b, kappa0: float, dtype: torch.dtype | None = None, device=None):
        A = torch.as_tensor(A)
        dtype = dtype or (A.dtype if A.is_floating_point() else torch.get_default_dtype())
        device = device if device is not None else A.device
        A64 = A.to(dtype=torch.float64, device=device)
        if A64.ndim != 2 or A64.shape[0] != A64.shape[1]:
            raise ValueError("A must be square")
        A64 = 0.5 * (A64 + A64.T)
        w, Q = torch.linalg.eigh(A64)
        if w[0] <= 0:
            raise ValueError(f"A must be positive definite (smallest eigenvalue {float(w[0]):.3g})")
        self.n = A64.shape[0]
        self.kappa0 = float(kappa0)
        if self.kappa0 < 0:
            raise ValueError("kappa0 must be ≥ 0")
        self._eig64 = w
        self.eig = w.to(dtype)
        self.Q = Q.to(dtype)
        self.A = A64.to(dtype)
        b64 = _to(b, torch.float64, device).reshape(self.n)
        self.b = b64.to(dtype)
        self.x_star = (Q @ ((Q.T @ b64) / w)).to(dtype)

    def _coords(self, v: Tensor) -> Tensor:
        return v @ self.Q

    def _from_coords(self, c: Tensor) -> Tensor:
        return c @ self.Q.T


# ----------------------------------------------------------------------------- Euler–Maruyama


class EulerMaruyamaOU(OUBase):
    """Matrix-free Euler–Maruyama: ``x ← x − δu (A x − b) + sqrt(2 κ₀ δu) ξ``.

    matvec(v) returns A v for v of shape (..., N) (a dense tensor A is accepted too). In
    :meth:`step`, :meth:`sample` and :meth:`trajectory` the step h is δu (units of τ). Weak
    order 1 in δu; the fixed point of the noiseless map is exactly A⁻¹b.
    """

    def __init__(
        self,
        matvec: Callable[[Tensor], Tensor] | Tensor,
        b,
        kappa0: float,
        dtype: torch.dtype | None = None,
        device=None,
    ):
        b = torch.as_tensor(b)
        if isinstance(matvec, Tensor):
            A = matvec
            dtype = dtype or (A.dtype if A.is_floating_point() else torch.get_default_dtype())
            device = device if device is not None else A.device
            A = A.to(dtype=dtype, device=device)
            self.matvec = lambda v: v @ A.T
        else:
            self.matvec = matvec
        dtype = dtype or (b.dtype if b.is_floating_point() else torch.get_default_dtype())
        device = device if device is not None else b.device
        self.b = b.to(dtype=dtype, device=device).reshape(-1)
        self.n = self.b.shape[0]
        self.kappa0 = float(kappa0)
        if self.kappa0 < 0:
            raise ValueError("kappa0 must be ≥ 0")

    def drift_step(self, x: Tensor, h: float) -> Tensor:
        """Deterministic part ``x − h (A x − b)``."""
        return x - h * (self.matvec(x) - self.b)

    def noise_std(self, h: float) -> float:
        """``sqrt(2 κ₀ h)``."""
        return math.sqrt(2.0 * self.kappa0 * h)

    def step(self, x: Tensor, h: float, generator: Generator = None) -> Tensor:
        x_next = self.drift_step(x, h)
        if self.kappa0 > 0:
            x_next = x_next + self.noise_std(h) * self._randn(x.shape, generator)
        return x_next


# ----------------------------------------------------------------------------- free function


def run_interpolated(
    A_or_lowrank: Tensor | Sequence | _SpectralOU | LowRankOU,
    b,
    kappa0: float | None,
    h: float,
    z,
    x0,
) -> Tensor:
    """Exact grid solution of the interpolated-noise ODE for given samples z.

    A_or_lowrank: a dense SPD tensor A (N×N), a pair ``(S, lam)`` for A = λI + SᵀS, or a
    :class:`DenseOU` / :class:`LowRankOU` (then b and kappa0 may be None to use its own).
    z: (K+1, N) or (K+1, chains, N) samples at u_k = k h; x0 broadcastable to z[0].
    Returns x at u_0..u_K with the shape of z (x[0] = x0).
    """
    if isinstance(A_or_lowrank, (_SpectralOU, LowRankOU)):
        ou = A_or_lowrank
        if b is not None or kappa0 is not None:
            b_ = ou.b if b is None else b
            k_ = ou.kappa0 if kappa0 is None else kappa0
            if isinstance(ou, LowRankOU):
                S = ou.sigma[:, None] * ou.V.T  # same SᵀS (up to the dropped U)
                ou = LowRankOU(S, ou.lam, b_, k_, dtype=ou.dtype, device=ou.device)
            else:
                ou = DenseOU(ou.A, b_, k_, dtype=ou.dtype, device=ou.device)
    elif isinstance(A_or_lowrank, (tuple, list)):
        S, lam = A_or_lowrank
        ou = LowRankOU(S, lam, b, kappa0)
    else:
        ou = DenseOU(A_or_lowrank, b, kappa0)
    return ou.run_interpolated(h, z, x0)
