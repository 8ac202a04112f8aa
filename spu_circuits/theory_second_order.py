"""Closed-form statistics of the coupled-oscillator SPU: underdamped Langevin (numpy, float64).

Convention (DESIGN §7). Time is dimensionless, ``u = t/τ``. The state is ``y = (x, v)`` (2N):

    dx = v du,     dv = −(A x − b) du − γ v du + sqrt(2 γ κ₀) dW_u,

A SPD (N×N), γ > 0 the damping. In block form ``dy = M (y − y*) du + B dW`` with
``M = [[0, I], [−A, −γI]]``, ``y* = (A⁻¹b, 0)`` and ``B = [0; sqrt(2γκ₀) I]``.

Stationary law: ``x ~ N(A⁻¹b, κ₀A⁻¹)``, ``v ~ N(0, κ₀I)``, independent (``M Σ + Σ Mᵀ + BBᵀ = 0``
for ``Σ = diag(κ₀A⁻¹, κ₀I)``). From a fixed y₀ the law at time u is Gaussian with mean
``y* + e^{Mu}(y₀ − y*)`` and covariance ``Σ − e^{Mu} Σ e^{Mᵀu}``.

Every eigenmode μ of A is an independent damped oscillator ``M_μ = [[0, 1], [−μ, −γ]]`` with
roots ``−γ/2 ± sqrt(γ²/4 − μ)``: :func:`mode_exp` gives its 2×2 exponential in closed form
(what the low-rank surrogate uses); the dense functions here use ``scipy.linalg.expm`` and a
Lyapunov solve instead, so the two are independent computations.

*Interpolated noise* (file noise through ngspice's ``filesource``): samples ``z_k ~ N(0, I_N)``
at ``u_k = k h``, linearly interpolated, force v: ``dv/du = … + s z(u)``, ``s = sqrt(2γκ₀/h)``.
Exact grid map ``y_{k+1} − y* = Φ (y_k − y*) + s (Γ0 z_k + Γ1 z_{k+1})`` (Γ0, Γ1: 2N×N), from
one block matrix exponential (:func:`noise_maps`). *Held* noise (zero-order hold) uses
``Γ = Γ0 + Γ1``.

Arrays: a single state is ``(2N,)``; stacks of times lead, ``(T, 2N)`` / ``(T, 2N, 2N)``.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg as sla

from .theory import eigh_spd

__all__ = [
    "drift_matrix",
    "stationary_mean",
    "stationary_cov",
    "stationary_cov_lyapunov",
    "transition_matrix",
    "transient_mean",
    "transient_cov",
    "autocov",
    "mode_exp",
    "slowest_rate",
    "default_gamma",
    "noise_scale",
    "noise_maps",
    "interpolated_noise_stationary_cov",
    "interpolated_noise_autocov",
    "run_interpolated",
    "settling_time",
    "first_order_settling_time",
]


def _check_gamma(gamma: float) -> float:
    g = float(gamma)
    if not (math.isfinite(g) and g > 0):
        raise ValueError(f"the damping γ must be positive and finite, got {gamma!r}")
    return g


def drift_matrix(A, gamma: float) -> np.ndarray:
    """``M = [[0, I], [−A, −γI]]`` (2N, 2N)."""
    w, _ = eigh_spd(A)
    A = np.asarray(A, dtype=np.float64)
    n = A.shape[0]
    g = _check_gamma(gamma)
    M = np.zeros((2 * n, 2 * n))
    M[:n, n:] = np.eye(n)
    M[n:, :n] = -0.5 * (A + A.T)
    M[n:, n:] = -g * np.eye(n)
    return M


def stationary_mean(A, b) -> np.ndarray:
    """``y* = (A⁻¹b, 0)`` (2N,)."""
    A = np.asarray(A, dtype=np.float64)
    xs = sla.solve(A, np.asarray(b, dtype=np.float64), assume_a="pos")
    return np.concatenate([xs, np.zeros_like(xs)])


def stationary_cov(A, kappa0: float) -> np.ndarray:
    """``diag(κ₀A⁻¹, κ₀I)`` (2N, 2N): x and v independent, v ~ N(0, κ₀I)."""
    w, Q = eigh_spd(A)
    n = w.size
    S = np.zeros((2 * n, 2 * n))
    S[:n, :n] = (Q * (kappa0 / w)) @ Q.T
    S[n:, n:] = kappa0 * np.eye(n)
    return S


def stationary_cov_lyapunov(A, gamma: float, kappa0: float) -> np.ndarray:
    """The stationary covariance from ``M Σ + Σ Mᵀ = −BBᵀ`` (scipy's Lyapunov solver)."""
    M = drift_matrix(A, gamma)
    n = M.shape[0] // 2
    Q = np.zeros_like(M)
    Q[n:, n:] = 2.0 * gamma * kappa0 * np.eye(n)
    S = sla.solve_continuous_lyapunov(M, -Q)
    return 0.5 * (S + S.T)


def _times(u) -> tuple[np.ndarray, bool]:
    ua = np.asarray(u, dtype=np.float64)
    if ua.ndim > 1:
        raise ValueError("u must be a scalar or a 1-D array of times")
    return ua.reshape(-1), ua.ndim == 0


def transition_matrix(A, gamma: float, u) -> np.ndarray:
    """``e^{Mu}`` (2N, 2N), or (T, 2N, 2N) for a 1-D array of times (``scipy.linalg.expm``)."""
    M = drift_matrix(A, gamma)
    ut, scalar = _times(u)
    out = np.stack([sla.expm(M * t) for t in ut])
    return out[0] if scalar else out


def transient_mean(A, b, gamma: float, y0, u) -> np.ndarray:
    """Mean ``y* + e^{Mu}(y₀ − y*)`` from a fixed y₀ = (x₀, v₀) (2N,): (2N,) or (T, 2N)."""
    ys = stationary_mean(A, b)
    y0 = np.asarray(y0, dtype=np.float64)
    if y0.shape != ys.shape:
        raise ValueError(f"y0 must have shape {ys.shape} (x then v), got {y0.shape}")
    E = transition_matrix(A, gamma, u)
    return ys + E @ (y0 - ys)


def transient_cov(A, gamma: float, kappa0: float, u) -> np.ndarray:
    """Covariance ``Σ − e^{Mu} Σ e^{Mᵀu}`` from a fixed start; Σ from the Lyapunov solve."""
    S = stationary_cov_lyapunov(A, gamma, kappa0)
    E = transition_matrix(A, gamma, u)
    P = S - E @ S @ np.swapaxes(E, -1, -2)
    return 0.5 * (P + np.swapaxes(P, -1, -2))


def autocov(A, gamma: float, kappa0: float, lag, cov=None) -> np.ndarray:
    """Stationary ``Cov(y(u + lag), y(u)) = e^{M·lag} Σ`` (2N, 2N) or (L, 2N, 2N)."""
    S = stationary_cov(A, kappa0) if cov is None else np.asarray(cov, dtype=np.float64)
    return transition_matrix(A, gamma, lag) @ S


# ----------------------------------------------------------------------------- one mode


def _sinhc(z: np.ndarray) -> np.ndarray:
    """sinh(√z)/√z for z ≥ 0, sin(√−z)/√−z for z < 0 (entire in z; series near 0)."""
    z = np.asarray(z, dtype=np.float64)
    out = np.empty_like(z)
    small = np.abs(z) < 1e-2
    zs = z[small]
    out[small] = 1 + zs / 6 * (1 + zs / 20 * (1 + zs / 42 * (1 + zs / 72)))
    zl = z[~small]
    r = np.sqrt(np.abs(zl))
    out[~small] = np.where(zl > 0, np.sinh(np.minimum(np.where(zl > 0, r, 0.0), 700.0)) / r,
                          np.sin(r) / r)
    return out


def mode_exp(mu, gamma: float, h: float) -> tuple[np.ndarray, ...]:
    """``e^{M_μ h}`` for ``M_μ = [[0, 1], [−μ, −γ]]``, elementwise over μ and h (broadcast):
    (E11, E12, E21, E22).

    With ω² = γ²/4 − μ and K = M_μ + γ/2·I (K² = ω²I): ``e^{M h} = e^{−γh/2}(cosh(ωh) I +
    sinh(ωh)/ω K)``, cosh/sinh turning into cos/sin when underdamped (ω² < 0). For an overdamped
    mode the two exponentials are combined so nothing overflows: ``e^{−γh/2} cosh(ωh) =
    (e^{−r₁h} + e^{−r₂h})/2`` with the slow rate ``r₁ = μ/(γ/2 + ω)`` (no cancellation).
    """
    g = _check_gamma(gamma)
    mu, h = np.broadcast_arrays(np.asarray(mu, dtype=np.float64),
                                np.asarray(h, dtype=np.float64))
    w2 = 0.25 * g * g - mu
    z = w2 * h * h
    big = z > 1.0
    zc = np.where(big, 1.0, z)
    e = np.exp(-0.5 * g * h)
    # near/under-damped: entire functions of z times e^{−γh/2}
    rz = np.sqrt(np.abs(zc))
    ch = np.where(zc >= 0, np.cosh(np.where(zc >= 0, rz, 0.0)), np.cos(rz))
    c = e * ch
    s = e * h * _sinhc(zc)  # e^{−γh/2} sinh(ωh)/ω
    if np.any(big):
        om = np.sqrt(np.where(big, w2, 1.0))
        r1 = mu / (0.5 * g + om)
        r2 = 0.5 * g + om
        e1, e2 = np.exp(-r1 * h), np.exp(-r2 * h)
        c = np.where(big, 0.5 * (e1 + e2), c)
        s = np.where(big, (e1 - e2) / (2 * om), s)
    return c + 0.5 * g * s, s, -mu * s, c - 0.5 * g * s


def slowest_rate(A, gamma: float) -> float:
    """Smallest decay rate min_μ −Re(root) of the second-order modes (units of 1/τ)."""
    w, _ = eigh_spd(A)
    g = _check_gamma(gamma)
    w2 = 0.25 * g * g - w
    r = np.where(w2 > 0, w / (0.5 * g + np.sqrt(np.maximum(w2, 0.0))), 0.5 * g)
    return float(r.min())


def default_gamma(lam_min: float) -> float:
    """γ = 2√λ_min: the slowest mode critically damped, every other one underdamped, all
    decaying at rate √λ_min (DESIGN §7)."""
    if not lam_min > 0:
        raise ValueError(f"λ_min must be positive, got {lam_min!r}")
    return 2.0 * math.sqrt(lam_min)


# ----------------------------------------------------------------------------- noise on a grid


def noise_scale(gamma: float, kappa0: float, h: float) -> float:
    """``s = sqrt(2γκ₀/h)``: the factor multiplying the unit-variance samples z_k."""
    return math.sqrt(2.0 * gamma * kappa0 / h)


def noise_maps(A, gamma: float, h: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(Φ, Γ0, Γ1)``: Φ = e^{Mh} (2N, 2N); Γ0, Γ1 (2N, N) weight z_k and z_{k+1}.

    From one exponential of ``[[M, E, 0], [0, 0, I], [0, 0, 0]]·h`` (E = [0; I]): its top blocks
    are ``G = ∫₀ʰ e^{M(h−w)} E dw`` and ``H = ∫₀ʰ e^{M(h−w)} E w dw``; ``Γ1 = H/h``,
    ``Γ0 = G − H/h``. Held (zero-order hold) noise has ``Γ = G = Γ0 + Γ1``.
    """
    if not h > 0:
        raise ValueError("h must be positive")
    M = drift_matrix(A, gamma)
    m = M.shape[0]
    n = m // 2
    big = np.zeros((m + 2 * n, m + 2 * n))
    big[:m, :m] = M
    big[n:m, m:m + n] = np.eye(n)
    big[m:m + n, m + n:] = np.eye(n)
    X = sla.expm(big * h)
    Phi = X[:m, :m]
    G = X[:m, m:m + n]
    H = X[:m, m + n:]  # ∫ e^{M(h−w)} E w dw (the chain rule of the nilpotent block gives w)
    return Phi, G - H / h, H / h


def _augmented_chain(A, gamma: float, kappa0: float, h: float):
    """Transition F and noise covariance Q of the chain (y_k − y*, z_k) (3N)."""
    Phi, G0, G1 = noise_maps(A, gamma, h)
    m, n = G0.shape
    s = noise_scale(gamma, kappa0, h)
    F = np.zeros((m + n, m + n))
    F[:m, :m] = Phi
    F[:m, m:] = s * G0
    Bm = np.vstack([s * G1, np.eye(n)])
    return F, Bm @ Bm.T, m


def interpolated_noise_stationary_cov(A, gamma: float, kappa0: float, h: float) -> np.ndarray:
    """Exact stationary covariance of y at the grid times under interpolated noise (2N, 2N),
    from the discrete Lyapunov equation of the augmented chain. → diag(κ₀A⁻¹, κ₀I) as h → 0."""
    F, Qn, m = _augmented_chain(A, gamma, kappa0, h)
    P = sla.solve_discrete_lyapunov(F, Qn)
    P = 0.5 * (P + P.T)
    return P[:m, :m]


def interpolated_noise_autocov(A, gamma: float, kappa0: float, h: float, lag: int
                               ) -> np.ndarray:
    """``Cov(y_{k+lag}, y_k)`` of the stationary grid chain (2N, 2N); lag in steps (≥ 0)."""
    lag = int(lag)
    if lag < 0:
        raise ValueError("lag must be ≥ 0")
    F, Qn, m = _augmented_chain(A, gamma, kappa0, h)
    P = sla.solve_discrete_lyapunov(F, Qn)
    P = 0.5 * (P + P.T)
    return (np.linalg.matrix_power(F, lag) @ P)[:m, :m]


def run_interpolated(A, b, gamma: float, kappa0: float, h: float, z, y0) -> np.ndarray:
    """Integrate the given interpolated noise z (K+1, N) exactly from y0 (2N,): (K+1, 2N)."""
    Phi, G0, G1 = noise_maps(A, gamma, h)
    ys = stationary_mean(A, b)
    s = noise_scale(gamma, kappa0, h)
    z = np.asarray(z, dtype=np.float64)
    out = np.empty((z.shape[0], ys.size))
    y = np.asarray(y0, dtype=np.float64) - ys
    out[0] = y
    for k in range(z.shape[0] - 1):
        y = Phi @ y + s * (G0 @ z[k] + G1 @ z[k + 1])
        out[k + 1] = y
    return out + ys


# ----------------------------------------------------------------------------- settling


def _last_crossing(err_fn, u_grid: np.ndarray, eps: float) -> float:
    """Last time err(u) > eps on the grid, refined by bisection (u after it all ≤ eps)."""
    e = err_fn(u_grid)
    above = np.nonzero(e > eps)[0]
    if above.size == 0:
        return 0.0
    k = int(above[-1])
    if k == u_grid.size - 1:
        return math.inf
    lo, hi = u_grid[k], u_grid[k + 1]
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if err_fn(np.array([mid]))[0] > eps:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def settling_time(A, b, gamma: float, eps: float = 1e-3, x0=None, *, n_grid: int = 20000,
                  u_max: float | None = None) -> float:
    """Analog time (units of τ) after which ``‖m_x(u) − x*‖ ≤ eps·‖x*‖`` for good, from
    (x₀, 0) (x₀ = 0 by default): the last crossing of the exact mean's relative error.
    Per eigenmode with :func:`mode_exp` (exact); the grid spans 40/(slowest rate)."""
    w, Q = eigh_spd(A)
    xs = stationary_mean(A, b)[: w.size]
    x0 = np.zeros_like(xs) if x0 is None else np.asarray(x0, dtype=np.float64)
    d = Q.T @ (x0 - xs)
    nref = float(np.linalg.norm(xs))
    u_max = u_max or 40.0 / slowest_rate(A, gamma)

    def err(u):
        e11 = mode_exp(w[None, :], gamma, np.asarray(u)[:, None])[0]
        return np.linalg.norm(e11 * d, axis=1) / nref

    return _last_crossing(err, np.linspace(0.0, u_max, n_grid), eps)


def first_order_settling_time(A, b, eps: float = 1e-3, x0=None, *, n_grid: int = 20000) -> float:
    """The same for the first-order device ``dx = −(Ax − b) du`` (mean x* + e^{−Au}(x₀ − x*))."""
    w, Q = eigh_spd(A)
    xs = sla.solve(np.asarray(A, dtype=np.float64), np.asarray(b, dtype=np.float64))
    x0 = np.zeros_like(xs) if x0 is None else np.asarray(x0, dtype=np.float64)
    d = Q.T @ (x0 - xs)
    nref = float(np.linalg.norm(xs))

    def err(u):
        return np.linalg.norm(np.exp(-np.outer(u, w)) * d, axis=1) / nref

    return _last_crossing(err, np.linspace(0.0, 40.0 / w[0], n_grid), eps)
