"""tngd.krylov and tngd.gram in float64 against dense references (expm, eigh, solve)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spu_circuits import ou_math
from tngd.gram import GramFactor
from tngd.krylov import KrylovLowRankOU, lanczos_function
from tngd.lowrank_ou import GramLowRankOU

F64 = torch.float64


def _case(r: int, n: int, lam: float, seed: int, spread: tuple[float, float] | None = None):
    gen = torch.Generator().manual_seed(seed)
    if spread is None:
        S = torch.randn(r, n, dtype=F64, generator=gen)
    else:  # singular values log-spaced over `spread` decades
        k = min(r, n)
        U, _ = torch.linalg.qr(torch.randn(r, k, dtype=F64, generator=gen))
        V, _ = torch.linalg.qr(torch.randn(n, k, dtype=F64, generator=gen))
        S = U @ torch.diag(torch.logspace(*spread, k, dtype=F64)) @ V.T
    b = torch.randn(n, dtype=F64, generator=gen)
    x0 = torch.randn(n, dtype=F64, generator=gen)
    A = S.T @ S + lam * torch.eye(n, dtype=F64)
    return S, b, x0, A


def _rel(a, b) -> float:
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


def _sym_fun(A: torch.Tensor, fn) -> torch.Tensor:
    w, Q = torch.linalg.eigh(A)
    return (Q * fn(w)) @ Q.T


def test_gram_factor_solves_like_dense():
    S, b, _, A = _case(7, 30, 0.05, 0)
    fac = GramFactor(S, 0.05)
    assert _rel(fac.solve(b), torch.linalg.solve(A, b)) < 1e-12
    w = torch.randn(7, dtype=F64, generator=torch.Generator().manual_seed(1))
    small = fac.K + 0.05 * torch.eye(7, dtype=F64)
    assert _rel(fac.shift_invert(w), 0.05 * torch.linalg.solve(small, w)) < 1e-13
    mu, U = fac.eigh()
    assert torch.allclose((U * mu) @ U.T, fac.K, atol=1e-12)
    with pytest.raises(ValueError, match="damping > 0"):
        GramFactor(S, 0.0)
    with pytest.raises(RuntimeError, match="Cholesky"):
        GramFactor(torch.full((2, 3), math.nan, dtype=F64), 0.1)


def test_lanczos_function_matches_dense_and_stops_early():
    gen = torch.Generator().manual_seed(3)
    Q, _ = torch.linalg.qr(torch.randn(40, 40, dtype=F64, generator=gen))
    ev = torch.linspace(0.01, 1.0, 40, dtype=F64)
    M = (Q * ev) @ Q.T
    w = torch.randn(40, dtype=F64, generator=gen)
    res = lanczos_function(lambda v: M @ v, w, lambda th: np.exp(-2.0 * th), tol=1e-13)
    ref = _sym_fun(M, lambda x: torch.exp(-2.0 * x)) @ w
    assert res.converged and res.iterations < 40
    assert _rel(res.y, ref) < 1e-11
    # w in a 2-dimensional invariant subspace: exact after 2 steps
    w2 = Q[:, 3] + 2 * Q[:, 17]
    res2 = lanczos_function(lambda v: M @ v, w2, np.sqrt, tol=1e-13)
    assert res2.iterations == 2 and res2.converged
    assert _rel(res2.y, _sym_fun(M, torch.sqrt) @ w2) < 1e-12
    zero = lanczos_function(lambda v: M @ v, torch.zeros(40, dtype=F64), np.sqrt)
    assert zero.iterations == 0 and torch.equal(zero.y, torch.zeros(40, dtype=F64))


@pytest.mark.parametrize(
    "r,n,lam,h,spread",
    [
        (6, 15, 0.3, 1.7, None),
        (40, 15, 0.05, 3.0, None),  # r > N: K singular, λI + K not
        (30, 200, 0.01, 50.0, None),
        (12, 40, 1e-3, 3.0, (-8, 2)),  # cond(F̃) = 1e7
        (50, 300, 0.01, 0.2, (-3, 1)),
    ],
)
def test_krylov_mean_matches_expm(r, n, lam, h, spread):
    S, b, x0, A = _case(r, n, lam, r + n, spread)
    ou = KrylovLowRankOU(S, lam, b, 0.0)
    xs = torch.linalg.solve(A, b)
    ref = xs + _sym_fun(A, lambda a: torch.exp(-a * h)) @ (x0 - xs)
    # the dense references carry cond(F̃)·eps (1e7 in the ill-conditioned case, ≤ 1e5 else)
    tol = 1e-7 if spread == (-8, 2) else 1e-10
    assert _rel(ou.step(x0, h), ref) < tol
    assert _rel(ou.x_star, xs) < tol
    assert ou.fallbacks == 0
    # the eigendecomposition form agrees closely (same exact law, different round-off)
    gram = GramLowRankOU(S, lam, b, 0.0)
    assert _rel(ou.step(x0, h), gram.step(x0, h)) < (1e-9 if spread == (-8, 2) else 1e-12)
    # apply_function on a batch of vectors = dense f(A) v
    V = torch.randn(3, n, dtype=F64, generator=torch.Generator().manual_seed(5))
    fA = _sym_fun(A, lambda a: ou_math.transition_std(a, h, 0.2))
    got = ou.apply_function(lambda a: ou_math.transition_std(a, h, 0.2), V)
    assert _rel(got, V @ fA) < tol


def test_krylov_noise_uses_the_exact_transition_covariance():
    S, b, x0, A = _case(8, 25, 0.1, 7)
    h, k0 = 0.7, 0.3
    ou = KrylovLowRankOU(S, 0.1, b, k0)
    stepped = ou.step(x0, h, torch.Generator().manual_seed(11))
    xi = torch.randn(25, dtype=F64, generator=torch.Generator().manual_seed(11))
    xs = torch.linalg.solve(A, b)
    mean = xs + torch.linalg.matrix_exp(-A * h) @ (x0 - xs)
    root = _sym_fun(A, lambda a: ou_math.transition_std(a, h, k0))  # C^{1/2}, C = κ₀A⁻¹(I−e^{−2Ah})
    assert _rel(stepped, mean + root @ xi) < 1e-11


def test_krylov_stationary_sample_and_fallback():
    S, b, _, A = _case(5, 12, 0.2, 9)
    ou = KrylovLowRankOU(S, 0.2, b, 0.5)
    x = ou.step(torch.zeros(12, dtype=F64), math.inf, torch.Generator().manual_seed(2))
    gen = torch.Generator().manual_seed(2)
    xi = torch.randn(12, dtype=F64, generator=gen)
    zeta = torch.randn(5, dtype=F64, generator=gen)
    # x* + √κ₀ A⁻¹(√λ ξ + Sᵀζ): covariance κ₀ A⁻¹ (λI + SᵀS) A⁻¹ = κ₀ A⁻¹
    ref = torch.linalg.solve(A, b + math.sqrt(0.5) * (math.sqrt(0.2) * xi + S.T @ zeta))
    assert _rel(x, ref) < 1e-12
    # Lanczos capped at 2 steps: the eigendecomposition takes over, still exact
    S2, b2, x02, A2 = _case(30, 80, 0.01, 4)
    capped = KrylovLowRankOU(S2, 0.01, b2, 0.0, max_iter=2)
    xs = torch.linalg.solve(A2, b2)
    ref2 = xs + torch.linalg.matrix_exp(-A2 * 5.0) @ (x02 - xs)
    assert _rel(capped.step(x02, 5.0), ref2) < 1e-10 and capped.fallbacks == 1


def test_krylov_float32_matches_float64():
    S, b, x0, _ = _case(20, 120, 0.05, 13)
    o64 = KrylovLowRankOU(S, 0.05, b, 0.0).step(x0, 10.0)
    o32 = KrylovLowRankOU(S.float(), 0.05, b.float(), 0.0).step(x0.float(), 10.0)
    assert o32.dtype == torch.float32
    assert _rel(o32.double(), o64) < 1e-5


@pytest.mark.parametrize("r", [5, 300])
def test_gram_is_symmetric_and_equals_the_product(r):
    from tngd.gram import gram

    S = torch.randn(r, 50, dtype=F64, generator=torch.Generator().manual_seed(r))
    K = gram(S)
    assert torch.equal(K, K.T)
    assert torch.allclose(K, S @ S.T, rtol=0, atol=1e-12)


def test_wide_spectrum_switches_to_shift_invert_without_fallback():
    """μ_max·h ≈ 4e3 (K alone would need > 32 steps): the shift-invert operator converges,
    the eigendecomposition is not needed, and the result matches the dense flow."""
    S, b, x0, A = _case(60, 300, 0.01, 17)
    S = 0.2 * S
    A = S.T @ S + 0.01 * torch.eye(300, dtype=F64)
    ou = KrylovLowRankOU(S, 0.01, b, 0.0)
    mu_max = float(torch.linalg.eigvalsh(S @ S.T)[-1])
    assert mu_max * 50.0 > 1e3
    xs = torch.linalg.solve(A, b)
    ref = xs + _sym_fun(A, lambda a: torch.exp(-a * 50.0)) @ (x0 - xs)
    assert _rel(ou.step(x0, 50.0), ref) < 1e-10
    assert ou.fallbacks == 0 and ou.iterations > 32
