"""Tests of tngd.surrogate against spu_circuits.theory (float64, fixed seeds)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg as sla
import torch

from spu_circuits import theory as th
from tngd.surrogate import (
    DenseOU,
    EulerMaruyamaOU,
    LowRankOU,
    interp_coefficients,
    run_interpolated,
)

F64 = torch.float64
KAPPA0 = 0.3
LAM = 0.5


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _lowrank(r: int, n: int, seed: int, rank: int | None = None):
    rng = np.random.default_rng(seed)
    if rank is None:
        S = rng.standard_normal((r, n)) * 0.8
    else:
        S = rng.standard_normal((r, rank)) @ rng.standard_normal((rank, n)) * 0.5
    b = rng.standard_normal(n)
    A = LAM * np.eye(n) + S.T @ S
    return S, b, A


@pytest.fixture
def sys6():
    """N = 6, r = 3: A = λI + SᵀS with eigenvalues between 0.5 and ~9."""
    return _lowrank(3, 6, 0)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


# ----------------------------------------------------------------------------- exact transitions


@pytest.mark.parametrize(
    "r,n,rank",
    [(3, 6, None), (9, 6, None), (5, 6, 2), (2, 4, 0), (0, 4, None)],
    ids=["thin", "r>N", "rank-deficient", "zero", "r=0"],
)
def test_lowrank_matches_dense_transition(r, n, rank):
    S, b, A = _lowrank(r, n, 1, rank)
    if rank == 0:
        S = np.zeros((r, n))
        A = LAM * np.eye(n)
    dense = DenseOU(torch.tensor(A), torch.tensor(b), KAPPA0)
    low = LowRankOU(torch.tensor(S), LAM, torch.tensor(b), KAPPA0)
    assert low.rank == (min(r, n) if rank is None else rank)
    np.testing.assert_allclose(_np(low.dense()), A, atol=1e-12)
    np.testing.assert_allclose(_np(low.x_star), np.linalg.solve(A, b), atol=1e-10)
    np.testing.assert_allclose(_np(dense.x_star), np.linalg.solve(A, b), atol=1e-10)
    for h in [1e-3, 0.3, 2.0]:
        Pd, Cd = dense.transition(h)
        Pl, Cl = low.transition(h)
        assert torch.abs(Pd - Pl).max() < 1e-10
        assert torch.abs(Cd - Cl).max() < 1e-10
        # against scipy: Φ = e^{−Ah}, C = κ₀ A⁻¹ (I − Φ²)
        E = sla.expm(-A * h)
        np.testing.assert_allclose(_np(Pd), E, atol=1e-12)
        np.testing.assert_allclose(_np(Cd), th.transient_cov(A, KAPPA0, h), atol=1e-12)


@pytest.mark.parametrize("kind", ["dense", "lowrank"])
def test_step_law(sys6, kind):
    """step(x, h, g) = x* + Φ(x − x*) + C^{1/2} ξ with ξ the generator's draws and C^{1/2} the
    symmetric square root of the exact transition covariance."""
    S, b, A = sys6
    ou = (
        DenseOU(torch.tensor(A), torch.tensor(b), KAPPA0)
        if kind == "dense"
        else LowRankOU(torch.tensor(S), LAM, torch.tensor(b), KAPPA0)
    )
    h = 0.4
    x = torch.tensor(np.random.default_rng(3).standard_normal((7, 6)))
    Phi, C = ou.transition(h)
    xs = ou.x_star
    # push basis vectors through the deterministic part
    np.testing.assert_allclose(
        _np(ou.transition_mean(x, h)), _np(xs + (x - xs) @ Phi.T), atol=1e-12
    )
    root = ou.dense(lambda a: torch.sqrt(KAPPA0 * -torch.expm1(-2 * a * h) / a))
    np.testing.assert_allclose(_np(root @ root.T), _np(C), atol=1e-12)
    xi = torch.randn(x.shape, generator=_gen(9), dtype=F64)
    stepped = ou.step(x, h, _gen(9))
    np.testing.assert_allclose(
        _np(stepped), _np(ou.transition_mean(x, h) + xi @ root.T), atol=1e-12
    )


def test_mean_at(sys6):
    S, b, A = sys6
    x0 = np.random.default_rng(4).standard_normal((3, 6)) * 2
    u = np.array([0.0, 0.1, 1.0, 5.0])
    ref = np.stack([th.transient_mean(A, b, x0[c], u) for c in range(3)], axis=1)  # (T, 3, N)
    for ou in [
        DenseOU(torch.tensor(A), torch.tensor(b), KAPPA0),
        LowRankOU(torch.tensor(S), LAM, torch.tensor(b), KAPPA0),
    ]:
        m = ou.mean_at(torch.tensor(x0), torch.tensor(u))
        assert m.shape == (4, 3, 6)
        np.testing.assert_allclose(_np(m), ref, atol=1e-12)
        np.testing.assert_allclose(_np(ou.mean_at(x0[0], 1.0)), ref[2, 0], atol=1e-12)


@pytest.mark.parametrize("kind", ["dense", "lowrank", "em"])
def test_noiseless_converges_to_solution(sys6, kind):
    S, b, A = sys6
    xs = np.linalg.solve(A, b)
    if kind == "em":
        ou, h, steps = EulerMaruyamaOU(torch.tensor(A), torch.tensor(b), 0.0), 0.1, 1500
    elif kind == "dense":
        ou, h, steps = DenseOU(torch.tensor(A), torch.tensor(b), 0.0), 1.0, 80
    else:
        ou, h, steps = LowRankOU(torch.tensor(S), LAM, torch.tensor(b), 0.0), 1.0, 80
    x0 = torch.tensor(np.random.default_rng(2).standard_normal((4, 6)) * 10)
    _, xt = ou.sample(x0, h, steps, thin=steps)
    assert xt.shape == (1, 4, 6)
    assert np.abs(_np(xt[-1]) - xs).max() < 1e-8


def _check_within_se(est, ref, se, k=4.0):
    z = np.abs(est - ref) / se
    assert np.all(se > 0)
    assert z.max() < k, f"max |z| = {z.max():.2f}\n{z}"


@pytest.mark.parametrize("kind", ["dense", "lowrank"])
def test_stationary_moments_monte_carlo(sys6, kind):
    S, b, A = sys6
    ou = (
        DenseOU(torch.tensor(A), torch.tensor(b), KAPPA0)
        if kind == "dense"
        else LowRankOU(torch.tensor(S), LAM, torch.tensor(b), KAPPA0)
    )
    _, x = ou.sample(
        torch.zeros(6, dtype=F64), 0.5, 1000, burn_in=60, chains=64, generator=_gen(11)
    )
    assert x.shape == (1000, 64, 6)
    xc = _np(x).transpose(1, 0, 2)  # (chains, T, N)
    mean, se = xc.reshape(-1, 6).mean(axis=0), th.batch_means_se(xc)
    _check_within_se(mean, np.linalg.solve(A, b), se)
    cov, cse = th.batch_cov_se(xc)
    _check_within_se(cov, th.stationary_cov(A, KAPPA0), cse)
    assert cse.max() < 0.05 * np.abs(np.diag(th.stationary_cov(A, KAPPA0))).min()


def test_reproducible(sys6):
    S, b, A = sys6
    for ou in [
        DenseOU(torch.tensor(A), torch.tensor(b), KAPPA0),
        LowRankOU(torch.tensor(S), LAM, torch.tensor(b), KAPPA0),
        EulerMaruyamaOU(torch.tensor(A), torch.tensor(b), KAPPA0),
    ]:
        r1 = ou.sample(torch.zeros(6, dtype=F64), 0.1, 20, chains=3, generator=_gen(5))[1]
        r2 = ou.sample(torch.zeros(6, dtype=F64), 0.1, 20, chains=3, generator=_gen(5))[1]
        r3 = ou.sample(torch.zeros(6, dtype=F64), 0.1, 20, chains=3, generator=_gen(6))[1]
        assert torch.equal(r1, r2)
        assert not torch.equal(r1, r3)
    ou = DenseOU(torch.tensor(A), torch.tensor(b), KAPPA0)
    a = ou.sample_interpolated(torch.zeros(6, dtype=F64), 0.1, 30, chains=2, generator=_gen(1))
    c = ou.sample_interpolated(torch.zeros(6, dtype=F64), 0.1, 30, chains=2, generator=_gen(1))
    assert all(torch.equal(p, q) for p, q in zip(a, c, strict=True))


def test_sample_times_and_thinning(sys6):
    S, b, A = sys6
    ou = LowRankOU(torch.tensor(S), LAM, torch.tensor(b), KAPPA0)
    t, x = ou.sample(torch.zeros(2, 6, dtype=F64), 0.25, 10, burn_in=4, thin=3, generator=_gen(0))
    assert x.shape == (3, 2, 6)
    np.testing.assert_allclose(_np(t), [1.75, 2.5, 3.25])
    t, x = ou.trajectory(torch.ones(6, dtype=F64), 0.5, 4, chains=5, generator=_gen(0))
    assert x.shape == (5, 5, 6) and torch.equal(x[0], torch.ones(5, 6, dtype=F64))
    np.testing.assert_allclose(_np(t), [0, 0.5, 1, 1.5, 2])


def test_float32():
    S, b, A = _lowrank(3, 6, 0)
    d32 = DenseOU(torch.tensor(A, dtype=torch.float32), torch.tensor(b), KAPPA0)
    l32 = LowRankOU(torch.tensor(S, dtype=torch.float32), LAM, torch.tensor(b), KAPPA0)
    d64 = DenseOU(torch.tensor(A), torch.tensor(b), KAPPA0)
    x = torch.ones(2, 6, dtype=torch.float32)
    for ou in [d32, l32]:
        y = ou.step(x, 0.3, _gen(0))
        assert y.dtype == torch.float32
        m = ou.transition_mean(x, 0.3)
        np.testing.assert_allclose(_np(m), _np(d64.transition_mean(x.double(), 0.3)), atol=1e-5)
        z = torch.randn(11, 2, 6, generator=_gen(0))
        xi = ou.run_interpolated(0.2, z, x)
        assert xi.dtype == torch.float32
        np.testing.assert_allclose(
            _np(xi), _np(d64.run_interpolated(0.2, z.double(), x)), atol=1e-4
        )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(sys6):
    S, b, A = sys6
    dev = torch.device("cuda")
    low_c = LowRankOU(torch.tensor(S, device=dev), LAM, torch.tensor(b), KAPPA0)
    low = LowRankOU(torch.tensor(S), LAM, torch.tensor(b), KAPPA0)
    assert low_c.x_star.device.type == "cuda"
    z = torch.randn(50, 4, 6, generator=_gen(0), dtype=F64)
    xc = low_c.run_interpolated(0.1, z.to(dev), torch.zeros(6, dtype=F64, device=dev))
    np.testing.assert_allclose(
        _np(xc), _np(low.run_interpolated(0.1, z, torch.zeros(6))), atol=1e-10
    )
    g = torch.Generator(device=dev).manual_seed(0)
    _, x = low_c.sample(torch.zeros(6, device=dev, dtype=F64), 0.2, 5, chains=3, generator=g)
    assert x.device.type == "cuda" and x.shape == (5, 3, 6)


# ----------------------------------------------------------------------------- interpolated noise


def test_interp_coefficients_match_theory():
    y = np.concatenate([[0.0], np.geomspace(1e-9, 1e3, 200)])
    p0, p1 = interp_coefficients(torch.tensor(y))
    q0, q1 = th.interp_coefficients(y)
    np.testing.assert_allclose(_np(p0), q0, rtol=1e-14, atol=0)
    np.testing.assert_allclose(_np(p1), q1, rtol=1e-14, atol=0)


def _rhs(A, b, s, x, zu):
    return -(x @ A.T - b) + s * zu


def _fine_integration(A, b, kappa0, h, z, x0, m, method):
    """Integrate dx/du = −(Ax − b) + s z(u) with m sub-steps per noise interval (numpy)."""
    s = math.sqrt(2 * kappa0 / h)
    d = h / m
    x = np.array(x0, dtype=float)
    out = [x.copy()]
    for k in range(z.shape[0] - 1):
        for j in range(m):
            th0 = j / m

            def zf(t, k=k):
                return (1 - t) * z[k] + t * z[k + 1]

            if method == "euler":
                x = x + d * _rhs(A, b, s, x, zf(th0))
            else:  # classical RK4
                k1 = _rhs(A, b, s, x, zf(th0))
                k2 = _rhs(A, b, s, x + 0.5 * d * k1, zf(th0 + 0.5 / m))
                k3 = _rhs(A, b, s, x + 0.5 * d * k2, zf(th0 + 0.5 / m))
                k4 = _rhs(A, b, s, x + d * k3, zf(th0 + 1 / m))
                x = x + d / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        out.append(x.copy())
    return np.array(out)


def test_run_interpolated_pathwise(sys6):
    """Exact grid map vs fine integration of the same piecewise-linear noise path."""
    S, b, A = sys6
    h, K = 0.3, 30
    rng = np.random.default_rng(8)
    z = rng.standard_normal((K + 1, 6))
    x0 = rng.standard_normal(6)
    ex = _np(
        run_interpolated(
            torch.tensor(A), torch.tensor(b), KAPPA0, h, torch.tensor(z), torch.tensor(x0)
        )
    )
    assert ex.shape == (K + 1, 6)
    np.testing.assert_allclose(ex[0], x0, atol=0)
    # classical RK4 converges to it at fourth order (error ratio 16 per halving)
    rk = [
        np.abs(_fine_integration(A, b, KAPPA0, h, z, x0, m, "rk4") - ex).max() for m in (16, 32, 64)
    ]
    assert rk[-1] < 2e-9
    assert all(13 < e1 / e2 < 19 for e1, e2 in zip(rk, rk[1:], strict=False)), rk
    # forward Euler converges to it at first order
    errs = [
        np.abs(_fine_integration(A, b, KAPPA0, h, z, x0, m, "euler") - ex).max()
        for m in (50, 100, 200)
    ]
    assert errs[-1] < 2e-2
    assert all(1.8 < e1 / e2 < 2.2 for e1, e2 in zip(errs, errs[1:], strict=False))
    # the low-rank form and the (S, λ) entry point give the same path
    lo = run_interpolated(
        (torch.tensor(S), LAM), torch.tensor(b), KAPPA0, h, torch.tensor(z), torch.tensor(x0)
    )
    assert np.abs(_np(lo) - ex).max() < 1e-10
    # the theory's one-step maps give the same path too
    Phi, G0, G1 = th.interpolated_noise_maps(A, h)
    xs, s = np.linalg.solve(A, b), th.noise_scale(KAPPA0, h)
    x = x0.copy()
    for k in range(K):
        x = xs + Phi @ (x - xs) + s * (G0 @ z[k] + G1 @ z[k + 1])
    assert np.abs(x - ex[-1]).max() < 1e-12


def test_run_interpolated_batched_and_instance(sys6):
    S, b, A = sys6
    low = LowRankOU(torch.tensor(S), LAM, torch.tensor(b), KAPPA0)
    dense = DenseOU(torch.tensor(A), torch.tensor(b), KAPPA0)
    z = torch.randn(21, 3, 6, generator=_gen(2), dtype=F64)
    x0 = torch.randn(3, 6, generator=_gen(3), dtype=F64)
    xl = run_interpolated(low, None, None, 0.05, z, x0)
    xd = dense.run_interpolated(0.05, z, x0)
    assert xl.shape == (21, 3, 6)
    assert torch.abs(xl - xd).max() < 1e-10
    for c in range(3):  # chains are independent runs
        one = dense.run_interpolated(0.05, z[:, c], x0[c])
        assert torch.abs(one - xd[:, c]).max() < 1e-12
    # overriding b on an instance
    xb = run_interpolated(low, torch.zeros(6, dtype=F64), None, 0.05, z, x0)
    xr = run_interpolated(torch.tensor(A), torch.zeros(6, dtype=F64), KAPPA0, 0.05, z, x0)
    assert torch.abs(xb - xr).max() < 1e-10


def test_run_interpolated_stationary_cov(sys6):
    """Grid-sampled covariance vs the exact interpolated-noise covariance at h = 1/λ_max,
    where it is far (≈ 36 % in the fast direction) from κ₀A⁻¹."""
    S, b, A = sys6
    lmax = th.fastest_rate(A)
    h = 1.0 / lmax
    low = LowRankOU(torch.tensor(S), LAM, torch.tensor(b), KAPPA0)
    _, x, _ = low.sample_interpolated(low.x_star, h, 4000, chains=64, generator=_gen(21))
    xc = _np(x[400:]).transpose(1, 0, 2)
    P = th.interpolated_noise_stationary_cov(A, KAPPA0, h)
    mean, se = xc.reshape(-1, 6).mean(axis=0), th.batch_means_se(xc)
    _check_within_se(mean, np.linalg.solve(A, b), se)
    cov, cse = th.batch_cov_se(xc)
    _check_within_se(cov, P, cse)
    # the variance along the fastest eigenvector discriminates the two covariances
    q = np.linalg.eigh(A)[1][:, -1]
    v, vse = th.batch_cov_se((xc @ q)[..., None])
    assert abs(v[0, 0] - q @ P @ q) < 4 * vse[0, 0]
    assert abs(v[0, 0] - KAPPA0 / lmax) > 20 * vse[0, 0]
    # lag-1 autocovariance of the sampled chain
    y = xc - np.linalg.solve(A, b)
    r1 = np.einsum("ctj,ctk->jk", y[:, 1:], y[:, :-1]) / (y.shape[0] * (y.shape[1] - 1))
    R1 = th.interpolated_noise_autocov(A, KAPPA0, h, 1)
    assert np.abs(r1 - R1).max() < 0.03 * np.abs(R1).max()


# ----------------------------------------------------------------------------- Euler–Maruyama


def _em_moments(em: EulerMaruyamaOU, x0: np.ndarray, h: float, k: int):
    """Exact mean and covariance after k EM steps, from the implementation's own linear map:
    x ← M x + c + σ ξ, with M, c read off drift_step and σ = noise_std."""
    n = x0.shape[0]
    c = em.drift_step(torch.zeros(n, dtype=F64), h)
    M = (em.drift_step(torch.eye(n, dtype=F64), h) - c).T  # column j = M e_j
    sig2 = em.noise_std(h) ** 2
    m = torch.tensor(x0)
    C = torch.zeros(n, n, dtype=F64)
    for _ in range(k):
        m = em.drift_step(m, h)
        C = M @ C @ M.T + sig2 * torch.eye(n, dtype=F64)
    return _np(m), _np(C)


def test_em_step_is_drift_plus_noise(sys6):
    S, b, A = sys6
    em = EulerMaruyamaOU(lambda v: v @ torch.tensor(A).T, torch.tensor(b), KAPPA0)
    x = torch.randn(4, 6, generator=_gen(1), dtype=F64)
    xi = torch.randn(4, 6, generator=_gen(2), dtype=F64)
    ref = x - 0.05 * (x @ torch.tensor(A).T - torch.tensor(b)) + math.sqrt(2 * KAPPA0 * 0.05) * xi
    assert torch.abs(em.step(x, 0.05, _gen(2)) - ref).max() < 1e-14


def test_em_weak_order_one(sys6):
    """E[x(1)] and Cov(x(1)) of EM from a fixed x0, exactly (no Monte Carlo): error ∝ δu."""
    S, b, A = sys6
    em = EulerMaruyamaOU(torch.tensor(A), torch.tensor(b), KAPPA0)
    x0 = np.random.default_rng(6).standard_normal(6) * 3
    m_ref, C_ref = th.transient_mean(A, b, x0, 1.0), th.transient_cov(A, KAPPA0, 1.0)
    ks = [20, 40, 80, 160, 320, 640]
    em_err, ec_err = [], []
    for k in ks:
        m, C = _em_moments(em, x0, 1.0 / k, k)
        em_err.append(np.abs(m - m_ref).max())
        ec_err.append(np.abs(C - C_ref).max())
    logd = np.log(1.0 / np.array(ks))
    for err in (em_err, ec_err):
        slope = np.polyfit(logd, np.log(err), 1)[0]
        assert abs(slope - 1) < 0.05, slope
        ratios = np.array(err[:-1]) / np.array(err[1:])
        assert np.all(np.abs(ratios - 2) < 0.15), ratios


def test_em_monte_carlo(sys6):
    """Many independent EM chains at u = 1 vs the exact EM moments, within 4 SE."""
    S, b, A = sys6
    em = EulerMaruyamaOU(torch.tensor(A), torch.tensor(b), KAPPA0)
    x0 = np.random.default_rng(6).standard_normal(6)
    h, k, chains = 0.05, 20, 20000
    _, x = em.sample(torch.tensor(x0), h, k, thin=k, chains=chains, generator=_gen(13))
    xf = _np(x[-1])
    m, C = _em_moments(em, x0, h, k)
    _check_within_se(xf.mean(axis=0), m, xf.std(axis=0, ddof=1) / math.sqrt(chains))
    d = xf - xf.mean(axis=0)
    prod = np.einsum("cj,ck->cjk", d, d)
    _check_within_se(
        prod.mean(axis=0) * chains / (chains - 1), C, prod.std(axis=0, ddof=1) / math.sqrt(chains)
    )
    # and EM at δu = 0.05 is close to the exact transient law (bias O(δu))
    assert np.abs(C - th.transient_cov(A, KAPPA0, 1.0)).max() < 0.1 * np.abs(C).max()
