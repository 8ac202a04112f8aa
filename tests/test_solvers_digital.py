"""Float64 checks of the digital solvers (exact, CG, Woodbury) and the solver registry."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tngd.curvature import compute_curvature, flatten_params
from tngd.solvers import (
    REGISTRY,
    CGSolver,
    ExactSolver,
    LinearProblem,
    Solver,
    SolveResult,
    WoodburySolver,
    available_solvers,
    make_solver,
    register_solver,
)

DAMPINGS = [1e-3, 1e-2, 1e-1, 1.0]


def _random_problem(lam: float, r: int = 6, n: int = 20, seed: int = 0) -> LinearProblem:
    gen = torch.Generator().manual_seed(seed)
    S = torch.randn(r, n, dtype=torch.float64, generator=gen)
    g = torch.randn(n, dtype=torch.float64, generator=gen)
    return LinearProblem(g=g, damping=lam, S=S)


def _model_problem(lam: float) -> LinearProblem:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).double()
    x = torch.randn(8, 5, dtype=torch.float64)
    y = torch.randint(0, 3, (8,))
    theta, _ = flatten_params(model)
    curv = compute_curvature(model, theta, x, y, loss="ce")
    return LinearProblem.from_curvature(curv, lam)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return (torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b)).item()


def _dense_reference(p: LinearProblem) -> torch.Tensor:
    A = p.S.T @ p.S + p.damping * torch.eye(p.N, dtype=torch.float64)
    return torch.linalg.solve(A, p.g)


@pytest.mark.parametrize("lam", DAMPINGS)
@pytest.mark.parametrize("source", ["random", "model"])
def test_cg_and_woodbury_match_exact(lam, source):
    p = _random_problem(lam) if source == "random" else _model_problem(lam)
    ref = _dense_reference(p)
    exact = ExactSolver().solve(p)
    assert _rel(exact.x, ref) < 1e-10
    assert exact.residual < 1e-10 and exact.iterations is None
    cg = CGSolver(max_iter=500, tol=1e-13).solve(p)
    wood = WoodburySolver().solve(p)
    assert cg.info["converged"]
    assert _rel(cg.x, exact.x) < 1e-6
    assert _rel(wood.x, exact.x) < 1e-6
    assert wood.residual < 1e-8


@pytest.mark.parametrize("lam", [1e-2, 1.0])
def test_problem_forms_agree(lam):
    p = _random_problem(lam)
    F = p.S.T @ p.S
    p_dense = LinearProblem(g=p.g, damping=lam, F=F)
    p_mv = LinearProblem(g=p.g, damping=lam, fvp=lambda v: F @ v)
    A = F + lam * torch.eye(p.N, dtype=torch.float64)
    for q in (p, p_dense, p_mv):
        torch.testing.assert_close(q.dense(), A, rtol=1e-12, atol=1e-12)
        v = torch.randn(p.N, dtype=torch.float64)
        torch.testing.assert_close(q.matvec(v), A @ v, rtol=1e-12, atol=1e-12)
    ref = ExactSolver().solve(p).x
    assert _rel(ExactSolver().solve(p_dense).x, ref) < 1e-10
    assert _rel(ExactSolver().solve(p_mv).x, ref) < 1e-10
    assert _rel(CGSolver(max_iter=200, tol=1e-13).solve(p_mv).x, ref) < 1e-6


def test_residual_is_reported_correctly():
    p = _random_problem(0.1)
    A = p.dense()
    res = CGSolver(max_iter=3, tol=0.0).solve(p)
    expected = (torch.linalg.vector_norm(A @ res.x - p.g) / torch.linalg.vector_norm(p.g)).item()
    assert res.residual == pytest.approx(expected, rel=1e-10)
    assert res.iterations == 3 and not res.info["converged"]
    assert len(res.info["residual_history"]) == 4
    # the recursive CG residual agrees with the true one
    assert res.info["residual_history"][-1] == pytest.approx(expected, rel=1e-6)
    assert isinstance(res, SolveResult) and res.time_s >= 0.0
    # without residual computation it is NaN
    res2 = CGSolver(max_iter=3, tol=0.0, compute_residual=False).solve(p)
    assert res2.residual != res2.residual


def test_cg_warm_start():
    p = _random_problem(0.01)
    x_star = ExactSolver().solve(p).x
    res = CGSolver(max_iter=50, tol=1e-8).solve(p, x0=x_star)
    assert res.iterations == 0 and res.info["converged"]
    torch.testing.assert_close(res.x, x_star)
    # a warm start near the solution needs fewer iterations than a cold one
    cold = CGSolver(max_iter=50, tol=1e-10).solve(p)
    warm = CGSolver(max_iter=50, tol=1e-10).solve(p, x0=x_star + 1e-6 * torch.randn_like(x_star))
    assert warm.iterations <= cold.iterations
    assert _rel(warm.x, x_star) < 1e-6


def test_cg_zero_rhs():
    p = LinearProblem(g=torch.zeros(5, dtype=torch.float64), damping=0.1, F=torch.eye(5).double())
    res = CGSolver().solve(p)
    assert res.iterations == 0 and torch.all(res.x == 0) and res.residual == 0.0


def test_exact_falls_back_when_not_positive_definite():
    F = torch.diag(torch.tensor([1.0, -3.0, 2.0], dtype=torch.float64))
    p = LinearProblem(g=torch.ones(3, dtype=torch.float64), damping=0.5, F=F)
    res = ExactSolver().solve(p)
    assert res.info.get("fallback") == "lu"
    assert res.residual < 1e-12


def test_woodbury_needs_factor_and_damping():
    p = _random_problem(0.1)
    with pytest.raises(ValueError, match="factor S"):
        WoodburySolver().solve(LinearProblem(g=p.g, damping=0.1, F=p.dense()))
    with pytest.raises(ValueError, match="damping"):
        WoodburySolver().solve(LinearProblem(g=p.g, damping=0.0, S=p.S))


def test_problem_validation():
    g = torch.ones(4, dtype=torch.float64)
    with pytest.raises(ValueError, match="one of"):
        LinearProblem(g=g, damping=0.1)
    with pytest.raises(ValueError, match="S must be"):
        LinearProblem(g=g, damping=0.1, S=torch.ones(2, 3, dtype=torch.float64))


def test_registry_make_and_unknown_name():
    assert {"exact", "cg", "woodbury"} <= set(available_solvers())
    cg = make_solver("cg", max_iter=7, tol=1e-4)
    assert isinstance(cg, CGSolver) and cg.max_iter == 7 and cg.tol == 1e-4
    assert isinstance(make_solver("exact"), ExactSolver)
    assert isinstance(make_solver("woodbury"), WoodburySolver)
    with pytest.raises(ValueError, match="unknown solver 'nope'") as exc:
        make_solver("nope")
    for name in ("exact", "cg", "woodbury"):
        assert name in str(exc.value)
    if "spice" not in REGISTRY:
        with pytest.raises(ValueError, match="registered by its own module"):
            make_solver("spice")


def test_register_solver():
    class Half(Solver):
        name = "half-test"

        def _solve(self, problem, x0, state):
            return problem.g / 2, 1, {"state": state}

    try:
        register_solver("half-test", Half)
        res = make_solver("half-test").solve(_random_problem(1.0), state=3)
        assert res.iterations == 1 and res.info["state"] == 3
        register_solver("half-test", Half)  # same factory again: fine
        with pytest.raises(ValueError, match="already registered"):
            register_solver("half-test", ExactSolver)
        register_solver("half-test", ExactSolver, overwrite=True)
        assert isinstance(make_solver("half-test"), ExactSolver)
    finally:
        REGISTRY.pop("half-test", None)
