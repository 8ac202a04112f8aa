"""The solver registry (lazy import paths, device flag), typed OU state and its save/restore."""

from __future__ import annotations

import io
import math
import subprocess
import sys

import pytest
import torch

from tngd.solvers import (
    DEVICE_DEFAULTS,
    REGISTRY,
    LinearProblem,
    Solver,
    SolverEntry,
    build_solver,
    make_solver,
    register_solver,
)
from tngd.solvers_ou import OUExactSolver, OUState

F64 = torch.float64


def _problem(seed=0, r=5, n=12, lam=0.2):
    gen = torch.Generator().manual_seed(seed)
    return LinearProblem(g=torch.randn(n, dtype=F64, generator=gen), damping=lam,
                         S=torch.randn(r, n, dtype=F64, generator=gen))


def test_registry_is_lazy_and_declares_devices():
    for name, entry in REGISTRY.items():
        assert isinstance(entry, SolverEntry) and isinstance(entry.target, str), name
    assert {n for n, e in REGISTRY.items() if e.device} >= {"ou-exact", "ou-euler", "spice"}
    assert not any(REGISTRY[n].device for n in ("exact", "cg", "woodbury"))
    # importing the registry and the optimizer imports no solver module (fresh interpreter)
    code = ("import sys, tngd.solvers, tngd.optimizer; "
            "print(sorted(m for m in sys.modules if m in "
            "('tngd.solvers_spice', 'spu_circuits.backends')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_build_solver_uses_the_device_flag():
    s = build_solver("ou-exact")
    assert isinstance(s, OUExactSolver) and s.t == DEVICE_DEFAULTS["t"]
    s = build_solver("ou-euler", t=2.0, t_d=0.5, kappa0=0.1, seed=3, dt=0.05)
    assert (s.t, s.t_d, s.kappa0, s.seed, s.dt) == (2.0, 0.5, 0.1, 3, 0.05)
    cg = build_solver("cg", t=5.0, seed=1, max_iter=3)  # digital: t and seed ignored
    assert cg.max_iter == 3
    with pytest.raises(ValueError, match="does not support t_d"):
        build_solver("woodbury", t_d=1.0)
    with pytest.raises(ValueError, match="unknown solver 'nope'"):
        build_solver("nope")

    class Dev(Solver):
        def __init__(self, t, t_d, kappa0, seed=None):
            super().__init__()
            self.args = (t, t_d, kappa0, seed)

        def _solve(self, problem, x0, state):
            return problem.g, None, {}

    try:
        register_solver("dev-test", Dev, device=True)
        assert build_solver("dev-test", seed=4).args == (50.0, 0.0, 0.0, 4)
        register_solver("lazy-test", "tngd.solvers:ExactSolver")
        assert type(make_solver("lazy-test")).__name__ == "ExactSolver"
        register_solver("broken-test", "tngd.no_such_module:X")
        with pytest.raises(ValueError, match="not available"):
            make_solver("broken-test")
    finally:
        for n in ("dev-test", "lazy-test", "broken-test"):
            REGISTRY.pop(n, None)


def test_close_and_context_manager():
    closed = []

    class Holder(Solver):
        def _solve(self, problem, x0, state):
            return problem.g, None, {}

        def close(self):
            closed.append(True)

    with Holder() as h:
        h.solve(_problem())
    assert closed == [True]
    make_solver("exact").close()  # the default is a no-op


def test_ou_state_is_typed_and_round_trips():
    p1, p2 = _problem(1), _problem(2)
    s = OUExactSolver(t=2.0, t_d=0.5, kappa0=0.01, seed=5)
    r1 = s.solve(p1)
    st = r1.state
    assert isinstance(st, OUState) and st is r1.info["state"]
    assert torch.equal(st.x, r1.x) and st.prev is p1 and st.decomposition is not None
    saved = s.save_state(st)
    buf = io.BytesIO()
    torch.save(saved, buf)
    buf.seek(0)
    back = s.load_state(torch.load(buf), like=p1.g)
    assert isinstance(back, OUState) and back.decomposition is None
    rng = s.get_rng_state()
    a = s.solve(p2, state=st)
    s.set_rng_state(rng)
    b = s.solve(p2, state=back)  # decomposition rebuilt: the same step, bit for bit
    assert torch.equal(a.x, b.x)
    # the earlier mapping form is still accepted
    c = OUExactSolver(t=2.0, t_d=0.5).solve(p2, state={"x": st.x, "prev": p1})
    assert torch.allclose(c.x, OUExactSolver(t=2.0, t_d=0.5).solve(p2, state=st).x,
                          rtol=0, atol=1e-13)
    # a matrix-free previous system cannot be checkpointed
    mf = LinearProblem(g=p1.g, damping=0.2, fvp=lambda v: v)
    with pytest.raises(ValueError, match="matrix-free"):
        s.save_state(OUState(x=p1.g, prev=mf))
    assert make_solver("cg").save_state(None) is None


def test_ou_exact_krylov_is_default_and_reports():
    p = _problem(3, r=6, n=40, lam=0.05)
    res = OUExactSolver(t=50.0).solve(p)
    assert res.info["method"] == "krylov" and res.info["krylov_iterations"] > 0
    assert res.info["krylov_fallbacks"] == 0
    ref = OUExactSolver(t=50.0, method="gram").solve(p)
    assert float((res.x - ref.x).norm() / ref.x.norm()) < 1e-12
    assert OUExactSolver(t=math.inf).solve(p).info["krylov_iterations"] == 0
