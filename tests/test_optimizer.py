"""Float64 checks of the OU solvers ("ou-exact", "ou-euler") and the TNGD optimizer."""

from __future__ import annotations

import copy
import io
import math

import numpy as np
import pytest
import torch
from torch import nn

from tngd.curvature import compute_curvature, dense_ggn, flatten_params
from tngd.optimizer import NGD, TNGD, NumericalError, build_solver
from tngd.solvers import LinearProblem, Solver, make_solver
from tngd.solvers_ou import OUEulerSolver, OUExactSolver

F64 = torch.float64


# --------------------------------------------------------------------------- helpers


def _problem(seed: int = 0, r: int = 6, n: int = 15, lam: float = 0.3, scale: float = 1.0):
    gen = torch.Generator().manual_seed(seed)
    S = scale * torch.randn(r, n, dtype=F64, generator=gen)
    g = torch.randn(n, dtype=F64, generator=gen)
    return LinearProblem(g=g, damping=lam, S=S)


def _dense_flow(p: LinearProblem, x0: torch.Tensor, h: float) -> torch.Tensor:
    """x* + expm(−A h)(x0 − x*) with the dense matrix exponential."""
    A = p.dense()
    xs = torch.linalg.solve(A, p.g)
    return xs + torch.linalg.matrix_exp(-A * h) @ (x0 - xs)


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).to(F64)


def _batches(n: int, seed: int = 1, b: int = 8):
    gen = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(b, 4, dtype=F64, generator=gen), torch.randint(0, 3, (b,), generator=gen))
        for _ in range(n)
    ]


def _theta(model: nn.Module) -> torch.Tensor:
    return flatten_params(model)[0]


def _rel(a, b) -> float:
    return (torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b)).item()


# --------------------------------------------------------------------------- OU solvers


@pytest.mark.parametrize("method", ["auto", "gram", "lowrank", "dense"])
@pytest.mark.parametrize("r", [6, 40])
def test_ou_exact_long_time_is_ngd(method, r):
    for seed, lam in [(0, 0.3), (1, 0.05), (2, 1.0)]:
        p = _problem(seed, r=r, lam=lam)
        exact = make_solver("exact").solve(p)
        res = make_solver("ou-exact", t=1e3, kappa0=0.0, method=method).solve(p)
        assert _rel(res.x, exact.x) < 1e-8
        assert res.residual < 1e-8
        assert res.info["matvecs"] == 0
    inf = make_solver("ou-exact", t=math.inf).solve(p)
    assert _rel(inf.x, exact.x) < 1e-12


def test_ou_exact_matches_dense_flow_and_starts():
    p = _problem(3, lam=0.2)
    x0 = torch.randn(p.N, dtype=F64, generator=torch.Generator().manual_seed(9))
    for method in ("gram", "lowrank", "dense"):
        r = OUExactSolver(t=1.7, method=method).solve(p, x0=x0)
        assert _rel(r.x, _dense_flow(p, x0, 1.7)) < 1e-12
    with pytest.raises(ValueError, match="method"):
        OUExactSolver(method="svd")
    s = OUExactSolver(t=1.7)
    assert _rel(s.solve(p, x0=x0).x, _dense_flow(p, x0, 1.7)) < 1e-12
    # default start: g (first start g̃₀ = g₀); then the state's x (warm start)
    r1 = s.solve(p)
    assert _rel(r1.x, _dense_flow(p, p.g, 1.7)) < 1e-12
    r2 = s.solve(p, state=r1.info["state"])
    assert _rel(r2.x, _dense_flow(p, r1.x, 1.7)) < 1e-12
    # dense-F and matvec-only problems take the DenseOU path
    pf = LinearProblem(g=p.g, damping=p.damping, F=p.S.T @ p.S)
    pv = LinearProblem(g=p.g, damping=p.damping, fvp=lambda v: p.S.T @ (p.S @ v))
    for q in (pf, pv):
        assert _rel(s.solve(q, x0=x0).x, _dense_flow(p, x0, 1.7)) < 1e-10
    # t = 0 leaves the start untouched, bit for bit
    assert torch.equal(OUExactSolver(t=0.0).solve(p, x0=x0).x, x0)


def test_gram_path_is_accurate_for_ill_conditioned_factors():
    """Singular values of S from 1e-8 to 1e2 and λ = 1e-3: the Gram eigendecomposition (which
    never forms the singular vectors) still matches the dense exponential and the SVD path."""
    gen = torch.Generator().manual_seed(21)
    r, n = 12, 40
    U, _ = torch.linalg.qr(torch.randn(r, r, dtype=F64, generator=gen))
    V, _ = torch.linalg.qr(torch.randn(n, r, dtype=F64, generator=gen))
    sig = torch.logspace(-8, 2, r, dtype=F64)
    p = LinearProblem(
        g=torch.randn(n, dtype=F64, generator=gen), damping=1e-3, S=U @ torch.diag(sig) @ V.T
    )
    x0 = torch.randn(n, dtype=F64, generator=gen)
    # cond(F̃) = 1e7: the dense references themselves carry ~1e-9 relative error
    ref = _dense_flow(p, x0, 3.0)
    xs = {m: OUExactSolver(t=3.0, method=m).solve(p, x0=x0).x for m in ("gram", "lowrank", "dense")}
    for x in xs.values():
        assert _rel(x, ref) < 1e-7
    assert _rel(xs["gram"], xs["lowrank"]) < 1e-9 and _rel(xs["gram"], xs["dense"]) < 1e-9
    exact = make_solver("exact").solve(p).x
    assert _rel(OUExactSolver(t=math.inf, method="gram").solve(p).x, exact) < 1e-8


def test_ou_euler_first_order():
    """κ₀ = 0: ‖x_EM(t) − x_exact(t)‖ ∝ δt; the fitted log-log slope is ≈ 1."""
    p = _problem(4, lam=0.5, scale=0.4)  # λ_max(F̃) small enough for δt = 0.1
    x0 = torch.zeros(p.N, dtype=F64)
    ref = OUExactSolver(t=2.0).solve(p, x0=x0).x
    dts = [0.1, 0.05, 0.025, 0.0125]
    errs = []
    for dt in dts:
        res = OUEulerSolver(t=2.0, dt=dt).solve(p, x0=x0)
        assert res.info["matvecs"] == round(2.0 / dt) == res.iterations
        errs.append(torch.linalg.vector_norm(res.x - ref).item())
    ratios = [errs[i] / errs[i + 1] for i in range(len(errs) - 1)]
    slope = np.polyfit(np.log(dts), np.log(errs), 1)[0]
    assert all(1.8 < q < 2.2 for q in ratios), ratios
    assert abs(slope - 1.0) < 0.1, slope


def test_ou_euler_default_paper_settings():
    s = make_solver("ou-euler")
    assert isinstance(s, OUEulerSolver) and s.dt == 0.1 and s.t == 50.0
    p = _problem(5, lam=0.5, scale=0.3)
    res = s.solve(p)
    assert res.info["matvecs"] == 500
    assert res.residual < 1e-8  # t = 50τ with λ_min = 0.5: converged


def test_noise_is_reproducible_and_has_the_right_spread():
    p = _problem(6, lam=0.5)
    a = OUExactSolver(t=3.0, kappa0=0.01, seed=7).solve(p).x
    b = OUExactSolver(t=3.0, kappa0=0.01, seed=7).solve(p).x
    c = OUExactSolver(t=3.0, kappa0=0.01, seed=8).solve(p).x
    assert torch.equal(a, b) and not torch.equal(a, c)
    e = OUEulerSolver(t=1.0, kappa0=0.01, seed=7).solve(p).x
    assert torch.equal(e, OUEulerSolver(t=1.0, kappa0=0.01, seed=7).solve(p).x)
    # stationary samples (t = ∞): covariance κ₀ F̃⁻¹
    s = OUExactSolver(t=math.inf, kappa0=0.5, seed=0)
    xs = torch.stack([s.solve(p).x for _ in range(4000)])
    cov = torch.cov(xs.T)
    ref = 0.5 * torch.linalg.inv(p.dense())
    assert _rel(cov, ref) < 0.1


def test_time_and_delay_validation():
    with pytest.raises(ValueError, match="t_d"):
        OUExactSolver(t=1.0, t_d=2.0)
    with pytest.raises(ValueError, match="t_d"):
        OUEulerSolver(t=1.0, t_d=-0.1)
    with pytest.raises(ValueError):
        OUEulerSolver(t=math.inf)
    with pytest.raises(ValueError):
        OUExactSolver(kappa0=-1.0)
    with pytest.raises(ValueError):
        OUEulerSolver(dt=0.0)


# --------------------------------------------------------------------------- delay


def test_delay_solver_level_hand_computation():
    p1, p2 = _problem(10, lam=0.3), _problem(11, lam=0.2)
    x0 = p1.g
    t, td = 2.0, 0.6
    # t_d = 0 equals the synchronous path, with or without a previous system
    sync = OUExactSolver(t=t)
    r1 = sync.solve(p1, x0=x0)
    r2 = sync.solve(p2, state=r1.info["state"])
    assert torch.equal(r2.x, sync.solve(p2, x0=r1.x).x)
    # t_d > 0: first t_d under the previous system, then t − t_d under the new one
    d = OUExactSolver(t=t, t_d=td)
    q1 = d.solve(p1, x0=x0)  # first call: held during the delay
    assert q1.info["segments"] == [("hold", td), ("current", t - td)]
    assert _rel(q1.x, _dense_flow(p1, x0, t - td)) < 1e-12
    q2 = d.solve(p2, state=q1.info["state"])
    assert q2.info["segments"] == [("previous", td), ("current", t - td)]
    hand = _dense_flow(p2, _dense_flow(p1, q1.x, td), t - td)
    assert _rel(q2.x, hand) < 1e-12
    assert not torch.allclose(q2.x, sync.solve(p2, x0=q1.x).x)
    # t_d = t: only the previous system acts
    full = OUExactSolver(t=t, t_d=t).solve(p2, state=q1.info["state"])
    assert _rel(full.x, _dense_flow(p1, q1.x, t)) < 1e-12
    # Euler with a small δt follows the same delayed flow
    e = OUEulerSolver(t=t, t_d=td, dt=1e-3)
    e1 = e.solve(p1, x0=x0)
    e2 = e.solve(p2, state=e1.info["state"])
    assert _rel(e2.x, hand) < 1e-2


def test_delay_optimizer_level_hand_computation():
    model = _model()
    batches = _batches(2)
    lr, lam, t, td = 0.1, 0.05, 3.0, 1.0
    opt = TNGD(model, lr=lr, damping=lam, t=t, t_d=td)
    thetas, problems = [], []
    for x, y in batches:
        th = _theta(model)
        thetas.append(th)
        F = dense_ggn(model, th, x, y)
        g = compute_curvature(model, th, x, y).grad
        problems.append(LinearProblem(g=g, damping=lam, F=F))
        opt.step(x, y)
    p0, p1 = problems
    gt0 = _dense_flow(p0, p0.g, t - td)  # first iteration: held during the delay
    gt1 = _dense_flow(p1, _dense_flow(p0, gt0, td), t - td)
    assert _rel(opt.device_state, gt1) < 1e-10
    assert _rel(_theta(model), thetas[1] - lr * gt1) < 1e-12


# --------------------------------------------------------------------------- optimizer


def test_reset_with_t0_equals_sgd():
    model, ref = _model(), _model()
    lr = 0.05
    opt = TNGD(model, lr=lr, t=0.0, warm_start=False)
    sgd = torch.optim.SGD(ref.parameters(), lr=lr)
    for x, y in _batches(4):
        th = _theta(model)
        g = compute_curvature(model, th, x, y).grad
        loss = opt.step(x, y)
        # exactly θ − η g with the curvature module's gradient
        assert torch.equal(_theta(model), th.add(g, alpha=-lr))
        assert torch.equal(opt.device_state, g)
        sgd.zero_grad()
        lv = nn.functional.cross_entropy(ref(x), y)
        lv.backward()
        sgd.step()
        assert loss == pytest.approx(lv.item(), rel=1e-13)
    assert torch.allclose(_theta(model), _theta(ref), rtol=0, atol=1e-14)


def test_warm_start_vs_reset():
    batches = _batches(3)
    lam, t = 0.05, 0.7
    warm, reset = _model(), _model()
    ow = TNGD(warm, lr=0.1, damping=lam, t=t, warm_start=True)
    orr = TNGD(reset, lr=0.1, damping=lam, t=t, warm_start=False)
    for i, (x, y) in enumerate(batches):
        for m, o in ((warm, ow), (reset, orr)):
            th = _theta(m)
            p = LinearProblem(
                g=compute_curvature(m, th, x, y).grad, damping=lam, F=dense_ggn(m, th, x, y)
            )
            start = p.g if (i == 0 or not o.warm_start) else o.device_state.clone()
            o.step(x, y)
            assert _rel(o.device_state, _dense_flow(p, start, t)) < 1e-10
        if i == 0:  # same first step (g̃₀ starts from g₀ either way)
            assert torch.equal(_theta(warm), _theta(reset))
    assert not torch.allclose(_theta(warm), _theta(reset))
    # t = 0 with warm start: the device never moves, g̃ stays g₀
    m = _model()
    o = TNGD(m, lr=0.1, t=0.0)
    o.step(*batches[0])
    g0 = o.device_state.clone()
    for x, y in batches[1:]:
        th = _theta(m)
        o.step(x, y)
        assert torch.equal(o.device_state, g0)
        assert torch.equal(_theta(m), th.add(g0, alpha=-0.1))


def test_ou_exact_optimizer_matches_ngd_for_long_time():
    a, b = _model(), _model()
    oa = TNGD(a, lr=0.1, damping=0.05, t=1e4)
    ob = NGD(b, lr=0.1, damping=0.05)
    for x, y in _batches(3):
        oa.step(x, y)
        ob.step(x, y)
        assert ob.last_diagnostics["residual"] < 1e-10
    assert _rel(_theta(a), _theta(b)) < 1e-10


def test_ngd_update_is_the_natural_gradient():
    m = _model()
    x, y = _batches(1)[0]
    th = _theta(m)
    lam, lr = 0.03, 0.2
    F = dense_ggn(m, th, x, y)
    g = compute_curvature(m, th, x, y).grad
    nat = torch.linalg.solve(F + lam * torch.eye(len(g), dtype=F64), g)
    NGD(m, lr=lr, damping=lam).step(x, y)
    assert _rel(_theta(m), th - lr * nat) < 1e-12
    m2 = _model()
    NGD(m2, lr=lr, damping=lam, solver="woodbury").step(x, y)
    assert _rel(_theta(m2), th - lr * nat) < 1e-10


def test_tngd_adam_equals_torch_adam_with_reset_and_t0():
    model, ref = _model(), _model()
    betas = (0.9, 0.999)
    opt = TNGD(model, lr=0.01, t=0.0, warm_start=False, base="adam", betas=betas)
    adam = torch.optim.Adam(ref.parameters(), lr=0.01, betas=betas)
    for x, y in _batches(4):
        opt.step(x, y)
        adam.zero_grad()
        nn.functional.cross_entropy(ref(x), y).backward()
        adam.step()
    assert torch.allclose(_theta(model), _theta(ref), rtol=0, atol=1e-12)


def test_tngd_adam_paper_betas():
    """betas (0, 0): θ ← θ − η g̃ / (|g̃| + ε)."""
    m = _model()
    opt = TNGD(m, lr=0.01, damping=0.1, t=2.0, base="adam")
    for x, y in _batches(3):
        th = _theta(m)
        opt.step(x, y)
        gt = opt.device_state
        assert _rel(_theta(m), th - 0.01 * gt / (gt.abs() + 1e-8)) < 1e-13


def test_lr_and_damping_callables():
    calls: list[tuple[str, int]] = []

    def lr(k):
        calls.append(("lr", k))
        return 0.1 / (k + 1)

    def damping(k):
        calls.append(("damping", k))
        return 0.01 * 2**k

    m = _model()
    opt = NGD(m, lr=lr, damping=damping)
    for k, (x, y) in enumerate(_batches(3)):
        th = _theta(m)
        F = dense_ggn(m, th, x, y)
        g = compute_curvature(m, th, x, y).grad
        nat = torch.linalg.solve(F + damping(k) * torch.eye(len(g), dtype=F64), g)
        opt.step(x, y)
        assert opt.last_diagnostics["lr"] == pytest.approx(0.1 / (k + 1))
        assert opt.last_diagnostics["damping"] == pytest.approx(0.01 * 2**k)
        assert _rel(_theta(m), th - 0.1 / (k + 1) * nat) < 1e-12
    assert ("lr", 2) in calls and ("damping", 2) in calls
    with pytest.raises(ValueError, match="lr"):
        TNGD(_model(), lr=-1.0)
    bad = TNGD(_model(), lr=lambda k: math.nan)
    with pytest.raises(ValueError, match="lr"):
        bad.step(*_batches(1)[0])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"t": 2.0, "t_d": 0.5, "kappa0": 0.01, "seed": 3, "base": "adam", "betas": (0.9, 0.99)},
        {"t": 1.0, "t_d": 0.3, "solver": "ou-euler", "kappa0": 0.001, "seed": 5},
        {"t": 1.0, "solver": "cg"},
    ],
)
def test_state_dict_round_trip(kwargs):
    batches = _batches(5)
    m = _model()
    opt = TNGD(m, lr=0.05, damping=lambda k: 0.05 + 0.01 * k, **kwargs)
    for x, y in batches[:2]:
        opt.step(x, y)
    sd = opt.state_dict()
    buf = io.BytesIO()
    torch.save({k: v for k, v in sd.items() if k != "param_groups"}, buf)  # tensors serialise
    params = copy.deepcopy(m.state_dict())
    for x, y in batches[2:]:
        opt.step(x, y)
    after_a = _theta(m)

    m2 = _model(seed=123)
    m2.load_state_dict(params)
    opt2 = TNGD(m2, lr=0.05, damping=lambda k: 0.05 + 0.01 * k, **kwargs)
    opt2.load_state_dict(sd)
    assert opt2.step_count == 2
    for x, y in batches[2:]:
        opt2.step(x, y)
    assert torch.equal(_theta(m2), after_a)
    assert torch.equal(opt2.device_state, opt.device_state)


def test_nonfinite_guard_raise_and_skip():
    m = _model()
    x, y = _batches(1)[0]
    xbad = x.clone()
    xbad[0, 0] = math.nan
    opt = TNGD(m, lr=0.1, t=1.0)
    th = _theta(m)
    with pytest.raises(NumericalError, match="non-finite loss"):
        opt.step(xbad, y)
    assert torch.equal(_theta(m), th) and opt.step_count == 0 and opt.device_state is None

    class NaNSolver(Solver):
        name = "nan"

        def _solve(self, problem, x0, state):
            return torch.full_like(problem.g, math.nan), None, {}

    opt_nan = TNGD(m, lr=0.1, solver=NaNSolver())
    with pytest.raises(NumericalError, match="solver output") as exc:
        opt_nan.step(x, y)
    assert "\n" not in str(exc.value)
    assert torch.equal(_theta(m), th)

    # an infinite gradient with a finite loss: d sqrt(w)/dw at w = 0
    class SqrtModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(3, dtype=F64))

        def forward(self, x):
            return x[:, :3] * torch.sqrt(self.w) + x[:, 1:]

    sm = SqrtModel()
    with pytest.raises(NumericalError, match="non-finite gradient"):
        TNGD(sm, t=1.0).step(x, y)
    assert torch.equal(sm.w.detach(), torch.zeros(3, dtype=F64))

    # a non-finite curvature factor (patched) and an overflowing update
    import tngd.optimizer as topt

    real = topt.compute_curvature

    def bad_curvature(*args, **kwargs):
        c = real(*args, **kwargs)
        c.S[0, 0] = math.inf
        return c

    topt.compute_curvature = bad_curvature
    try:
        with pytest.raises(NumericalError, match="non-finite curvature"):
            TNGD(m, t=1.0).step(x, y)
    finally:
        topt.compute_curvature = real

    class HugeSolver(Solver):
        def _solve(self, problem, x0, state):
            return torch.full_like(problem.g, 1e308), None, {}

    with pytest.raises(NumericalError, match="updated parameters"):
        TNGD(m, lr=10.0, solver=HugeSolver()).step(x, y)
    assert torch.equal(_theta(m), th)

    skip = TNGD(m, lr=0.1, t=1.0, on_nonfinite="skip")
    loss = skip.step(xbad, y)
    assert math.isnan(loss)
    d = skip.last_diagnostics
    assert d["skipped"] and d["n_skipped"] == 1 and "loss" in d["reason"]
    assert torch.equal(_theta(m), th) and skip.step_count == 0
    skip.step(x, y)
    assert not skip.last_diagnostics["skipped"] and skip.last_diagnostics["n_skipped"] == 1
    assert skip.step_count == 1 and not torch.equal(_theta(m), th)
    assert skip.state_dict()["tngd"]["n_skipped"] == 1


def test_diagnostics_and_options():
    m = _model()
    opt = TNGD(m, lr=0.1, damping=0.1, t=50.0)
    x, y = _batches(1)[0]
    loss = opt.step(x, y)
    d = opt.last_diagnostics
    for key in ("residual", "solve_time_s", "loss", "grad_norm", "matvecs", "update_norm"):
        assert key in d
    assert d["loss"] == loss and d["residual"] < 1e-3 and d["grad_norm"] > 0
    assert isinstance(opt.solver, OUExactSolver) and opt.solver.t == 50.0
    # matrix-free curvature with Euler: same result as with the factor
    a, b = _model(), _model()
    oa = TNGD(a, lr=0.1, damping=0.5, t=1.0, solver="ou-euler", curvature="matvec")
    ob = TNGD(b, lr=0.1, damping=0.5, t=1.0, solver="ou-euler")
    for xb, yb in _batches(2):
        oa.step(xb, yb)
        ob.step(xb, yb)
    assert _rel(_theta(a), _theta(b)) < 1e-12
    assert oa.last_diagnostics["matvecs"] == 10
    # empirical Fisher and MSE run
    reg = _model()
    TNGD(reg, loss="mse", fisher="empirical", t=1.0).step(x, torch.randn(8, 3, dtype=F64))
    # bad options
    with pytest.raises(ValueError, match="does not support t_d"):
        build_solver("exact", t_d=1.0)
    assert build_solver("cg", t=50.0, seed=1, max_iter=7).max_iter == 7  # t is moot for CG
    ou = build_solver("ou-euler", t=2.0, t_d=0.5, kappa0=0.1, seed=4, dt=0.05)
    assert (ou.t, ou.t_d, ou.kappa0, ou.seed, ou.dt) == (2.0, 0.5, 0.1, 4, 0.05)
    with pytest.raises(ValueError, match="instance"):
        build_solver(OUExactSolver(), t=3.0)
    with pytest.raises(ValueError, match="unknown solver"):
        TNGD(_model(), solver="nope")
    with pytest.raises(ValueError, match="base"):
        TNGD(_model(), base="rmsprop")
    with pytest.raises(ValueError, match="t_d"):
        TNGD(_model(), t=1.0, t_d=2.0)
    with pytest.raises(TypeError):
        TNGD(42)  # a parameter list is accepted since #14 (the torch.optim way)
