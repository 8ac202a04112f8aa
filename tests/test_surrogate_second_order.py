"""Second-order surrogates: low-rank = dense to 1e-10, sampling statistics, Euler, pathwise maps,
and the ou2-exact solver (warm start, delay, t = ∞)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import tngd.solvers_ou2  # noqa: F401  (registers ou2-exact)
from spu_circuits import theory_second_order as t2
from tngd.solvers import LinearProblem, make_solver
from tngd.surrogate_second_order import (
    DenseOU2,
    EulerOU2,
    LowRankOU2,
    run_held2,
    run_interpolated2,
)

F64 = torch.float64


def _factored(r=4, n=12, lam=0.05, seed=0):
    g = torch.Generator().manual_seed(seed)
    S = torch.randn(r, n, generator=g, dtype=torch.float64) / math.sqrt(n)
    b = torch.randn(n, generator=g, dtype=torch.float64)
    A = S.T @ S + lam * torch.eye(n, dtype=torch.float64)
    return S, lam, b, A


@pytest.mark.parametrize("gamma", [0.1, 2 * math.sqrt(0.05), 3.0])
@pytest.mark.parametrize("h", [0.05, 1.0, 10.0])
def test_lowrank_equals_dense(gamma, h):
    S, lam, b, A = _factored()
    d = DenseOU2(A, b, gamma, 0.1)
    lr = LowRankOU2(S, lam, b, gamma, 0.1)
    E1, P1 = d.transition(h)
    E2, P2 = lr.transition(h)
    assert (E1 - E2).abs().max() < 1e-10
    assert (P1 - P2).abs().max() < 1e-10
    y0 = torch.linspace(-1, 1, 24, dtype=torch.float64)
    assert (d.mean(y0, h) - lr.mean(y0, h)).abs().max() < 1e-10
    # and the dense one equals the numpy theory (scipy expm + Lyapunov)
    np.testing.assert_allclose(P1.numpy(), t2.transient_cov(A.numpy(), gamma, 0.1, h),
                               atol=1e-12)


def test_lowrank_r_ge_n_and_cost_independent_of_basis():
    S, lam, b, A = _factored(r=15, n=6)
    d = DenseOU2(A, b, 0.7, 0.02)
    lr = LowRankOU2(S, lam, b, 0.7, 0.02)
    for h in (0.3, 4.0):
        assert (d.transition(h)[1] - lr.transition(h)[1]).abs().max() < 1e-10


def test_lowrank_sampling_matches_stationary_law():
    S, lam, b, A = _factored(r=3, n=6, lam=0.2)
    gamma, k0 = 2 * math.sqrt(0.2), 0.1
    lr = LowRankOU2(S, lam, b, gamma, k0)
    gen = torch.Generator().manual_seed(3)
    # steps of 4τ ≫ 1/rate: nearly independent samples
    _, Y = lr.sample(lr.y_star, 4.0, 400, burn_in=5, chains=50, generator=gen)
    Y = Y.reshape(-1, 12).numpy()
    C = np.cov(Y.T)
    Ct = t2.stationary_cov(A.numpy(), k0)
    # entrywise SE of a sample covariance ≈ sqrt((Σii Σjj + Σij²)/n); 5 SE on 20,000 samples
    se = np.sqrt((np.outer(np.diag(Ct), np.diag(Ct)) + Ct**2) / Y.shape[0])
    z = (C - Ct) / se
    assert np.abs(z).max() < 5.0
    assert np.abs((Y.mean(0) - lr.y_star.numpy()) / np.sqrt(np.diag(Ct) / Y.shape[0])).max() < 5


def test_euler_converges_to_exact_mean():
    S, lam, b, A = _factored(r=3, n=5, lam=0.1)
    gamma = 0.5
    exact = DenseOU2(A, b, gamma).mean(torch.zeros(10, dtype=F64), 5.0)
    errs = []
    for dt in (0.05, 0.025):
        em = EulerOU2(lambda x: x @ A.T, b, gamma)
        y = torch.zeros(10, dtype=F64)
        for _ in range(round(5.0 / dt)):
            y = em.step(y, dt)
        errs.append(float((y - exact).abs().max()))
    assert errs[1] < errs[0] * 0.6  # first order in dt
    assert errs[1] < 0.05


def test_run_interpolated_matches_numpy_and_held_differs():
    _, _, b, A = _factored(r=3, n=4)
    z = torch.randn(60, 4, generator=torch.Generator().manual_seed(0), dtype=F64)
    y0 = torch.zeros(8, dtype=F64)
    Yt = run_interpolated2(A, b, 0.4, 0.1, 0.1, z, y0).numpy()
    Yn = t2.run_interpolated(A.numpy(), b.numpy(), 0.4, 0.1, 0.1, z.numpy(), y0.numpy())
    np.testing.assert_allclose(Yt, Yn, atol=1e-12)
    Yh = run_held2(A, b, 0.4, 0.1, 0.1, z, y0).numpy()
    assert np.abs(Yh - Yt).max() > 1e-3
    # batched chains: (K+1, chains, N)
    zc = torch.stack([z, -z], dim=1)
    Yc = run_interpolated2(A, b, 0.4, 0.1, 0.1, zc, y0)
    np.testing.assert_allclose(Yc[:, 0].numpy(), Yt, atol=1e-12)


def _problem(r=5, n=20, lam=0.1):
    S, lam, b, _ = _factored(r, n, lam)
    return LinearProblem(g=b, damping=lam, S=S)


@pytest.mark.parametrize("method", ["gram", "dense"])
def test_solver_infinite_time_is_ngd(method):
    p = _problem()
    xs = torch.linalg.solve(p.dense(), p.g)
    res = make_solver("ou2-exact", t=float("inf"), method=method).solve(p)
    assert (res.x - xs).abs().max() < 1e-10


@pytest.mark.parametrize("method", ["gram", "dense"])
def test_solver_warm_start_continues_velocity(method):
    p = _problem()
    s = make_solver("ou2-exact", t=3.0, method=method)
    a = s.solve(p)
    b = s.solve(p, x0=a.x, state=a.info["state"])
    assert b.info["warm_velocity"]
    one = make_solver("ou2-exact", t=6.0, method=method).solve(p)
    assert (b.x - one.x).abs().max() < 1e-12
    # a reset (x0 ≠ the device's state) starts with v = 0
    c = s.solve(p, x0=p.g, state=a.info["state"])
    assert not c.info["warm_velocity"]
    assert (c.x - a.x).abs().max() < 1e-12


def test_solver_delay_uses_previous_system_and_default_gamma():
    p1, p2 = _problem(lam=0.1), _problem(lam=0.3)
    s = make_solver("ou2-exact", t=4.0, t_d=1.0)
    a = s.solve(p1)
    assert a.info["segments"] == [("hold", 1.0), ("current", 3.0)]
    assert a.info["gamma"] == pytest.approx(2 * math.sqrt(0.1))
    b = s.solve(p2, x0=a.x, state=a.info["state"])
    assert b.info["segments"] == [("previous", 1.0), ("current", 3.0)]
    # by hand: 1τ under p1 then 3τ under p2 from the full state (x, v)
    d1 = DenseOU2(p1.dense(), p1.g, 2 * math.sqrt(0.1))
    d2 = DenseOU2(p2.dense(), p2.g, 2 * math.sqrt(0.3))
    y = torch.cat([a.x, a.info["state"].v])
    y = d2.mean(d1.mean(y, 1.0), 3.0)
    assert (b.x - y[:20]).abs().max() < 1e-12


def test_solver_noise_reproducible_and_errors():
    p = _problem()
    x1 = make_solver("ou2-exact", t=2.0, kappa0=0.01, seed=5).solve(p).x
    x2 = make_solver("ou2-exact", t=2.0, kappa0=0.01, seed=5).solve(p).x
    assert torch.equal(x1, x2)
    with pytest.raises(ValueError, match="gamma"):
        make_solver("ou2-exact", gamma=-1.0)
    with pytest.raises(ValueError, match="method"):
        make_solver("ou2-exact", method="lowrank")


def test_solver_state_round_trip():
    """save_state → load_state reproduces the next solve exactly (x, v and the previous
    system for the delay)."""
    p1, p2 = _problem(lam=0.1), _problem(lam=0.2)
    s = make_solver("ou2-exact", t=3.0, t_d=0.5)
    a = s.solve(p1)
    saved = s.save_state(a.info["state"])
    assert set(saved) == {"x", "v", "prev"}
    loaded = s.load_state(saved, like=p1.g)
    b1 = s.solve(p2, x0=a.x, state=a.info["state"])
    b2 = s.solve(p2, x0=a.x, state=loaded)
    assert b2.info["warm_velocity"]
    assert torch.equal(b1.x, b2.x)



@pytest.mark.skipif(__import__("shutil").which("ngspice") is None, reason="needs ngspice")
@pytest.mark.parametrize("r", [2, 5])  # factored stages (2r < N) and the dense array
def test_spice_oscillator_solver_matches_ou2_exact(r):
    import tngd.solvers_spice  # noqa: F401  (registers spice)
    from spu_circuits.spec import HardwareSpec

    p = _problem(r=r, n=8, lam=0.2)
    sp = make_solver("spice", topology="oscillator", t=3.0, t_d=1.0,
                     spec=HardwareSpec(opamp_gain=1e9, r_max_ohm=1e13))
    ex = make_solver("ou2-exact", t=3.0, t_d=1.0)
    try:
        a, b = sp.solve(p), ex.solve(p)
        a2 = sp.solve(p, x0=a.x, state=a.info["state"])
        b2 = ex.solve(p, x0=b.x, state=b.info["state"])
    finally:
        sp.close()
    scale = float(torch.linalg.vector_norm(b2.x))
    assert float(torch.linalg.vector_norm(a.x - b.x)) / scale < 1e-4
    assert float(torch.linalg.vector_norm(a2.x - b2.x)) / scale < 1e-4
    assert a2.info["warm_velocity"] and a.info["gamma"] == pytest.approx(b.info["gamma"])


def test_tngd_state_dict_round_trip_with_ou2():
    """TNGD with ou2-exact: a reloaded optimizer (x, v, previous system, generator) takes the
    identical next steps."""
    import copy

    from torch import nn

    from tngd.optimizer import TNGD

    def model():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()

    g = torch.Generator().manual_seed(1)
    X = torch.randn(16, 4, generator=g, dtype=F64)
    y = torch.randint(0, 3, (16,), generator=g)
    kw = {"solver": "ou2-exact", "t": 2.0, "t_d": 0.5, "kappa0": 1e-3, "seed": 3}
    m1 = model()
    o1 = TNGD(m1, **kw)
    for _ in range(2):
        o1.step(X, y)
    sd = o1.state_dict()
    params = copy.deepcopy(m1.state_dict())
    assert set(sd["tngd"]["solver_state"]) == {"x", "v", "prev"}
    assert float(sd["tngd"]["solver_state"]["v"].abs().max()) > 0
    ref = [o1.step(X, y) for _ in range(2)]
    m2 = model()
    m2.load_state_dict(params)
    o2 = TNGD(m2, **kw)
    o2.load_state_dict(sd)
    assert [o2.step(X, y) for _ in range(2)] == ref
    assert torch.equal(o1.device_state, o2.device_state)


# ------------------------------------------------------------------------------ ou2-euler


def test_euler_solver_converges_to_ou2_exact_at_first_order():
    """κ₀ = 0: the Euler run's error against the exact flow halves with dt (weak order 1)."""
    p = _problem()
    want = make_solver("ou2-exact", t=4.0).solve(p).x
    errs = []
    for dt in (0.02, 0.01, 0.005):
        res = make_solver("ou2-euler", t=4.0, dt=dt).solve(p)
        assert res.info["n_steps"] == res.iterations == round(4.0 / dt)
        errs.append(float((res.x - want).abs().max() / want.abs().max()))
    assert errs[0] < 0.05
    for a, b in zip(errs, errs[1:], strict=False):
        assert 0.4 < b / a < 0.6, errs


def test_euler_solver_warm_start_delay_state_and_matrix_free():
    p1, p2 = _problem(lam=0.1), _problem(lam=0.3)
    s = make_solver("ou2-euler", t=3.0, dt=0.1)
    a = s.solve(p1)
    b = s.solve(p1, x0=a.x, state=a.info["state"])
    assert b.info["warm_velocity"]
    one = make_solver("ou2-euler", t=6.0, dt=0.1).solve(p1)
    assert (b.x - one.x).abs().max() < 1e-12
    d = make_solver("ou2-euler", t=4.0, t_d=1.0, dt=0.1)
    a = d.solve(p1)
    c = d.solve(p2, x0=a.x, state=a.info["state"])
    assert c.info["segments"] == [("previous", 1.0), ("current", 3.0)]
    assert c.info["gamma"] == pytest.approx(2 * math.sqrt(0.3))
    # a matrix-free problem (F as a matvec) with γ given: the same run as with the factor
    S = p1.S
    mf = LinearProblem(g=p1.g, damping=p1.damping, fvp=lambda v: S.T @ (S @ v))
    x_mf = make_solver("ou2-euler", t=2.0, gamma=0.5, dt=0.05).solve(mf).x
    x_s = make_solver("ou2-euler", t=2.0, gamma=0.5, dt=0.05).solve(p1).x
    assert (x_mf - x_s).abs().max() < 1e-12


def test_euler_solver_noise_reproducible_and_refusals():
    p = _problem()
    x1 = make_solver("ou2-euler", t=2.0, kappa0=0.01, seed=3).solve(p).x
    x2 = make_solver("ou2-euler", t=2.0, kappa0=0.01, seed=3).solve(p).x
    x0 = make_solver("ou2-euler", t=2.0).solve(p).x
    assert torch.equal(x1, x2) and not torch.equal(x1, x0)
    with pytest.raises(ValueError, match="dt"):
        make_solver("ou2-euler", dt=0.0)
    with pytest.raises(ValueError):
        make_solver("ou2-euler", t=float("inf"))
