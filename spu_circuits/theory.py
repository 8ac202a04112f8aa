"""Closed-form statistics of the SPU's Ornstein–Uhlenbeck process (numpy/scipy, float64).

Convention (shared with the SPICE side). Time is dimensionless, ``u = t/τ``. The device obeys

    dx = −(A x − b) du + sqrt(2 κ₀) dW_u,        A SPD (N×N), b ∈ R^N,

with stationary law ``N(x*, κ₀ A⁻¹)``, ``x* = A⁻¹ b``.

*Interpolated noise* (what ngspice's TRNOISE / a ``filesource`` does): noise samples
``z_k ~ N(0, I_N)``, ``k = 0..K``, sit at ``u_k = k h`` (``h = NT/τ``) and are linearly
interpolated in between; the circuit integrates the ODE

    dx/du = −(A x − b) + s z(u),   s = sqrt(2 κ₀ / h),   z(u) = (1−θ) z_k + θ z_{k+1},  u = (k+θ) h.

Its exact one-step map on the grid is

    x_{k+1} = Φ x_k + (I − Φ) x* + s (Γ0 z_k + Γ1 z_{k+1}),
    Φ = e^{−Ah},  Γ0 = ∫_0^h e^{−A(h−v)} (1 − v/h) dv,  Γ1 = ∫_0^h e^{−A(h−v)} (v/h) dv.

Arrays: a single state is ``(N,)``; stacks of times lead, ``(T, N)`` / ``(T, N, N)``.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg as sla

from . import ou_math
from .batch_means import batch_mean_se, split_batches
from .ou_math import interp_coefficients, interpolated_variance_ratio
from .timesteps import WHITE_NOISE_STEP_FRAC

__all__ = [
    "eigh_spd",
    "stationary_mean",
    "stationary_cov",
    "transient_mean",
    "transient_cov",
    "autocov",
    "interp_coefficients",
    "interpolated_noise_maps",
    "noise_scale",
    "interpolated_noise_stationary_cov",
    "interpolated_noise_autocov",
    "interpolated_noise_variance_ratio",
    "fastest_rate",
    "default_noise_step",
    "batch_means_se",
    "batch_cov_se",
]


# ----------------------------------------------------------------------------- helpers


def _as_spd(A) -> np.ndarray:
    A = np.asarray(A, dtype=np.float64)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"A must be square, got shape {A.shape}")
    scale = max(1.0, float(np.max(np.abs(A))) if A.size else 1.0)
    if not np.allclose(A, A.T, rtol=0.0, atol=1e-10 * scale):
        raise ValueError("A must be symmetric")
    return 0.5 * (A + A.T)


def eigh_spd(A) -> tuple[np.ndarray, np.ndarray]:
    """Eigendecomposition ``A = Q diag(w) Qᵀ`` of an SPD matrix; raises if not positive definite."""
    A = _as_spd(A)
    w, Q = sla.eigh(A)
    if w.size and w[0] <= 0.0:
        raise ValueError(f"A must be positive definite (smallest eigenvalue {w[0]:.3g})")
    return w, Q


def _fun(Q: np.ndarray, fw: np.ndarray) -> np.ndarray:
    """``Q diag(fw) Qᵀ`` for fw of shape (N,) or a stack (T, N) → (T, N, N)."""
    return np.einsum("ij,...j,kj->...ik", Q, fw, Q)


def _sym(M: np.ndarray) -> np.ndarray:
    return 0.5 * (M + np.swapaxes(M, -1, -2))


def _times(u) -> tuple[np.ndarray, bool]:
    ua = np.asarray(u, dtype=np.float64)
    if ua.ndim > 1:
        raise ValueError("u must be a scalar or a 1-D array of times")
    return ua.reshape(-1), ua.ndim == 0


# ----------------------------------------------------------------------------- white noise


def stationary_mean(A, b) -> np.ndarray:
    """``x* = A⁻¹ b``, shape (N,)."""
    A = _as_spd(A)
    return sla.solve(A, np.asarray(b, dtype=np.float64), assume_a="pos")


def stationary_cov(A, kappa0: float) -> np.ndarray:
    """``κ₀ A⁻¹`` (N, N): the stationary covariance of the white-noise OU process."""
    A = _as_spd(A)
    return _sym(kappa0 * sla.solve(A, np.eye(A.shape[0]), assume_a="pos"))


def transient_mean(A, b, x0, u) -> np.ndarray:
    """Mean at time u from a fixed x0: ``x* + e^{−Au} (x0 − x*)``.

    u scalar → (N,); u a 1-D array of T times → (T, N). Same for white or interpolated noise
    (the noise has zero mean).
    """
    w, Q = eigh_spd(A)
    xs = stationary_mean(A, b)
    d = Q.T @ (np.asarray(x0, dtype=np.float64) - xs)
    ut, scalar = _times(u)
    out = xs + (ou_math.decay(w, ut[:, None]) * d) @ Q.T
    return out[0] if scalar else out


def transient_cov(A, kappa0: float, u) -> np.ndarray:
    """Covariance at time u from a fixed x0: ``κ₀ A⁻¹ (I − e^{−2Au})``; (N, N) or (T, N, N)."""
    w, Q = eigh_spd(A)
    ut, scalar = _times(u)
    out = _fun(Q, ou_math.transition_var(w, ut[:, None], kappa0))
    return out[0] if scalar else out


def autocov(A, kappa0: float, lag, cov=None) -> np.ndarray:
    """Stationary autocovariance ``Cov(x(u + lag), x(u)) = e^{−A·lag} Σ``.

    lag (units of τ, ≥ 0) scalar → (N, N), 1-D array → (L, N, N). Σ defaults to ``κ₀ A⁻¹``; a
    different Σ (e.g. the interpolated-noise one) is propagated by the same mean map. The exact
    grid autocovariance under interpolated noise is :func:`interpolated_noise_autocov`.
    """
    w, Q = eigh_spd(A)
    S = stationary_cov(A, kappa0) if cov is None else np.asarray(cov, dtype=np.float64)
    lt, scalar = _times(lag)
    out = _fun(Q, ou_math.decay(w, lt[:, None])) @ S
    return out[0] if scalar else out


# ----------------------------------------------------------------------------- interpolated noise

def interpolated_noise_maps(A, h: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(Φ, Γ0, Γ1)`` (each N×N) of the exact grid map for linearly interpolated noise."""
    if h <= 0:
        raise ValueError("h must be positive")
    w, Q = eigh_spd(A)
    p0, p1 = interp_coefficients(w * h)
    return _fun(Q, ou_math.decay(w, h)), _fun(Q, h * p0), _fun(Q, h * p1)


def noise_scale(kappa0: float, h: float) -> float:
    """``s = sqrt(2 κ₀ / h)``: the factor multiplying the unit-variance samples z_k."""
    return math.sqrt(2.0 * kappa0 / h)


def _augmented_chain(A, kappa0: float, h: float):
    """Transition F and noise covariance Q of the Markov chain y_k = (x_k − x*, z_k) (2N)."""
    Phi, G0, G1 = interpolated_noise_maps(A, h)
    n = Phi.shape[0]
    s = noise_scale(kappa0, h)
    F = np.zeros((2 * n, 2 * n))
    F[:n, :n] = Phi
    F[:n, n:] = s * G0
    Bm = np.vstack([s * G1, np.eye(n)])  # y_{k+1} = F y_k + Bm z_{k+1}
    return F, Bm @ Bm.T, n


def _interp_aug_cov(A, kappa0: float, h: float):
    F, Qn, n = _augmented_chain(A, kappa0, h)
    P = _sym(sla.solve_discrete_lyapunov(F, Qn))
    return F, P, n


def interpolated_noise_stationary_cov(A, kappa0: float, h: float, method: str = "lyapunov"):
    """Exact stationary covariance of x at the grid times u_k under interpolated noise (N, N).

    ``method="lyapunov"``: solve ``P = F P Fᵀ + Q`` for the augmented chain (x_k, z_k)
    (``scipy.linalg.solve_discrete_lyapunov``) and return the x-block. ``method="eig"``: the
    same quantity in closed form (everything is a function of A):
    ``Σ_h = s² (Γ0² + Γ1² + 2 Φ Γ0 Γ1)(I − Φ²)⁻¹``.

    Σ_h → κ₀ A⁻¹ as h → 0 and is smaller for large h (the interpolation low-pass filters the
    noise). Per eigenvalue a, ``Σ_h/(κ₀/a)`` depends only on y = a h
    (:func:`interpolated_noise_variance_ratio`): ≈ 1 − y/2 for small y, 0.952 at y = 0.1
    (~5 % low), 0.640 at y = 1 (36 % low).
    """
    if method == "lyapunov":
        _, P, n = _interp_aug_cov(A, kappa0, h)
        return P[:n, :n]
    if method == "eig":
        w, Q = eigh_spd(A)
        return _fun(Q, kappa0 / w * interpolated_noise_variance_ratio(w * h))
    raise ValueError(f"unknown method {method!r}")


def interpolated_noise_autocov(A, kappa0: float, h: float, lag: int) -> np.ndarray:
    """``Cov(x_{k+lag}, x_k)`` of the stationary grid-sampled chain, lag an integer ≥ 0 (steps)."""
    lag = int(lag)
    if lag < 0:
        raise ValueError("lag must be ≥ 0")
    F, P, n = _interp_aug_cov(A, kappa0, h)
    return (np.linalg.matrix_power(F, lag) @ P)[:n, :n]


def interpolated_noise_variance_ratio(y) -> np.ndarray:
    """Scalar case: stationary grid variance / (κ₀/a) as a function of y = a h
    (:func:`spu_circuits.ou_math.interpolated_variance_ratio`): r(y) = 1 − y/2 + O(y²),
    r(0.01) ≈ 0.995, r(0.1) ≈ 0.952, r(1) ≈ 0.640, and r ~ 2/y for large y."""
    return interpolated_variance_ratio(np.asarray(y, dtype=np.float64))


# ----------------------------------------------------------------------------- time scales


def fastest_rate(A) -> float:
    """λ_max(A): the fastest relaxation rate, in units of 1/τ."""
    return float(eigh_spd(A)[0][-1])


def default_noise_step(A, frac: float = WHITE_NOISE_STEP_FRAC) -> float:
    """Noise step h = frac / λ_max(A) in units of τ (NT = h τ); the default
    (:data:`spu_circuits.timesteps.WHITE_NOISE_STEP_FRAC` = 0.01) keeps the interpolation bias
    of the stationary variance at ~0.5 % (r ≈ 1 − frac/2)."""
    return frac / fastest_rate(A)


# ----------------------------------------------------------------------------- batch means


def _as_chains(samples) -> np.ndarray:
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise ValueError("samples must have shape (T,), (T, N) or (chains, T, N)")
    return x


def batch_means_se(samples, n_batches: int = 20) -> np.ndarray:
    """Standard error of the (pooled) sample mean of autocorrelated samples, per coordinate.

    samples: (T, N) or (chains, T, N) (independent chains). Each chain is cut into n_batches
    contiguous batches (the first T mod n_batches samples are dropped); with B = chains·n_batches
    batch means m_j, SE = std(m_j, ddof=1)/sqrt(B). Valid when a batch is much longer than the
    integrated autocorrelation time. Returns shape (N,).
    """
    m = split_batches(_as_chains(samples), n_batches).mean(axis=1)
    return batch_mean_se(m)[1]


def batch_cov_se(samples, n_batches: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Covariance estimate and the standard error of each entry, by batch means.

    The centred outer products ``(x_t − x̄)(x_t − x̄)ᵀ`` (x̄ the pooled mean) are averaged over
    all samples (cov, times n/(n−1)) and within each batch; the SE is the batch-means SE of that
    average. samples: (T, N) or (chains, T, N). Returns (cov (N, N), se (N, N)).
    """
    x = _as_chains(samples)
    xb = split_batches(x, n_batches)
    n_tot = xb.shape[0] * xb.shape[1]
    d = xb - xb.reshape(-1, xb.shape[-1]).mean(axis=0)
    bm = np.einsum("btj,btk->bjk", d, d) / d.shape[1]
    corr = n_tot / (n_tot - 1)
    cov, se = batch_mean_se(bm)
    return _sym(corr * cov), _sym(corr * se)
