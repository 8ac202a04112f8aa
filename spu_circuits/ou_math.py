"""Scalar functions of the OU process, written once for numpy arrays and torch tensors.

Convention (DESIGN §2): dimensionless time u = t/τ, ``dx = −(A x − b) du + sqrt(2κ₀) dW``. Every
matrix function the theory (:mod:`spu_circuits.theory`, numpy) and the surrogates
(:mod:`tngd.surrogate`, :mod:`tngd.solvers_ou`, torch) need is one of these scalar functions
applied to the eigenvalues ``a`` of A (units of 1/τ). Each function takes a numpy array or a torch
tensor (any float dtype; the callers pass float64) and returns the same kind, using only the
names that numpy and torch share (``where``, ``exp``, ``expm1``, ``sqrt``, ``*_like``); this
module never imports torch.

* :func:`decay` — e^{−a h}, the mean map of a transition of length h;
* :func:`transition_var` / :func:`transition_std` — κ₀ (1 − e^{−2ah})/a, the variance a
  transition of length h adds (white noise);
* :func:`stationary_var` — κ₀/a;
* :func:`interp_coefficients` — (ψ0, ψ1) of the exact grid map under linearly interpolated noise;
* :func:`interpolated_variance_ratio` — that noise's stationary variance over κ₀/a;
* :func:`divided_difference` — (f(λ + μ) − f(λ))/μ, the weight of f on the range of a low-rank
  term (used by the solvers that apply f(λI + SᵀS) through the r×r Gram matrix).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

__all__ = [
    "decay",
    "divided_difference",
    "interp_coefficients",
    "interpolated_variance_ratio",
    "namespace",
    "stationary_var",
    "transition_std",
    "transition_var",
]

#: ψ0/ψ1 switch to their Taylor series below this y = a h (no cancellation); 25 terms reach
#: float64 round-off there (0.5^25/25! ≈ 2e-33).
SERIES_CUT = 0.5
SERIES_TERMS = 25


def namespace(x: Any) -> ModuleType:
    """The array module of x: torch for a torch tensor (found without importing torch), else
    numpy."""
    if type(x).__module__.split(".")[0] == "torch":
        return sys.modules["torch"]
    return np


def decay(a, h: float):
    """e^{−a h} (elementwise): the mean map of an exact transition of length h."""
    return namespace(a).exp(-a * h)


def transition_var(a, h: float, kappa0: float):
    """κ₀ (1 − e^{−2ah}) / a (elementwise, a > 0): the variance added by a transition of
    length h; → κ₀/a (:func:`stationary_var`) as h → ∞ and 2κ₀h as a → 0."""
    return kappa0 * -namespace(a).expm1(-2.0 * a * h) / a


def transition_std(a, h: float, kappa0: float):
    """sqrt(:func:`transition_var`)."""
    return namespace(a).sqrt(transition_var(a, h, kappa0))


def stationary_var(a, kappa0: float):
    """κ₀ / a: the stationary variance of a mode of rate a (white noise)."""
    return kappa0 / a


def interp_coefficients(y):
    """Weights of the interpolated-noise grid map for ``y = a h`` (a an eigenvalue, y ≥ 0).

    Returns ``(ψ0, ψ1)`` with ``Γ0 = h ψ0(Ah)`` and ``Γ1 = h ψ1(Ah)``:
    ``ψ0(y) = ∫_0^1 e^{−yw} w dw = (1 − (1+y)e^{−y})/y²`` and
    ``ψ1(y) = ∫_0^1 e^{−yw} (1−w) dw = (y − 1 + e^{−y})/y²`` (= φ₂(−y)), evaluated by their
    Taylor series for y < 0.5 (no cancellation), with ψ0(0) = ψ1(0) = 1/2.
    """
    xp = namespace(y)
    small = y < SERIES_CUT
    ys = xp.where(small, y, xp.zeros_like(y))
    yl = xp.where(small, xp.ones_like(y), y)
    # series: ψ0 = Σ (−y)^k / (k! (k+2)),  ψ1 = Σ (−y)^k / (k+2)!
    p0 = xp.zeros_like(ys)
    p1 = xp.zeros_like(ys)
    term = xp.ones_like(ys)  # (−y)^k / k!
    for k in range(SERIES_TERMS):
        p0 = p0 + term / (k + 2)
        p1 = p1 + term / ((k + 1) * (k + 2))
        term = term * (-ys) / (k + 1)
    e = xp.exp(-yl)
    q0 = (1.0 - (1.0 + yl) * e) / yl**2
    q1 = (yl - 1.0 + e) / yl**2
    return xp.where(small, p0, q0), xp.where(small, p1, q1)


def interpolated_variance_ratio(y):
    """Stationary grid variance under interpolated noise over κ₀/a, as a function of y = a h.

    ``r(y) = 2 y (ψ0² + ψ1² + 2 e^{−y} ψ0 ψ1) / (1 − e^{−2y})``; r(y) = 1 − y/2 + O(y²),
    r(0.01) ≈ 0.995, r(0.1) ≈ 0.952, r(1) ≈ 0.640, and r ~ 2/y for large y; r(0) = 1.
    """
    xp = namespace(y)
    p0, p1 = interp_coefficients(y)
    yy = xp.where(y > 0, y, xp.ones_like(y))
    r = 2.0 * yy * (p0**2 + p1**2 + 2.0 * xp.exp(-yy) * p0 * p1) / -xp.expm1(-2.0 * yy)
    return xp.where(y > 0, r, xp.ones_like(r))


def divided_difference(fn: Callable, lam: float, mu):
    """``(f(λ + μ) − f(λ)) / μ`` elementwise for μ ≥ 0, and 0 where μ = 0.

    With ``K = SSᵀ = U diag(μ) Uᵀ``: ``f(λI + SᵀS) = f(λ) I + Sᵀ U diag(q) Uᵀ S``, q this
    function (exact: Sᵀ q(SSᵀ) S = q(SᵀS) SᵀS = f(A) − f(λ)I). The value at μ = 0 does not matter
    (Sᵀu = 0 there). For tiny μ > 0 the quotient loses digits, but its contribution
    q·‖Sᵀu‖² = f(λ+μ) − f(λ) keeps an absolute error of round-off size. fn maps an array of
    eigenvalues of the same kind as mu.
    """
    xp = namespace(mu)
    lam_arr = xp.zeros_like(mu) + lam
    f_lam = fn(lam_arr)
    pos = mu > 0
    den = xp.where(pos, mu, xp.ones_like(mu))
    return xp.where(pos, (fn(lam_arr + mu) - f_lam) / den, xp.zeros_like(mu))
