"""The `spice` solver (ngspice in the loop) against the exact OU surrogate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spu_circuits.errors import SimulationError
from tngd.curvature import compute_curvature, flatten_params
from tngd.solvers import LinearProblem, make_solver

from ..conftest import needs_ngspice

pytestmark = needs_ngspice


def tiny_problem(damping: float = 0.1) -> LinearProblem:
    """Logistic regression, 4 features → 3 classes (N = 15), batch 4, float64."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3).double()
    x = torch.randn(4, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 1])
    theta, _ = flatten_params(model)
    curv = compute_curvature(model, theta, x, y, loss="ce")
    return LinearProblem.from_curvature(curv, damping)


@pytest.fixture(scope="module")
def problem():
    return tiny_problem()


def test_spice_matches_ou_exact_noiseless(problem):
    import tngd.solvers_spice  # noqa: F401 - registers "spice"

    for t in (0.5, 5.0):
        sp = make_solver("spice", t=t)
        try:
            xs = sp.solve(problem, x0=problem.g).x
        finally:
            sp.close()
        xo = make_solver("ou-exact", t=t).solve(problem, x0=problem.g).x
        # finite op-amp gain (1e6) and ngspice's trapezoidal steps: ≤ 1e-4 relative
        assert float((xs - xo).norm() / xo.norm()) < 1e-4


def test_spice_statistical_agreement_with_ou_exact(problem):
    """κ₀ > 0, reset start, t = 1τ: the spice estimates and ou-exact's agree in mean within
    4 standard errors per coordinate (SEs from each method's own sample spread)."""
    import tngd.solvers_spice  # noqa: F401

    n_spice, n_ou, t, kappa0 = 24, 2000, 1.0, 0.05
    sp = make_solver("spice", t=t, kappa0=kappa0, seed=11)
    try:
        xs = torch.stack([sp.solve(problem, x0=problem.g).x for _ in range(n_spice)])
    finally:
        sp.close()
    ou = make_solver("ou-exact", t=t, kappa0=kappa0, seed=12)
    xo = torch.stack([ou.solve(problem, x0=problem.g).x for _ in range(n_ou)])
    diff = xs.mean(0) - xo.mean(0)
    se = torch.sqrt(xs.var(0) / n_spice + xo.var(0) / n_ou)
    z = (diff / se).abs()
    assert float(z.max()) < 4.0, z
    # the noise is real: the spread is that of the OU law, not zero
    assert float(xs.std(0).mean()) > 0.3 * float(xo.std(0).mean())
    # and the spreads agree: ratio of variances within its sampling error (F with 23 dof)
    ratio = (xs.var(0) / xo.var(0)).mean()
    assert 0.5 < float(ratio) < 1.6


def test_spice_keeps_decks(tmp_path, problem):
    import tngd.solvers_spice  # noqa: F401

    sp = make_solver("spice", t=1.0, keep_dir=tmp_path, keep_every=2)
    try:
        for _ in range(3):
            sp.solve(problem)
    finally:
        sp.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_0000", "step_0002"]
    assert (tmp_path / "step_0000" / "tngd.cir").exists()
    assert (tmp_path / "step_0000" / "tngd.json").exists()


def test_spice_failure_names_deck_and_log(tmp_path, problem):
    import tngd.solvers_spice  # noqa: F401

    sp = make_solver("spice", t=50.0, keep_dir=tmp_path, timeout_s=0.05, tmax_frac=1e-4)
    with pytest.raises(SimulationError) as ei:
        sp.solve(problem)
    sp.close()
    err = ei.value
    assert "ngspice failed at solve 0 of the spice solver" in str(err)
    assert err.deck and err.deck.endswith("failed_step_0000/tngd.cir")
    assert err.log_path and np.lib.format  # kept log file exists
    from pathlib import Path

    assert Path(err.log_path).exists() and Path(err.deck).exists()
